"""What the reliability tests share: scenarios, bad messages to interleave, streams that keep
publishing in the background, and scrapes of several workers that are summed only when the
group has settled.

A worker mid-rebalance reports `motcua_ready 0` and omits its counters (by design); a settled
group is every live worker ready with the input partitions counted exactly once
(`motcua_partitions_active` adds up to the topic's partitions). Only then must the sum of the
workers' /metrics equal the truth: the domain core's answer for the dossier families, and for
the operational counters the messages themselves (events by type, duplicates, rejections by
reason), all exact.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from harness import WorkerProcess, dossier_counts, expected_counts, produce
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from rocksdict import AccessType, Options, Rdict

from service.domain.progress import DossierProgress
from service.ingest.publisher import DossierPublisher, PublishReport
from service.state.store import DOSSIER_PREFIXES, META_PREFIX
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


# -- bad messages ---------------------------------------------------------------------------

Message = tuple[bytes | None, bytes | None]
BAD_KEY = b"BAD-"  # every bad message's key starts so: found again in the log by its key
_WHEN = '"occurred_at": "2026-01-05T09:00:00+07:00"'


def bad_message(n: int) -> tuple[bytes, bytes, str]:
    """The n-th bad message (key, value, reason the contract gives): six kinds in turn, each
    with its own key, so copies spread over partitions."""
    key = BAD_KEY + str(n).encode()
    dossier = key.decode()
    kinds = [
        (b"\xff\xfe not utf-8", "not_utf8"),
        (b'{"event_id": "e", "dossier_id"', "not_json"),
        (b"[1, 2, 3]", "not_object"),
        (
            f'{{"event_id": "b{n}", "dossier_id": "{dossier}", "type": "teleported", {_WHEN}}}',
            "unknown_type",
        ),
        (
            f'{{"event_id": "b{n}", "dossier_id": "{dossier}", "type": "approved", '
            '"occurred_at": "2026-01-05T09:00:00"}',
            "naive_timestamp",
        ),
        (
            f'{{"event_id": "b{n}", "dossier_id": "BAD-OTHER", "type": "approved", {_WHEN}}}',
            "key_mismatch",
        ),
    ]
    value, reason = kinds[n % len(kinds)]
    return key, value.encode() if isinstance(value, str) else value, reason


def with_bad_messages(
    messages: list[Message], count: int, seed: int, first: int = 0
) -> tuple[list[Message], Counter[str]]:
    """`messages` with bad messages number `first`.. `first + count - 1` inserted at random
    places; the rejections they must give, by reason."""
    out = list(messages)
    rng = random.Random(seed)
    reasons: Counter[str] = Counter()
    for n in range(first, first + count):
        key, value, reason = bad_message(n)
        out.insert(rng.randrange(len(out) + 1), (key, value))
        reasons[reason] += 1
    return out, reasons


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


def dead_letter_copies(bootstrap: str, topic: str) -> Counter[str]:
    """Copies in `<topic>-dlq` of each input offset ('topic/partition/offset', the
    motcua-offset header)."""
    return Counter(
        dict(record.headers).get("motcua-offset", b"?").decode()
        for record in read_topic(bootstrap, f"{topic}-dlq")
    )


def bad_offsets(bootstrap: str, topic: str) -> set[str]:
    """Where the bad messages (keys starting BAD-) landed in `topic`: 'topic/partition/offset'."""
    return {
        f"{topic}/{record.partition}/{record.offset}"
        for record in read_topic(bootstrap, topic)
        if (record.key or b"").startswith(BAD_KEY)
    }


def check_dead_letters(bootstrap: str, topic: str, rejected: Counter[str]) -> Counter[str]:
    """Assert that every bad offset is in the DLQ (at least once) and nothing else is; the
    copies beyond the first of each offset (for the test's report)."""
    copies = dead_letter_copies(bootstrap, topic)
    bad = bad_offsets(bootstrap, topic)
    assert len(bad) == sum(rejected.values()), f"{len(bad)} bad messages in the log"
    assert set(copies) == bad, (
        f"DLQ: missing {sorted(bad - set(copies))[:10]}, unexpected "
        f"{sorted(set(copies) - bad)[:10]}"
    )
    return Counter({where: n - 1 for where, n in copies.items() if n > 1})


# -- the truth ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Truth:
    """What a group must report for what was sent: `events`, every valid event as sent
    (re-sent ones included, in any order), and `rejected`, the bad messages by reason (None:
    the operational counters are not checked)."""

    events: list[dict[str, Any]]
    rejected: Counter[str] | None = None

    def counts(self) -> Counter[Any]:
        return expected_counts(self.events)

    def by_type(self) -> Counter[str]:
        first: dict[tuple[str, str], str] = {}
        for event in self.events:
            first.setdefault((event["dossier_id"], event["event_id"]), event["type"])
        return Counter(first.values())

    def duplicates(self) -> int:
        """An event_id its dossier already held, from another offset: every copy after the
        first (each message of a stream has an offset of its own)."""
        return len(self.events) - len({(e["dossier_id"], e["event_id"]) for e in self.events})


def distinct(events: list[dict[str, Any]]) -> int:
    return len({(e["dossier_id"], e["event_id"]) for e in events})


# -- scraping several workers -------------------------------------------------------------


def _by_label(samples: Samples, name: str, label: str) -> Counter[str]:
    return Counter(
        {dict(labels)[label]: v for (n, labels), v in samples.items() if n == name and v}
    )


@dataclass(frozen=True)
class Scrape:
    """One worker's /metrics at one moment, reduced to what the checks need."""

    reachable: bool
    ready: bool
    partitions: int
    counts: Counter[Any] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)  # motcua_events_total
    duplicates: Counter[str] = field(default_factory=Counter)  # by source
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
            by_type=_by_label(samples, "motcua_events_total", "type"),
            duplicates=_by_label(samples, "motcua_events_duplicate_total", "source"),
            rejected=_by_label(samples, "motcua_events_rejected_total", "reason"),
        )


