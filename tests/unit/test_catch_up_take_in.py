"""Catch-up helpers without a broker: whose turn it is (recovery.Turns), a helper's records
written into the worker's store (DossierStore.put_records), and the keeper's take-in of a
helper's store (recovery._take_in) with the helper's own code (`read_into_store`) run in this
process over the in-memory log, so that failures can be placed anywhere. The helper as a
process, against a real broker, is tests/reliability/test_catch_up_helpers.py."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_keeper import (
    CAL,
    TOPIC,
    MemoryLog,
    Outputs,
    assert_equals_replay,
    keeper_over,
    messages_of,
    simulated,
)

from service.kafka_security import KafkaSecurity
from service.state import catch_up_helper, recovery
from service.state.catch_up_helper import CatchUpHelpers, HelperFailed, HelperJob
from service.state.ledger import Ledger
from service.state.recovery import Turns
from service.state.store import DossierStore, PartitionMeta, day_key, meta_key, open_key
from service.state.worker_state import WorkerState


async def test_one_turn_here_and_one_per_helper_and_a_helpers_turn_first() -> None:
    turns = Turns(helpers=1)
    assert await turns.take(may_help=True) is True  # a helper's, while one is free
    assert await turns.take(may_help=True) is False  # then this process's
    waiting = asyncio.ensure_future(turns.take(may_help=False))
    helped = asyncio.ensure_future(turns.take(may_help=True))
    await asyncio.sleep(0)
    assert not waiting.done() and not helped.done()
    turns.give_back(True)  # the helper's turn: only one that may help takes it
    await asyncio.sleep(0)
    assert helped.done() and helped.result() is True
    assert not waiting.done()
    turns.give_back(False)
    await asyncio.sleep(0)
    assert waiting.done() and waiting.result() is False
    assert (turns.helping, turns.here) == (1, True)


async def test_no_helpers_is_one_at_a_time_here() -> None:
    turns = Turns(helpers=0)
    assert await turns.take(may_help=True) is False
    second = asyncio.ensure_future(turns.take(may_help=True))
    await asyncio.sleep(0)
    assert not second.done()
    turns.give_back(False)
    assert await second is False


async def test_a_cancelled_wait_leaves_no_waiter_behind() -> None:
    turns = Turns(helpers=0)
    await turns.take(may_help=False)
    waiting = asyncio.ensure_future(turns.take(may_help=False))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert turns._waiting == []
    turns.give_back(False)
    assert await turns.take(may_help=False) is False


def _filled(path: Path, partition: int, dossiers: int, applied: int) -> DossierStore:
    store = DossierStore(path, "events")
    meta = PartitionMeta(applied=applied, events=Counter(received=dossiers))
    store.write(
        {open_key(partition, f"D{n}".encode()): b"record-%d" % n for n in range(dossiers)}
        | {day_key(partition, b"agency-day"): b"page"},
        (),
        {partition: meta},
    )
    return store


def test_a_helpers_records_go_in_as_they_are_and_the_decoded_state_is_read_again(
    tmp_path: Path,
) -> None:
    helper = _filled(tmp_path / "helper", 3, 5, applied=99)
    records = list(helper.partition_records(3))
    helper.close()
    assert len(records) == 5 + 1 + 1  # the dossiers, the day page, the meta

    worker_store = _filled(tmp_path / "worker", 2, 4, applied=40)  # another partition
    state = WorkerState(worker_store, Ledger(CAL), CAL)
    assert state.meta(3).applied == -1  # read, and kept decoded
    state.take_records(3, records)
    assert state.meta(3).applied == 99  # read again
    assert worker_store.get(3, b"D4") == b"record-4"
    assert list(worker_store.partition_records(3)) == records
    assert worker_store.meta(2).applied == 40  # partition 2 untouched
    assert len(list(worker_store.open_dossiers(2))) == 4
    worker_store.close()


def test_a_record_of_another_partition_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    store = _filled(tmp_path / "worker", 3, 2, applied=10)
    before = list(store.partition_records(3))
    with pytest.raises(ValueError, match="another partition"):
        store.put_records(
            3, [(meta_key(3), PartitionMeta(applied=50).encode()), (open_key(4, b"D1"), b"x")]
        )
    with pytest.raises(ValueError):
        store.put_records(3, [(b"z\x00\x03", b"x")])  # no kind of the store
    assert list(store.partition_records(3)) == before
    assert store.meta(4).applied == -1
    store.close()


class InProcessHelpers(CatchUpHelpers):
    """The helper's own code (`read_into_store`) run here over the in-memory log instead of
    in a process over Kafka; `fail` makes the next runs fail, `before_return` runs before a
    store is handed back (to revoke there)."""

    def __init__(self, log: MemoryLog, data_dir: Path) -> None:
        super().__init__("unused:9092", TOPIC, KafkaSecurity(), CAL, data_dir, min_events=1)
        self.log = log
        self.fail = 0
        self.runs: list[int] = []
        self.before_return: Any = None

    async def catch_up(self, partition: int, first: int, stop: int) -> tuple[Path, int]:
        self.runs.append(partition)
        folder = self.root / f"{partition}-{len(self.runs)}"
        job = HelperJob("", TOPIC, KafkaSecurity(), CAL, 0, partition, first, stop, folder)
        result = await catch_up_helper.read_into_store(job, self.log)  # type: ignore[arg-type]
        if self.fail:
            self.fail -= 1
            self.discard(folder)
            raise HelperFailed("the helper exited with status -9")
        if self.before_return is not None:
            await self.before_return(partition)
        return folder, result["read"]


def helped_keeper(tmp_path: Path, log: MemoryLog) -> tuple[Any, InProcessHelpers]:
    keeper, _ = keeper_over(tmp_path / "store", log, Outputs())
    helpers = InProcessHelpers(log, tmp_path / "data")
    keeper.recovery.helpers = helpers
    keeper.recovery._turns = Turns(1)
    return keeper, helpers


def three_partitions() -> MemoryLog:
    log = MemoryLog({p: messages_of(p, simulated(30, seed=40 + p, bad_every=11)) for p in range(3)})
    for partition, messages in log.partitions.items():
        log.committed_offsets[partition] = len(messages)
    return log


@pytest.fixture(autouse=True)
def small_take_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Several chunks per partition, so that a take-in can be cut between them.
    monkeypatch.setattr(catch_up_helper, "TAKE_CHUNK", 7)
    monkeypatch.setattr(recovery, "RETRY_S", 0.001)


def test_partitions_read_by_helpers_equal_a_replay(tmp_path: Path) -> None:
    log = three_partitions()
    keeper, helpers = helped_keeper(tmp_path, log)

    async def run() -> None:
        keeper.on_assigned([0, 1, 2])
        await keeper.wait_caught_up(timeout=10)

    asyncio.run(run())
    assert helpers.runs, "no partition was read by a helper"
    assert keeper.ledger.ready
    assert_equals_replay(keeper, log, tmp_path)
    assert not any(helpers.root.glob("*"))  # every helper store removed


def test_a_failed_helper_leaves_nothing_and_the_worker_reads_the_partition_itself(
    tmp_path: Path,
) -> None:
    log = three_partitions()
    keeper, helpers = helped_keeper(tmp_path, log)
    helpers.fail = 1

    async def run() -> None:
        keeper.on_assigned([0, 1, 2])
        await keeper.wait_caught_up(timeout=10)

    asyncio.run(run())
    failed = helpers.runs[0]
    assert failed in keeper.recovery.helper_failed
    assert helpers.runs.count(failed) == 1  # the next attempt ran in the worker
    assert_equals_replay(keeper, log, tmp_path)


def test_a_take_in_cut_short_by_a_crash_is_dropped_by_the_next_catch_up(tmp_path: Path) -> None:
    """The worker died after writing some chunks of a helper's store, before its meta: the
    restarted worker finds records under an empty meta and drops them before reading (kept,
    they would count the partition's events a second time, as duplicates)."""
    log = three_partitions()
    folder = tmp_path / "helper"
    job = HelperJob("", TOPIC, KafkaSecurity(), CAL, 0, 1, 0, len(log.partitions[1]), folder)
    asyncio.run(catch_up_helper.read_into_store(job, log))  # type: ignore[arg-type]
    helpers = InProcessHelpers(log, tmp_path / "data")
    chunks = list(helpers.chunks(folder, 1))
    assert len(chunks) > 2
    store = DossierStore(tmp_path / "store", TOPIC)
    state = WorkerState(store, Ledger(CAL), CAL)
    for chunk in chunks[:2]:  # two chunks written, then kill -9: no meta
        state.take_records(1, [r for r in chunk if r[0] != meta_key(1)])
    assert state.meta(1).applied == -1 and any(True for _ in store.dossiers(1))
    store.close()

    restarted, _ = keeper_over(tmp_path / "store", log, Outputs())

    async def run() -> None:
        restarted.on_assigned([0, 1, 2])
        await restarted.wait_caught_up(timeout=10)

    asyncio.run(run())
    assert_equals_replay(restarted, log, tmp_path)


def test_a_revoke_while_a_helper_reads_takes_nothing_in(tmp_path: Path) -> None:
    log = three_partitions()
    keeper, helpers = helped_keeper(tmp_path, log)

    async def revoke_partition(partition: int) -> None:
        keeper.on_revoked()
        keeper.on_assigned([p for p in range(3) if p != partition])
        helpers.before_return = None

    helpers.before_return = revoke_partition

    async def run() -> None:
        keeper.on_assigned([0, 1, 2])
        await asyncio.sleep(0.5)
        await keeper.wait_caught_up(timeout=10)

    asyncio.run(run())
    revoked = helpers.runs[0]
    assert keeper.state.meta(revoked).applied == -1
    assert not any(True for _ in keeper.state.store.dossiers(revoked))
    assert not any(helpers.root.glob("*"))


def test_the_helpers_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.settings import Settings, SettingsError

    monkeypatch.delenv("MOTCUA_CATCH_UP_HELPERS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert Settings.from_env().catch_up_helper_count == 1  # a second core: one helper
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert Settings.from_env().catch_up_helper_count == 0
    monkeypatch.setenv("MOTCUA_CATCH_UP_HELPERS", "0")
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert Settings.from_env().catch_up_helper_count == 0
    monkeypatch.setenv("MOTCUA_CATCH_UP_HELPERS", "3")
    assert Settings.from_env().catch_up_helper_count == 3
    monkeypatch.setenv("MOTCUA_CATCH_UP_HELPERS", "many")
    with pytest.raises(SettingsError, match="MOTCUA_CATCH_UP_HELPERS must be an integer"):
        Settings.from_env()
    monkeypatch.delenv("MOTCUA_CATCH_UP_HELPERS")
    monkeypatch.setenv("MOTCUA_CATCH_UP_HELPER_MIN_EVENTS", "0")
    with pytest.raises(SettingsError, match="between 1 and"):
        Settings.from_env()


@pytest.mark.parametrize(
    ("executable", "why"),
    [
        ("/nonexistent/python", "no helper process"),
        # They may exit before the job is written (a broken pipe) or after.
        ("/bin/false", "exited with status 1|pipe failed"),
        ("/bin/true", "answer cannot be read|pipe failed"),
    ],
)
async def test_a_helper_that_cannot_start_or_answer_is_a_failed_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executable: str, why: str
) -> None:
    """The real process start, with a program that is not the helper: HelperFailed (the
    next attempt reads in the worker), nothing left in the helpers' folder."""
    helpers = CatchUpHelpers("127.0.0.1:1", TOPIC, KafkaSecurity(), CAL, tmp_path, min_events=1)
    monkeypatch.setattr(catch_up_helper.sys, "executable", executable)
    with pytest.raises(HelperFailed, match=why):
        await helpers.catch_up(0, 0, 100)
    assert not helpers.running
    assert not helpers.root.exists() or not any(helpers.root.glob("*"))
