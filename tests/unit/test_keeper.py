"""PartitionKeeper's failure paths, without Kafka: a log in memory, a store that fails on cue.

After every path the keeper's store, its saved metas and the sums it serves (what /metrics
renders) must equal a full replay of the log's prefix that the store says it holds. A
failure may delay a partition (not ready, with the reason), never skip or double an event.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

import service.state.log_applier as applier_module
import service.state.recovery as recovery_module
import service.state.transaction as transaction_module
from service.domain import WorkingCalendar
from service.domain.history import History
from service.outputs.metrics import LedgerCollector
from service.state.keeper import GapNotFilled, PartitionKeeper, SideEffectFailed
from service.state.ledger import Ledger, PartitionLedger
from service.state.log_reader import Incoming, LogTruncated
from service.state.recent import DEFAULT_SIZE as DEFAULT_RECENT
from service.state.recent import RecentDossiers
from service.state.store import DossierStore, StoreError
from service.state.transaction import Transaction
from service.state.worker_state import WorkerState
from service.tools.simulate import SimulationConfig, generate

CAL = WorkingCalendar()
TOPIC = "dossier-events"
CHUNK = 7  # small chunks, so that a failure lands mid-catch-up
NOW = datetime.now(UTC)


def messages_of(partition: int, events: list[dict[str, Any]]) -> list[Incoming]:
    stamp = time.time()
    return [
        Incoming(partition, offset, e.get("dossier_id", "?").encode(), orjson.dumps(e), stamp, None)
        for offset, e in enumerate(events)
    ]


def simulated(
    dossiers: int, seed: int, bad_every: int = 0, now: datetime = NOW
) -> list[dict[str, Any]]:
    config = SimulationConfig(dossiers=dossiers, seed=seed, now=now, duplicate_ratio=0.05)
    events = list(generate(config))
    if bad_every:
        for index in range(bad_every, len(events), bad_every):
            events[index] = {"event_id": f"bad-{index}", "type": "received"}  # no dossier
    return events


class MemoryLog:
    """The input topic in memory, read in chunks like LogReader; `before_chunk` runs before
    each chunk is handed over (to revoke, fail or block there)."""

    def __init__(self, partitions: dict[int, list[Incoming]]) -> None:
        self.partitions = partitions
        self.committed_offsets: dict[int, int | None] = {p: None for p in partitions}
        self.before_chunk: Callable[[int, int], Awaitable[None]] | None = None
        # Per partition, the first offset retention left (records below it are deleted).
        self.earliest: dict[int, int] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def bounds(self, partitions: list[int]) -> dict[int, tuple[int, int]]:
        # The end is the last offset + 1 (offsets may have holes: transaction markers).
        return {
            p: (self.earliest.get(p, 0), max((m.offset + 1 for m in self.partitions[p]), default=0))
            for p in partitions
        }

    async def ends(self, partitions: list[int]) -> dict[int, int]:
        return {p: end for p, (_, end) in (await self.bounds(partitions)).items()}

    async def committed(self, partition: int) -> int | None:
        return self.committed_offsets[partition]

    async def read(self, partition: int, start: int, stop: int) -> AsyncIterator[list[Incoming]]:
        if start < stop and start < self.earliest.get(partition, 0):
            raise LogTruncated(partition, start)  # as LogReader: no silent jump ahead
        records = [m for m in self.partitions[partition] if start <= m.offset < stop]
        for first in range(0, len(records), CHUNK):
            if self.before_chunk is not None:
                await self.before_chunk(partition, records[first].offset)
            if records[first].offset < self.earliest.get(partition, 0):
                raise LogTruncated(partition, records[first].offset)  # deleted meanwhile
            yield records[first : first + CHUNK]


class FlakyStore(DossierStore):
    """A real RocksDB store whose next writes fail when told to (a full disk)."""

    failing_writes = 0

    def write(self, puts: Any, deletes: Any = (), metas: Any = None) -> None:
        if self.failing_writes:
            self.failing_writes -= 1
            raise StoreError("write failed: No space left on device")
        super().write(puts, deletes, metas)


class Outputs:
    """Dead letters and status messages as the broker would acknowledge them, or not."""

    def __init__(self) -> None:
        self.dead_letters: list[tuple[int, int]] = []
        self.refuse = 0
        self.stopped: list[str] = []

    async def send_dead_letters(self, batch: Transaction) -> None:
        if self.refuse:
            self.refuse -= 1
            raise SideEffectFailed("1 of 1 dead letters not acknowledged: KafkaTimeoutError")
        self.dead_letters.extend((m.partition, m.offset) for m, _ in batch.rejected)

    async def announce(self, batch: Transaction) -> None:
        return None

    def stop(self, why: str) -> None:
        self.stopped.append(why)


def keeper_over(
    path: Path,
    log: MemoryLog,
    outputs: Outputs,
    recent: int = DEFAULT_RECENT,
    accept_truncated_log: bool = False,
) -> tuple[PartitionKeeper, FlakyStore]:
    store = FlakyStore(path, TOPIC)
    state = WorkerState(store, Ledger(CAL), CAL, RecentDossiers(recent))
    keeper = PartitionKeeper(
        state,
        log,
        outputs.send_dead_letters,
        outputs.announce,
        outputs.stop,  # type: ignore[arg-type]
        accept_truncated_log=accept_truncated_log,
    )
    return keeper, store


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery_module, "RETRY_S", 0.001)


def samples(ledger: Ledger) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What /metrics shows of the sums (the collector over the ledger)."""
    out = {}
    for family in LedgerCollector(ledger).collect():
        for sample in family.samples:
            if not sample.name.endswith("_seconds"):  # how long the rendering took
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def assert_equals_replay(keeper: PartitionKeeper, log: MemoryLog, tmp_path: Path) -> None:
    """The keeper's store, metas and served sums equal a fresh replay of the same prefix."""
    state = keeper.state
    replay_ledger = Ledger(CAL)
    replay_ledger.assign(state.ledger.assignment or ())
    replay = WorkerState(DossierStore(tmp_path / "replay", TOPIC), replay_ledger, CAL)
    for partition, messages in log.partitions.items():
        applied = state.meta(partition).applied
        prefix = [m for m in messages if m.offset <= applied]
        replay.commit(replay.apply(prefix, live=False))
        assert dict(state.store.dossiers(partition)) == dict(replay.store.dossiers(partition))
        assert state.meta(partition) == replay.meta(partition)
        if partition in (state.ledger.assignment or ()):
            replay_ledger.install(partition, asyncio.run(replay.rebuild(partition)))
    live = state.ledger
    live.tick(datetime.now(UTC))
    replay_ledger.tick(datetime.now(UTC))
    assert live.ready and replay_ledger.ready
    assert samples(live) == samples(replay_ledger)
    replay.store.close()


