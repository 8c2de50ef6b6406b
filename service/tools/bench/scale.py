"""(3) Overdue detection lag and (4) scale: RSS and /metrics render time as open dossiers
grow, then the restart of a worker holding the largest store."""

from __future__ import annotations

import asyncio
import math
import re
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from service.outputs.metrics import TIMELINESS_MAX_AGE_S
from service.tools.bench.base import PARTITIONS, SCRAPE_INTERVAL, BenchError, progress
from service.tools.bench.events import EXTRA_AGENCIES, open_receipts
from service.tools.bench.report import Row, fmt
from service.tools.bench.run import Run
from service.tools.bench.scrape import open_dossiers, open_overdue, processed, sample_sum
from service.tools.bench.topics import produce
from service.tools.bench.worker import BenchWorker
from service.tools.simulate import AGENCIES

SOON_DOSSIERS = 1_000
# agents/recovery.py logs how long rebuilding the sums took.
# The worker's line per partition made ready (service/state/worker_state.py).
REBUILT = re.compile(r"events read from the log in [0-9.]+s, sums rebuilt in ([0-9.]+)s")


def measure_scale(run: Run) -> None:
    """(3) overdue detection lag and (4) RSS and /metrics render time at each size, then the
    restart of a worker holding the largest store."""
    topic = run.topic("scale")
    worker = run.worker("scale", topic)
    worker.start()
    worker.wait_ready(timeout=120)
    rss_empty = worker.rss_mib()
    stages = []
    loaded = 0
    far = datetime.now(UTC) + timedelta(days=90)
    for size in run.plan.open_sizes:
        bulk = size - loaded - SOON_DOSSIERS
        progress(f"scale: loading {bulk:,} open dossiers (due in 90 days)")
        before = processed(worker.metrics_text())
        started = time.monotonic()
        asyncio.run(produce(run.bootstrap, topic, open_receipts(bulk, loaded, far, run.stamp)))
        counted = worker.wait_processed(before + bulk, timeout=max(300.0, bulk / 100))
        load_rate = bulk / (counted.done - started)
        loaded += bulk
        lag, first = _overdue_lag(run, worker, topic, loaded)
        loaded += SOON_DOSSIERS
        text = worker.metrics_text()
        if open_dossiers(text) != loaded:
            raise BenchError(f"scale: {open_dossiers(text):,} open dossiers, expected {loaded:,}")
        # At the largest size, read for longer than the collector caches its period report,
        # so the slow scrape that rebuilds it is among the reads.
        last = size == run.plan.open_sizes[-1]
        render = _render_ms(
            worker, int(TIMELINESS_MAX_AGE_S) + 2 if last else 5, 1.0 if last else 0.2
        )
        stage = {
            "open": loaded,
            "overdue_lag_s": round(lag, 3),
            "overdue_first_s": round(first, 3),
            "rss_mib": round(worker.rss_mib(), 1),
            "load_events_per_s": round(load_rate),
            "metrics_render_ms": render[0],
            "metrics_render_max_ms": render[1],
            "metrics_collector_max_ms": render[2],
            "metrics_bytes": len(text),
        }
        stages.append(stage)
        progress(f"scale: {stage}")
    progress(f"scale: restarting the worker with {loaded:,} dossiers in its store")
    worker.stop()
    worker.start()
    ready = worker.wait_ready(timeout=600)
    rebuilds = REBUILT.findall(worker.log_path.read_text(errors="replace"))
    found = open_dossiers(worker.metrics_text())
    if found != loaded:
        raise BenchError(f"restart: {found:,} open dossiers after recovery, expected {loaded:,}")
    by_size = {s["open"]: s for s in stages}
    rss_stage = by_size.get(100_000, stages[-1])
    run.results.update(
        overdue_lag_s=max(s["overdue_lag_s"] for s in stages),
        rss_mib_empty=round(rss_empty, 1),
        rss_mib_100k=rss_stage["rss_mib"],
        rss_dossiers=rss_stage["open"],
        rss_mib_1m=by_size[1_000_000]["rss_mib"] if 1_000_000 in by_size else None,
        metrics_render_ms=stages[-1]["metrics_render_ms"],
        metrics_render_max_ms=stages[-1]["metrics_render_max_ms"],
        metrics_collector_max_ms=stages[-1]["metrics_collector_max_ms"],
        metrics_agencies=len(AGENCIES) + len(EXTRA_AGENCIES),
        restart_ready_s=round(ready, 2),
        # Of which: the ledger's sums rebuilt from the store (the worker's own log line).
        restart_rebuild_s=(
            round(sum(float(s) for s in rebuilds[-PARTITIONS:]), 2) if rebuilds else None
        ),
        restart_dossiers=loaded,
        rss_mib_after_restart=round(worker.rss_mib(), 1),
        scale_stages=stages,
    )
    worker.stop()


