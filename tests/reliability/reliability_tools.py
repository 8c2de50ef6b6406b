"""What the reliability tests share: scenarios, streams that keep publishing in the background,
and scrapes of several workers that are summed only when the group has settled.

A worker mid-rebalance reports `motcua_ready 0` and omits its per-dossier families (by design);
a settled group is every live worker ready with the input partitions counted exactly once
(`motcua_partitions_active` adds up to the topic's partitions). Only then must the sum of the
workers' /metrics equal the domain core's answer.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from harness import WorkerProcess, dossier_counts, expected_counts
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from service.ingest.publisher import DossierPublisher, PublishReport
from service.state.records import decode
from service.tools.broker import HOST, LocalBroker, SslListener, free_port
from service.tools.simulate import SimulationConfig, generate

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scenario(dossiers: int, seed: int, duplicate_ratio: float = 0.05) -> list[dict[str, Any]]:
    """Simulated center traffic with re-sent events and out-of-order delivery."""
    config = SimulationConfig(
        dossiers=dossiers,
        seed=seed,
        now=datetime.now(UTC) - timedelta(seconds=5),
        duplicate_ratio=duplicate_ratio,
        shuffle_window=40,
    )
    return list(generate(config))


def as_message(event: dict[str, Any]) -> tuple[bytes, bytes]:
    return event["dossier_id"].encode(), orjson.dumps(event)


def chunks(items: list[Any], count: int) -> Iterator[list[Any]]:
    """`items` in `count` nearly equal consecutive slices."""
    size = max(1, -(-len(items) // count))
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- background streams -------------------------------------------------------------------


class ChunkStream(threading.Thread):
    """A center that keeps publishing: chunks of raw messages, a pause between them, every
    chunk acknowledged (acks=all) before the next. Errors are kept for the test to raise."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        messages: list[tuple[bytes | None, bytes | None]],
        pieces: int,
        pause: float,
    ) -> None:
        super().__init__(daemon=True, name=f"stream-{topic}")
        self.bootstrap, self.topic = bootstrap, topic
        self.pieces = list(chunks(messages, pieces))
        self.pause = pause
        self.acknowledged = 0
        self.error: BaseException | None = None
        self._cancel = threading.Event()

    def run(self) -> None:
        try:
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
            try:
                for piece in self.pieces:
                    futures = [producer.send(self.topic, key=k, value=v) for k, v in piece]
                    producer.flush(60)
                    for future in futures:
                        future.get(60)
                    self.acknowledged += len(futures)
                    if self._cancel.wait(self.pause):
                        return
            finally:
                producer.close(10)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self, timeout: float = 300.0) -> int:
        """Wait for the last chunk; the number of acknowledged messages."""
        self.join(timeout)
        if self.is_alive():
            self._cancel.set()
            raise TimeoutError(f"the stream to {self.topic} did not finish in {timeout:.0f} s")
        if self.error is not None:
            raise self.error
        return self.acknowledged


class PublisherStream(threading.Thread):
    """Events through motcua's own publisher (retries, acks=all), paced to `rate` events/s."""

    def __init__(
        self, bootstrap: str, topic: str, events: list[dict[str, Any]], rate: float
    ) -> None:
        super().__init__(daemon=True, name=f"publisher-{topic}")
        self.bootstrap, self.topic, self.events, self.rate = bootstrap, topic, events, rate
        self.sent = 0
        self.report = PublishReport()
        self.error: BaseException | None = None

    def _paced(self) -> Iterator[dict[str, Any]]:
        started = time.monotonic()
        for position, event in enumerate(self.events):
            ahead = started + position / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            self.sent += 1
            yield event

    def run(self) -> None:
        try:
            with DossierPublisher(self.bootstrap, self.topic, delivery_timeout=120) as pub:
                pub.publish_many(self._paced(), self.report)
        except BaseException as exc:
            self.error = exc

    def finish(self, timeout: float = 300.0) -> PublishReport:
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError(f"the publisher to {self.topic} did not finish in {timeout:.0f} s")
        if self.error is not None:
            raise self.error
        return self.report


# -- reading topics -----------------------------------------------------------------------


def end_offsets(bootstrap: str, topic: str) -> int:
    """Messages in `topic` (sum of its partitions' end offsets); 0 if it does not exist."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        return sum(consumer.end_offsets(tps).values()) if tps else 0
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Any]:
    """Every record of `topic`, from the start to the end offsets of now (or the timeout)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        end = consumer.end_offsets(tps)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                break
            for records in consumer.poll(timeout_ms=1000).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def stored_event_ids(bootstrap: str, topic: str, timeout: float = 60.0) -> Counter[str]:
    """event_id of every message in `topic`, read from the start to the end offsets."""
    want = end_offsets(bootstrap, topic)
    records = read_topic(bootstrap, topic, timeout)
    assert len(records) == want, f"read {len(records)} of the {want} messages in {topic}"
    return Counter(orjson.loads(record.value)["event_id"] for record in records)


