"""The publisher without a broker: line handling, acknowledgement accounting, exit codes.

A fake producer stands in for kafka-python here; sends against a real broker are the
integration tests' job. One test does use the real client, against a closed port.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError, NotLeaderForPartitionError

import service.ingest.publisher as publisher_module
from schemas import DossierEvent, EventType, InvalidEvent, Reason
from service.ingest.publisher import (
    DossierPublisher,
    PublishError,
    PublishReport,
    parse_bootstrap,
    publish_lines,
    run_publish,
)
from service.kafka_security import KafkaSecurity, KafkaSecurityError

NOW = datetime(2025, 7, 29, 8, 30, tzinfo=UTC)


def received(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": f"ev-{n}",
        "dossier_id": f"HS-{n}",
        "type": "received",
        "occurred_at": "2025-07-29T09:00:00+07:00",
        "agency": "SXD",
        "procedure": "1.000948",
        "channel": "direct",
        "processing_days": 5,
        **extra,
    }


class FakeFuture:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def get(self, timeout: float | None = None) -> str:
        if self.error is not None:
            raise self.error
        return "metadata"


class FakeProducer:
    """Records sends; `fail(value)` decides which acknowledgements fail, and how."""

    def __init__(self, fail: Callable[[bytes], Exception | None] = lambda value: None) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail = fail
        self.flushed = 0
        self.closed = False

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> FakeFuture:
        assert value is not None and key is not None
        self.sent.append((topic, key, value))
        return FakeFuture(self.fail(value))

    def flush(self, timeout: float | None = None) -> None:
        self.flushed += 1

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def fake_publisher(producer: FakeProducer, topic: str = "dossier-events") -> DossierPublisher:
    return DossierPublisher("unused:9092", topic, producer=producer)


def jsonl(*lines: dict[str, Any] | str) -> io.StringIO:
    text = "\n".join(
        line if isinstance(line, str) else orjson.dumps(line).decode() for line in lines
    )
    return io.StringIO(text + "\n")


# -- publish_lines ---------------------------------------------------------------------------


def test_a_pipe_checks_each_line_against_the_clock_when_it_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `tail -f … | motcua publish -` stays open for days: a line written ten minutes after
    # the command started is live news, not a future timestamp.
    clock = [NOW]

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return clock[0].astimezone(tz)

    monkeypatch.setattr(publisher_module, "datetime", Clock)
    later = "2025-07-29T15:40:00+07:00"  # NOW (08:30 UTC) plus ten minutes

    def pipe() -> Any:
        yield orjson.dumps(received(1)).decode() + "\n"
        clock[0] = NOW.replace(minute=40)  # ten minutes pass before the next line comes
        yield orjson.dumps(received(2, occurred_at=later)).decode() + "\n"

    producer = FakeProducer()
    report = publish_lines(pipe(), fake_publisher(producer))  # type: ignore[arg-type]
    assert report.invalid == 0, report.invalid_items
    assert [key for _, key, _ in producer.sent] == [b"HS-1", b"HS-2"]


def test_bad_lines_are_reported_by_number_and_not_sent() -> None:
    producer = FakeProducer()
    source = jsonl(
        received(1),
        "",
        received(2, occurred_at="2025-07-29T09:00:00"),  # line 3: no UTC offset
        "{not json",
        "   ",
        received(3),
        received(4, type="lost"),
        received(5, channel="fax"),
    )
    report = publish_lines(source, fake_publisher(producer), now=NOW)

    assert [key for _, key, _ in producer.sent] == [b"HS-1", b"HS-3"]
    assert report.acknowledged == 2
    assert report.invalid == 4 and report.failed == 0
    assert not report.ok
    assert report.invalid_items[0].startswith(
        "line 3: naive_timestamp: occurred_at has no UTC offset"
    )
    assert [item.split(":")[0:2] for item in report.invalid_items] == [
        ["line 3", " naive_timestamp"],
        ["line 4", " not_json"],
        ["line 7", " unknown_type"],
        ["line 8", " bad_channel"],
    ]


def test_sent_value_is_the_validated_event_keyed_by_dossier() -> None:
    producer = FakeProducer()
    # A field outside the contract (here a citizen's name) never reaches the topic.
    report = publish_lines(
        jsonl(received(1, applicant="Nguyễn Văn A")), fake_publisher(producer), now=NOW
    )
    assert report.ok
    topic, key, value = producer.sent[0]
    assert topic == "dossier-events" and key == b"HS-1"
    sent = orjson.loads(value)
    assert "applicant" not in sent
    assert sent == received(1)


def test_a_line_that_is_not_utf8_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(received(1)) + b"\n" + b'{"event_id": "\xff"}\n')
    producer = FakeProducer()
    with path.open(encoding="utf-8", errors="surrogateescape") as source:
        report = publish_lines(source, fake_publisher(producer), now=NOW)
    assert report.acknowledged == 1
    assert report.invalid_items == ["line 2: not_utf8: the message is not UTF-8"]


def test_future_timestamps_are_judged_against_now() -> None:
    producer = FakeProducer()
    report = publish_lines(
        jsonl(received(1, occurred_at="2025-07-29T15:40:00+07:00")), fake_publisher(producer), NOW
    )
    assert report.invalid_items[0].startswith("line 1: future_timestamp")
    assert producer.sent == []


# -- acknowledgements ------------------------------------------------------------------------


def test_a_failed_acknowledgement_is_never_reported_as_sent() -> None:
    producer = FakeProducer(
        fail=lambda value: KafkaTimeoutError("Expiring 1 record(s)") if b"HS-2" in value else None
    )
    report = fake_publisher(producer).publish_many([received(1), received(2), received(3)])
    assert report.acknowledged == 2
    assert report.failed == 1
    assert "event 2 (ev-2): not acknowledged: KafkaTimeoutError" in report.failures[0]
    assert "1 not acknowledged" in report.summary()
    with pytest.raises(PublishError) as caught:
        report.raise_for_failures()
    assert caught.value.reason == PublishError.NOT_ACKNOWLEDGED


def test_any_ack_error_counts_as_a_failure() -> None:
    producer = FakeProducer(fail=lambda value: NotLeaderForPartitionError())
    report = fake_publisher(producer).publish_many([received(1)])
    assert (report.acknowledged, report.failed) == (0, 1)


def test_publish_waits_for_the_ack_and_raises_without_it() -> None:
    producer = FakeProducer(fail=lambda value: KafkaTimeoutError("no ack"))
    publisher = fake_publisher(producer)
    with pytest.raises(PublishError) as caught:
        publisher.publish(received(1))
    assert caught.value.reason == PublishError.NOT_ACKNOWLEDGED
    assert "\n" not in str(caught.value)
    assert "0 acknowledged" in str(caught.value)


def test_publish_validates_before_sending() -> None:
    producer = FakeProducer()
    publisher = fake_publisher(producer)
    with pytest.raises(InvalidEvent) as caught:
        publisher.publish(received(1, agency=""))
    assert caught.value.reason is Reason.MISSING_AGENCY
    # A hand-built record is checked too: a naive time breaks the contract.
    naive = DossierEvent(
        event_id="ev-9",
        dossier_id="HS-9",
        type=EventType.WITHDRAWN,
        occurred_at=datetime(2025, 7, 29, 9, 0),
    )
    with pytest.raises(InvalidEvent) as caught:
        publisher.publish(naive)
    assert caught.value.reason is Reason.NAIVE_TIMESTAMP
    assert producer.sent == []
    publisher.publish(received(1))
    assert len(producer.sent) == 1
    assert producer.flushed  # a lone event does not wait out linger_ms


def test_publish_many_lists_invalid_events_by_position() -> None:
    producer = FakeProducer()
    report = fake_publisher(producer).publish_many([received(1), {"type": "received"}, 42])
    assert report.acknowledged == 1
    assert [i.split(":")[0] for i in report.invalid_items] == ["event 2", "event 3"]


def test_a_send_that_times_out_on_metadata_stops_the_batch() -> None:
    class Unreachable(FakeProducer):
        def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any:
            self.sent.append((topic, key or b"", value or b""))
            raise KafkaTimeoutError("Failed to update metadata after 120.0 secs.")

    producer = Unreachable()
    report = fake_publisher(producer).publish_many(received(n) for n in range(50))
    assert len(producer.sent) == 1  # not 50 × max_block_ms
    assert (report.acknowledged, report.failed) == (0, 50)
    assert "not sent: KafkaTimeoutError" in report.failures[-1]


def test_report_lists_are_capped_but_counts_are_exact() -> None:
    report = PublishReport()
    for n in range(250):
        report.add_invalid(f"line {n}: not_json: x")
    assert report.invalid == 250
    assert len(report.invalid_items) == publisher_module.MAX_LISTED


def test_close_is_idempotent_and_the_context_manager_closes() -> None:
    producer = FakeProducer()
    with fake_publisher(producer) as publisher:
        publisher.publish(received(1))
    assert producer.closed
    publisher.close()
    with pytest.raises(PublishError):
        publisher.publish(received(2))


def test_unreachable_broker_is_one_line_after_the_delivery_timeout() -> None:
    # The real client against a port nobody listens on: no broker needed.
    started = time.monotonic()
    with pytest.raises(PublishError) as caught:
        DossierPublisher("127.0.0.1:1", "dossier-events", delivery_timeout=1.0)
    assert time.monotonic() - started < 15
    assert caught.value.reason == PublishError.UNREACHABLE
    assert "\n" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)


# -- run_publish -----------------------------------------------------------------------------


class FakeKafka(FakeProducer):
    """Stands in for kafka-python's KafkaProducer class inside service.ingest.publisher."""

    DEFAULT_CONFIG = KafkaProducer.DEFAULT_CONFIG
    made: ClassVar[list[FakeKafka]]
    ack_error: ClassVar[Exception | None]

    def __init__(self, **config: Any) -> None:
        super().__init__(fail=lambda value: type(self).ack_error)
        self.config = config
        self.made.append(self)


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> type[FakeKafka]:
    class Kafka(FakeKafka):
        made: ClassVar[list[FakeKafka]] = []
        ack_error: ClassVar[Exception | None] = None

    monkeypatch.setattr(publisher_module, "KafkaProducer", Kafka)
    return Kafka


