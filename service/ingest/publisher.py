"""Publishing dossier events to Kafka, for center systems written in Python and `motcua publish`.

Every event is validated against contract v1 before it is sent, and a send counts only once the
broker has acknowledged it (acks=all): the client never reports a send that did not happen. A
report may undercount (an event whose acknowledgement timed out may still land); that is the safe
side, because the service drops re-sent events by event_id.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TextIO

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from schemas import DossierEvent, InvalidEvent, Reason, event_from_dict, parse_event
from service.kafka_security import KafkaSecurity, KafkaSecurityError
from service.settings import Settings, SettingsError, broker_addresses

DEFAULT_DELIVERY_TIMEOUT = 120.0
# Unacknowledged sends publish_many keeps before it waits on the oldest: bounds memory on long
# streams while leaving the producer plenty to batch.
MAX_PENDING = 10_000
# A report lists this many problems; its counts stay exact.
MAX_LISTED = 100
# Past the delivery timeout the producer fails the record itself; this is only a safety net
# for a producer that never answers.
_ACK_GRACE = 5.0
# Bigger, slightly later batches: kafka-python wakes its sender thread for every new batch,
# which costs much of the throughput with the defaults (docs/benchmarks.md). publish() and
# publish_many() flush at the end, so a lone event does not wait.
_LINGER_MS = 20
_BATCH_BYTES = 256 * 1024


class PublishError(RuntimeError):
    """A publish that could not be done; `reason` is a code, str(e) one line for a person."""

    BAD_ADDRESS = "bad_address"
    BAD_SECURITY = "bad_security"
    UNREACHABLE = "unreachable"
    NOT_ACKNOWLEDGED = "not_acknowledged"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class AckFuture(Protocol):
    """What `send` returns: kafka-python's FutureRecordMetadata, or a test double."""

    def get(self, timeout: float | None = None) -> Any: ...


class Producer(Protocol):
    """The slice of kafka-python's KafkaProducer the publisher uses."""

    def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> AckFuture: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