# -- scraping several workers -------------------------------------------------------------


@dataclass(frozen=True)
class Scrape:
    """One worker's /metrics at one moment, reduced to what the checks need."""

    reachable: bool
    ready: bool
    partitions: int
    counts: Counter[Any] = field(default_factory=Counter)
    accepted: float = 0.0  # motcua_events_total, all types
    duplicates: float = 0.0  # motcua_events_duplicate_total, all sources
    rejected: Counter[str] = field(default_factory=Counter)  # by reason

    @classmethod
    def of(cls, worker: WorkerProcess) -> Scrape:
        samples: Samples = worker.metrics() if worker.alive() else {}
        if not samples:
            return cls(reachable=False, ready=False, partitions=0)
        ready = samples.get(("motcua_ready", ()), 0.0) == 1.0
        return cls(
            reachable=True,
            ready=ready,
            partitions=int(samples.get(("motcua_partitions_active", ()), 0.0)),
            counts=dossier_counts(samples) if ready else Counter(),
            accepted=sum(v for (n, _), v in samples.items() if n == "motcua_events_total"),
            duplicates=sum(
                v for (n, _), v in samples.items() if n == "motcua_events_duplicate_total"
            ),
            rejected=Counter(
                {
                    dict(labels)["reason"]: v
                    for (n, labels), v in samples.items()
                    if n == "motcua_events_rejected_total" and v
                }
            ),
        )


