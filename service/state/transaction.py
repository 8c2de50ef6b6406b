"""One batch of messages as a transaction: folded into copies and a write buffer, saved in one
atomic write, and only then swapped in (modelled on Quix Streams' `PartitionTransaction`).

A transaction is STARTED when made, takes messages with `apply` (in offset order per
partition), is PREPARED when its write buffer is built (the touched dossiers' records in
their range, the closed dossiers' sums, the day totals' pages) and COMMITTED once the store
wrote it; any failure leaves it FAILED and nothing the worker serves has moved. It reads its
own writes: a dossier touched earlier in the same transaction is taken from it, not from the
store; one saved by a recent transaction is taken out of the decoded cache (recent.py) and
goes back only if this one commits. The order of a commit (side effects acknowledged, then
the write, then the swap) is `LogApplier.save` (service/state/log_applier.py), written once.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol

from schemas import SOURCE_HEADER, EventType, InvalidEvent, Reason
from service.domain import Dossier, Key, WorkingCalendar, contribution
from service.domain.clock import epoch_seconds
from service.domain.codec import encode_closed_totals, encode_page_key
from service.domain.history import History, HistoryDelta, add_counts, closed_delta
from service.domain.progress import Arrival, DossierProgress
from service.domain.report import DossierFacts
from service.domain.steps import history_marks as step_history_marks
from service.state.intake import parse
from service.state.ledger import Ledger, StatusChange, Touched, status_change
from service.state.log_reader import Incoming
from service.state.recent import RecentDossiers
from service.state.store import (
    DossierStore,
    PartitionMeta,
    closed_key,
    closed_totals_key,
    day_key,
    open_key,
)

log = logging.getLogger(__name__)

# Status messages are for what is happening now: an event that occurred, or was published,
# longer ago than this (a worker reading a backlog, a new deployment reading the center's
# history, a center system back-filling last year) changes the sums silently, so citizens
# are never told again about a dossier closed months ago. Changes made by the
# clock (due soon, overdue) are always current and always announced (agents/deadlines.py).
FRESH_FOR_S = 600.0

Rejected = tuple[Incoming, InvalidEvent]
Where = tuple[int, str]  # (partition, dossier id)
Offset = tuple[int, int]  # (partition, offset)
# An Enum class attribute is a slower lookup than a module constant (every message).
_DUPLICATE = Arrival.DUPLICATE


def _set_aside(detail: str) -> InvalidEvent:
    return InvalidEvent(Reason.INTERNAL_ERROR, detail)


def _bad_kafka_timestamp(timestamp: float) -> InvalidEvent:
    return InvalidEvent(
        Reason.BAD_TIMESTAMP,
        f"the message's Kafka timestamp ({timestamp!r} s since the epoch) is not a date",
    )


def _fault(partition: int, offset: int, exc: Exception, *, once: bool = False) -> str:
    """The dead letter's detail for a message the worker's own code failed on, logged with
    its trace (a bug to fix, not the sender's mistake)."""
    log.error(
        "partition %d offset %d: the worker's code failed on this message %s",
        partition,
        offset,
        "once; the batch is read again"
        if once
        else "again; it is set aside as an internal_error dead letter and the partition goes on",
        exc_info=exc,
    )
    return (
        f"the worker's code failed on this event ({type(exc).__name__}: {str(exc)[:200]}); "
        "set aside so that its partition goes on. Not the sender's fault: report it"
    )


class SavedState(Protocol):
    """What a transaction is made over: the saved state (service/state/worker_state.py)."""

    store: DossierStore
    ledger: Ledger
    calendar: WorkingCalendar
    recent: RecentDossiers
    # Messages the worker's own code failed on once (transaction.MessagesFailed).
    suspects: dict[Offset, str]

    def meta(self, partition: int) -> PartitionMeta: ...
    def closed_totals(self, partition: int) -> Counter[Key]: ...
    def history(self, partition: int) -> History: ...
    def swap_in(self, transaction: Transaction) -> None: ...


class TransactionStatus(Enum):
    STARTED = "started"
    PREPARED = "prepared"
    COMMITTED = "committed"
    FAILED = "failed"


class TransactionError(RuntimeError):
    """A transaction used out of order (applied after it was prepared, committed twice)."""


class MessagesFailed(RuntimeError):
    """The worker's own code failed on messages of this transaction (a bug, or something
    passing). A failed rule may leave its dossier half-changed, so the transaction fails.
    The messages are noted in the state's `suspects`; the next attempt tries them again, and
    one that fails again is set aside, rejected as an `internal_error` dead letter: no
    single message stops a partition, and a passing failure loses nothing."""


# Names of re-sending systems a partition counts duplicates under (gateway sources and
# "direct" are a handful): past this, "other".
MAX_SOURCES = 32
OTHER_SOURCE = "other"


def source_of(headers: object) -> str:
    """The calling system a message came from (header motcua-source), else 'direct'."""
    if headers:
        for name, value in headers:  # type: ignore[attr-defined]
            if name == SOURCE_HEADER and value:
                return bytes(value)[:64].decode("utf-8", "replace")
    return "direct"


class Transaction:
    """What applying messages leaves to save, to send and to swap in.

    `live`: also compute status changes and dead letters, and bring the sums up to date at
    commit; a catch-up of history does none of that (its messages were handled when first
    read, and the sums are rebuilt from the store once it is caught up). `dead_letters`
    overrides whether rejected messages are collected for sending.
    """

    def __init__(self, state: SavedState, *, live: bool, dead_letters: bool | None = None) -> None:
        self.state = state
        self.live = live
        self.send_rejected = live if dead_letters is None else dead_letters
        self.status = TransactionStatus.STARTED
        self.now = datetime.now(UTC)
        # Copies of the partitions' saved metas, changed as messages are applied.
        self.metas: dict[int, PartitionMeta] = {}
        # The touched dossiers' new states: the transaction's own writes, read first.
        self.dossiers: dict[Where, DossierProgress] = {}
        # Stored before this transaction: open ones (their open record is replaced or
        # deleted) and closed ones with the contribution their closed state made (taken back
        # if changed).
        self.stored_open: set[Where] = set()
        self.closed_before: dict[Where, tuple[Dossier, DossierFacts | None]] = {}
        # The contribution each touched dossier has reached, for status changes.
        self.reached: dict[Where, tuple[Key, ...]] = {}
        self.changes: list[StatusChange] = []
        self.rejected: list[Rejected] = []
        self.applied = 0  # messages applied (not skipped)
        self.last_timestamp = 0.0
        # The write buffer, built by `prepare`.
        self.puts: dict[bytes, bytes] = {}
        self.deletes: list[bytes] = []
        self.closed: dict[int, Counter[Key]] = {}  # per partition, the closed sums after
        self.history: dict[int, HistoryDelta] = {}  # per partition, the day totals' change
        self._touched: dict[int, list[Touched]] | None = None  # by partition, once prepared

    @property
    def partitions(self) -> set[int]:
        return set(self.metas)

    def dossier(self, where: Where) -> DossierProgress:
        """The dossier as this transaction sees it: its own write, else the store's record
        (noted as stored open or closed), else a dossier not received yet."""
        progress = self.dossiers.get(where)
        if progress is not None:
            return progress
        progress = self.state.recent.take(where)
        if progress is None:
            partition, dossier_id = where
            raw = self.state.store.get(partition, dossier_id.encode())
            progress = (
                DossierProgress.start(dossier_id)
                if raw is None
                else DossierProgress.unpack(dossier_id, raw)
            )
            stored = raw is not None
        else:
            stored = True  # only saved dossiers are kept
        if stored:
            if progress.closed_by is None:
                self.stored_open.add(where)
            else:
                self.closed_before[where] = (progress.dossier, progress.facts)
                self.reached[where] = contribution(progress.dossier, self.now, self.state.calendar)
        self.dossiers[where] = progress
        return progress

    def apply(self, messages: list[Incoming]) -> None:
        """Fold `messages` (in offset order per partition) in. A message at or below its
        partition's applied offset is already in the store: skipped."""
        if self.status is not TransactionStatus.STARTED:
            raise TransactionError(f"apply to a {self.status.value} transaction")
        calendar = self.state.calendar
        fresh_from = self.now.timestamp() - FRESH_FOR_S
        dossiers = self.dossiers
        live = self.live
        # Per dossier with an event applied here: whether its last one is fresh news.
        fresh: dict[Where, bool] = {}
        # Events applied per type and partition, added to the metas' counts (by type name)
        # once at the end: an enum's `.value` per event costs more than the count.
        counted: dict[tuple[int, EventType], int] = {}
        stamp, at = None, None  # a batch's messages often share a millisecond: one datetime
        newest = self.last_timestamp
        metas = self.metas
        suspects = self.state.suspects
        faulted: set[Where] = set()  # dossiers a failed rule may have left half-changed
        failed = 0
        applied = 0
        try:
            for message in messages:
                # One unpacking instead of a field lookup by name for each use.
                partition, offset, key, value, timestamp, headers = message
                meta = metas.get(partition)
                if meta is None:
                    meta = metas[partition] = self.state.meta(partition).copy()
                if offset <= meta.applied:
                    continue  # already in the store
                meta.applied = offset
                applied += 1
                if timestamp != stamp:
                    try:
                        at = datetime.fromtimestamp(timestamp, UTC)
                    except (ValueError, OverflowError, OSError):
                        # Beyond what a datetime holds (a producer that set microseconds):
                        # the message is rejected, the partition goes on.
                        self._reject(meta, message, _bad_kafka_timestamp(timestamp))
                        stamp = None
                        continue
                    stamp = timestamp
                if timestamp > newest:
                    newest = timestamp
                suspect = suspects.get((partition, offset)) if suspects else None
                try:
                    # The message's own timestamp, not the clock: re-reading the log in a
                    # year must give the same verdicts (state is a function of the log).
                    event = parse(value, key, at)  # type: ignore[arg-type]
                except InvalidEvent as exc:
                    self._reject(meta, message, exc)
                    continue
                except Exception as exc:
                    if isinstance(exc, MemoryError):
                        raise
                    if suspect is None:  # once: read again (it may have been passing)
                        failed += 1
                        suspects[partition, offset] = _fault(partition, offset, exc, once=True)
                    else:
                        self._reject(meta, message, _set_aside(_fault(partition, offset, exc)))
                    continue
                where = (partition, event.dossier_id)
                progress = dossiers.get(where)
                if progress is None:
                    # Outside the guards below: a store that fails to read is the store's
                    # fault, never the message's.
                    progress = self.dossier(where)
                elif faulted and where in faulted:
                    continue  # left half-changed by a failure: the next attempt applies it
                # A suspect (failed once here) is tried again on a copy: a failed rule may
                # leave its dossier half-changed. Failing again, it is set aside.
                trial = (
                    progress
                    if suspect is None
                    else DossierProgress.unpack(progress.dossier_id, progress.pack())
                )
                try:
                    arrival = trial.add(event, calendar)  # the domain core: R6, R7
                except InvalidEvent as exc:
                    self._reject(meta, message, exc)
                    continue
                except Exception as exc:
                    if isinstance(exc, MemoryError):
                        raise
                    if suspect is None:
                        # The rule may have changed the dossier before it failed: this
                        # transaction cannot be saved. The batch's other dossiers go on, so
                        # that their own failures are found in the same pass.
                        failed += 1
                        faulted.add(where)
                        suspects[partition, offset] = _fault(partition, offset, exc, once=True)
                    else:
                        self._reject(meta, message, _set_aside(_fault(partition, offset, exc)))
                    continue
                if trial is not progress:
                    dossiers[where] = progress = trial
                if arrival is _DUPLICATE:
                    self._count_duplicate(meta, source_of(headers))
                    continue
                partition_type = (partition, event.type)
                counted[partition_type] = counted.get(partition_type, 0) + 1
                if live:
                    fresh[where] = (
                        timestamp >= fresh_from and epoch_seconds(event.occurred_at) >= fresh_from
                    )
        finally:
            self.applied += applied  # counted in a local: also if a message raised
        if failed:
            self.status = TransactionStatus.FAILED
            raise MessagesFailed(
                f"the worker's code failed on {failed} message(s); the batch is read again, "
                "and a message that fails again is set aside as an internal_error dead letter"
            )
        for (partition, kind), count in counted.items():
            self.metas[partition].events[kind.value] += count
        for where, is_fresh in fresh.items():
            # Once a dossier a batch, from its state before the batch to its state after:
            # a notification system acts on where a dossier is now, not on the steps a
            # batch of a few milliseconds went through.
            change = self._change(where, self.dossiers[where].dossier, is_fresh)
            if change is not None:
                self.changes.append(change)
        self.last_timestamp = newest

    @staticmethod
    def _count_duplicate(meta: PartitionMeta, source: str) -> None:
        """A duplicate, by the system that re-sent it. The header is anyone's to set on a
        direct producer: past MAX_SOURCES names a partition counts the rest as OTHER_SOURCE,
        so the metric's `source` label (and the meta) stays bounded."""
        duplicates = meta.duplicates
        if source not in duplicates and len(duplicates) >= MAX_SOURCES:
            source = OTHER_SOURCE
        duplicates[source] += 1

    def _reject(self, meta: PartitionMeta, message: Incoming, error: InvalidEvent) -> None:
        """A message that is not a valid event: counted by reason, and a dead letter."""
        meta.rejected[error.reason.value] += 1
        if self.send_rejected:
            self.rejected.append((message, error))

    def _change(self, where: Where, dossier: Dossier, tell: bool) -> StatusChange | None:
        """The status change the dossier made, judged against its state before (the sums
        themselves change only at commit), if `tell` (fresh news); its new contribution is
        kept in `reached` either way."""
        old = self.reached.get(where)
        if old is None:
            counted = self.state.ledger.partitions.get(where[0])
            old = counted.contributions.get(dossier.dossier_id, ()) if counted else ()
        new = contribution(dossier, self.now, self.state.calendar)
        self.reached[where] = new
        if not tell or new == old:
            return None
        return status_change(dossier, old, new, self.now, self.state.calendar)

    def prepare(self) -> None:
        """Build the write buffer: the touched dossiers' records in their range (open or
        closed), the closed dossiers' sums (a dossier that closed adds its contribution, one
        closed already takes its old one back first: a late event may change it) and the
        day totals' pages."""
        if self.status is TransactionStatus.PREPARED:
            return
        if self.status is not TransactionStatus.STARTED:
            raise TransactionError(f"prepare a {self.status.value} transaction")
        state, calendar = self.state, self.state.calendar
        puts, deletes = self.puts, self.deletes
        delta: dict[int, Counter[Key]] = {}
        for where, progress in self.dossiers.items():
            partition, dossier_id = where
            key = dossier_id.encode()
            if progress.closed_by is None:
                puts[open_key(partition, key)] = progress.pack()
                continue
            puts[closed_key(partition, key)] = progress.pack()
            if where in self.stored_open:
                deletes.append(open_key(partition, key))
            sums = delta.setdefault(partition, Counter())
            marks = self.history.setdefault(partition, HistoryDelta())
            old_dossier, old_facts = self.closed_before.get(where, (None, None))
            add_counts(sums, closed_delta(old_dossier, progress.dossier, calendar))
            if old_facts is not None:
                marks.add(old_facts, -1)
            if old_dossier is not None:
                marks.add_instant_marks(step_history_marks(old_dossier.steps_done), -1)
            facts = progress.facts
            if facts is not None:
                marks.add(facts, 1)
                marks.add_instant_marks(step_history_marks(progress.dossier.steps_done), 1)
        for partition, change in delta.items():
            totals = state.closed_totals(partition).copy()
            add_counts(totals, change)
            self.closed[partition] = totals
            puts[closed_totals_key(partition)] = encode_closed_totals(totals)
        for partition, marks in self.history.items():
            for (agency, page), raw in state.history(partition).pages_after(marks).items():
                key = day_key(partition, encode_page_key(agency, page))
                if raw is not None:
                    puts[key] = raw
                else:
                    deletes.append(key)
        self.status = TransactionStatus.PREPARED

    def commit(self) -> None:
        """Write the buffer and the metas in one atomic write (raises StoreError), then swap
        them in: only now does anything the worker serves move."""
        if self.status is TransactionStatus.STARTED:
            self.prepare()
        if self.status is not TransactionStatus.PREPARED:
            raise TransactionError(f"commit a {self.status.value} transaction")
        try:
            if self.puts or self.deletes or self.metas:
                self.state.store.write(self.puts, self.deletes, self.metas)
        except BaseException:
            self.status = TransactionStatus.FAILED
            raise
        self.state.swap_in(self)
        self.status = TransactionStatus.COMMITTED

    def fail(self) -> None:
        """Thrown away (a side effect not acknowledged, a revocation): nothing moved."""
        if self.status is not TransactionStatus.COMMITTED:
            self.status = TransactionStatus.FAILED

    def touched(self, partition: int) -> list[Touched]:
        """The committed dossiers of `partition` in their new states, for the sums."""
        if self.status not in (TransactionStatus.PREPARED, TransactionStatus.COMMITTED):
            # Only then are the dossiers final (apply refuses a prepared transaction).
            raise TransactionError(f"touched of a {self.status.value} transaction")
        grouped = self._touched
        if grouped is None:
            # Grouped once for all partitions: asked once per partition, a batch of many
            # partitions would otherwise scan every dossier as many times.
            grouped = self._touched = {}
            reached = self.reached
            for where, progress in self.dossiers.items():
                found = grouped.get(where[0])
                if found is None:
                    found = grouped[where[0]] = []
                found.append((progress.dossier, progress.facts, reached.get(where)))
        return grouped.get(partition, [])