@dataclass(frozen=True)
class GroupScrape:
    """The live workers of one consumer group, scraped one after another; sums are over
    the ready ones."""

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

    def _sum(self, part: str) -> Counter[Any]:
        out: Counter[Any] = Counter()
        for scrape in self.scrapes:
            if scrape.ready:
                out.update(getattr(scrape, part))
        return out

    def counts(self) -> Counter[Any]:
        return self._sum("counts")

    def by_type(self) -> Counter[str]:
        return self._sum("by_type")

    def accepted(self) -> float:
        return sum(self.by_type().values())

    def duplicates_by_source(self) -> Counter[str]:
        return self._sum("duplicates")

    def duplicates(self) -> float:
        return sum(self.duplicates_by_source().values())

    def rejected(self) -> Counter[str]:
        return self._sum("rejected")

    def operational_errors(self, truth: Truth) -> list[str]:
        """How the operational counters differ from the truth ([] when exact)."""
        if truth.rejected is None:
            return []
        errors = []
        want_dup = Counter({"direct": truth.duplicates()})
        checks = [
            ("events by type", self.by_type(), truth.by_type()),
            ("duplicates by source", self.duplicates_by_source(), want_dup),
            ("rejected by reason", self.rejected(), truth.rejected),
        ]
        for name, got, want in checks:
            if +got != +want:
                errors.append(f"{name}: got {dict(+got)}, want {dict(+want)}")
        return errors


def truth_check(
    workers: Iterable[WorkerProcess], truth: Truth, partitions: int
) -> tuple[GroupScrape, bool]:
    """Scrape the group between two computations of the truth.

    Open states move with the clock (due soon, overdue), so a scrape that straddles such an
    instant may match the truth before or after it: either is exact.
    """
    before = truth.counts()
    group = GroupScrape.of(workers, partitions)
    if not group.settled:
        return group, False
    got = group.counts()
    # The truth again only when needed: the domain core folds every dossier each time.
    exact = got == before or got == truth.counts()
    return group, exact and not group.operational_errors(truth)


def wait_settled_exact(
    workers: list[WorkerProcess],
    events: list[dict[str, Any]],
    partitions: int = 8,
    timeout: float = 180.0,
    rejected: Counter[str] | None = None,
) -> GroupScrape:
    """Wait until the group is settled and its summed counters equal the truth: the dossier
    families always; with `rejected` (bad messages by reason, Counter() for none) also
    events by type, duplicates and rejections, exactly."""
    truth = Truth(events, rejected)
    deadline = time.monotonic() + timeout
    group, exact = truth_check(workers, truth, partitions)
    while not exact and time.monotonic() < deadline:
        time.sleep(0.5)
        group, exact = truth_check(workers, truth, partitions)
    if not exact:
        raise AssertionError(describe_mismatch(group, truth) + "\n" + diagnose(workers, events))
    return group


