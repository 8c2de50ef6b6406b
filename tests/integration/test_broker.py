"""The local Kafka of service/tools/broker.py with the real clients the service uses.

These pin the Kafka version choice in .env: aiokafka, kafka-python and faust must create
topics, produce, consume and commit in a consumer group against it.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.helpers import create_ssl_context
from kafka import KafkaConsumer

from service.tools import broker as broker_module
from service.tools.broker import (
    BrokerError,
    LocalBroker,
    SslListener,
    cli_start,
    cli_status,
    cli_stop,
    free_port,
    kafka_version,
    reachable,
    read_env_file,
)
from service.tools.kafka import node as node_module

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, values: list[bytes], **config: object) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **config)
    await producer.start()
    try:
        for number, value in enumerate(values):
            await producer.send_and_wait(topic, value, key=str(number).encode())
    finally:
        await producer.stop()


async def consume(
    bootstrap: str, topic: str, count: int, group: str | None = None, timeout: float = 30.0
) -> list[bytes]:
    """The first `count` values of `topic` from the start; commits them when in a group."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            while len(values) < count:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    values.extend(record.value for record in records)
        if group is not None:
            await consumer.commit()
    finally:
        await consumer.stop()
    return values


async def test_round_trip_in_a_consumer_group(kafka_broker: LocalBroker) -> None:
    assert kafka_broker.is_running()
    assert kafka_broker.url == f"kafka://{kafka_broker.bootstrap}"
    topic, group = unique("round-trip"), unique("group")
    values = [f"dossier-{n}".encode() for n in range(30)]

    await create_topic(kafka_broker.bootstrap, topic, partitions=3)
    await produce(kafka_broker.bootstrap, topic, values)
    received = await consume(kafka_broker.bootstrap, topic, len(values), group=group)

    assert sorted(received) == sorted(values)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    assert {tp.partition for tp in committed} == {0, 1, 2}
    assert sum(meta.offset for meta in committed.values()) == len(values)


async def test_faust_declares_its_topic_and_consumes(kafka_broker: LocalBroker) -> None:
    # faust sends its own CreateTopics request, which Kafka 4 refuses from old clients.
    name = unique("faust")
    app = faust.App(
        name,
        broker=kafka_broker.url,
        store="memory://",
        web_enabled=False,
        loop=asyncio.get_running_loop(),
    )
    topic = app.topic(f"{name}-in", value_serializer="raw", internal=True, partitions=2)
    seen: list[bytes] = []
    all_seen = asyncio.Event()

    @app.agent(topic)
    async def collect(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            seen.append(value)
            if len(seen) == 5:
                all_seen.set()

    app.finalize()
    await app.start()
    try:
        for n in range(5):
            await topic.send(value=f"f{n}".encode())
        async with asyncio.timeout(60):
            await all_seen.wait()
    finally:
        await app.stop()
    assert sorted(seen) == [f"f{n}".encode() for n in range(5)]
    assert f"{name}-in" in await list_topics(kafka_broker.bootstrap)


async def test_restart_keeps_data_only_when_asked(tmp_path: Path) -> None:
    broker = LocalBroker(port=free_port(), data_dir=tmp_path / "kafka")
    topic = unique("kept")
    values = [b"received", b"assigned", b"returned"]
    try:
        await asyncio.to_thread(broker.start)
        await create_topic(broker.bootstrap, topic)
        await produce(broker.bootstrap, topic, values)

        await asyncio.to_thread(broker.stop)
        assert not broker.is_running()
        assert not reachable(broker.bootstrap, timeout=1.0)
        await asyncio.to_thread(broker.start, keep_data=True)
        assert await consume(broker.bootstrap, topic, len(values)) == values

        # A crash (SIGKILL) loses nothing that was acknowledged with acks=all.
        await produce(broker.bootstrap, topic, [b"overdue"])
        broker.kill()
        assert not broker.is_running()
        await asyncio.to_thread(broker.start, keep_data=True)
        assert await consume(broker.bootstrap, topic, 4) == [*values, b"overdue"]

        # Without keep_data every start is a fresh cluster.
        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(broker.start)
        assert topic not in await list_topics(broker.bootstrap)
    finally:
        broker.stop()


def test_missing_java_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        shutil,
        "which",
        lambda name, *args, **kwargs: None if name == "java" else real_which(name, *args, **kwargs),
    )
    broker = LocalBroker(port=free_port(), data_dir=tmp_path / "kafka")
    with pytest.raises(BrokerError) as caught:
        broker.start()
    message = str(caught.value)
    assert message == (
        "java not found: install a JDK 17 (Debian: apt-get install openjdk-17-jre-headless)"
    )
    assert broker.process is None


