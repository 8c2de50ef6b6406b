"""(6) Takeover: a worker with an empty store takes over the partitions of a worker that is
gone, catching them up from dossier-events itself (service/state/worker_state.py)."""

from __future__ import annotations

from typing import Any

from service.tools.bench.base import progress
from service.tools.bench.report import Row, fmt
from service.tools.bench.run import Run
from service.tools.bench.scrape import processed
from service.tools.bench.worker import BenchWorker


def measure_takeover(run: Run, gone: BenchWorker) -> None:
    """`gone` has read (and committed) its whole topic and been stopped; a new worker of the
    same group, on an empty disk, starts: the seconds until every partition is counted."""
    progress("takeover: a worker with an empty store takes over every partition")
    fresh = run.worker("takeover", gone.topic, group="throughput")
    fresh.start()
    seconds = fresh.wait_ready(timeout=600)
    counted = processed(fresh.metrics_text())
    fresh.stop()
    run.results.update(
        takeover_s=round(seconds, 2),
        takeover_events=counted,
        takeover_events_per_s=round(counted / seconds) if seconds else None,
    )


def rows(r: dict[str, Any]) -> list[Row]:
    if r.get("takeover_s") is None:
        return []
    return [
        (
            f"takeover by an empty store ({fmt(r.get('takeover_events'))} events, all partitions)",
            fmt(r["takeover_s"], "s"),
            "≤ 15 s for 250k events",
        ),
    ]