def test_an_exception_mid_chunk_is_retried_from_the_saved_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = MemoryLog({0: messages_of(0, simulated(60, seed=1, bad_every=25))})
    log.committed_offsets[0] = len(log.partitions[0])
    outputs = Outputs()
    keeper, _ = keeper_over(tmp_path / "store", log, outputs)
    real_parse = transaction_module.parse
    failures = iter([True])

    def flaky_parse(value: Any, key: Any, now: datetime) -> Any:
        event = real_parse(value, key, now)
        if event.dossier_id and next(failures, False):
            raise RuntimeError("a passing failure")
        return event

    async def scenario() -> None:
        monkeypatch.setattr(transaction_module, "parse", flaky_parse)
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)

    asyncio.run(scenario())
    assert keeper.state.meta(0).applied == len(log.partitions[0]) - 1
    assert_equals_replay(keeper, log, tmp_path)


def test_a_failed_store_write_stops_the_worker_and_a_restart_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(applier_module, "TRANSACTION_EVENTS", CHUNK)  # one chunk a transaction
    log = MemoryLog({0: messages_of(0, simulated(40, seed=2))})
    log.committed_offsets[0] = len(log.partitions[0])
    outputs = Outputs()
    keeper, store = keeper_over(tmp_path / "store", log, outputs)
    chunks = 0

    async def fill_disk_on_third_chunk(partition: int, offset: int) -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 3:
            store.failing_writes = 1

    log.before_chunk = fill_disk_on_third_chunk

    async def first_run() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)

    asyncio.run(first_run())
    assert outputs.stopped and "No space left" in outputs.stopped[0]
    assert not keeper.ledger.ready
    saved = keeper.state.meta(0)
    assert saved.applied == 2 * CHUNK - 1  # two chunks saved, the third thrown away
    assert sum(saved.events.values()) + sum(saved.duplicates.values()) == 2 * CHUNK
    store.close()

    restarted, _ = keeper_over(tmp_path / "store", log, Outputs())
    log.before_chunk = None

    async def second_run() -> None:
        restarted.on_assigned([0])
        await restarted.wait_caught_up(timeout=10)

    asyncio.run(second_run())
    assert restarted.state.meta(0).applied == len(log.partitions[0]) - 1
    assert_equals_replay(restarted, log, tmp_path)


