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
    measure_noop(run, topic, n)
    if run.plan.replay_dossiers_per_day is None:
        elapsed = counted.done - worker.started_at
        run.results.update(
            replay_events=n,
            replay_s=round(elapsed, 2),
            replay_events_per_s=round(n / elapsed),
            replay_source="the throughput run (simulated history, seed 11)",
        )
    return worker


NOOP = ("-m", "service.tools.bench.noop_agent")


def measure_noop(run: Run, topic: str, n: int) -> None:
    """The floor of faust's per-message path: an agent that only counts, on the same topic
    and app settings, with the worker's sensors and with faust's Monitor and Prometheus
    sensors put back."""
    for sensors in ("none", "monitor", "prometheus"):
        progress(f"throughput: no-op faust agent (sensors: {sensors}) on the same events")
        agent = run.worker(f"noop-{sensors}", topic, command=(*NOOP, "--sensors", sensors))
        agent.start()
        counted = agent.wait_processed(n, timeout=max(300.0, n / 100), every=0.5)
        agent.stop()
        key = "noop" if sensors == "none" else f"noop_{sensors}"
        run.results[f"{key}_events_per_s"] = round(counted.rate(n))
        run.results[f"{key}_cpu_us_per_event"] = round(counted.cpu_us_per_event(n), 1)
    run.results["worker_vs_noop_cpu"] = round(
        run.results["worker_cpu_us_per_event"] / run.results["noop_cpu_us_per_event"], 2
    )


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
            "CPU per event: no-op faust agent (worker's sensors / + Monitor / + Prometheus)",
            f"{fmt(r.get('noop_cpu_us_per_event'))} / "
            f"{fmt(r.get('noop_monitor_cpu_us_per_event'))} / "
            f"{fmt(r.get('noop_prometheus_cpu_us_per_event'))} µs",
            "",
        ),
        (
            "CPU per event: worker / no-op agent with the same sensors",
            fmt(r.get("worker_vs_noop_cpu")),
            "≤ 1.5",
        ),
        (
            f"throughput ratio ({r['throughput_events']:,} events)",
            fmt(r["throughput_ratio"]),
            "≥ 0.5",
        ),
    ]
