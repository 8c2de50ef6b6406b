"""A message the worker's own code fails on (a bug, not the sender's mistake) never stops its
partition: the batch is read again, a message that fails again is set aside as an
`internal_error` dead letter, and everything else is counted exactly. A failure that passes
loses nothing. A failed rule may leave its dossier half-changed: nothing of that is saved.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_keeper import (
    CAL,
    TOPIC,
    MemoryLog,
    Outputs,
    keeper_over,
    messages_of,
    samples,
    simulated,
)

import service.state.recovery as recovery_module
import service.state.transaction as transaction_module
from schemas import Reason
from service.domain.progress import DossierProgress
from service.state.intake import parse
from service.state.ledger import Ledger
from service.state.log_reader import Incoming
from service.state.store import DossierStore
from service.state.transaction import MessagesFailed
from service.state.worker_state import WorkerState

INTERNAL = Reason.INTERNAL_ERROR.value


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery_module, "RETRY_S", 0.001)


def event_id(message: Incoming) -> str:
    return str(parse(message.value, message.key, datetime.now(UTC)).event_id)


def valid(messages: list[Incoming], log: list[Incoming]) -> list[Incoming]:
    """Messages that are valid events sent once in `log` (the simulated log has some that
    are not valid, and re-sends some: a re-sent copy of a failing event fails in turn)."""
    ids: dict[str, int] = {}
    for message in log:
        try:
            found = event_id(message)
        except Exception:
            continue
        ids[found] = ids.get(found, 0) + 1
    out = []
    for message in messages:
        try:
            found = event_id(message)
        except Exception:
            continue
        if ids[found] == 1:
            out.append(message)
    return out


def failing_add(
    monkeypatch: pytest.MonkeyPatch, bad: set[str], times: int | None = None
) -> list[str]:
    """`DossierProgress.add` that applies the event and then raises for the events in `bad`
    (a rule that fails half-way: the dossier is changed), every time or the first `times`
    times; returns the ids it failed on, in order."""
    real_add = DossierProgress.add
    failed: list[str] = []

    def add(self: DossierProgress, event: Any, calendar: Any) -> Any:
        arrival = real_add(self, event, calendar)
        if event.event_id in bad and (times is None or len(failed) < times):
            failed.append(event.event_id)
            raise KeyError(f"a bug on {event.event_id}")
        return arrival

    monkeypatch.setattr(DossierProgress, "add", add)
    return failed


def replay_without(
    path: Path, log: MemoryLog, applied: int, left_out: set[int]
) -> tuple[WorkerState, Ledger]:
    """The partition as the real code folds the log's first offsets with `left_out` missing
    (what setting them aside must leave), its sums installed."""
    ledger = Ledger(CAL)
    ledger.assign([0])
    state = WorkerState(DossierStore(path, TOPIC), ledger, CAL)
    prefix = [m for m in log.partitions[0] if m.offset <= applied and m.offset not in left_out]
    state.commit(state.apply(prefix, live=False))
    ledger.install(0, asyncio.run(state.rebuild(0)))
    return state, ledger


def assert_counted_as(
    keeper: Any, replay: WorkerState, replay_ledger: Ledger, set_aside: int
) -> None:
    """The store and the served sums as the replay's; /metrics counts `set_aside`
    internal_error rejections (the replay left those messages out)."""
    state = keeper.state
    assert dict(state.store.dossiers(0)) == dict(replay.store.dossiers(0))
    assert state.meta(0).events == replay.meta(0).events
    now = datetime.now(UTC)
    keeper.ledger.tick(now)
    replay_ledger.tick(now)
    assert keeper.ledger.ready
    served, expected = samples(keeper.ledger), samples(replay_ledger)
    rejected = ("motcua_events_rejected_total", (("reason", INTERNAL),))
    assert served.pop(rejected) == set_aside
    expected.pop(rejected)
    assert served == expected


def test_a_live_message_the_code_always_fails_on_is_set_aside_and_the_partition_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live batch fails (nothing of it saved: the rule had already changed the dossier),
    is read again, and the message that fails again is an internal_error dead letter, sent
    once; its dossier's other events, and the batch's other dossiers, are counted."""
    messages = messages_of(0, simulated(30, seed=5))
    log = MemoryLog({0: messages})
    outputs = Outputs()
    keeper, _ = keeper_over(tmp_path / "store", log, outputs)
    poison = valid(messages[25:50], messages)[3]
    failed = failing_add(monkeypatch, {event_id(poison)})

    async def scenario() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)
        await keeper.deliver(messages[:25])
        with pytest.raises(MessagesFailed):
            await keeper.deliver(messages[25:50])
        assert keeper.state.meta(0).applied == 24  # nothing of the failed batch saved
        keeper.abandon(messages[25:50], "MessagesFailed")
        await asyncio.wait_for(keeper.wait_caught_up(), 10)
        await keeper.deliver(messages[50:])

    asyncio.run(scenario())
    meta = keeper.state.meta(0)
    assert meta.applied == messages[-1].offset
    assert failed == [event_id(poison)] * 2  # once, then again on the re-read
    assert meta.rejected == {INTERNAL: 1}
    assert outputs.dead_letters.count((0, poison.offset)) == 1
    assert not outputs.stopped
    assert keeper.state.suspects == {}  # saved: never tried again
    monkeypatch.undo()
    replay, replay_ledger = replay_without(tmp_path / "replay", log, meta.applied, {poison.offset})
    assert_counted_as(keeper, replay, replay_ledger, 1)