@dataclass(frozen=True)
class GroupScrape:
    """The live workers of one consumer group, scraped one after another."""

    scrapes: tuple[Scrape, ...]
    partitions: int

    @classmethod
    def of(cls, workers: Iterable[WorkerProcess], partitions: int) -> GroupScrape:
        return cls(tuple(Scrape.of(w) for w in workers if w.alive()), partitions)

    @property
    def settled(self) -> bool:
        """Every live worker ready, and the input partitions counted exactly once."""
        live = self.scrapes
        return (
            bool(live)
            and all(s.ready for s in live)
            and sum(s.partitions for s in live) == self.partitions
        )

    @property
    def active(self) -> list[int]:
        return [s.partitions for s in self.scrapes]

    def counts(self) -> Counter[Any]:
        out: Counter[Any] = Counter()
        for scrape in self.scrapes:
            if scrape.ready:
                out.update(scrape.counts)
        return out

    def accepted(self) -> float:
        return sum(s.accepted for s in self.scrapes if s.ready)

    def duplicates(self) -> float:
        return sum(s.duplicates for s in self.scrapes if s.ready)

    def rejected(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for scrape in self.scrapes:
            if scrape.ready:
                out.update(scrape.rejected)
        return out


def truth_check(
    workers: Iterable[WorkerProcess], events: list[dict[str, Any]], partitions: int
) -> tuple[GroupScrape, bool]:
    """Scrape the group between two computations of the truth.

    Open states move with the clock (due soon, overdue), so a scrape that straddles such an
    instant may match the truth before or after it: either is exact.
    """
    before = expected_counts(events)
    group = GroupScrape.of(workers, partitions)
    if not group.settled:
        return group, False
    got = group.counts()
    return group, got == before or got == expected_counts(events)


def wait_settled_exact(
    workers: list[WorkerProcess],
    events: list[dict[str, Any]],
    partitions: int = 8,
    timeout: float = 180.0,
) -> GroupScrape:
    """Wait until the group is settled and its summed counters equal the truth."""
    deadline = time.monotonic() + timeout
    group, exact = truth_check(workers, events, partitions)
    while not exact and time.monotonic() < deadline:
        time.sleep(0.5)
        group, exact = truth_check(workers, events, partitions)
    if not exact:
        raise AssertionError(describe_mismatch(group, events) + "\n" + diagnose(workers, events))
    return group


def group_offsets(worker: WorkerProcess) -> str:
    """'partition: committed/end' of the worker's input topic for its consumer group."""
    consumer = KafkaConsumer(
        bootstrap_servers=worker.bootstrap, group_id=worker.app_id, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(worker.topic, p) for p in range(worker.partitions)]
        end = consumer.end_offsets(tps)
        return " ".join(f"{tp.partition}:{consumer.committed(tp)}/{end[tp]}" for tp in tps)
    finally:
        consumer.close()


def lost_events(worker: WorkerProcess, events: list[dict[str, Any]]) -> list[str]:
    """Events sent but in no dossier of the table's changelog: 'event_id@partition/offset'."""
    stored: dict[bytes, bytes] = {}
    for record in read_topic(worker.bootstrap, f"{worker.app_id}-dossiers-changelog"):
        stored[record.key] = record.value
    kept = {
        event.event_id
        for key, value in stored.items()
        if value is not None
        for event in decode(key.decode(), value).events
    }
    sent = {e["event_id"] for e in events}
    where: dict[str, str] = {}
    for record in read_topic(worker.bootstrap, worker.topic):
        event_id = orjson.loads(record.value).get("event_id")
        where.setdefault(event_id, f"{record.partition}/{record.offset}")
    return sorted(f"{e}@{where.get(e)}" for e in sent - kept)


def diagnose(workers: list[WorkerProcess], events: list[dict[str, Any]] | None = None) -> str:
    """Offsets, lost events and each worker's warnings, for a failure message."""
    lines = [f"offsets (committed/end): {group_offsets(workers[0])}"]
    if events is not None:
        lost = lost_events(workers[0], events)
        lines.append(f"{len(lost)} events in no stored dossier: {lost[:20]}")
    for n, worker in enumerate(workers):
        notable = [
            line[:200]
            for line in worker.log_text().splitlines()
            if "WARNING" in line or "ERROR" in line or "Restarting" in line or "rebuilt" in line
        ]
        lines.append(f"worker {n} (alive={worker.alive()}): " + " | ".join(notable[-12:]))
    return "\n".join(lines)


@dataclass
class ScrapeLog:
    """Every scrape of a watch: how many were settled, and each settled one that was wrong."""

    scrapes: int = 0
    settled: int = 0
    wrong: list[str] = field(default_factory=list)
    overlapping: int = 0  # ready workers claiming more partitions than exist (racing scrapes)


def watch(
    workers: list[WorkerProcess],
    events: list[dict[str, Any]],
    seconds: float,
    partitions: int = 8,
    log: ScrapeLog | None = None,
    until: Any = None,
) -> ScrapeLog:
    """Scrape for `seconds` (or until `until()` is true): every settled scrape must be exact."""
    log = log or ScrapeLog()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        group, exact = truth_check(workers, events, partitions)
        log.scrapes += 1
        ready = [s.partitions for s in group.scrapes if s.ready]
        if sum(ready) > partitions:
            log.overlapping += 1
        if group.settled:
            log.settled += 1
            if not exact:
                log.wrong.append(describe_mismatch(group, events))
        if until is not None and until():
            break
        time.sleep(0.3)
    return log


def describe_mismatch(group: GroupScrape, events: list[dict[str, Any]]) -> str:
    got, want = group.counts(), expected_counts(events)
    extra = {k: v for k, v in (got - want).items()}
    missing = {k: v for k, v in (want - got).items()}
    return (
        f"settled={group.settled} partitions={group.active} "
        f"ready={[s.ready for s in group.scrapes]}; "
        f"over the truth: {dict(list(extra.items())[:6])}; "
        f"under the truth: {dict(list(missing.items())[:6])}"
    )


# -- a broker with TLS and SASL ------------------------------------------------------------

# SASL/PLAIN users of the secured broker: (username, password).
SASL_USER = ("motcua", "s3cret-for-tests")
_SASL_ADMIN = ("admin", "admin-secret-for-tests")


class SecuredBroker(LocalBroker):
    """A LocalBroker with an SSL listener and a SASL_SSL (PLAIN) listener beside PLAINTEXT.

    service/tools/broker.py offers the SSL listener; SASL is added here by extending its
    properties, so the service's broker stays as small as the demo needs.
    """

    def __init__(self, data_dir: Path) -> None:
        super().__init__(port=free_port(), data_dir=data_dir, ssl=SslListener(port=free_port()))
        self.sasl_port = free_port()
        while self.sasl_port in (self.port, self.controller_port, self.ssl_port):
            self.sasl_port = free_port()

    @property
    def ssl_port(self) -> int:
        assert self.ssl is not None
        return self.ssl.port

    @property
    def ssl_bootstrap(self) -> str:
        return f"{HOST}:{self.ssl_port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"{HOST}:{self.sasl_port}"

    @property
    def cafile(self) -> str:
        assert self.ssl is not None
        return str(self.ssl.cafile)

    def _ports(self) -> list[int]:
        return [*super()._ports(), self.sasl_port]

    def _properties(self) -> dict[str, str]:
        props = super()._properties()
        listener = f"SASL_SSL://{HOST}:{self.sasl_port}"
        props["listeners"] += "," + listener
        props["advertised.listeners"] += "," + listener
        props["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
        props["sasl.enabled.mechanisms"] = "PLAIN"
        users = " ".join(f'user_{name}="{secret}"' for name, secret in (_SASL_ADMIN, SASL_USER))
        props["listener.name.sasl_ssl.plain.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{_SASL_ADMIN[0]}" password="{_SASL_ADMIN[1]}" {users};'
        )
        return props
