"""The measurements of `motcua bench`, in the order they run and report.

To add one: write a module with `measure(run)` (it puts its figures in `run.results`, which
become keys of the final JSON line) and `rows(results)`, then add one `Step(...)` to STEPS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.tools.bench import (
    domain,
    history,
    latency,
    peers,
    replay,
    scale,
    takeover,
    throughput,
)
from service.tools.bench import gateway as bench_gateway
from service.tools.bench.plan import Plan
from service.tools.bench.report import Row, RowsOf
from service.tools.bench.run import Run


def _always(plan: Plan) -> bool:
    return True


@dataclass(frozen=True)
class Step:
    """One measurement: what it does, how its figures read, and in which plans it runs.

    Its rows are rendered even when `runs_in` skips it: quick mode, for one, fills the replay
    figures from the throughput run.
    """

    name: str
    measure: Callable[[Run], None]
    rows: RowsOf
    runs_in: Callable[[Plan], bool] = _always


def throughput_then_latency(run: Run) -> None:
    """Latency is taken on the worker that has just read the throughput topic; then a worker
    with an empty store takes its partitions over."""
    worker = throughput.measure_throughput(run)
    latency.measure_latency(run, worker)
    worker.stop()
    takeover.measure_takeover(run, worker)


def _throughput_and_latency_rows(results: dict[str, Any]) -> list[Row]:
    return throughput.rows(results) + latency.rows(results) + takeover.rows(results)


def _full_replay(plan: Plan) -> bool:
    return plan.replay_dossiers_per_day is not None


def _with_peers(plan: Plan) -> bool:
    return plan.peers


def _queue_pages(run: Run) -> None:
    from service.tools.bench.queue_pages import measure

    measure(run)


def _queue_rows(results: dict[str, Any]) -> list[Row]:
    from service.tools.bench.queue_pages import rows

    return rows(results)


STEPS: list[Step] = [
    Step("domain", domain.measure, domain.rows),
    Step("throughput", throughput_then_latency, _throughput_and_latency_rows),
    Step("peers", peers.measure, peers.rows, runs_in=_with_peers),
    Step("scale", scale.measure_scale, scale.rows),
    Step("replay", replay.measure_replay, replay.rows, runs_in=_full_replay),
    Step("queue", _queue_pages, _queue_rows),
    Step("gateway", bench_gateway.measure, bench_gateway.rows),
    Step("takeover", takeover.measure_takeover_at_scale, takeover.scale_rows),
    Step("history", history.measure, history.rows),
]