def test_a_dead_letter_not_acknowledged_fails_the_batch_and_is_sent_again(
    tmp_path: Path,
) -> None:
    log = MemoryLog({0: messages_of(0, simulated(30, seed=3, bad_every=9))})
    outputs = Outputs()
    keeper, _ = keeper_over(tmp_path / "store", log, outputs)
    rejected = {m.offset for m in log.partitions[0] if b'"bad-' in (m.value or b"")}
    assert rejected

    async def scenario() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)
        outputs.refuse = 1
        with pytest.raises(SideEffectFailed):
            await keeper.deliver(log.partitions[0])
        # Nothing of the batch was saved or counted, and the partition is not served.
        assert keeper.state.meta(0).applied == -1
        assert keeper.state.meta(0).events == {}
        released: list[bool] = []
        keeper.abandon(log.partitions[0], "SideEffectFailed", release=lambda: released.append(True))
        assert not keeper.ledger.ready
        await keeper.wait_caught_up(timeout=10)
        await asyncio.sleep(0.01)
        assert released == [True]

    asyncio.run(scenario())
    assert {offset for _, offset in outputs.dead_letters} == rejected
    assert keeper.ledger.ready
    assert_equals_replay(keeper, log, tmp_path)


def test_a_revoke_while_filling_a_gap_applies_nothing_of_the_revoked_partition(
    tmp_path: Path,
) -> None:
    log = MemoryLog({0: messages_of(0, simulated(40, seed=4))})
    outputs = Outputs()
    keeper, _ = keeper_over(tmp_path / "store", log, outputs)
    messages = log.partitions[0]

    async def revoke_in_the_gap(partition: int, offset: int) -> None:
        if offset >= CHUNK:
            keeper.on_revoked()

    async def scenario() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)
        log.before_chunk = revoke_in_the_gap
        # faust delivers from offset 30: offsets 0..29 are a gap, read from the log.
        delivering = asyncio.ensure_future(keeper.deliver(messages[30:]))
        await asyncio.sleep(0.05)
        assert keeper.ledger.assignment is None
        keeper.on_assigned([1])  # the partition went elsewhere
        await delivering
        # Nothing beyond the gap's saved part: the delivered batch (30..) was not applied.
        assert keeper.state.meta(0).applied < CHUNK
        assert 0 not in keeper.ledger.partitions
        # It comes back later: caught up from its store, then from the log.
        log.before_chunk = None
        log.committed_offsets[0] = len(messages)
        keeper.on_revoked()
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)

    log.partitions[1] = []
    log.committed_offsets[1] = None
    asyncio.run(scenario())
    assert keeper.state.meta(0).applied == len(messages) - 1
    assert_equals_replay(keeper, log, tmp_path)


