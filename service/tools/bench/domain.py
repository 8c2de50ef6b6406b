"""(0) The domain path alone, in memory: parse, validate, advance the dossier, pack it per
batch, contribution and ledger — the old replay-everything path beside it, same events."""

from __future__ import annotations

from typing import Any

from service.tools.bench.base import progress
from service.tools.bench.report import Row, fmt
from service.tools.bench.run import Run


def measure(run: Run) -> None:
    from service.tools.bench.domain_path import measure_domain, simulated_messages

    n = run.plan.throughput_events
    progress(f"domain path: {n:,} simulated events in memory (seed 11), before and after")
    result = measure_domain(simulated_messages(n, seed=11), paths=("before", "after"))
    after, before = result["after"], result["before"]
    run.results.update(
        domain_events_per_s=after["events_per_s"],
        domain_cpu_us_per_event=after["cpu_us_per_event"],
        domain_replay_cpu_us_per_event=before["cpu_us_per_event"],
    )


def rows(r: dict[str, Any]) -> list[Row]:
    if "domain_cpu_us_per_event" not in r:
        return []
    return [
        (
            "domain path per event (incremental / full replay, in memory)",
            f"{fmt(r['domain_cpu_us_per_event'])} / {fmt(r['domain_replay_cpu_us_per_event'])} µs",
            "≤ 15 µs",
        ),
    ]
