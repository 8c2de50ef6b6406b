"""Property: whatever the interleaving of batches, failures, revocations and restarts, the
state layer ends where a replay of the log from scratch ends: the same store (open and
closed dossiers), the same closed sums and day totals, the same live counters, and every
period report equal to `period_report` over every dossier's facts."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_keeper import (
    CAL,
    NOW,
    TOPIC,
    MemoryLog,
    Outputs,
    keeper_over,
    messages_of,
    samples,
    simulated,
)

import service.state.log_applier as applier_module
import service.state.recovery as recovery_module
import service.state.transaction as transaction_module
from schemas import InvalidEvent
from service.domain.index import add_index
from service.domain.progress import fold_with_facts
from service.domain.report import (
    index_report,
    period_bounds,
    period_report,
    with_period_timeliness,
)
from service.domain.steps import step_marks, step_outcomes
from service.state.intake import parse
from service.state.ledger import Ledger, add_figures
from service.state.recent import RecentDossiers
from service.state.store import DossierStore
from service.state.worker_state import WorkerState

Op = tuple[str, int]
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("deliver"), st.integers(1, 25)),
        st.tuples(st.just("deliver_failing"), st.integers(1, 25)),
        st.tuples(st.just("deliver_refused"), st.integers(1, 25)),
        st.tuples(st.just("rebalance"), st.just(0)),
        st.tuples(st.just("restart"), st.just(0)),
    ),
    max_size=12,
)


class Failures:
    """A parse that fails once on cue, as a passing bug would."""

    def __init__(self) -> None:
        self.armed = False

    def parse(self, value: Any, key: Any, now: datetime) -> Any:
        if self.armed:
            self.armed = False
            raise RuntimeError("a passing failure")
        return parse(value, key, now)


def truth_dossiers(log: MemoryLog) -> list[tuple[Any, Any]]:
    by_dossier: dict[str, list[Any]] = defaultdict(list)
    for message in log.partitions[0]:
        try:
            event = parse(
                message.value, message.key, datetime.fromtimestamp(message.timestamp, UTC)
            )
        except InvalidEvent:
            continue
        by_dossier[event.dossier_id].append(event)
    return [fold_with_facts(dossier_id, events, CAL) for dossier_id, events in by_dossier.items()]


def counts_of(index: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {a: {k: n for k, n in f.counts.items() if n} for a, f in index.items() if f.counts}


async def run(ops: list[Op], log: MemoryLog, path: Path, failures: Failures, recent: int) -> Any:
    outputs = Outputs()
    keeper, _ = keeper_over(path, log, outputs, recent)
    messages = log.partitions[0]
    position = 0  # what faust has handed over (and acknowledged) so far
    keeper.on_assigned([0])
    await keeper.wait_caught_up(timeout=10)
    for op, size in ops:
        batch = messages[position : position + size]
        if op.startswith("deliver") and batch:
            failures.armed = op == "deliver_failing"
            outputs.refuse = 1 if op == "deliver_refused" else 0
            try:
                await keeper.deliver(batch)
            except Exception as exc:
                keeper.abandon(batch, type(exc).__name__)
                await keeper.wait_caught_up(timeout=10)
            failures.armed, outputs.refuse = False, 0
            position += len(batch)
            log.committed_offsets[0] = position
        elif op == "rebalance":
            keeper.on_revoked()
            keeper.on_assigned([0])
            await keeper.wait_caught_up(timeout=10)
        elif op == "restart":
            await keeper.close()
            keeper, _ = keeper_over(path, log, outputs, recent)
            keeper.on_assigned([0])
            await keeper.wait_caught_up(timeout=10)
    await keeper.deliver(messages[position:])
    return keeper


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery_module, "RETRY_S", 0.001)
    monkeypatch.setattr(applier_module, "TRANSACTION_EVENTS", 11)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS, seed=st.integers(0, 10_000), recent=st.sampled_from([0, 1, 3, 20_000]))
def test_any_interleaving_ends_where_a_replay_ends(
    ops: list[Op],
    seed: int,
    recent: int,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: Any,
) -> None:
    path = tmp_path_factory.mktemp("state")
    log = MemoryLog({0: messages_of(0, simulated(20, seed=seed, bad_every=13))})
    failures = Failures()
    monkeypatch.setattr(transaction_module, "parse", failures.parse)
    # `recent`: the decoded cache's size (0: every dossier read from the store), as small as
    # one so that evictions happen in every example that has several dossiers.
    keeper = asyncio.run(run(ops, log, path / "store", failures, recent))
    state = keeper.state
    assert keeper.ledger.ready
    assert state.meta(0).applied == len(log.partitions[0]) - 1

    replay_ledger = Ledger(CAL)
    replay_ledger.assign([0])
    replay = WorkerState(
        DossierStore(path / "replay", TOPIC), replay_ledger, CAL, RecentDossiers(0)
    )
    replay.commit(replay.apply(log.partitions[0], live=False))
    replay_ledger.install(0, asyncio.run(replay.rebuild(0)))
    assert dict(state.store.open_dossiers(0)) == dict(replay.store.open_dossiers(0))
    assert dict(state.store.closed_dossiers(0)) == dict(replay.store.closed_dossiers(0))
    assert state.meta(0) == replay.meta(0)
    assert state.closed_totals(0) == replay.closed_totals(0)
    assert state.history(0) == replay.history(0)
    now = datetime.now(UTC)
    keeper.ledger.tick(now)
    replay_ledger.tick(now)
    assert samples(keeper.ledger) == samples(replay_ledger)

    folded = truth_dossiers(log)
    everything = [facts for _, facts in folded if facts is not None]
    steps = [mark for dossier, _ in folded for mark in step_marks(dossier.steps_done)]
    # Not asserted per example: a center of 20 dossiers may complete no step (seed 5129);
    # test_simulated_centers_complete_steps keeps this comparison from being vacuous.
    today = now.astimezone(UTC).date()
    for start, end in [
        (today - timedelta(days=400), today),
        (today.replace(day=1), today),
        (today - timedelta(days=30), today - timedelta(days=10)),
        (date(today.year, 1, 1), date(today.year, 12, 31)),
    ]:
        [closed], facts = keeper.ledger.report_parts([(start, end)], None, now)
        got = period_report(facts, start, end, now=now)
        add_figures(got, closed)
        want = period_report(everything, start, end, now=now)
        assert {k: v.to_dict() for k, v in got.items()} == {k: v.to_dict() for k, v in want.items()}
        # The national index: closed dossiers' counts from the day totals, open ones' scanned.
        index = index_report(facts, start, end, now=now)
        add_index(index, keeper.ledger.closed_index({"p": (start, end)}, now).by_period["p"])
        want_index = index_report(everything, start, end, now=now)
        assert counts_of(with_period_timeliness(index, got)) == counts_of(
            with_period_timeliness(want_index, want)
        )
        # Step outcomes per department: closed dossiers' from the day totals, open ones'.
        assert keeper.ledger.step_report(start, end) == step_outcomes(
            steps, *period_bounds(start, end)
        )
    state.store.close()
    replay.store.close()


@pytest.mark.parametrize("days_back", range(8))
def test_simulated_centers_complete_steps(days_back: int) -> None:
    """The step comparison above is not vacuous: most simulated centers it draws complete
    processing steps. Not every seed does, and which ones depends on the weekday of `now`
    (on a weekday about 40 in 100 complete none, on a weekend all do), so each day of the
    last week is checked and a share is asserted, not every seed."""
    now = NOW - timedelta(days=days_back)
    completing = 0
    for seed in range(100):
        log = MemoryLog({0: messages_of(0, simulated(20, seed=seed, bad_every=13, now=now))})
        folded = truth_dossiers(log)
        completing += any(step_marks(dossier.steps_done) for dossier, _ in folded)
    assert completing >= 40, (now, completing)
