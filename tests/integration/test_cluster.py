"""The local three-broker KRaft cluster (service/tools/kafka/cluster.py): replicated topics keep
every acknowledged write through a node killed with -9 and restarted; `motcua broker start
--nodes 3` runs one in the background."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.tools.broker import LocalCluster, free_port, reachable

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_replicated_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Replication factor 3, min ISR 2: one node may be down and acks=all writes still pass."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, partitions, 3, topic_configs={"min.insync.replicas": "2"})]
        )
    finally:
        await admin.close()


async def read_all(bootstrap: str, topic: str, count: int, timeout: float = 60.0) -> list[bytes]:
    """Every value of `topic` from the start, once `count` have arrived (then a little more, so
    that a duplicate written after them would be seen too)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            while len(values) < count:
                batches = await consumer.getmany(timeout_ms=500)
                values.extend(r.value for records in batches.values() for r in records)
        batches = await consumer.getmany(timeout_ms=1000)
        values.extend(r.value for records in batches.values() for r in records)
    finally:
        await consumer.stop()
    return values


class Publisher:
    """Sends numbered values with acks=all and idempotence, chunk by chunk, until stopped;
    `acknowledged` holds every value the cluster confirmed."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )
        self.topic = topic
        self.acknowledged: list[bytes] = []
        self.stopping = asyncio.Event()

    async def run(self, chunk: int = 100) -> None:
        await self.producer.start()
        try:
            n = 0
            while not self.stopping.is_set():
                values = [f"event-{i:06d}".encode() for i in range(n, n + chunk)]
                futures = [
                    await self.producer.send(self.topic, value, key=value[-2:]) for value in values
                ]
                await asyncio.gather(*futures)
                self.acknowledged.extend(values)
                n += chunk
                await asyncio.sleep(0.05)
        finally:
            await self.producer.stop()

    async def until(self, count: int, timeout: float = 120.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.acknowledged) < count:
                await asyncio.sleep(0.1)


def test_three_nodes_form_one_quorum(kafka_cluster: LocalCluster) -> None:
    assert sorted(kafka_cluster.running()) == [1, 2, 3]
    assert kafka_cluster.brokers_registered() == [1, 2, 3]
    addresses = kafka_cluster.bootstrap.split(",")
    assert len(set(addresses)) == 3
    assert all(reachable(address) for address in addresses)


async def test_acknowledged_writes_survive_a_node_killed_and_restarted(
    kafka_cluster: LocalCluster,
) -> None:
    topic = unique("replicated")
    await create_replicated_topic(kafka_cluster.bootstrap, topic, partitions=3)
    publisher = Publisher(kafka_cluster.bootstrap, topic)
    sending = asyncio.create_task(publisher.run())
    victim = 0
    try:
        await publisher.until(1_000)
        victim = await asyncio.to_thread(kafka_cluster.leader_of, topic, 0)
        await asyncio.to_thread(kafka_cluster.kill, victim)
        # Writes go on with one node of three down: RF 3 and min ISR 2 leave two in sync.
        await publisher.until(len(publisher.acknowledged) + 1_500)
        states = await asyncio.to_thread(kafka_cluster.partitions, topic)
        assert states[0].leader not in (victim, -1)
        assert victim not in states[0].isr
        await asyncio.to_thread(kafka_cluster.restart, victim)
        await asyncio.to_thread(kafka_cluster.wait_in_sync, topic)
        await publisher.until(len(publisher.acknowledged) + 500)
    finally:
        publisher.stopping.set()
        await sending
        if victim and victim not in kafka_cluster.running():
            await asyncio.to_thread(kafka_cluster.restart, victim)

    states = await asyncio.to_thread(kafka_cluster.partitions, topic)
    assert all(set(s.isr) == {1, 2, 3} for s in states.values()), states
    values = await read_all(kafka_cluster.bootstrap, topic, len(publisher.acknowledged))
    # Every acknowledged value exactly once: none lost, none written twice by a retry.
    assert Counter(values) == Counter(publisher.acknowledged)


def motcua(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "broker", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cli_starts_a_cluster_that_restarts_a_dead_node(tmp_path: Path) -> None:
    port = free_port()
    data = ["--data", str(tmp_path)]
    try:
        started = motcua("start", "--nodes", "3", "--port", str(port), *data)
        assert started.returncode == 0, started.stderr
        assert "cluster of 3 nodes" in started.stdout
        assert f"127.0.0.1:{port}," in started.stdout
        status = motcua("status", *data)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "3 nodes running" in status.stdout

        node_2 = tmp_path / "kafka-cluster" / "node-2" / "broker.pid"
        os.kill(int(node_2.read_text()), signal.SIGKILL)
        down = motcua("status", *data)
        assert down.returncode == 3
        assert "node 2 of 3 not running" in down.stdout

        again = motcua("start", "--nodes", "3", "--port", str(port), *data)
        assert again.returncode == 0, again.stderr
        assert "node 2 started again" in again.stdout
        assert motcua("status", *data).returncode == 0

        wrong = motcua("start", "--nodes", "2", "--port", str(port), *data)
        assert wrong.returncode == 1
        assert wrong.stderr.count("\n") == 1 and "cluster of 3 nodes" in wrong.stderr
    finally:
        stopped = motcua("stop", *data)
    assert stopped.returncode == 0
    assert "stopped" in stopped.stdout
    assert motcua("status", *data).returncode == 3
    assert not reachable(f"127.0.0.1:{port}", timeout=1.0)