def _overdue_lag(run: Run, worker: BenchWorker, topic: str, first: int) -> tuple[float, float]:
    """Publish SOON_DOSSIERS dossiers due `overdue_lead` seconds ahead; seconds from their due
    until the overdue gauge counts all of them (and until it counts the first)."""
    base = open_overdue(worker.metrics_text())
    due = math.ceil(time.time() + run.plan.overdue_lead)
    soon = open_receipts(SOON_DOSSIERS, first, datetime.fromtimestamp(due, UTC), run.stamp)
    asyncio.run(produce(run.bootstrap, topic, soon))
    seen_first: float | None = None
    while time.time() < due + 120:
        counted = open_overdue(worker.metrics_text()) - base
        now = time.time()
        if counted > 0 and seen_first is None:
            seen_first = now - due
        if counted >= SOON_DOSSIERS:
            assert seen_first is not None
            return now - due, seen_first
        time.sleep(SCRAPE_INTERVAL)
    raise BenchError("overdue: the gauge did not count the due dossiers within 120 s")


def _render_ms(worker: BenchWorker, reads: int, every: float) -> tuple[float, float, float]:
    """Wall time of whole GETs of /metrics (motcua and faust series, HTTP included), one
    every `every` seconds: (median ms, max ms, max ms of the motcua_ collector alone)."""
    times, collector = [], []
    for _ in range(reads):
        started = time.perf_counter()
        status, body = worker.get("/metrics")
        times.append(time.perf_counter() - started)
        if status == 200:
            collector.append(sample_sum(body.decode(), ("motcua_metrics_render_seconds",)))
        time.sleep(every)
    return (
        round(statistics.median(times) * 1000, 2),
        round(max(times) * 1000, 2),
        round(max(collector, default=0.0) * 1000, 2),
    )


def rows(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for stage in r["scale_stages"]:
        n = fmt(stage["open"])
        out += [
            (
                f"overdue lag, all {SOON_DOSSIERS:,} counted ({n} open)",
                fmt(stage["overdue_lag_s"], "s"),
                "≤ 3 s, flat",
            ),
            (f"overdue lag, first counted ({n} open)", fmt(stage["overdue_first_s"], "s"), ""),
            (
                f"worker RSS ({n} open)",
                fmt(stage["rss_mib"], "MiB"),
                "≤ 1,536 MiB at 1M" if stage["open"] >= 1_000_000 else "",
            ),
            (f"bulk load of open dossiers ({n})", fmt(stage["load_events_per_s"], "events/s"), ""),
        ]
    out += [
        ("worker RSS, empty store", fmt(r["rss_mib_empty"], "MiB"), ""),
        (
            f"GET /metrics, {r['metrics_agencies']} agencies (median)",
            fmt(r["metrics_render_ms"], "ms"),
            "≤ 50 ms",
        ),
        ("GET /metrics, slowest read", fmt(r["metrics_render_max_ms"], "ms"), ""),
        ("  slowest motcua_ collector", fmt(r["metrics_collector_max_ms"], "ms"), ""),
        (
            f"restart to ready ({r['restart_dossiers']:,} dossiers stored)",
            fmt(r["restart_ready_s"], "s"),
            "≤ 60 s",
        ),
        ("  of which sums rebuilt from the store", fmt(r.get("restart_rebuild_s"), "s"), ""),
        ("worker RSS after that restart", fmt(r["rss_mib_after_restart"], "MiB"), ""),
    ]
    return out