def publish_counted_history(
    worker: WorkerProcess, dossiers: int, seed: int, bad: int = 6, partitions: int = 8
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Publish simulated traffic with `bad` bad messages interleaved; wait until it is
    counted exactly. The events and the rejections by reason."""
    events = scenario(dossiers, seed=seed)
    messages, rejected = with_bad_messages([as_message(e) for e in events], bad, seed)
    produce(worker.bootstrap, worker.topic, messages)
    wait_settled_exact([worker], events, partitions, timeout=300, rejected=rejected)
    return events, rejected


def committed_offsets(worker: WorkerProcess) -> dict[int, int | None]:
    """The group's committed offset of each input partition (None where none)."""
    consumer = KafkaConsumer(
        bootstrap_servers=worker.bootstrap, group_id=worker.app_id, enable_auto_commit=False
    )
    try:
        return {
            p: consumer.committed(TopicPartition(worker.topic, p)) for p in range(worker.partitions)
        }
    finally:
        consumer.close()


def wait_committed_to_the_end(worker: WorkerProcess, timeout: float = 60.0) -> None:
    """Until the group has committed every input partition to its end offset."""
    consumer = KafkaConsumer(bootstrap_servers=worker.bootstrap)
    try:
        tps = [TopicPartition(worker.topic, p) for p in range(worker.partitions)]
        ends = {tp.partition: o for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()
    deadline = time.monotonic() + timeout
    found = committed_offsets(worker)
    while any((found[p] or 0) < ends[p] for p in ends) and time.monotonic() < deadline:
        time.sleep(0.5)
        found = committed_offsets(worker)
    assert all((found[p] or 0) >= ends[p] for p in ends), f"committed {found}, ends {ends}"


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


# -- the local stores, read beside the workers ----------------------------------------------


@dataclass
class StoredPartition:
    """One partition of a worker's local store: how far it goes and what it holds."""

    applied: int = -1
    meta: dict[str, Any] = field(default_factory=dict)
    event_ids: set[tuple[str, str]] = field(default_factory=set)
    unreadable: dict[str, str] = field(default_factory=dict)  # dossier id → why


def store_path(worker: WorkerProcess) -> Path:
    return worker.data_dir / "worker" / "dossiers"


def read_store(worker: WorkerProcess) -> dict[int, StoredPartition]:
    return read_store_at(store_path(worker))


def read_store_at(path: Path) -> dict[int, StoredPartition]:
    """A local store by partition, opened read-only (RocksDB readers take no lock, so the
    worker may be running), decoded as the worker decodes it (service/state/store.py keys,
    DossierProgress records). A record that does not decode is named, not fatal."""
    if not (path / "CURRENT").exists():
        return {}
    db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
    out: dict[int, StoredPartition] = {}
    try:
        for key, value in db.items():
            kind = key[:1]
            if kind not in (META_PREFIX, *DOSSIER_PREFIXES) or len(key) < 3:
                continue
            part = out.setdefault(int.from_bytes(key[1:3], "big"), StoredPartition())
            if kind == META_PREFIX:
                part.meta = orjson.loads(value)
                part.applied = part.meta["applied"]
                continue
            dossier = key[3:].decode(errors="replace")
            try:
                events = DossierProgress.unpack(dossier, value).events()
            except Exception as exc:  # the diagnosis names it instead of giving up
                part.unreadable[dossier] = f"{type(exc).__name__}: {str(exc)[:120]}"
                continue
            part.event_ids.update((dossier, e.event_id) for e in events)
    finally:
        db.close()
    return out


def describe_store(store: dict[int, StoredPartition]) -> str:
    """Per partition: applied offset, rejected, duplicates, and any dossier not readable."""
    parts = []
    for p, s in sorted(store.items()):
        text = (
            f"{p}:{s.applied},{sum(s.meta.get('rejected', {}).values())},"
            f"{sum(s.meta.get('duplicates', {}).values())}"
        )
        if s.unreadable:
            named = "; ".join(f"{d} ({why})" for d, why in sorted(s.unreadable.items())[:8])
            text += f" unreadable dossiers: {named}"
        parts.append(text)
    return " ".join(parts)


def holders(workers: list[WorkerProcess]) -> dict[int, int]:
    """partition → index of the live worker that counts it now (from /readyz)."""
    out: dict[int, int] = {}
    for n, worker in enumerate(workers):
        if not worker.alive():
            continue
        _, body = worker.get("/readyz")
        if body:
            for partition in orjson.loads(body).get("partitions") or ():
                out[partition] = n
    return out


def lost_events(workers: list[WorkerProcess]) -> list[str]:
    """Per partition, what the holder's store misses at or below its applied offset: events
    lost for good ('partition p (worker n, applied a): k lost, e.g. [event@offset]')."""
    stores = []
    for worker in workers:
        try:
            stores.append(read_store(worker))
        except Exception as exc:  # a diagnosis must not hide the failure it explains
            stores.append({})
            print(f"store of {store_path(worker)} unreadable: {exc}")
    held = holders(workers)
    log: dict[int, list[tuple[int, tuple[str, str]]]] = {}
    for record in read_topic(workers[0].bootstrap, workers[0].topic):
        if (record.key or b"").startswith(BAD_KEY):
            continue
        event = orjson.loads(record.value)
        log.setdefault(record.partition, []).append(
            (record.offset, (event["dossier_id"], event["event_id"]))
        )
    lines = []
    for partition, records in sorted(log.items()):
        owner = held.get(partition)
        if owner is None:  # nobody counts it: the most advanced store
            owner = max(
                range(len(stores)),
                key=lambda n: stores[n].get(partition, StoredPartition()).applied,
            )
        stored = stores[owner].get(partition, StoredPartition())
        lost = [
            f"{e[1]}@{o}"
            for o, e in records
            if o <= stored.applied and e not in stored.event_ids and e[0] not in stored.unreadable
        ]
        if stored.unreadable:
            lines.append(
                f"partition {partition} (worker {owner}): dossiers not readable in the store: "
                f"{sorted(stored.unreadable)[:8]}"
            )
        if lost:
            lines.append(
                f"partition {partition} (worker {owner}, applied {stored.applied}): "
                f"{len(lost)} lost, e.g. {lost[:8]}"
            )
    return lines


def diagnose(workers: list[WorkerProcess], events: list[dict[str, Any]] | None = None) -> str:
    """Offsets, stores, lost events and each worker's warnings, for a failure message."""
    lines = [f"offsets (committed/end): {group_offsets(workers[0])}"]
    for n, worker in enumerate(workers):
        try:
            store = read_store(worker)
        except Exception as exc:
            lines.append(f"worker {n} store unreadable: {exc}")
            continue
        lines.append(f"worker {n} store (applied, rejected, duplicates): {describe_store(store)}")
    if events is not None:
        lost = lost_events(workers)
        lines.append(f"lost (in no stored dossier, at or below applied): {lost or 'none'}")
    for n, worker in enumerate(workers):
        notable = [
            line[:240]
            for line in worker.log_text().splitlines()
            if any(w in line for w in ("WARNING", "ERROR", "CRITICAL", "Restarting", "assigned"))
        ]
        lines.append(f"worker {n} (alive={worker.alive()}): " + " | ".join(notable[-16:]))
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
    rejected: Counter[str] | None = None,
    settled: int = 0,
) -> ScrapeLog:
    """Scrape for `seconds`, and on until `settled` scrapes in all were settled (at most two
    minutes more: a scrape takes a domain-core fold of every dossier, slow on a busy
    machine), or until `until()` is true: every settled scrape must be exact (the
    operational counters too, given `rejected`)."""
    truth = Truth(events, rejected)
    log = log or ScrapeLog()
    started = time.monotonic()
    deadline, limit = started + seconds, started + seconds + 120

    def more() -> bool:
        now = time.monotonic()
        return now < deadline or (log.settled < settled and now < limit)

    while more():
        group, exact = truth_check(workers, truth, partitions)
        log.scrapes += 1
        ready = [s.partitions for s in group.scrapes if s.ready]
        if sum(ready) > partitions:
            log.overlapping += 1
        if group.settled:
            log.settled += 1
            if not exact:
                log.wrong.append(describe_mismatch(group, truth))
        if until is not None and until():
            break
        time.sleep(0.3)
    return log


def describe_mismatch(group: GroupScrape, truth: Truth) -> str:
    got, want = group.counts(), truth.counts()
    extra = {k: v for k, v in (got - want).items()}
    missing = {k: v for k, v in (want - got).items()}
    return (
        f"settled={group.settled} partitions={group.active} "
        f"ready={[s.ready for s in group.scrapes]}; "
        f"over the truth: {dict(list(extra.items())[:6])}; "
        f"under the truth: {dict(list(missing.items())[:6])}; "
        f"operational: {group.operational_errors(truth) or 'exact'}"
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
