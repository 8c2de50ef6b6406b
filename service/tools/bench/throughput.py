"""(1) Throughput: the same pre-loaded topic read by a raw consumer and by the worker, in
events per second and in CPU per event."""

from __future__ import annotations

import asyncio
from typing import Any

from service.tools.bench.base import progress
from service.tools.bench.events import simulated
from service.tools.bench.report import Row, fmt
from service.tools.bench.run import Run
from service.tools.bench.topics import produce, raw_consume
from service.tools.bench.worker import BenchWorker


def measure_throughput(run: Run) -> BenchWorker:
    """(1) the same pre-loaded topic read by a raw consumer and by the worker; (5) in quick mode
    the worker's run is also the replay figure. The worker is left running."""
    n = run.plan.throughput_events
    progress(f"throughput: simulating {n:,} events")
    messages = simulated(n, seed=11)
    topic = run.topic("throughput")
    asyncio.run(produce(run.bootstrap, topic, messages))
    del messages
    progress("throughput: raw aiokafka getmany + orjson.loads (median of 3 reads)")
    reads = sorted(asyncio.run(raw_consume(run.bootstrap, topic, n)) for _ in range(3))
    raw_wall, raw_cpu = reads[1]
    progress(f"throughput: worker on the same {n:,} events")
    worker = run.worker("throughput", topic)
    worker.start()
    counted = worker.wait_processed(n, timeout=max(300.0, n / 100), every=0.5)
    worker_rate = counted.rate(n)
    raw_rate = n / raw_wall
    raw_cpu_us = 1e6 * raw_cpu / n
    worker_cpu_us = counted.cpu_us_per_event(n)
    run.results.update(
        throughput_events=n,
        raw_events_per_s=round(raw_rate),
        worker_events_per_s=round(worker_rate),
        throughput_ratio=round(worker_rate / raw_rate, 4),
        # CPU time per event, which a busy shared machine disturbs less than wall time.
        raw_cpu_us_per_event=round(raw_cpu_us, 1),
        worker_cpu_us_per_event=round(worker_cpu_us, 1),
        throughput_ratio_cpu=round(raw_cpu_us / worker_cpu_us, 4),
    )
    if run.plan.replay_dossiers_per_day is None:
        elapsed = counted.done - worker.started_at
        run.results.update(
            replay_events=n,
            replay_s=round(elapsed, 2),
            replay_events_per_s=round(n / elapsed),
            replay_source="the throughput run (simulated history, seed 11)",
        )
    return worker


def rows(r: dict[str, Any]) -> list[Row]:
    return [
        ("raw aiokafka getmany + JSON decode", fmt(r["raw_events_per_s"], "events/s"), ""),
        ("worker until counters account for all", fmt(r["worker_events_per_s"], "events/s"), ""),
        (
            "CPU per event: raw consumer / worker",
            f"{fmt(r['raw_cpu_us_per_event'])} / {fmt(r['worker_cpu_us_per_event'])} µs",
            f"ratio {fmt(r['throughput_ratio_cpu'])}",
        ),
        (
            f"throughput ratio ({r['throughput_events']:,} events)",
            fmt(r["throughput_ratio"]),
            "≥ 0.5",
        ),
    ]
