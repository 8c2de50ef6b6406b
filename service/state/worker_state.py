"""The worker's dossier state: each batch of messages is one transaction (apply → commit).

A partition's store is always the fold of a prefix of the log (offsets 0..applied): a batch
is applied in offset order into a `Batch` (copies of the metas, a write buffer, the changes
to the closed dossiers' sums and day totals) and committed as one atomic write; only then
does anything the worker serves move. A message at or below the applied offset is already
in the store: skipped, never counted again, never sent to the dead-letter topic again.
Closed dossiers leave memory at the commit that closes them. The sums (`Ledger`) are
rebuilt from the store's open dossiers, closed sums and day totals when a partition is
installed, then kept up to date batch by batch. Which messages arrive, and when, is
`keeper.py`'s business.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas import InvalidEvent
from service.domain import Dossier, Key, WorkingCalendar, contribution
from service.domain.codec import (
    decode_closed_totals,
    decode_page_key,
    encode_closed_totals,
    encode_page_key,
)
from service.domain.history import (
    History,
    HistoryDelta,
    add_counts,
    closed_delta,
)
from service.domain.progress import Arrival, DossierProgress
from service.domain.report import DossierFacts
from service.domain.steps import history_marks as step_history_marks
from service.state.due_index import DueIndex
from service.state.intake import parse
from service.state.ledger import (
    Ledger,
    PartitionLedger,
    StatusChange,
    Touched,
    status_change,
)
from service.state.log_reader import Incoming
from service.state.store import (
    DossierStore,
    PartitionMeta,
    closed_key,
    closed_totals_key,
    day_key,
    open_key,
)

log = logging.getLogger(__name__)

SOURCE_HEADER = "motcua-source"
# Status messages are for what is happening now: an event that occurred, or was published,
# longer ago than this (a worker reading a backlog, a new deployment reading the center's
# history, a center system back-filling last year) changes the sums silently, so citizens
# are never told again about a dossier closed months ago. Changes made by the
# clock (due soon, overdue) are always current and always announced (agents/deadlines.py).
FRESH_FOR_S = 600.0
# Rebuilding a partition's sums yields the event loop this often (dossiers), so /metrics,
# /readyz and heartbeats keep answering while a million dossiers are read back.
REBUILD_SLICE = 20_000

Rejected = tuple[Incoming, InvalidEvent]


@dataclass
class Batch:
    """One transaction: what applying messages leaves to save, to send and to swap in.

    Nothing the worker serves is touched while a batch is built: `metas` are copies of the
    partitions' saved metas, `records` the write buffer, `dossiers` the touched dossiers'
    new states. `WorkerState.commit` writes the buffer and the metas atomically, and only
    then swaps the metas in and brings the sums up to date; a batch that fails before that
    is simply dropped, and the worker's state is the saved one.
    """

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    puts: dict[bytes, bytes] = field(default_factory=dict)
    deletes: list[bytes] = field(default_factory=list)
    metas: dict[int, PartitionMeta] = field(default_factory=dict)
    dossiers: dict[tuple[int, str], DossierProgress] = field(default_factory=dict)
    # Per partition, what the closed dossiers' summed contributions change by.
    closed: dict[int, Counter[Key]] = field(default_factory=dict)
    # Stored before this batch: open ones (their open record is replaced or deleted) and
    # closed ones with the contribution their closed state made (taken back if changed).
    stored_open: set[tuple[int, str]] = field(default_factory=set)
    closed_before: dict[tuple[int, str], tuple[Dossier, DossierFacts | None]] = field(
        default_factory=dict
    )
    # Per partition, the closed dossiers' per-day marks this batch adds and takes back.
    history: dict[int, HistoryDelta] = field(default_factory=dict)
    # The contribution each touched dossier has reached in this batch, for status changes.
    reached: dict[tuple[int, str], tuple[Key, ...]] = field(default_factory=dict)
    changes: list[StatusChange] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    applied: int = 0  # messages applied (not skipped)
    last_timestamp: float = 0.0
    live: bool = True

    @property
    def partitions(self) -> set[int]:
        return set(self.metas)


def source_of(headers: object) -> str:
    """The calling system a message came from (header motcua-source), else 'direct'."""
    if headers:
        for name, value in headers:  # type: ignore[attr-defined]
            if name == SOURCE_HEADER and value:
                return bytes(value)[:64].decode("utf-8", "replace")
    return "direct"


class WorkerState:
    """The store, the saved partition metas and the ledger, kept in step."""

    def __init__(self, store: DossierStore, ledger: Ledger, calendar: WorkingCalendar) -> None:
        self.store = store
        self.ledger = ledger
        self.calendar = calendar
        self._metas: dict[int, PartitionMeta] = {}
        self._closed: dict[int, Counter[Key]] = {}
        self._history: dict[int, History] = {}

    def meta(self, partition: int) -> PartitionMeta:
        """The partition's meta as saved in the store (never an unsaved count)."""
        meta = self._metas.get(partition)
        if meta is None:
            meta = self._metas[partition] = self.store.meta(partition)
        return meta

    def drop_caches(self) -> None:
        """Read every partition's meta, closed sums and day totals from the store again."""
        self._metas.clear()
        self._closed.clear()
        self._history.clear()

    def forget(self, partition: int) -> None:
        """Drop a partition's store: it will be read again from the log's beginning."""
        self.store.drop(partition)
        self._metas[partition] = PartitionMeta()
        self._closed[partition] = Counter()
        self._history[partition] = History()

    def reload(self, partition: int) -> PartitionMeta:
        """Read the partition's meta from the store again (after a failed attempt)."""
        self._metas.pop(partition, None)
        return self.meta(partition)

    def set_meta(self, partition: int, meta: PartitionMeta) -> None:
        """Save `meta` alone (a fresh start, offsets with no record), then swap it in."""
        self.store.write({}, (), {partition: meta})
        self._metas[partition] = meta
        counted = self.ledger.partitions.get(partition)
        if counted is not None:
            counted.meta = meta

    def advance(self, partition: int, offset: int) -> None:
        """The store covers `partition` up to `offset` even where the log has no record
        (offsets taken by transaction markers or compaction)."""
        saved = self.meta(partition)
        if offset > saved.applied:
            meta = saved.copy()
            meta.applied = offset
            self.set_meta(partition, meta)

    def apply(
        self,
        messages: list[Incoming],
        *,
        live: bool,
        dead_letters: bool | None = None,
        into: Batch | None = None,
    ) -> Batch:
        """Fold `messages` (in offset order per partition) into a new transaction, or on
        into the uncommitted one `into` (a catch-up saves every few chunks: a dossier whose
        events span chunks is then read and written once, not once a chunk).

        `live`: also compute status changes and dead letters, and bring the sums up to date
        at commit; a catch-up of history does none of that (its messages were handled when
        first read, and the sums are rebuilt from the store once it is caught up).
        `dead_letters` overrides whether rejected messages are collected for sending.
        """
        send_rejected = live if dead_letters is None else dead_letters
        batch = Batch(live=live) if into is None else into
        touched = batch.dossiers
        stored_open, closed_before, reached = (
            batch.stored_open,
            batch.closed_before,
            batch.reached,
        )
        calendar = self.calendar
        store = self.store
        wall = batch.now
        fresh_from = wall.timestamp() - FRESH_FOR_S
        # Per dossier with an event applied here: whether its last one is fresh news.
        fresh: dict[tuple[int, str], bool] = {}
        for message in messages:
            partition = message.partition
            meta = batch.metas.get(partition)
            if meta is None:
                meta = batch.metas[partition] = self.meta(partition).copy()
            if message.offset <= meta.applied:
                continue  # already in the store
            meta.applied = message.offset
            batch.applied += 1
            try:
                # The message's own timestamp, not the clock: re-reading the log in a year
                # must give the same verdicts (state is a function of the log).
                event = parse(
                    message.value, message.key, datetime.fromtimestamp(message.timestamp, UTC)
                )
                where = (partition, event.dossier_id)
                progress = touched.get(where)
                if progress is None:
                    raw = store.get(partition, event.dossier_id.encode())
                    if raw is None:
                        progress = touched[where] = DossierProgress.start(event.dossier_id)
                    else:
                        progress = touched[where] = DossierProgress.unpack(event.dossier_id, raw)
                        if progress.closed_by is None:
                            stored_open.add(where)
                        else:
                            closed_before[where] = (progress.dossier, progress.facts)
                            reached[where] = contribution(progress.dossier, wall, calendar)
                step = progress.add(event, calendar)  # the domain core: R6, R7
            except InvalidEvent as exc:
                meta.rejected[exc.reason.value] += 1
                if send_rejected:
                    batch.rejected.append((message, exc))
                continue
            if step is Arrival.DUPLICATE:
                meta.duplicates[source_of(message.headers)] += 1
                continue
            meta.events[event.type.value] += 1
            if live:
                fresh[where] = (
                    message.timestamp >= fresh_from and event.occurred_at.timestamp() >= fresh_from
                )
        for where, is_fresh in fresh.items():
            # Once a dossier a batch, from its state before the batch to its state after:
            # a notification system acts on where a dossier is now, not on the steps a
            # batch of a few milliseconds went through.
            change = self._change(where, touched[where].dossier, wall, reached)
            if change is not None and is_fresh:
                batch.changes.append(change)
        batch.last_timestamp = max(batch.last_timestamp, _last_timestamp(messages))
        return batch

    def _write_buffer(self, batch: Batch) -> None:
        """The touched dossiers' records in their range (open or closed), and what the closed
        dossiers' sums change by: a dossier that closed adds its contribution, one that
        was closed already takes its old one back first (a late event may change it)."""
        puts, deletes, closed = batch.puts, batch.deletes, batch.closed
        stored_open, closed_before = batch.stored_open, batch.closed_before
        calendar = self.calendar
        for where, progress in batch.dossiers.items():
            partition, dossier_id = where
            key = dossier_id.encode()
            if progress.closed_by is None:
                puts[open_key(partition, key)] = progress.pack()
                continue
            puts[closed_key(partition, key)] = progress.pack()
            if where in stored_open:
                deletes.append(open_key(partition, key))
            delta = closed.get(partition)
            if delta is None:
                delta = closed[partition] = Counter()
            marks = batch.history.get(partition)
            if marks is None:
                marks = batch.history[partition] = HistoryDelta()
            old_dossier, old_facts = closed_before.get(where, (None, None))
            add_counts(delta, closed_delta(old_dossier, progress.dossier, calendar))
            if old_facts is not None:
                marks.add(old_facts, -1)
            if old_dossier is not None:
                marks.add_instant_marks(step_history_marks(old_dossier.steps_done), -1)
            facts = progress.facts
            if facts is not None:
                marks.add(facts, 1)
                marks.add_instant_marks(step_history_marks(progress.dossier.steps_done), 1)

    def history(self, partition: int) -> History:
        """The closed dossiers' per-day totals, as saved."""
        history = self._history.get(partition)
        if history is None:
            pages = ((*decode_page_key(name), raw) for name, raw in self.store.days(partition))
            history = self._history[partition] = History.from_pages(pages)
        return history

    def closed_totals(self, partition: int) -> Counter[Key]:
        """The closed dossiers' summed contributions, as saved."""
        totals = self._closed.get(partition)
        if totals is None:
            raw = self.store.closed_totals(partition)
            totals = self._closed[partition] = (
                decode_closed_totals(raw) if raw is not None else Counter()
            )
        return totals

    def _change(
        self,
        where: tuple[int, str],
        dossier: Dossier,
        now: datetime,
        reached: dict[tuple[int, str], tuple[Key, ...]],
    ) -> StatusChange | None:
        """The status change the dossier made, judged against its state before (the sums
        themselves change only at commit); its new contribution is kept in `reached`."""
        partition = where[0]
        old = reached.get(where)
        if old is None:
            counted = self.ledger.partitions.get(partition)
            old = counted.contributions.get(dossier.dossier_id, ()) if counted else ()
        new = contribution(dossier, now, self.calendar)
        reached[where] = new
        if new == old:
            return None
        return status_change(dossier, old, new, now, self.calendar)

    def commit(self, batch: Batch) -> None:
        """Write the batch's records, metas and closed sums atomically (raises StoreError);
        only then swap them in and, for a live batch, bring the sums of the partitions this
        worker counts now up to date. A partition revoked meanwhile keeps its saved store (a
        valid prefix of the log) but gets no sums here."""
        self._write_buffer(batch)
        puts = batch.puts
        closed: dict[int, Counter[Key]] = {}
        for partition, delta in batch.closed.items():
            totals = self.closed_totals(partition).copy()
            add_counts(totals, delta)
            closed[partition] = totals
            puts[closed_totals_key(partition)] = encode_closed_totals(totals)
        deletes = batch.deletes
        for partition, marks in batch.history.items():
            for (agency, page), raw in self.history(partition).pages_after(marks).items():
                key = day_key(partition, encode_page_key(agency, page))
                if raw is not None:
                    puts[key] = raw
                else:
                    deletes.append(key)
        if puts or deletes or batch.metas:
            self.store.write(puts, deletes, batch.metas)
        # Saved: now, and only now, the saved state moves.
        self._metas.update(batch.metas)
        self._closed.update(closed)
        for partition, marks in batch.history.items():
            self.history(partition).apply(marks)
        ledger = self.ledger
        for partition, meta in batch.metas.items():
            counted = ledger.partitions.get(partition)
            if counted is not None:
                counted.meta = meta
                counted.closed = self.closed_totals(partition)
                counted.history = self.history(partition)
        if not batch.live:
            return
        owned = ledger.owned()
        by_partition: dict[int, list[Touched]] = {}
        reached = batch.reached
        for where, progress in batch.dossiers.items():
            if where[0] in owned:
                by_partition.setdefault(where[0], []).append(
                    (progress.dossier, progress.facts, reached.get(where))
                )
        for partition, dossiers in by_partition.items():
            ledger.partitions[partition].apply_batch(dossiers, batch.now)
        if batch.last_timestamp and owned & batch.partitions:
            ledger.last_event_timestamp = max(
                ledger.last_event_timestamp or 0.0, batch.last_timestamp
            )

    def stored(self, partition: int) -> Iterator[tuple[Dossier, DossierFacts | None]]:
        """Every open (or not yet received) dossier of `partition`, with its report facts:
        a restart never reads the closed ones."""
        for key, raw in self.store.open_dossiers(partition):
            progress = DossierProgress.unpack(key.decode(), raw)  # no replay
            yield progress.dossier, progress.facts

    async def rebuild(self, partition: int) -> PartitionLedger:
        """The partition's sums from its store, yielding the event loop now and then."""
        now = datetime.now(UTC)
        ledger = PartitionLedger(self.calendar, self.meta(partition))
        # Read again: the store is the truth.
        self._closed.pop(partition, None)
        self._history.pop(partition, None)
        ledger.closed = self.closed_totals(partition)
        ledger.history = self.history(partition)
        # A rebuild creates objects that all stay: the cyclic collector would scan them
        # again and again for nothing. Off while rebuilding, then frozen out of its sight.
        gc.disable()
        try:
            for count, (dossier, facts) in enumerate(self.stored(partition), 1):
                if facts is not None:
                    ledger.facts[dossier.dossier_id] = facts
                ledger.apply(dossier, now, notify=False, index=False)
                if count % REBUILD_SLICE == 0:
                    await asyncio.sleep(0)
            ledger.due_index = DueIndex.of(ledger.open.values())
        finally:
            gc.enable()
        gc.freeze()
        return ledger


def _last_timestamp(messages: Iterable[Incoming]) -> float:
    return max((m.timestamp for m in messages), default=0.0)