def test_a_revoke_while_the_agent_waits_on_a_catch_up_never_acknowledges_unapplied_events(
    tmp_path: Path,
) -> None:
    log = MemoryLog({0: messages_of(0, simulated(30, seed=5))})
    messages = log.partitions[0]
    log.committed_offsets[0] = 20
    outputs = Outputs()
    keeper, _ = keeper_over(tmp_path / "store", log, outputs)
    gate = asyncio.Event

    async def scenario() -> None:
        held = gate()

        async def hold_catch_up(partition: int, offset: int) -> None:
            await held.wait()

        log.before_chunk = hold_catch_up
        keeper.on_assigned([0])
        # The agent's batch (offsets 20..) waits for the catch-up (offsets 0..19).
        delivering = asyncio.ensure_future(keeper.deliver(messages[20:]))
        await asyncio.sleep(0.02)
        keeper.on_revoked()  # cancels the catch-up task the agent waits on
        await asyncio.sleep(0.02)
        keeper.on_assigned([0])  # the same partition comes back
        held.set()
        await delivering  # no CancelledError: the agent carries on
        await keeper.wait_caught_up(timeout=10)

    asyncio.run(scenario())
    # The agent's batch was applied after the catch-up, not dropped and acknowledged.
    assert keeper.state.meta(0).applied == len(messages) - 1
    assert_equals_replay(keeper, log, tmp_path)


def test_a_partition_reassigned_to_the_same_worker_keeps_counting_exactly(tmp_path: Path) -> None:
    log = MemoryLog({0: messages_of(0, simulated(50, seed=6)), 1: []})
    messages = log.partitions[0]
    outputs = Outputs()
    keeper, _ = keeper_over(tmp_path / "store", log, outputs)

    async def scenario() -> None:
        keeper.on_assigned([0, 1])
        await keeper.wait_caught_up(timeout=10)
        await keeper.deliver(messages[:40])
        kept = keeper.ledger.partitions[0]
        keeper.on_revoked()
        # A batch committed between revocation and assignment keeps sums and store in step.
        await_later = asyncio.ensure_future(keeper.deliver(messages[40:60]))
        await asyncio.sleep(0.01)
        keeper.on_assigned([0, 1])
        await await_later
        assert keeper.ledger.partitions[0] is kept  # kept counted, not rebuilt
        await keeper.deliver(messages[60:])

    asyncio.run(scenario())
    assert keeper.state.meta(0).applied == len(messages) - 1
    assert_equals_replay(keeper, log, tmp_path)


def test_the_ledger_moves_no_sums_for_a_partition_not_counted_now() -> None:
    """A transaction saved after its partition was revoked keeps the store a prefix of the
    log, but sums this worker does not count now are never touched or served."""
    from service.domain import fold
    from service.state.store import PartitionMeta

    ledger = Ledger.counting(CAL, [0])
    dossier = fold("HS-1", [], CAL)
    before = dict(ledger.partitions[0].contributions)
    ledger.assign([1])  # partition 0 went elsewhere
    assert 0 not in ledger.partitions
    ledger.commit(0, PartitionMeta(applied=5), Counter(), History(), [(dossier, None, None)], NOW)
    assert 0 not in ledger.partitions and before == {}
    ledger.install(0, PartitionLedger(CAL))  # a catch-up finishing after its revocation
    assert 0 not in ledger.partitions
    ledger.install(1, PartitionLedger(CAL))
    ledger.revoke()  # a rebalance under way: installed sums stay, nothing is served
    ledger.commit(1, PartitionMeta(applied=3), Counter(), History(), [], NOW)
    assert ledger.partitions[1].meta.applied == 3 and not ledger.ready


# -- readiness is checked against the broker (issue 23) ---------------------------------------


def test_a_kept_partition_another_member_advanced_is_caught_up_before_it_counts(
    tmp_path: Path,
) -> None:
    """A worker that stalled past the session timeout gets its partition back after another
    member handled more of it: the sums it kept are not served; the offsets the other member
    committed are read from the log first, with no new message needed."""
    log = MemoryLog({0: messages_of(0, simulated(60, seed=11)), 1: []})
    messages = log.partitions[0]
    assert len(messages) > 120
    keeper, _ = keeper_over(tmp_path / "store", log, Outputs())

    async def scenario() -> None:
        keeper.on_assigned([0, 1])
        await keeper.wait_caught_up(timeout=10)
        await keeper.deliver(messages[:40])
        log.committed_offsets[0] = 40
        stale = keeper.ledger.partitions[0]
        keeper.on_revoked()
        log.committed_offsets[0] = 120  # the other member's work, committed
        keeper.on_assigned([0, 1])
        assert not keeper.ledger.ready  # checked against the broker before it counts
        await keeper.wait_caught_up(timeout=10)
        assert keeper.ledger.partitions[0] is not stale

    asyncio.run(scenario())
    assert keeper.state.meta(0).applied == 119
    assert_equals_replay(keeper, log, tmp_path)


