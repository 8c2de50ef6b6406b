"""(6) Takeover: a worker with an empty store takes over the partitions of a worker that is
gone, catching them up from dossier-events itself (service/state/keeper.py), after the
throughput run; and (6b) the same at scale: `plan.takeover_events` simulated events already
handled by the group (committed offsets at the end), read by a worker on an empty disk
through the production catch-up path."""

from __future__ import annotations

import asyncio
from typing import Any

from service.tools.bench.base import progress
from service.tools.bench.events import simulated
from service.tools.bench.report import Row, fmt
from service.tools.bench.run import Run
from service.tools.bench.scrape import processed
from service.tools.bench.topics import produce
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


# The worker catching up alone, and with its default catch-up helpers (on a machine with a
# second core, one helper process: service/state/catch_up_helper.py).
ALONE = {"MOTCUA_CATCH_UP_HELPERS": "0"}


def measure_takeover_at_scale(run: Run) -> None:
    """`plan.takeover_events` events in a topic the group has handled; a worker with an empty
    store starts: seconds to ready, events per second, CPU per event (the helpers' included).
    The full plan runs the default worker and one catching up alone, alternated (A B B A),
    each with its own group and data dir; the figures are the default's slower run (the
    upper median), with the same of the runs alone and the ratio of the two."""
    n = run.plan.takeover_events
    progress(f"takeover at scale: simulating and publishing {n:,} events")
    topic = run.topic("takeover")
    asyncio.run(produce(run.bootstrap, topic, simulated(n, seed=13)))
    order = ["helped"] if run.plan.mode == "quick" else ["alone", "helped", "helped", "alone"]
    runs: dict[str, list[dict[str, float]]] = {"helped": [], "alone": []}
    for number, variant in enumerate(order):
        fresh = run.worker(
            f"takeover-scale-{number}-{variant}", topic, env=ALONE if variant == "alone" else {}
        )
        _commit_to_end(run.bootstrap, topic, fresh.app_id)
        progress(f"takeover at scale: an empty store catches up {n:,} events ({variant})")
        fresh.start()
        seconds = fresh.wait_ready(timeout=max(600.0, n / 1000))
        cpu = fresh.cpu_seconds()
        counted = processed(fresh.metrics_text())
        fresh.stop()
        runs[variant].append({"s": seconds, "cpu": cpu, "counted": counted})
    helped = _slower(runs["helped"])
    events, seconds = helped["counted"], helped["s"]
    run.results.update(
        takeover_scale_events=events,
        takeover_scale_s=round(seconds, 2),
        takeover_events_per_s=round(events / seconds) if seconds else None,
        takeover_cpu_us_per_event=round(1e6 * helped["cpu"] / events, 1) if events else None,
        takeover_scale_runs_s=[round(r["s"], 2) for r in runs["helped"]],
    )
    if runs["alone"]:
        alone = _slower(runs["alone"])
        run.results.update(
            takeover_alone_s=round(alone["s"], 2),
            takeover_alone_events_per_s=round(alone["counted"] / alone["s"]),
            takeover_alone_cpu_us_per_event=round(1e6 * alone["cpu"] / alone["counted"], 1),
            takeover_alone_runs_s=[round(r["s"], 2) for r in runs["alone"]],
            takeover_helped_speedup=round(alone["s"] / seconds, 2),
        )


def _slower(runs: list[dict[str, float]]) -> dict[str, float]:
    """The upper median by seconds: of two runs, the slower."""
    return sorted(runs, key=lambda r: r["s"])[len(runs) // 2]


def _commit_to_end(bootstrap: str, topic: str, group: str) -> None:
    """Make the group's committed offsets the end of every partition: what a group that has
    handled the whole topic leaves behind."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        end = consumer.end_offsets(tps)
        consumer.commit({tp: OffsetAndMetadata(end[tp], "", -1) for tp in tps})
    finally:
        consumer.close()


def rows(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    if r.get("takeover_s") is not None:
        out.append(
            (
                f"takeover by an empty store ({fmt(r.get('takeover_events'))} events, "
                "all partitions)",
                fmt(r["takeover_s"], "s"),
                "≤ 15 s for 250k events",
            )
        )
    return out


def scale_rows(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    if r.get("takeover_scale_s") is not None:
        out.append(
            (
                f"takeover at scale ({fmt(r.get('takeover_scale_events'))} events): seconds, "
                "events/s, CPU µs/event",
                f"{fmt(r['takeover_scale_s'], 's')}, {fmt(r['takeover_events_per_s'])}/s, "
                f"{fmt(r['takeover_cpu_us_per_event'])} µs",
                "≥ 50,000 events/s; 1M events ≤ 25 s",
            )
        )
    if r.get("takeover_alone_s") is not None:
        out.append(
            (
                "  the same, the worker alone (no catch-up helper), and the default's speed-up",
                f"{fmt(r['takeover_alone_s'], 's')}, {fmt(r['takeover_alone_events_per_s'])}/s, "
                f"{fmt(r['takeover_alone_cpu_us_per_event'])} µs; "
                f"× {fmt(r['takeover_helped_speedup'])}",
                "",
            )
        )
    return out