def test_missing_mvn_on_first_fetch_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # PATH holds java only, and the empty cache forces a fetch that needs mvn.
    java = shutil.which("java")
    assert java is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("MOTCUA_CACHE_DIR", str(tmp_path / "cache"))
    broker = LocalBroker(port=free_port(), data_dir=tmp_path / "kafka")
    with pytest.raises(BrokerError) as caught:
        broker.start()
    assert str(caught.value) == "mvn not found: install Maven (Debian: apt-get install maven)"
    assert not list((tmp_path / "cache").glob("*/.complete"))


def test_java_dying_at_start_reports_its_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(node_module, "_JVM_OPTS", ["-XX:+MotcuaNoSuchOption"])
    broker = LocalBroker(port=free_port(), data_dir=tmp_path / "kafka")
    with pytest.raises(BrokerError) as caught:
        broker.start(timeout=60)
    first_line, _, rest = str(caught.value).partition("\n")
    assert first_line.startswith("Kafka exited with code")
    assert "MotcuaNoSuchOption" in rest
    assert not broker.is_running()


async def test_tls_listener_serves_clients_that_trust_the_exported_ca(tmp_path: Path) -> None:
    listener = SslListener(port=free_port())
    broker = LocalBroker(port=free_port(), data_dir=tmp_path / "kafka", ssl=listener)
    topic = unique("tls")
    try:
        await asyncio.to_thread(broker.start)
        cafile = str(listener.cafile)
        assert listener.cafile.read_text().startswith("-----BEGIN CERTIFICATE-----")

        # Strict verification (the default from Python 3.13 on) accepts the chain and the IP SAN.
        strict = ssl.create_default_context(cafile=cafile)
        strict.verify_flags |= ssl.VERIFY_X509_STRICT
        with (
            socket.create_connection((broker_module.HOST, listener.port), timeout=5) as raw,
            strict.wrap_socket(raw, server_hostname=broker_module.HOST) as tls,
        ):
            assert tls.version() is not None
        # Without the CA the broker's certificate is not trusted.
        with (
            pytest.raises(ssl.SSLCertVerificationError),
            socket.create_connection((broker_module.HOST, listener.port), timeout=5) as raw,
            ssl.create_default_context().wrap_socket(raw, server_hostname=broker_module.HOST),
        ):
            pass

        values = [b"tls-1", b"tls-2", b"tls-3"]
        await produce(
            listener.bootstrap,
            topic,
            values,
            security_protocol="SSL",
            ssl_context=create_ssl_context(cafile=cafile),
        )
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=listener.bootstrap,
            security_protocol="SSL",
            ssl_cafile=cafile,
            auto_offset_reset="earliest",
            consumer_timeout_ms=20_000,
        )
        try:
            received = await asyncio.to_thread(
                lambda: [record.value for _, record in zip(values, consumer, strict=False)]
            )
        finally:
            consumer.close()
        assert received == values
        # The plaintext listener keeps working next to the SSL one.
        assert reachable(broker.bootstrap)
    finally:
        broker.stop()


def test_cli_broker_outlives_the_process_that_started_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    port = free_port()
    started = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from service.tools.broker import cli_start; "
            "print(cli_start(int(sys.argv[1]), Path(sys.argv[2])))",
            str(port),
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    try:
        assert started.returncode == 0, started.stderr
        assert f"127.0.0.1:{port}" in started.stdout
        assert (tmp_path / "kafka" / "broker.pid").is_file()

        running, message = cli_status(tmp_path)
        assert running, message
        assert f"127.0.0.1:{port}" in message
        assert "already running" in cli_start(port, tmp_path)

        assert "stopped" in cli_stop(tmp_path)
        assert cli_status(tmp_path)[0] is False
        assert not reachable(f"127.0.0.1:{port}", timeout=1.0)
        assert not (tmp_path / "kafka" / "broker.pid").exists()
    finally:
        cli_stop(tmp_path)

    # Without an explicit data dir the CLI looks in MOTCUA_DATA_DIR.
    monkeypatch.setenv("MOTCUA_DATA_DIR", str(tmp_path))
    running, message = cli_status(None)
    assert not running
    assert str(tmp_path / "kafka") in message


def test_version_from_env_file_and_override(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# pinned\n\nKAFKA_VERSION = '4.0.1'\nOTHER=x=y\n", encoding="utf-8")
    assert read_env_file(env_file) == {"KAFKA_VERSION": "4.0.1", "OTHER": "x=y"}

    monkeypatch.delenv("MOTCUA_KAFKA_VERSION", raising=False)
    assert kafka_version() == read_env_file()["KAFKA_VERSION"]
    monkeypatch.setenv("MOTCUA_KAFKA_VERSION", "3.9.1")
    assert kafka_version() == "3.9.1"
