"""A range whose beginning retention deleted, against a real broker: the log reader says so
(LogTruncated) instead of going on from the log's new beginning, and the state layer gives
the partition up (not counted, the missing offsets named) rather than recording the deleted
offsets as applied.

With `auto_offset_reset="earliest"` aiokafka moved a fetch below the log's start to the
earliest offset without a word: a read of 0..30 after 0..19 were deleted yielded 20..30, and
the partition counted as ready with twenty events missing."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.records_to_delete import RecordsToDelete

from service.domain import WorkingCalendar
from service.state.keeper import PartitionKeeper
from service.state.ledger import Ledger
from service.state.log_reader import Incoming, LogReader, LogTruncated
from service.state.store import DossierStore
from service.state.transaction import Transaction
from service.state.worker_state import WorkerState
from service.tools.broker import LocalBroker
from service.tools.simulate import SimulationConfig, generate

pytestmark = pytest.mark.reliability

RECORDS = 40
DELETED = 20  # offsets 0..19 deleted, as retention would


async def _topic(bootstrap: str) -> tuple[str, list[dict[str, Any]]]:
    topic = f"truncated-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    # 30 dossiers give at least 67 events at any hour (12 gave 24 at some).
    events = list(generate(SimulationConfig(dossiers=30, seed=31)))[:RECORDS]
    assert len(events) == RECORDS
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for event in events:
            await producer.send(
                topic, value=orjson.dumps(event), key=event["dossier_id"].encode(), partition=0
            )
        await producer.flush()
    finally:
        await producer.stop()
    return topic, events


async def _delete_before(bootstrap: str, topic: str, offset: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(offset)})
    finally:
        await admin.close()


async def test_a_range_whose_start_was_deleted_raises_instead_of_skipping(
    kafka_broker: LocalBroker,
) -> None:
    topic, _ = await _topic(kafka_broker.bootstrap)
    await _delete_before(kafka_broker.bootstrap, topic, DELETED)
    reader = LogReader(kafka_broker.bootstrap, topic, None)
    await reader.start()
    try:
        assert (await reader.bounds([0]))[0] == (DELETED, RECORDS)
        with pytest.raises(LogTruncated) as raised:
            async for _ in reader.read(0, 5, 30):
                pass
        assert raised.value.partition == 0 and raised.value.offset == 5
        # What is left reads as before, and the reader is usable after the refusal.
        kept = [m.offset async for chunk in reader.read(0, DELETED, RECORDS) for m in chunk]
        assert kept == list(range(DELETED, RECORDS))
    finally:
        await reader.stop()


class Sent:
    def __init__(self) -> None:
        self.dead_letters: list[int] = []
        self.stopped: list[str] = []

    async def send_dead_letters(self, batch: Transaction) -> None:
        self.dead_letters.extend(m.offset for m, _ in batch.rejected)

    async def announce(self, batch: Transaction) -> None:
        return None

    def stop(self, why: str) -> None:
        self.stopped.append(why)


async def test_a_gap_read_from_a_log_that_lost_its_beginning_gives_the_partition_up(
    kafka_broker: LocalBroker, tmp_path: Path
) -> None:
    """The store holds nothing; faust delivers offsets 25..30 (the group's offset was moved
    on); 0..19 are gone. The gap read raises, the batch is withheld and read again, and the
    re-read finds the log's beginning deleted: the partition is not counted, the offsets are
    named, and the batch is released (faust goes on with the other partitions)."""
    bootstrap = kafka_broker.bootstrap
    topic, events = await _topic(bootstrap)
    calendar = WorkingCalendar()
    store = DossierStore(tmp_path / "store", topic)
    reader = LogReader(bootstrap, topic, f"group-{topic}")
    sent = Sent()
    keeper = PartitionKeeper(
        WorkerState(store, Ledger(calendar), calendar),
        reader,
        sent.send_dead_letters,
        sent.announce,
        sent.stop,
    )
    try:
        keeper.on_assigned([0])
        await keeper.wait_caught_up(timeout=30)
        assert keeper.ledger.ready  # nothing committed, nothing to read
        await _delete_before(bootstrap, topic, DELETED)
        stamp = time.time()
        delivered = [
            Incoming(0, n, events[n]["dossier_id"].encode(), orjson.dumps(events[n]), stamp, ())
            for n in range(25, 31)
        ]
        with pytest.raises(LogTruncated):
            await keeper.deliver(delivered)
        released: list[bool] = []
        keeper.abandon(delivered, "LogTruncated", release=lambda: released.append(True))
        await asyncio.wait_for(keeper.wait_caught_up(), 60)
        await asyncio.sleep(0.05)
        assert keeper.state.meta(0).applied == -1  # no deleted offset recorded as applied
        assert not keeper.ledger.ready and 0 in keeper.recovery.blocked
        assert f"offsets 0..{DELETED - 1} of partition 0 were deleted" in keeper.ledger.waiting[0]
        assert released == [True]
        assert not sent.stopped
    finally:
        await keeper.close()