def write(tmp_path: Path, *lines: dict[str, Any] | str) -> str:
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl(*lines).getvalue(), encoding="utf-8")
    return str(path)


def test_run_publish_all_good_is_exit_0(tmp_path: Path, kafka: type[FakeKafka]) -> None:
    code, message = run_publish(write(tmp_path, received(1), received(2)), "127.0.0.1:9092", "t")
    assert code == 0
    assert "2 events" in message and "acknowledged" in message
    (producer,) = kafka.made
    assert len(producer.sent) == 2 and producer.closed
    assert producer.config["acks"] == "all"
    assert producer.config["bootstrap_servers"] == ["127.0.0.1:9092"]


def test_run_publish_bad_line_is_exit_1_and_still_sends_the_rest(
    tmp_path: Path, kafka: type[FakeKafka]
) -> None:
    path = write(tmp_path, received(1), '{"schema_version": 2}', received(3))
    code, message = run_publish(path, "kafka://127.0.0.1:9092", "t")
    assert code == 1
    assert len(kafka.made[0].sent) == 2
    first, *details = message.splitlines()
    assert "2 events acknowledged" in first and "valid lines were sent" in first
    assert details == ["line 2: bad_schema_version: schema_version must be 1, got 2"]


def test_run_publish_unacknowledged_is_exit_1(tmp_path: Path, kafka: type[FakeKafka]) -> None:
    kafka.ack_error = KafkaTimeoutError("expired")
    code, message = run_publish(write(tmp_path, received(1)), "127.0.0.1:9092", "t")
    assert code == 1
    assert "NOT acknowledged" in message and "KafkaTimeoutError" in message