def test_a_kept_partition_nobody_advanced_keeps_its_sums(tmp_path: Path) -> None:
    log = MemoryLog({0: messages_of(0, simulated(30, seed=12))})
    messages = log.partitions[0]
    keeper, _ = keeper_over(tmp_path / "store", log, Outputs())

    async def scenario() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)
        await keeper.deliver(messages[:30])
        log.committed_offsets[0] = 30
        kept = keeper.ledger.partitions[0]
        keeper.on_revoked()
        keeper.on_assigned([0])
        assert 0 in keeper.ledger.waiting  # held while asking the broker
        await keeper.wait_caught_up(timeout=10)
        assert keeper.ledger.ready and keeper.ledger.partitions[0] is kept

    asyncio.run(scenario())
    assert_equals_replay(keeper, log, tmp_path)


def test_a_partition_advanced_by_another_member_while_running_stops_counting_until_caught_up(
    tmp_path: Path,
) -> None:
    """No rebalance has reached this worker yet and no message arrives: the periodic check
    of the committed offset alone takes the partition out, and the catch-up brings it back."""
    log = MemoryLog({0: messages_of(0, simulated(60, seed=13)), 1: []})
    messages = log.partitions[0]
    keeper, _ = keeper_over(tmp_path / "store", log, Outputs())
    seen: list[bool] = []

    async def scenario() -> None:
        keeper.on_assigned([0, 1])
        await keeper.wait_caught_up(timeout=10)
        await keeper.deliver(messages[:50])
        log.committed_offsets[0] = 50
        await keeper.check_committed()
        assert keeper.ledger.ready
        log.committed_offsets[0] = 100
        await keeper.check_committed()
        seen.append(keeper.ledger.ready)
        await keeper.wait_caught_up(timeout=10)
        await keeper.check_committed()

    asyncio.run(scenario())
    assert seen == [False]
    assert keeper.state.meta(0).applied == 99
    assert_equals_replay(keeper, log, tmp_path)


def test_readiness_lapses_without_a_recent_broker_check(tmp_path: Path) -> None:
    """A worker paused longer than a few check intervals (SIGSTOP, a frozen VM) is not ready
    when it wakes, whatever it remembers, until the broker has answered again."""
    log = MemoryLog({0: messages_of(0, simulated(20, seed=14))})
    store = FlakyStore(tmp_path / "store", TOPIC)
    ledger = Ledger(CAL)
    outputs = Outputs()
    keeper = PartitionKeeper(
        WorkerState(store, ledger, CAL),
        log,
        outputs.send_dead_letters,
        outputs.announce,
        outputs.stop,  # type: ignore[arg-type]
        check_every=1.0,
    )

    async def scenario() -> None:
        keeper.on_assigned([0])
        assert ledger.unchecked() == "not checked against the broker yet"
        await keeper.wait_caught_up(timeout=10)
        await keeper.check_committed()
        assert ledger.ready
        ready = samples(ledger)
        assert ready[("motcua_ready", ())] == 1.0
        assert ready[("motcua_partition_ready", (("partition", "0"),))] == 1.0
        assert ledger.checked_at is not None
        ledger.checked_at -= 6.0  # five intervals and more without an answer
        assert not ledger.ready
        assert "last checked against the broker 6 s ago" in (ledger.unchecked() or "")
        stale = samples(ledger)
        assert stale[("motcua_ready", ())] == 0.0
        assert stale[("motcua_partition_ready", (("partition", "0"),))] == 0.0
        assert not [name for name, _ in stale if name.startswith("motcua_dossiers")]
        await keeper.check_committed()
        assert ledger.ready
        await keeper.close()

    asyncio.run(scenario())


