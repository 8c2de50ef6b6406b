"""LogReader (service/state/log_reader.py) against a real broker: a range read yields every
record of the range once, in offset order, as Incoming tuples with the message's fields, and
stops at the requested end or at the log's end."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.state import log_reader
from service.state.log_reader import Incoming, LogReader
from service.tools.broker import LocalBroker

RECORDS = 2_500  # over one getmany's CHUNK: a range spans several chunks


async def _topic_with_records(bootstrap: str) -> str:
    topic = f"log-reader-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for n in range(RECORDS):
            headers = [("motcua-source", b"probe")] if n % 2 else []
            await producer.send(
                topic,
                value=b"value-%d" % n,
                key=b"key-%d" % n,
                partition=1,
                timestamp_ms=1_700_000_000_000 + n,
                headers=headers,
            )
        await producer.flush()
    finally:
        await producer.stop()
    return topic


async def test_a_range_is_read_once_in_order_and_stops_where_asked(
    kafka_broker: LocalBroker,
) -> None:
    assert RECORDS > log_reader.CHUNK
    topic = await _topic_with_records(kafka_broker.bootstrap)
    reader = LogReader(kafka_broker.bootstrap, topic, f"group-{topic}")
    await reader.start()
    try:
        assert (await reader.bounds([1]))[1] == (0, RECORDS)
        assert await reader.ends([0, 1]) == {0: 0, 1: RECORDS}
        assert await reader.committed(1) is None

        async def read(start: int, stop: int) -> list[Incoming]:
            return [m async for chunk in reader.read(1, start, stop) for m in chunk]

        whole = await read(0, RECORDS)
        assert [m.offset for m in whole] == list(range(RECORDS))
        assert all(type(m) is Incoming for m in whole)
        third = whole[3]
        assert third == Incoming(
            1, 3, b"key-3", b"value-3", 1_700_000_000.003, (("motcua-source", b"probe"),)
        )
        assert third.timestamp == third[4] and third.headers == third[5]
        assert whole[4].headers == ()

        # A range inside the log ends at `stop`, even in the middle of a fetched chunk.
        middle = await read(1_000, 2_345)
        assert [m.offset for m in middle] == list(range(1_000, 2_345))
        assert middle == whole[1_000:2_345]
        # A range past the log's end ends with the log; an empty one yields nothing.
        assert [m.offset for m in await read(2_400, RECORDS + 50)] == list(range(2_400, RECORDS))
        assert await read(10, 10) == []
        assert await read(0, 5) == whole[:5]
    finally:
        await reader.stop()


async def test_short_reads_right_after_start_never_raise(kafka_broker: LocalBroker) -> None:
    """Ranges are read by a consumer with no group: nothing is looked up in the background
    while a read ends. (One consumer with the group for both failed here: its coordinator
    lookup met the reader's empty assignment, and the next getmany raised.)"""
    topic = await _topic_with_records(kafka_broker.bootstrap)
    for attempt in range(8):
        reader = LogReader(kafka_broker.bootstrap, topic, f"group-{topic}-{attempt}")
        await reader.start()
        try:
            for start in (0, 5, 10):
                got = [m.offset async for chunk in reader.read(1, start, start + 5) for m in chunk]
                assert got == list(range(start, start + 5))
            assert await reader.committed(1) is None
        finally:
            await reader.stop()