def test_run_publish_missing_file_is_exit_2_one_line(kafka: type[FakeKafka]) -> None:
    code, message = run_publish("/nonexistent/events.jsonl", "127.0.0.1:9092", "t")
    assert code == 2
    assert message == "motcua publish: no such file: /nonexistent/events.jsonl"
    assert kafka.made == []


def test_run_publish_bad_address_is_exit_2(tmp_path: Path, kafka: type[FakeKafka]) -> None:
    code, message = run_publish(write(tmp_path, received(1)), "localhost", "t")
    assert code == 2 and "\n" not in message and "host:port" in message


def test_run_publish_empty_file_is_exit_0(tmp_path: Path, kafka: type[FakeKafka]) -> None:
    code, message = run_publish(write(tmp_path, ""), "127.0.0.1:9092", "t")
    assert code == 0 and "nothing was sent" in message


# -- addresses and security ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "servers"),
    [
        ("127.0.0.1:9092", ["127.0.0.1:9092"]),
        ("kafka://b1:9092,b2:9093", ["b1:9092", "b2:9093"]),
        ("kafka://b1:9092;b2:9093", ["b1:9092", "b2:9093"]),
        (" kafka://b1:9092 , kafka://b2:9093 ", ["b1:9092", "b2:9093"]),
        ("[::1]:9092", ["[::1]:9092"]),
    ],
)
def test_parse_bootstrap(text: str, servers: list[str]) -> None:
    assert parse_bootstrap(text) == servers


@pytest.mark.parametrize("text", ["", "localhost", "b1:port", "b1:0", "http://b1:9092", ","])
def test_parse_bootstrap_rejects(text: str) -> None:
    with pytest.raises(PublishError) as caught:
        parse_bootstrap(text)
    assert caught.value.reason == PublishError.BAD_ADDRESS