def test_a_consumer_that_rejoined_as_a_new_member_trusts_nothing_it_kept(tmp_path: Path) -> None:
    log = MemoryLog({0: messages_of(0, simulated(30, seed=15))})
    messages = log.partitions[0]
    keeper, _ = keeper_over(tmp_path / "store", log, Outputs())

    async def scenario() -> None:
        keeper.on_assigned([0], member="motcua-1-aaa")
        await keeper.wait_caught_up(timeout=10)
        await keeper.deliver(messages[:30])
        kept = keeper.ledger.partitions[0]
        keeper.on_revoked()
        keeper.on_assigned([0], member="motcua-1-aaa")
        await keeper.wait_caught_up(timeout=10)
        assert keeper.ledger.partitions[0] is kept  # the same member: kept, checked
        keeper.on_revoked()
        keeper.on_assigned([0], member="motcua-1-bbb")  # fenced, joined again
        assert 0 not in keeper.ledger.partitions
        await keeper.wait_caught_up(timeout=10)
        assert keeper.ledger.partitions[0] is not kept

    asyncio.run(scenario())
    assert_equals_replay(keeper, log, tmp_path)


def with_holes(messages: list[Incoming], every: int) -> list[Incoming]:
    """The log of a transactional producer: after every `every` records an offset taken by
    a transaction marker, which no consumer delivers."""
    return [m._replace(offset=m.offset + m.offset // every) for m in messages]


def test_a_hole_in_the_middle_of_a_batch_loses_no_event(tmp_path: Path) -> None:
    """faust delivers 6, 7, 9, 10 (8 a marker, or a record faust skipped): every offset from
    the store's next one to the last delivered is applied once, in order."""
    messages = messages_of(0, simulated(12, seed=3)[:10])
    assert len(messages) == 10  # the simulation gives this many at any hour
    messages = [m if m.offset < 8 else m._replace(offset=m.offset + 1) for m in messages]
    log = MemoryLog({0: messages})
    log.committed_offsets[0] = 6  # the group handled 0..5
    keeper, _ = keeper_over(tmp_path / "store", log, Outputs())

    async def scenario() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)
        assert keeper.state.meta(0).applied == 5
        await keeper.deliver([m for m in messages if m.offset >= 6])

    asyncio.run(scenario())
    meta = keeper.state.meta(0)
    assert meta.applied == 10
    counted = sum(meta.events.values()) + sum(meta.duplicates.values())
    assert counted + sum(meta.rejected.values()) == len(messages)
    assert_equals_replay(keeper, log, tmp_path)


def test_a_batch_with_many_holes_is_applied_whole_with_its_dead_letters(tmp_path: Path) -> None:
    """A transactional producer's log (a marker after each record, so a hole between any two
    delivered offsets): the batch is applied whole before it is acknowledged, and its bad
    messages reach the dead-letter topic (they were dropped, and later read as history)."""
    events = simulated(12, seed=3, bad_every=7)
    messages = with_holes(messages_of(0, events), every=1)
    bad = {m.offset for m in messages if b'"bad-' in (m.value or b"")}
    assert len(bad) >= 2
    log = MemoryLog({0: messages})
    log.committed_offsets[0] = 1  # offset 0 handled by the group
    outputs = Outputs()
    keeper, _ = keeper_over(tmp_path / "store", log, outputs)

    async def scenario() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)
        # Two batches, as the agent takes them; faust delivers no marker.
        live = [m for m in messages if m.offset >= 1]
        half = len(live) // 2
        await keeper.deliver(live[:half])
        assert keeper.state.meta(0).applied == live[half - 1].offset
        await keeper.deliver(live[half:])

    asyncio.run(scenario())
    assert keeper.state.meta(0).applied == messages[-1].offset
    assert {offset for _, offset in outputs.dead_letters} == bad
    assert sum(keeper.state.meta(0).rejected.values()) == len(bad)
    assert_equals_replay(keeper, log, tmp_path)


