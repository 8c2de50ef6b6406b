"""The bench's Kafka traffic: its topics, bulk produce, and the raw consumer that sets the
ceiling the worker is compared with."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any

import orjson

from service.tools.bench.base import PARTITIONS, BenchError, Message


def create_topic(bootstrap: str, name: str, partitions: int = PARTITIONS) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="motcua-bench")
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Remove what a run left on a shared broker: its topics and changelogs."""
    from kafka.admin import KafkaAdminClient

    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="motcua-bench")
        try:
            names = [t for t in admin.list_topics() if t.startswith(prefix)]
            if names:
                admin.delete_topics(names)
        finally:
            admin.close()


async def produce(bootstrap: str, topic: str, messages: Iterable[Message]) -> int:
    """Send as fast as the broker takes them and wait for every acknowledgement."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    sent = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for key, value in messages:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                sent += len(pending)
                pending = []
        await asyncio.gather(*pending)
        sent += len(pending)
    finally:
        await producer.stop()
    return sent


async def raw_consume(bootstrap: str, topic: str, expected: int) -> tuple[float, float]:
    """The ceiling: aiokafka `getmany` from the start of every partition, JSON decode only.

    (wall seconds, CPU seconds of this process) from the first fetch until `expected`
    records are decoded.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        count = 0
        started, cpu = time.monotonic(), time.process_time()
        while count < expected and time.monotonic() < started + 300:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                count += len(records)
        if count < expected:
            raise BenchError(f"raw consumer read {count:,} of {expected:,} events")
        return time.monotonic() - started, time.process_time() - cpu
    finally:
        await consumer.stop()