def test_security_from_env_and_both_dialects() -> None:
    env = {
        "MOTCUA_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "MOTCUA_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "MOTCUA_KAFKA_SASL_USERNAME": "center",
        "MOTCUA_KAFKA_SASL_PASSWORD": "s3cret",
        "MOTCUA_KAFKA_SSL_CAFILE": "",  # empty counts as unset
    }
    security = KafkaSecurity.from_env(env)
    assert security.protocol == "SASL_SSL"
    assert "s3cret" not in repr(security)
    assert security.kafka_python_kwargs() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "center",
        "sasl_plain_password": "s3cret",
    }
    aio = security.aiokafka_kwargs()
    assert aio["security_protocol"] == "SASL_SSL" and aio["ssl_context"] is not None
    assert aio["sasl_plain_password"] == "s3cret"


def test_security_defaults_to_plaintext() -> None:
    security = KafkaSecurity.from_env({})
    assert security.kafka_python_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert security.ssl_context() is None and security.faust_credentials() is None


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"protocol": "TLS"}, "not one of"),
        ({"protocol": "SASL_SSL", "sasl_username": "u"}, "username and password"),
        (
            {
                "protocol": "SASL_SSL",
                "sasl_mechanism": "GSSAPI",
                "sasl_username": "u",
                "sasl_password": "p",
            },
            "mechanism",
        ),
        ({"sasl_username": "u", "sasl_password": "p"}, "PLAINTEXT"),
        ({"ssl_cafile": "/ca.pem"}, "SSL files"),
        ({"protocol": "SSL", "ssl_keyfile": "/k.pem"}, "certificate"),
    ],
)
def test_security_mistakes_are_one_line(settings: dict[str, str], words: str) -> None:
    with pytest.raises(KafkaSecurityError, match=words) as caught:
        KafkaSecurity(**settings)
    assert "\n" not in str(caught.value)


def test_publisher_keyword_overrides_and_bad_security(
    kafka: type[FakeKafka], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTCUA_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    DossierPublisher(
        "b1:9092",
        "t",
        security_protocol="SASL_PLAINTEXT",
        sasl_plain_username="center",
        sasl_plain_password="pw",
    )
    seen = kafka.made[0].config
    assert seen["security_protocol"] == "SASL_PLAINTEXT"
    assert seen["sasl_plain_username"] == "center" and seen["sasl_mechanism"] == "PLAIN"
    with pytest.raises(PublishError) as caught:
        DossierPublisher("b1:9092", "t", security_protocol="SASL_SSL")
    assert caught.value.reason == PublishError.BAD_SECURITY


def test_producer_settings_are_safe_for_ordering() -> None:
    config = publisher_module._producer_config(
        ["b1:9092"], KafkaSecurity(), delivery_timeout=120.0, client_id="c"
    )
    assert config["acks"] == "all"
    assert config["enable_idempotence"] is True  # kafka-python 3.x supports it
    assert config["max_in_flight_requests_per_connection"] <= 5
    assert config["delivery_timeout_ms"] == 120_000
    assert config["delivery_timeout_ms"] >= config["linger_ms"] + config["request_timeout_ms"]


# -- item 8 of issue 12: check the whole file first, say what a long send waits for ----------


def test_run_publish_file_of_bad_lines_never_contacts_the_broker(
    tmp_path: Path, kafka: type[FakeKafka]
) -> None:
    said: list[str] = []
    path = write(tmp_path, '{"schema_version": 2}', "not json")
    code, message = run_publish(path, "127.0.0.1:9092", "t", say=said.append)
    assert code == 1 and kafka.made == [] and said == []
    assert "line 1: bad_schema_version" in message and "line 2: not_json" in message


def test_run_publish_says_bad_lines_before_connecting(
    tmp_path: Path, kafka: type[FakeKafka]
) -> None:
    said: list[str] = []

    class Watching(kafka):  # type: ignore[misc, valid-type]
        def __init__(self, **config: Any) -> None:
            # By the time the client is made, the bad line has been said.
            assert any("line 2: bad_schema_version" in line for line in said)
            super().__init__(**config)

    publisher_module.KafkaProducer = Watching  # restored by the kafka fixture's monkeypatch
    path = write(tmp_path, received(1), '{"schema_version": 2}', received(3))
    code, _ = run_publish(path, "127.0.0.1:9092", "t", say=said.append)
    assert code == 1
    assert said[-1] == "motcua publish: 1 bad lines will not be sent; sending the 2 valid lines"


def test_progress_says_what_it_waits_for() -> None:
    from service.ingest.publisher import Progress

    said: list[str] = []
    progress = Progress(said.append, total=10, every=0.01, quiet=0.0)
    progress.phase = "waiting for Kafka at 127.0.0.1:1 to answer (gives up after 120 s)"
    with progress:
        deadline = time.monotonic() + 10
        while not said and time.monotonic() < deadline:
            time.sleep(0.01)
    assert said and "waiting for Kafka at 127.0.0.1:1" in said[0]
    progress.sent = 4
    assert "4 of 10 sent, 0 acknowledged" in progress.line()