def test_a_gap_that_cannot_be_read_whole_fails_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition still held whose missing offsets did not all come from the log is never
    acknowledged as done: deliver raises (the agent then withholds and re-reads the batch),
    nothing of it saved."""
    messages = with_holes(messages_of(0, simulated(10, seed=9)), every=3)
    log = MemoryLog({0: messages})
    keeper, _ = keeper_over(tmp_path / "store", log, Outputs())

    async def read_nothing(*args: Any, **kwargs: Any) -> int:
        return 0  # a read that ends early, whatever the cause

    async def scenario() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)
        monkeypatch.setattr(keeper.applier, "read_range", read_nothing)
        with pytest.raises(GapNotFilled):
            await keeper.deliver(messages)
        assert keeper.state.meta(0).applied == -1
        monkeypatch.undo()
        keeper.abandon(messages, "GapNotFilled")
        await keeper.wait_caught_up(timeout=10)

    asyncio.run(scenario())
    assert keeper.state.meta(0).applied == messages[-1].offset
    assert_equals_replay(keeper, log, tmp_path)


def test_a_kafka_timestamp_out_of_datetime_range_is_a_dead_letter_not_a_stuck_worker(
    tmp_path: Path,
) -> None:
    """A message stamped in microseconds (a year past 9999) or before year 1: rejected with
    bad_timestamp, the partition goes on, the next batch is applied."""
    messages = messages_of(0, simulated(5, seed=1))
    messages[3] = messages[3]._replace(timestamp=time.time() * 1e6)
    messages[5] = messages[5]._replace(timestamp=-1e12)
    log = MemoryLog({0: messages})
    outputs = Outputs()
    keeper, _ = keeper_over(tmp_path / "store", log, outputs)

    async def scenario() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)
        await asyncio.wait_for(keeper.deliver(messages[:10]), 5)
        await asyncio.wait_for(keeper.deliver(messages[10:]), 5)

    asyncio.run(scenario())
    meta = keeper.state.meta(0)
    assert meta.applied == len(messages) - 1
    assert meta.rejected["bad_timestamp"] == 2
    assert {(0, 3), (0, 5)} <= set(outputs.dead_letters)
    assert keeper.ledger.ready and not outputs.stopped
    assert keeper.ledger.last_event_timestamp is not None
    assert keeper.ledger.last_event_timestamp < time.time() + 60  # not the bogus stamp
    assert_equals_replay(keeper, log, tmp_path)


def test_a_batch_whose_log_lost_its_beginning_before_its_re_read_gives_the_partition_up(
    tmp_path: Path,
) -> None:
    """A live batch failed (a dead letter not acknowledged); before it is read again,
    retention deletes its range. The re-read finds the records gone (LogTruncated): not
    retried forever, the partition is given up as a catch-up does (not counted, the
    offsets named) and the batch is released to faust, which goes on with the others."""
    messages = messages_of(0, simulated(30, seed=16, bad_every=9))
    log = MemoryLog({0: messages, 1: []})
    outputs = Outputs()
    keeper, _ = keeper_over(tmp_path / "store", log, outputs)
    released: list[bool] = []

    async def scenario() -> None:
        keeper.on_assigned([0, 1])
        await keeper.wait_caught_up(timeout=10)
        await keeper.deliver(messages[:10])
        outputs.refuse = 1
        with pytest.raises(SideEffectFailed):
            await keeper.deliver(messages[10:30])
        log.earliest[0] = 20  # retention deleted offsets 0..19
        keeper.abandon(messages[10:30], "SideEffectFailed", release=lambda: released.append(True))
        await asyncio.wait_for(keeper.wait_caught_up(), 10)
        await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert released == [True]
    assert keeper.state.meta(0).applied == 9  # nothing recorded as applied past the hole
    assert 0 in keeper.recovery.blocked
    reason = keeper.ledger.waiting[0]
    assert "offsets 10..19 of partition 0 were deleted" in reason
    assert not keeper.ledger.ready and 1 in keeper.ledger.partitions


def test_an_accepted_truncated_log_lets_a_re_read_batch_count_from_what_is_left(
    tmp_path: Path,
) -> None:
    """The same with MOTCUA_ACCEPT_TRUNCATED_LOG: the partition counts from the log's new
    beginning, the batch is applied to its end and released, its dead letters sent."""
    events = simulated(30, seed=17, bad_every=5)
    messages = messages_of(0, events)
    log = MemoryLog({0: messages})
    outputs = Outputs()
    keeper, _ = keeper_over(tmp_path / "store", log, outputs, accept_truncated_log=True)
    released: list[bool] = []

    async def scenario() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)
        await keeper.deliver(messages[:10])
        outputs.refuse = 1
        with pytest.raises(SideEffectFailed):
            await keeper.deliver(messages[10:40])
        log.earliest[0] = 20
        keeper.abandon(messages[10:40], "SideEffectFailed", release=lambda: released.append(True))
        await asyncio.wait_for(keeper.wait_caught_up(), 10)
        await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert released == [True]
    meta = keeper.state.meta(0)
    assert meta.applied == 39 and meta.start == 20
    bad = {m.offset for m in messages[20:40] if b'"bad-' in (m.value or b"")}
    assert bad and bad <= {offset for _, offset in outputs.dead_letters}
    assert keeper.ledger.ready


def test_a_catch_up_whose_log_is_deleted_while_it_reads_gives_the_partition_up(
    tmp_path: Path,
) -> None:
    """Retention deletes the log's beginning while a catch-up reads it (the bounds it asked
    first still had it): the read stops (LogTruncated), and the partition is given up with
    the missing offsets named, never counted from a store with a hole."""
    log = MemoryLog({0: messages_of(0, simulated(20, seed=18))})
    log.committed_offsets[0] = len(log.partitions[0])
    keeper, _ = keeper_over(tmp_path / "store", log, Outputs())

    async def delete_at_the_third_chunk(partition: int, offset: int) -> None:
        if offset >= 2 * CHUNK:
            log.earliest[0] = 3 * CHUNK

    log.before_chunk = delete_at_the_third_chunk

    async def scenario() -> None:
        keeper.on_assigned([0])
        await asyncio.wait_for(keeper.wait_caught_up(), 10)

    asyncio.run(scenario())
    assert keeper.state.meta(0).applied == -1
    assert 0 in keeper.recovery.blocked and not keeper.ledger.ready
    assert f"offsets 0..{3 * CHUNK - 1} of partition 0 were deleted" in keeper.ledger.waiting[0]


def test_a_consumer_that_stops_delivering_is_not_counted_until_it_moves_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """faust #175: a consumer that stops fetching but still heartbeats keeps its partitions
    and commits nothing new, so the committed offsets agree with the store while the log
    grows past it. Records waiting undelivered past STALLED_AFTER_S take the partition out;
    a delivery brings it back. A marker after the last record (the log's end one past it,
    never delivered) is no stall."""
    monkeypatch.setattr(recovery_module, "STALLED_AFTER_S", 0.0)
    events = messages_of(0, simulated(60, seed=15))
    log = MemoryLog({0: list(events[:50])})
    keeper, _ = keeper_over(tmp_path / "store", log, Outputs())
    seen: list[tuple[str, bool]] = []

    async def scenario() -> None:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=10)
        await keeper.deliver(events[:50])
        log.committed_offsets[0] = 50
        await keeper.check_committed()
        # A transaction marker at offset 50: the end is one past the store, and stays.
        log.partitions[0].append(Incoming(0, 50, None, b"", 0.0, None))
        await keeper.check_committed()
        await keeper.check_committed()
        await keeper.check_committed()
        seen.append(("marker", keeper.ledger.ready))
        log.partitions[0].pop()
        # Records arrive and none is delivered: out.
        log.partitions[0].extend(events[50:])
        await keeper.check_committed()
        seen.append(("arrived", keeper.ledger.ready))
        await keeper.check_committed()
        seen.append(("stuck", keeper.ledger.ready))
        assert "the consumer may be stuck" in keeper.ledger.waiting[0]
        # The consumer delivers again: counted, and exact.
        await keeper.deliver(events[50:])
        log.committed_offsets[0] = len(events)
        await keeper.check_committed()
        seen.append(("delivered", keeper.ledger.ready))

    asyncio.run(scenario())
    assert seen == [("marker", True), ("arrived", True), ("stuck", False), ("delivered", True)]
    assert keeper.state.meta(0).applied == len(events) - 1
    assert_equals_replay(keeper, log, tmp_path)