@dataclass
class PublishReport:
    """What happened to a batch: acknowledged sends, failed sends, events refused before sending."""

    acknowledged: int = 0
    failed: int = 0
    invalid: int = 0
    failures: list[str] = field(default_factory=list)  # first MAX_LISTED, one line each
    invalid_items: list[str] = field(default_factory=list)  # e.g. "line 3: naive_timestamp: …"

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.invalid == 0

    def add_failure(self, message: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_LISTED:
            self.failures.append(_one_line(message))

    def add_invalid(self, message: str) -> None:
        self.invalid += 1
        if len(self.invalid_items) < MAX_LISTED:
            self.invalid_items.append(_one_line(message))

    def summary(self) -> str:
        """One line: the counts, and the first problem of each kind."""
        parts = [f"{self.acknowledged} acknowledged"]
        if self.failed:
            parts.append(f"{self.failed} not acknowledged (first: {self.failures[0]})")
        if self.invalid:
            parts.append(f"{self.invalid} invalid, not sent (first: {self.invalid_items[0]})")
        return "; ".join(parts)

    def raise_for_failures(self) -> None:
        """PublishError if any send was not acknowledged."""
        if self.failed:
            raise PublishError(PublishError.NOT_ACKNOWLEDGED, self.summary())


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _describe(exc: BaseException) -> str:
    """The error as "Type: message", the type once (kafka-python's str() already has it)."""
    text, name = str(exc), type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def parse_bootstrap(broker: str) -> list[str]:
    """host:port entries from "kafka://host:port", "host:port,host:port" or faust's ";" lists."""
    try:
        return broker_addresses(broker)
    except SettingsError as exc:
        raise PublishError(PublishError.BAD_ADDRESS, str(exc)) from None


def _producer_config(
    servers: list[str], security: KafkaSecurity, delivery_timeout: float, client_id: str
) -> dict[str, Any]:
    supported = KafkaProducer.DEFAULT_CONFIG
    delivery_ms = int(delivery_timeout * 1000)
    config: dict[str, Any] = {
        "bootstrap_servers": servers,
        "client_id": client_id,
        "acks": "all",
        "linger_ms": _LINGER_MS,
        "batch_size": _BATCH_BYTES,
        "retry_backoff_ms": 200,
        "reconnect_backoff_max_ms": 5000,
        # kafka-python refuses a delivery timeout shorter than linger + request timeout.
        "request_timeout_ms": max(1, min(30_000, delivery_ms - _LINGER_MS)),
        # send() blocks for topic metadata at most this long.
        "max_block_ms": delivery_ms,
        **security.kafka_python_kwargs(),
    }
    if "delivery_timeout_ms" in supported:
        # Retries are unbounded in count and bounded in time by the delivery timeout.
        config["delivery_timeout_ms"] = delivery_ms
    else:
        config["retries"] = 10
    if "bootstrap_timeout_ms" in supported:
        # A broker that is down at start gets the same patience as one that fails mid-send.
        config["bootstrap_timeout_ms"] = delivery_ms
    if "enable_idempotence" in supported:
        # The broker drops retried duplicates and keeps order with up to 5 requests in flight.
        config["enable_idempotence"] = True
        config["max_in_flight_requests_per_connection"] = 5
    else:
        # Without idempotence a retried batch could overtake the next one: keep one in flight
        # so a dossier's events stay in order.
        config["max_in_flight_requests_per_connection"] = 1
    return config


class DossierPublisher:
    """Validates dossier events and sends them keyed by dossier_id, waiting for acks=all.

    The topic defaults to the service's (dossier-events). Security comes from `security`
    (default: `KafkaSecurity.from_env()`); the keyword arguments named like kafka-python's
    override single settings. `producer` replaces the Kafka client (tests only).
    """

    def __init__(
        self,
        broker: str,
        topic: str = Settings.topic,
        *,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        security: KafkaSecurity | None = None,
        security_protocol: str | None = None,
        sasl_mechanism: str | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
        ssl_cafile: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        client_id: str = "motcua-publisher",
        producer: Producer | None = None,
    ) -> None:
        if delivery_timeout <= 0:
            raise ValueError("delivery_timeout must be positive")
        self.topic = topic
        self.delivery_timeout = delivery_timeout
        self._closed = False
        if producer is not None:
            self._producer = producer
            return
        servers = parse_bootstrap(broker)
        overrides = {
            name: value
            for name, value in (
                ("protocol", security_protocol),
                ("sasl_mechanism", sasl_mechanism),
                ("sasl_username", sasl_plain_username),
                ("sasl_password", sasl_plain_password),
                ("ssl_cafile", ssl_cafile),
                ("ssl_certfile", ssl_certfile),
                ("ssl_keyfile", ssl_keyfile),
            )
            if value is not None
        }
        try:
            settings = security if security is not None else KafkaSecurity.from_env()
            if overrides:
                settings = replace(settings, **overrides)
        except KafkaSecurityError as exc:
            raise PublishError(PublishError.BAD_SECURITY, str(exc)) from None
        config = _producer_config(servers, settings, delivery_timeout, client_id)
        try:
            self._producer = KafkaProducer(**config)
        except (KafkaError, ValueError, OSError) as exc:
            raise PublishError(
                PublishError.UNREACHABLE,
                _one_line(
                    f"cannot reach Kafka at {','.join(servers)} within {delivery_timeout:g} s: "
                    f"{_describe(exc)}"
                ),
            ) from None

    # -- sending ---------------------------------------------------------------------------

    @staticmethod
    def validate(event: dict[str, Any] | DossierEvent, now: datetime | None = None) -> DossierEvent:
        """The event as contract v1 checks it; InvalidEvent (with .reason) if it is not valid."""
        if isinstance(event, DossierEvent):
            # A hand-built record may still break the contract (a naive time, an empty code).
            event = event.to_dict()
        return event_from_dict(event, now)

    def publish(self, event: dict[str, Any] | DossierEvent) -> None:
        """Validate, send and wait for the acknowledgement of one event.

        Raises InvalidEvent (nothing sent) or PublishError (not acknowledged in time).
        """
        checked = self.validate(event)
        report = PublishReport()
        self._send_all(iter([(f"event {checked.event_id}", checked)]), report)
        report.raise_for_failures()

    def publish_many(
        self,
        events: Iterable[dict[str, Any] | DossierEvent],
        report: PublishReport | None = None,
    ) -> PublishReport:
        """Send every valid event, then wait for every acknowledgement; invalid ones are listed
        by position (1-based) and not sent."""
        report = report if report is not None else PublishReport()

        def checked() -> Iterator[tuple[str, DossierEvent]]:
            for position, event in enumerate(events, 1):
                try:
                    valid = self.validate(event)
                except InvalidEvent as exc:
                    report.add_invalid(f"event {position}: {exc}")
                    continue
                yield f"event {position} ({valid.event_id})", valid

        self._send_all(checked(), report)
        return report

    def _send_all(
        self,
        items: Iterator[tuple[str, DossierEvent]],
        report: PublishReport,
        progress: Progress | None = None,
    ) -> None:
        if self._closed:
            raise PublishError(PublishError.UNREACHABLE, "the publisher is closed")
        pending: deque[tuple[str, AckFuture, float]] = deque()
        unreachable: str | None = None
        for label, event in items:
            if unreachable is not None:
                # Waiting out max_block_ms again for every remaining event would take hours;
                # they are counted as failed, never as sent.
                report.add_failure(f"{label}: not sent: {unreachable}")
                continue
            try:
                future = self._producer.send(
                    self.topic, value=event.to_json(), key=event.dossier_id.encode("utf-8")
                )
            except KafkaTimeoutError as exc:
                unreachable = _describe(exc)
                report.add_failure(f"{label}: not sent: {unreachable}")
                continue
            except (KafkaError, ValueError, TypeError) as exc:
                report.add_failure(f"{label}: not sent: {_describe(exc)}")
                continue
            pending.append((label, future, time.monotonic() + self.delivery_timeout + _ACK_GRACE))
            if progress is not None:
                progress.sent += 1
            if len(pending) > MAX_PENDING:
                self._settle(pending.popleft(), report)
        if pending:
            if progress is not None:
                progress.phase = f"waiting for Kafka to acknowledge {len(pending)} events"
            # A flush that times out changes nothing: each record's own future says what
            # became of it.
            with contextlib.suppress(KafkaError):
                self._producer.flush(timeout=self.delivery_timeout + _ACK_GRACE)
        while pending:
            self._settle(pending.popleft(), report)

    @staticmethod
    def _settle(item: tuple[str, AckFuture, float], report: PublishReport) -> None:
        label, future, deadline = item
        try:
            future.get(timeout=max(0.0, deadline - time.monotonic()))
        except Exception as exc:  # any failure, whatever its type, is a send not acknowledged
            report.add_failure(f"{label}: not acknowledged: {_describe(exc)}")
        else:
            report.acknowledged += 1

    # -- lifecycle -------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything sent so far has completed (acknowledged or failed)."""
        try:
            self._producer.flush(timeout=timeout)
        except KafkaError as exc:
            raise PublishError(
                PublishError.NOT_ACKNOWLEDGED,
                _one_line(f"flush did not complete: {_describe(exc)}"),
            ) from None

    def close(self, timeout: float | None = 10.0) -> None:
        """Close the client; idempotent. Sends still unacknowledged were already reported."""
        if self._closed:
            return
        self._closed = True
        # Nothing is left to report: every send's fate is already in its report.
        with contextlib.suppress(KafkaError):
            self._producer.close(timeout=timeout)

    def __enter__(self) -> DossierPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _checked_lines(
    source: TextIO, report: PublishReport, now: datetime | None
) -> Iterator[tuple[str, DossierEvent]]:
    """The valid lines as (label, event); each bad one goes into `report` by number. `now`:
    the clock the future-timestamp test reads; None: the clock as each line is read (a pipe
    may stay open for days)."""
    for number, line in enumerate(source, 1):
        text = line.strip()
        if not text:
            continue
        try:
            # surrogateescape gives back the file's original bytes, so parse_event can
            # name a non-UTF-8 line as such.
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            report.add_invalid(f"line {number}: {Reason.NOT_UTF8.value}: the line is not UTF-8")
            continue
        try:
            event = parse_event(raw, now or datetime.now(UTC))
        except InvalidEvent as exc:
            report.add_invalid(f"line {number}: {exc}")
            continue
        yield f"line {number} ({event.event_id})", event


def publish_lines(
    source: TextIO,
    publisher: DossierPublisher,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> PublishReport:
    """Validate JSON Lines and send the valid ones; bad lines are reported by number.

    Blank lines are skipped. Each bad line is listed as "line N: reason: detail". `now`: one
    clock for every line (a file checked whole before); None: each line's own reading.
    """
    report = PublishReport()
    if progress is not None:
        progress.report = report
    lines = _checked_lines(source, report, now)
    publisher._send_all(lines, report, progress)
    return report


def scan_lines(source: TextIO, now: datetime) -> tuple[int, PublishReport]:
    """Check every line without sending: (valid lines, report of the bad ones)."""
    report = PublishReport()
    valid = sum(1 for _ in _checked_lines(source, report, now))
    return valid, report


class Progress:
    """What a long `motcua publish` is doing, said every few seconds on stderr (after a quiet
    start, so a quick publish prints nothing extra)."""

    def __init__(
        self, say: Callable[[str], None], total: int | None, every: float = 5.0, quiet: float = 3.0
    ) -> None:
        self.say = say
        self.total = total
        self.every = every
        self.quiet = quiet
        self.phase = "starting"
        self.sent = 0
        self.report: PublishReport | None = None
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="publish-progress", daemon=True)

    def line(self) -> str:
        elapsed = time.monotonic() - self._started
        of = f" of {self.total}" if self.total is not None else ""
        acked = self.report.acknowledged if self.report is not None else 0
        counts = f"{self.sent}{of} sent, {acked} acknowledged" if self.sent else ""
        counts = f"; {counts}" if counts else ""
        return f"motcua publish: {self.phase}{counts} ({elapsed:.0f} s)"

    def _run(self) -> None:
        if self._stop.wait(self.quiet):
            return
        while True:
            self.say(self.line())
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(1.0)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_publish(
    path: str,
    broker: str,
    topic: str,
    *,
    delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
    say: Callable[[str], None] = _stderr,
) -> tuple[int, str]:
    """`motcua publish`: (exit code, message). 0 only if every line was valid and acknowledged;
    1 if a line was bad or a send failed; 2 for a file that cannot be read or a bad address.

    A regular file is checked whole before the broker is contacted: its bad lines are said
    (by number) at once, and a file with no valid line never waits for a broker. A pipe or
    stdin may never end, so its lines are checked as they come. Long sends say what they are
    doing, and what they wait for, every few seconds.
    """
    name = "stdin" if path == "-" else path
    now = datetime.now(UTC)  # one clock for the check and the send
    total: int | None = None
    checked: PublishReport | None = None
    if path != "-" and Path(path).is_file():
        try:
            with Path(path).open(encoding="utf-8", errors="surrogateescape") as whole:
                total, checked = scan_lines(whole, now)
        except OSError as exc:
            return 2, f"motcua publish: cannot read {path}: {exc.strerror or exc}"
        if total == 0:  # nothing to send: the message lists the bad lines, no broker needed
            return _publish_message(checked, name, topic)
        for item in checked.invalid_items:
            say(f"motcua publish: {item}")
        if checked.invalid:
            say(
                f"motcua publish: {checked.invalid} bad lines will not be sent;"
                f" sending the {total} valid lines"
            )
    source: TextIO
    if path == "-":
        source = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
    else:
        try:
            source = Path(path).open(encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
        except FileNotFoundError:
            return 2, f"motcua publish: no such file: {path}"
        except OSError as exc:
            return 2, f"motcua publish: cannot read {path}: {exc.strerror or exc}"
    try:
        with Progress(say, total) as progress:
            progress.phase = (
                f"waiting for Kafka at {broker} to answer (gives up after {delivery_timeout:g} s)"
            )
            with DossierPublisher(broker, topic, delivery_timeout=delivery_timeout) as publisher:
                progress.phase = f"sending to {topic}"
                # A file's lines were checked against `now` already; a pipe's are checked
                # as they come, each against the clock when it is read.
                report = publish_lines(
                    source, publisher, now if total is not None else None, progress
                )
    except PublishError as exc:
        code = 2 if exc.reason in (PublishError.BAD_ADDRESS, PublishError.BAD_SECURITY) else 1
        bad = f" ({checked.invalid} bad lines listed above)" if checked and checked.invalid else ""
        return code, f"motcua publish: {exc}; nothing was sent{bad}"
    except OSError as exc:
        return 2, f"motcua publish: cannot read {name}: {exc.strerror or exc}"
    finally:
        if path == "-":
            source.detach()  # leave the process's stdin open for whoever owns it
        else:
            source.close()
    return _publish_message(report, name, topic)


def _publish_message(report: PublishReport, name: str, topic: str) -> tuple[int, str]:
    if report.ok:
        if report.acknowledged == 0:
            return 0, f"no events in {name}; nothing was sent"
        return 0, f"published {report.acknowledged} events from {name} to {topic}, all acknowledged"
    lines = [
        f"motcua publish: {name} → {topic}: {report.acknowledged} events acknowledged"
        + (f", {report.failed} NOT acknowledged (send them again)" if report.failed else "")
        + (
            f"; {report.invalid} bad lines not sent"
            + (" (the valid lines were sent)" if report.acknowledged or report.failed else "")
            if report.invalid
            else ""
        )
    ]
    lines += report.invalid_items
    lines += report.failures
    listed = len(report.invalid_items) + len(report.failures)
    if report.invalid + report.failed > listed:
        lines.append(f"… and {report.invalid + report.failed - listed} more")
    return 1, "\n".join(lines)
