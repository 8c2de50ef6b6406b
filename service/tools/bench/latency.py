"""(2) End-to-end latency: events published at a steady rate, each reflected once /metrics
has counted it."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from service.tools.bench.base import SCRAPE_INTERVAL, BenchError, Message, progress
from service.tools.bench.events import simulated
from service.tools.bench.report import Row, fmt
from service.tools.bench.run import Run
from service.tools.bench.scrape import processed
from service.tools.bench.worker import BenchWorker


def measure_latency(run: Run, worker: BenchWorker) -> None:
    """(2) publish at a steady rate; an event is reflected when /metrics has counted it."""
    plan = run.plan
    count = plan.latency_rate * plan.latency_seconds
    progress(f"latency: {plan.latency_rate} events/s for {plan.latency_seconds} s")
    messages = simulated(count, seed=12)
    latencies = asyncio.run(_paced_latency(run.bootstrap, worker, messages, plan.latency_rate))
    latencies.sort()
    run.results.update(
        latency_events=count,
        latency_rate=plan.latency_rate,
        latency_p50_s=round(latencies[len(latencies) // 2], 4),
        latency_p99_s=round(latencies[math.ceil(0.99 * len(latencies)) - 1], 4),
        latency_max_s=round(latencies[-1], 4),
        latency_resolution_s=SCRAPE_INTERVAL,
    )


async def _paced_latency(
    bootstrap: str, worker: BenchWorker, messages: list[Message], rate: int
) -> list[float]:
    """Send time of event i vs the first scrape whose processed count reaches i + 1.

    Every partition is consumed in order and events spread evenly over partitions, so the
    i-th event counted is the i-th sent up to cross-partition reordering; the read time of
    the scrape (after the response) is used, so the figure errs on the slow side.
    """
    import aiohttp
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    sent_at = [0.0] * len(messages)
    seen: list[tuple[float, int]] = []
    async with aiohttp.ClientSession() as session:

        async def count() -> int:
            async with session.get(worker.url + "/metrics") as resp:
                return processed(await resp.text())

        base = await count()

        async def publish() -> None:
            start = time.monotonic()
            for i, (key, value) in enumerate(messages):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at[i] = time.monotonic()
                await producer.send(worker.topic, value, key=key)
            await producer.flush()

        async def scrape() -> None:
            deadline = time.monotonic() + len(messages) / rate + 60
            while time.monotonic() < deadline:
                counted = await count() - base
                seen.append((time.monotonic(), counted))
                if counted >= len(messages):
                    return
                await asyncio.sleep(SCRAPE_INTERVAL)
            raise BenchError(f"latency: counted {seen[-1][1]:,} of {len(messages):,} events")

        try:
            await asyncio.gather(publish(), scrape())
        finally:
            await producer.stop()
    latencies = []
    at = 0
    for i, sent in enumerate(sent_at):
        while seen[at][1] < i + 1:
            at += 1
        latencies.append(seen[at][0] - sent)
    return latencies


def rows(r: dict[str, Any]) -> list[Row]:
    return [
        (
            f"latency p50 ({r['latency_rate']}/s, {r['latency_events']:,} events)",
            fmt(r["latency_p50_s"], "s"),
            "",
        ),
        ("latency p99", fmt(r["latency_p99_s"], "s"), "≤ 1 s"),
        ("latency max", fmt(r["latency_max_s"], "s"), ""),
    ]