def test_every_failing_message_of_a_batch_is_found_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failures on several dossiers of one batch: one failed attempt notes them all, so the
    batch is read again once, not once per failing message."""
    messages = messages_of(0, simulated(30, seed=12))
    log = MemoryLog({0: messages})
    outputs = Outputs()
    keeper, _ = keeper_over(tmp_path / "store", log, outputs)
    candidates = valid(messages, messages)
    by_dossier: dict[bytes | None, Incoming] = {}
    for message in candidates:
        by_dossier.setdefault(message.key, message)
    poison = list(by_dossier.values())[:4]
    failed = failing_add(monkeypatch, {event_id(m) for m in poison})

    async def scenario() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)
        with pytest.raises(MessagesFailed, match="on 4 message"):
            await keeper.deliver(messages)
        keeper.abandon(messages, "MessagesFailed")
        await asyncio.wait_for(keeper.wait_caught_up(), 10)

    asyncio.run(scenario())
    assert len(failed) == 8  # each failed twice: in the batch, then in its one re-read
    meta = keeper.state.meta(0)
    assert meta.applied == messages[-1].offset
    assert meta.rejected == {INTERNAL: 4}
    assert sorted(outputs.dead_letters) == sorted((0, m.offset) for m in poison)
    monkeypatch.undo()
    replay, replay_ledger = replay_without(
        tmp_path / "replay", log, meta.applied, {m.offset for m in poison}
    )
    assert_counted_as(keeper, replay, replay_ledger, 4)


def test_a_failure_that_passes_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule that fails once (after changing the dossier) and not on the re-read: the
    event is counted, no dead letter, and the store equals a replay with nothing left out."""
    messages = messages_of(0, simulated(30, seed=15))
    log = MemoryLog({0: messages})
    outputs = Outputs()
    keeper, _ = keeper_over(tmp_path / "store", log, outputs)
    passing = valid(messages[20:40], messages)[5]
    failed = failing_add(monkeypatch, {event_id(passing)}, times=1)

    async def scenario() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)
        await keeper.deliver(messages[:20])
        with pytest.raises(MessagesFailed):
            await keeper.deliver(messages[20:40])
        keeper.abandon(messages[20:40], "MessagesFailed")
        await asyncio.wait_for(keeper.wait_caught_up(), 10)
        await keeper.deliver(messages[40:])

    asyncio.run(scenario())
    assert failed == [event_id(passing)]
    meta = keeper.state.meta(0)
    assert meta.applied == messages[-1].offset
    assert INTERNAL not in meta.rejected
    assert (0, passing.offset) not in outputs.dead_letters
    monkeypatch.undo()
    replay, replay_ledger = replay_without(tmp_path / "replay", log, meta.applied, set())
    assert_counted_as(keeper, replay, replay_ledger, 0)
    assert meta == replay.meta(0)


def test_a_message_the_parser_always_fails_on_in_history_is_set_aside_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up of history (the group handled it: no dead letters) whose parser fails on
    one message every time: the partition is ready after the second attempt, the message
    counted as rejected, no dead letter sent again."""
    messages = messages_of(0, simulated(20, seed=14))
    log = MemoryLog({0: messages})
    log.committed_offsets[0] = len(messages)
    outputs = Outputs()
    keeper, _ = keeper_over(tmp_path / "store", log, outputs)
    poison = valid(messages, messages)[10]
    real_parse = transaction_module.parse
    calls = 0

    def parse_failing(value: Any, key: Any, at: datetime) -> Any:
        nonlocal calls
        if value == poison.value:
            calls += 1
            raise IndexError("a bug in the parser")
        return real_parse(value, key, at)

    monkeypatch.setattr(transaction_module, "parse", parse_failing)

    async def scenario() -> None:
        keeper.on_assigned([0])
        await asyncio.wait_for(keeper.wait_caught_up(), 10)

    asyncio.run(scenario())
    assert calls == 2
    meta = keeper.state.meta(0)
    assert meta.applied == messages[-1].offset
    assert meta.rejected == {INTERNAL: 1}
    assert outputs.dead_letters == []
    monkeypatch.undo()
    replay, replay_ledger = replay_without(tmp_path / "replay", log, meta.applied, {poison.offset})
    assert_counted_as(keeper, replay, replay_ledger, 1)


def test_a_store_that_fails_to_read_is_never_blamed_on_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store read failing under a message (its dossier not cached) is the store's fault:
    the error goes up as it is, and the message is neither suspected nor set aside."""
    messages = messages_of(0, simulated(10, seed=9))
    log = MemoryLog({0: messages})
    outputs = Outputs()
    keeper, store = keeper_over(tmp_path / "store", log, outputs)

    def broken_get(*args: Any) -> Any:
        raise OSError("I/O error reading the store")

    async def scenario() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)
        monkeypatch.setattr(store, "get", broken_get)
        with pytest.raises(OSError, match="I/O error"):
            await keeper.deliver(messages)

    asyncio.run(scenario())
    assert keeper.state.suspects == {}
    assert keeper.state.meta(0).applied == -1
