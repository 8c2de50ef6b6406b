"""The worker's dossier state: the store, the saved metas, closed sums and day totals, and
the ledger of sums, kept in step by transactions (service/state/transaction.py).

A partition's store is always the fold of a prefix of the log (offsets 0..applied). What is
saved moves only when a transaction commits (`swap_in`); the sums (`Ledger`) are rebuilt
from the store's open dossiers, closed sums and day totals when a partition is installed,
then follow it transaction by transaction. Which messages arrive, and when, is `keeper.py`'s
business.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from service.domain import Dossier, Key, WorkingCalendar
from service.domain.codec import decode_closed_totals, decode_page_key
from service.domain.history import History
from service.domain.progress import DossierProgress
from service.domain.report import DossierFacts
from service.state.due_index import DueIndex
from service.state.ledger import Ledger, PartitionLedger
from service.state.log_reader import Incoming
from service.state.recent import RecentDossiers
from service.state.store import DossierStore, PartitionMeta
from service.state.transaction import Transaction

log = logging.getLogger(__name__)

# The cyclic collector's thresholds in a worker process (Python's defaults: 700, 10, 10).
# A batch makes tens of thousands of short-lived objects that reference counting frees, and
# the sums hold long-lived ones the collector would scan again and again: young collections
# a fourteenth as often and full ones a twentieth as often (docs/benchmarks.md has the cost).
COLLECTOR_THRESHOLDS = (10_000, 20, 100)

# Rebuilding a partition's sums yields the event loop this often (dossiers), so /metrics,
# /readyz and heartbeats keep answering while a million dossiers are read back.
REBUILD_SLICE = 20_000


def tune_collector() -> None:
    """Set the worker's collector thresholds (a process setting: called when a worker, or a
    bench timing the worker's code, starts; never at import)."""
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


class WorkerState:
    """The store, the saved partition metas and the ledger, kept in step."""

    def __init__(
        self,
        store: DossierStore,
        ledger: Ledger,
        calendar: WorkingCalendar,
        recent: RecentDossiers | None = None,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.calendar = calendar
        # The last transactions' dossiers, decoded (a cache of the store's records).
        self.recent = RecentDossiers() if recent is None else recent
        # (partition, offset) of messages the worker's own code failed on once, with why:
        # tried again, set aside if they fail again (transaction.MessagesFailed).
        self.suspects: dict[tuple[int, int], str] = {}
        self._metas: dict[int, PartitionMeta] = {}
        self._closed: dict[int, Counter[Key]] = {}
        self._history: dict[int, History] = {}

    def meta(self, partition: int) -> PartitionMeta:
        """The partition's meta as saved in the store (never an unsaved count)."""
        meta = self._metas.get(partition)
        if meta is None:
            meta = self._metas[partition] = self.store.meta(partition)
        return meta

    def drop_caches(self, partition: int | None = None) -> None:
        """Read the partition's meta, closed sums, day totals and dossiers from the store
        again (every partition's without one)."""
        if partition is None:
            self._metas.clear()
            self._closed.clear()
            self._history.clear()
        else:
            self._metas.pop(partition, None)
            self._closed.pop(partition, None)
            self._history.pop(partition, None)
        self.recent.forget(partition)

    def forget(self, partition: int) -> None:
        """Drop a partition's store: it will be read again from the log's beginning."""
        self.store.drop(partition)
        self.recent.forget(partition)
        self._metas[partition] = PartitionMeta()
        self._closed[partition] = Counter()
        self._history[partition] = History()

    def take_records(self, partition: int, records: Iterable[tuple[bytes, bytes]]) -> None:
        """Write records of `partition` as a catch-up helper stored them (one write); what
        was kept decoded of the partition is dropped and read again."""
        self.store.put_records(partition, records)
        self.drop_caches(partition)

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

    def begin(self, *, live: bool, dead_letters: bool | None = None) -> Transaction:
        """A new transaction over this state (service/state/transaction.py)."""
        return Transaction(self, live=live, dead_letters=dead_letters)

    def apply(
        self,
        messages: list[Incoming],
        *,
        live: bool,
        dead_letters: bool | None = None,
        into: Transaction | None = None,
    ) -> Transaction:
        """Fold `messages` into a new transaction, or on into the uncommitted one `into` (a
        catch-up saves every few chunks: a dossier whose events span chunks is then read and
        written once, not once a chunk)."""
        transaction = self.begin(live=live, dead_letters=dead_letters) if into is None else into
        transaction.apply(messages)
        return transaction

    def commit(self, transaction: Transaction) -> None:
        """Save `transaction` (raises StoreError) and swap it in."""
        transaction.commit()

    def swap_in(self, transaction: Transaction) -> None:
        """A saved transaction: its metas, closed sums and day totals become the saved ones,
        and the ledger takes it (for a live one, the sums of the partitions it counts now)."""
        self._metas.update(transaction.metas)
        self._closed.update(transaction.closed)
        if self.suspects:
            metas = transaction.metas
            for where in [w for w in self.suspects if w[0] in metas]:
                if where[1] <= metas[where[0]].applied:
                    del self.suspects[where]  # saved: never read again here
        self.recent.keep(transaction.dossiers.items())
        for partition, marks in transaction.history.items():
            self.history(partition).add_delta(marks)
        for partition, meta in transaction.metas.items():
            self.ledger.commit(
                partition,
                meta,
                self.closed_totals(partition),
                self.history(partition),
                transaction.touched(partition) if transaction.live else None,
                transaction.now,
                transaction.last_timestamp,
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
                ledger.count(dossier, now, notify=False, index=False)
                if count % REBUILD_SLICE == 0:
                    await asyncio.sleep(0)
            ledger.due_index = DueIndex.of(ledger.open.values())
        finally:
            gc.enable()
        gc.freeze()
        return ledger
