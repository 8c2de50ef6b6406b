"""(1b) Peers, with `--peers`: another Python stream processor on the throughput topic,
measured like the no-op agent, so the comparison with the worker can be repeated."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from service.tools.bench.base import BenchError, progress
from service.tools.bench.report import Row, fmt
from service.tools.bench.run import Run
from service.tools.bench.topics import delete_topics

PEER_QUIX = ("-m", "service.tools.bench.peer_quix")
MISSING = (
    "motcua bench --peers: quixstreams is not installed;"
    " install it with .venv/bin/pip install -e '.[peers]'"
)


def require_quixstreams() -> None:
    """Raise BenchError (one line: how to install it) when quixstreams cannot be imported."""
    try:
        import quixstreams  # noqa: F401
    except ImportError:
        raise BenchError(MISSING) from None


def measure(run: Run) -> None:
    """Quix Streams on the throughput topic from the earliest offset, fresh consumer group
    and state: events per second and CPU per event until it has taken every event."""
    require_quixstreams()
    topic = run.topics["throughput"]
    n = run.results["throughput_events"]
    version = metadata.version("quixstreams")
    progress(f"peers: Quix Streams {version} (per-dossier state, changelog) on the same events")
    peer = run.worker("peer-quix", topic, command=PEER_QUIX)
    peer.start()
    try:
        # It takes a quick run's 20,000 events in about a second: poll finer than for the worker.
        counted = peer.wait_processed(n, timeout=max(300.0, n / 100), every=0.1)
    finally:
        peer.stop()
        # Its changelog topic is named after its consumer group, not the run's stamp.
        delete_topics(run.bootstrap, f"changelog__{peer.app_id}")
    run.results.update(
        peer_quix_version=version,
        peer_quix_events_per_s=round(counted.rate(n)),
        peer_quix_cpu_us_per_event=round(counted.cpu_us_per_event(n), 1),
    )


def rows(r: dict[str, Any]) -> list[Row]:
    if "peer_quix_cpu_us_per_event" not in r:
        return []
    return [
        (
            f"peer: Quix Streams {r['peer_quix_version']} (per-dossier state + changelog)",
            fmt(r["peer_quix_events_per_s"], "events/s"),
            "",
        ),
        (
            "CPU per event: worker / no-op faust agent / Quix Streams peer",
            f"{fmt(r.get('worker_cpu_us_per_event'))} / {fmt(r.get('noop_cpu_us_per_event'))}"
            f" / {fmt(r['peer_quix_cpu_us_per_event'])} µs",
            "the peer does less per event",
        ),
    ]
