"""(0) The domain path alone, in one process: `WorkerState.apply` + `commit` over a temporary
store (the production code), and parsing alone beside it, warmed and alternated."""

from __future__ import annotations

from typing import Any

from service.tools.bench.base import progress
from service.tools.bench.report import Row, fmt
from service.tools.bench.run import Run


def measure(run: Run) -> None:
    from service.tools.bench.domain_path import measure_domain, simulated_messages

    n = run.plan.throughput_events
    progress(f"domain path: {n:,} simulated events (seed 11), WorkerState.apply and parse")
    result = measure_domain(simulated_messages(n, seed=11))
    apply, parse = result["apply"], result["parse"]
    run.results.update(
        domain_events_per_s=apply["events_per_s"],
        domain_cpu_us_per_event=apply["cpu_us_per_event"],
        domain_rounds_cpu_us_per_event=apply["rounds_cpu_us_per_event"],
        parse_cpu_us_per_event=parse["cpu_us_per_event"],
    )


def rows(r: dict[str, Any]) -> list[Row]:
    if "domain_cpu_us_per_event" not in r:
        return []
    return [
        (
            "domain path per event (WorkerState.apply + commit / parse alone)",
            f"{fmt(r['domain_cpu_us_per_event'])} / {fmt(r.get('parse_cpu_us_per_event'))} µs",
            "≤ 30 µs",  # issue 25: on the stream with steps and index events
        ),
    ]
