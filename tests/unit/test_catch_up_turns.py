"""The pieces of helper catch-ups that need no broker: whose turn it is (recovery.Turns), and
a helper's store taken into the worker's (DossierStore.take_partition, WorkerState)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from service.domain import WorkingCalendar
from service.state.ledger import Ledger
from service.state.recovery import Turns
from service.state.store import DossierStore, PartitionMeta, day_key, meta_key, open_key
from service.state.worker_state import WorkerState

CAL = WorkingCalendar()


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


def test_a_helpers_store_replaces_the_partition_whole_and_nothing_else(tmp_path: Path) -> None:
    helper = _filled(tmp_path / "helper", 3, 5, applied=99)
    records = list(helper.partition_records(3))
    helper.close()
    assert len(records) == 5 + 1 + 1  # the dossiers, the day page, the meta

    worker_store = _filled(tmp_path / "worker", 2, 4, applied=40)  # another partition
    worker_store.write({open_key(3, b"stale"): b"x"}, (), {3: PartitionMeta(applied=7)})
    state = WorkerState(worker_store, Ledger(CAL), CAL)
    assert state.meta(3).applied == 7  # read, and kept decoded
    state.take_partition(3, records)
    # The meta is the helper's, read again; what the partition held before is gone.
    assert state.meta(3).applied == 99
    assert worker_store.get(3, b"stale") is None
    assert worker_store.get(3, b"D4") == b"record-4"
    assert list(worker_store.partition_records(3)) == records
    # Partition 2 untouched.
    assert worker_store.meta(2).applied == 40
    assert len(list(worker_store.open_dossiers(2))) == 4
    worker_store.close()


def test_a_record_of_another_partition_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    store = _filled(tmp_path / "worker", 3, 2, applied=10)
    before = list(store.partition_records(3))
    with pytest.raises(ValueError, match="another partition"):
        store.take_partition(
            3, [(meta_key(3), PartitionMeta(applied=50).encode()), (open_key(4, b"D1"), b"x")]
        )
    with pytest.raises(ValueError):
        store.take_partition(3, [(b"z\x00\x03", b"x")])  # no kind of the store
    assert list(store.partition_records(3)) == before
    assert store.meta(4).applied == -1
    store.close()
