"""Reading `dossier-events` directly: the offsets of partitions, and ranges of their records.

Plain aiokafka consumers, assigned (never subscribed: not members of the group) and read
with `getmany`, with no per-message framework work. The state layer uses it to catch a
partition's store up to the log, and to fill a gap in what faust delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError

log = logging.getLogger(__name__)

# Records per getmany: large enough to amortise the call, small enough that a chunk's apply
# holds the event loop for a few tens of milliseconds at most.
CHUNK = 2000
# How long the broker may hold an empty fetch (aiokafka's default is 500 ms).
FETCH_MAX_WAIT_MS = 50


class LogTruncated(RuntimeError):
    """The log no longer holds an offset a read needed: retention (or `delete_records`)
    deleted the partition's oldest records, the start of the range among them. The records
    are gone: the partition's store cannot be the fold of its log's prefix (recovery.py)."""

    def __init__(self, partition: int, offset: int) -> None:
        super().__init__(f"partition {partition}: offset {offset} is no longer in the log")
        self.partition = partition
        self.offset = offset


class Incoming(NamedTuple):
    """One message of the input topic, whichever consumer read it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # seconds since the epoch (Kafka's message timestamp)
    headers: Any  # a sequence of (name, bytes) pairs, or None


# A catch-up builds one Incoming per record: tuple.__new__ skips the NamedTuple's own
# Python-level __new__ (same tuple, same fields, in the same order).
_incoming = tuple.__new__


class LogReader:
    """Offsets and record ranges of one topic."""

    def __init__(self, bootstrap: str, topic: str, group_id: str | None, **security: Any) -> None:
        self.topic = topic
        self._group_id = group_id
        self._options: dict[str, Any] = dict(
            bootstrap_servers=bootstrap.split(","),
            enable_auto_commit=False,
            # A read that starts where the log no longer reaches raises (LogTruncated): with
            # "earliest" the consumer went on silently from the log's new beginning, and the
            # deleted offsets were recorded as applied.
            auto_offset_reset="none",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # A range read ends at a partition's end, where the last fetch finds nothing and
            # the broker would hold it this long; the next partition's read waits behind it.
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            **security,
        )
        # Two consumers, neither ever subscribed (never a member of the group, never
        # committing): one with no group reads offsets and ranges; one with the group only
        # asks for its committed offsets. One consumer for both had its group coordinator
        # looked up in the background, and a range read ending meanwhile made the next
        # getmany raise (the attempt then retried 2 s later).
        self._consumer: AIOKafkaConsumer | None = None
        self._group: AIOKafkaConsumer | None = None
        self._starting = asyncio.Lock()
        # One range at a time: the consumer is assigned the partition it reads.
        self._reading = asyncio.Lock()

    async def start(self) -> None:
        """Connect (once; aiokafka needs a running event loop to be created)."""
        async with self._starting:
            if self._consumer is None:
                name = self._group_id or "motcua"
                consumer = AIOKafkaConsumer(
                    **self._options, group_id=None, client_id=f"{name}-log-reader"
                )
                await consumer.start()
                self._consumer = consumer
            if self._group is None and self._group_id is not None:
                group = AIOKafkaConsumer(
                    **self._options,
                    group_id=self._group_id,
                    client_id=f"{self._group_id}-committed-offsets",
                )
                await group.start()
                self._group = group

    async def stop(self) -> None:
        for name in ("_consumer", "_group"):
            consumer = getattr(self, name)
            if consumer is not None:
                setattr(self, name, None)
                await consumer.stop()

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "LogReader.start() first"
        return self._consumer

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self.topic, partition)

    async def partition_count(self) -> int | None:
        parts = await self.consumer._client.fetch_all_metadata()
        found = parts.partitions_for_topic(self.topic)
        return len(found) if found is not None else None

    async def bounds(self, partitions: list[int]) -> dict[int, tuple[int, int]]:
        """(earliest offset, end offset) of each partition."""
        tps = [self._tp(p) for p in partitions]
        earliest = await self.consumer.beginning_offsets(tps)
        end = await self.consumer.end_offsets(tps)
        return {tp.partition: (earliest[tp], end[tp]) for tp in tps}

    async def ends(self, partitions: list[int]) -> dict[int, int]:
        """The end offset (the next offset to be written) of each partition: one request."""
        tps = [self._tp(p) for p in partitions]
        end = await self.consumer.end_offsets(tps)
        return {tp.partition: end[tp] for tp in tps}

    async def committed(self, partition: int) -> int | None:
        """The group's committed offset (the next offset to read), or None."""
        assert self._group is not None, "a LogReader with a group, started"
        return await self._group.committed(self._tp(partition))

    async def read(self, partition: int, start: int, stop: int) -> AsyncIterator[list[Incoming]]:
        """Records of `partition` with start <= offset < stop, in chunks, in order. Raises
        LogTruncated when the log no longer holds where the read is (deleted records)."""
        if start >= stop:
            return
        tp = self._tp(partition)
        consumer = self.consumer
        async with self._reading:
            async for chunk in self._read(consumer, tp, start, stop):
                yield chunk

    async def _read(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, stop: int
    ) -> AsyncIterator[list[Incoming]]:
        consumer.assign([tp])
        consumer.seek(tp, start)
        try:
            while True:
                try:
                    fetched = await consumer.getmany(tp, timeout_ms=500, max_records=CHUNK)
                except OffsetOutOfRangeError as exc:
                    # aiokafka names the offset it fetched: {tp: offset}.
                    where = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
                    raise LogTruncated(tp.partition, where.get(tp, start)) from None
                records = fetched.get(tp, [])
                chunk = [
                    _incoming(
                        Incoming,
                        (r.partition, r.offset, r.key, r.value, r.timestamp / 1000.0, r.headers),
                    )
                    for r in records
                    if r.offset < stop
                ]
                if chunk:
                    yield chunk
                # Offsets may have holes (transaction markers, compaction): go by position.
                position = await consumer.position(tp)
                if position >= stop:
                    return
                if not records and (await consumer.end_offsets([tp]))[tp] <= position:
                    return  # the log ends before `stop`: nothing more to read
        finally:
            consumer.assign([])
