"""(5) Replay: a year of a large province, from an empty worker to final counters."""

from __future__ import annotations

import asyncio
from typing import Any

from service.tools.bench.base import progress
from service.tools.bench.events import encoded
from service.tools.bench.report import Row, fmt
from service.tools.bench.run import Run
from service.tools.bench.topics import produce
from service.tools.simulate import SimulationConfig, generate


def measure_replay(run: Run) -> None:
    """(5) a year of a large province from an empty worker to final counters."""
    plan = run.plan
    assert plan.replay_dossiers_per_day is not None
    config = SimulationConfig(
        dossiers=plan.replay_dossiers,
        seed=2026,
        dossiers_per_day=plan.replay_dossiers_per_day,
        duplicate_ratio=0.01,
    )
    topic = run.topic("replay")
    progress(f"replay: simulating {plan.replay_dossiers:,} dossiers and publishing them")
    n = asyncio.run(produce(run.bootstrap, topic, encoded(generate(config))))
    progress(f"replay: worker on {n:,} events")
    worker = run.worker("replay", topic)
    worker.start()
    counted = worker.wait_processed(n, timeout=max(600.0, n / 100), every=1.0)
    elapsed = counted.done - worker.started_at
    run.results.update(
        replay_events=n,
        replay_s=round(elapsed, 1),
        replay_events_per_s=round(n / elapsed),
        replay_source=(
            f"{plan.replay_dossiers:,} dossiers at {plan.replay_dossiers_per_day:,} a working day"
            " (seed 2026)"
        ),
    )
    worker.stop()


def rows(r: dict[str, Any]) -> list[Row]:
    """The replay's figure, which quick mode takes from the throughput run."""
    return [
        (
            f"replay: {r['replay_source']}",
            fmt(r["replay_events_per_s"], "events/s"),
            f"{fmt(r['replay_events'])} events in {fmt(r['replay_s'], 's')}",
        )
    ]
