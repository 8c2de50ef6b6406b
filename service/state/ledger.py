"""Live counters per partition, kept as the sum of each dossier's contribution.

The log is the truth and the local store its fold; this ledger is a cache of sums over the
store that a worker rebuilds for any partition it is assigned. Applying a dossier replaces
its old contribution with the new one, so redelivered and duplicate events never double
count. A due-time heap re-evaluates running dossiers exactly when their state can change
with no event (due soon, overdue), so the timer never scans all dossiers. No Faust or Kafka here.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from service.domain import Dossier, Key, WorkingCalendar, contribution, next_change_at
from service.domain.clock import OpenState
from service.domain.dossier import open_state
from service.domain.history import INDEX_PREFIX, History, history_report, keys_between
from service.domain.index import IndexFigures, index_of_keys
from service.domain.report import DossierFacts, PeriodFigures, period_bounds
from service.domain.steps import HISTORY_PREFIX as STEP_PREFIX
from service.domain.steps import step_marks, step_outcomes, step_outcomes_of_totals
from service.state.due_index import DueIndex
from service.state.store import PartitionMeta

log = logging.getLogger(__name__)

# A partition's table of shared contributions is emptied when it holds more than this
# beyond twice its open dossiers: copies no dossier holds any more (the contributions of
# states left behind) are dropped, and the table's memory is bounded by what the partition
# holds. Interning only saves memory: `count` compares contributions with `!=`.
INTERN_SLACK = 4096

# What a notification system acts on (topic dossier-status): a dossier turning due soon or
# overdue, its result ready, or it being closed. A new receipt (in time) or a supplement
# pause is the center system's own news; sending them made three quarters of all events
# produce a status message.
NOTIFIED = frozenset({"due_soon", "overdue", "ready", "closed", "withdrawn"})


# A committed dossier: its state, its report facts, its contribution at the batch's instant
# when already computed (else None).
Touched = tuple[Dossier, "DossierFacts | None", "tuple[Key, ...] | None"]


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A change a notification system cares about (topic dossier-status)."""

    dossier_id: str
    agency: str
    status: str  # in_time | due_soon | overdue | paused | ready | closed | withdrawn
    at: datetime
    due: datetime | None


@dataclass
class PartitionLedger:
    """Sums for one input partition, and its operational counters (`meta`, kept with the
    partition's store so they survive crashes)."""

    calendar: WorkingCalendar
    meta: PartitionMeta = field(default_factory=PartitionMeta)
    # Open dossiers' contributions and their sum; closed dossiers' sum in `closed` (set by
    # the state layer from the store, where it is saved with every batch).
    contributions: dict[str, tuple[Key, ...]] = field(default_factory=dict)
    totals: Counter[Key] = field(default_factory=Counter)
    closed: Counter[Key] = field(default_factory=Counter)
    # Closed dossiers' per-day totals for period reports (saved with the store, set by the
    # state layer), and the few closed dossiers whose end is still ahead of the clock (an
    # event may be stamped up to 5 minutes ahead): a report judged before their end must
    # see them in progress, so they are taken back out of `history` until then.
    history: History = field(default_factory=History)
    closing: dict[str, DossierFacts] = field(default_factory=dict)
    # Running dossiers (clock ticking) and when each can next change state by itself.
    running: dict[str, Dossier] = field(default_factory=dict)
    # Every open dossier (running, paused or ready), for the per-dossier queues.
    open: dict[str, Dossier] = field(default_factory=dict)
    due_index: DueIndex = field(default_factory=DueIndex)  # `open` in due order, for pages
    due_heap: list[tuple[float, str]] = field(default_factory=list)
    # Open dossiers' compact history for period reports (service/domain/report.py).
    facts: dict[str, DossierFacts] = field(default_factory=dict)
    # One shared copy of each contribution an open dossier reached (see INTERN_SLACK).
    interned: dict[tuple[Key, ...], tuple[Key, ...]] = field(default_factory=dict, repr=False)

    def count(
        self,
        dossier: Dossier,
        now: datetime,
        notify: bool = True,
        index: bool = True,
        new: tuple[Key, ...] | None = None,
    ) -> StatusChange | None:
        """Replace the dossier's contribution with the one its state gives at `now`; the
        status change, if any and if `notify` (a rebuild announces nothing). `index`: keep
        the due index up to date (a rebuild builds it at once at the end)."""
        dossier_id = dossier.dossier_id
        if new is None:  # else computed at `now` by the caller already
            new = contribution(dossier, now, self.calendar)
        contributions = self.contributions
        old = contributions.get(dossier_id, ())
        closed = dossier.closed_by is not None
        if closed:
            # Closed: it leaves memory. Its contribution is in `closed`, kept with the store.
            if old:
                _subtract(self.totals, old)
                del contributions[dossier_id]
            self.facts.pop(dossier_id, None)
        else:
            # Dossiers share a few thousand distinct contributions (agency × channel × state ×
            # procedure …): one copy of each instead of ~260 bytes per dossier.
            interned = self.interned
            shared = interned.get(new)
            if shared is None:
                if len(interned) > 2 * len(contributions) + INTERN_SLACK:
                    interned.clear()
                interned[new] = new
            else:
                new = shared
            if new is not old and new != old:  # both shared copies: equal is mostly same
                _subtract(self.totals, old)
                self.totals.update(new)
                if new:
                    contributions[dossier_id] = new
                else:
                    contributions.pop(dossier_id, None)
        if index:
            self.due_index.update(dossier, self.open.get(dossier_id))
        if dossier.is_open:
            self.open[dossier_id] = dossier
        else:
            self.open.pop(dossier_id, None)
        if dossier.is_running:
            self.running[dossier_id] = dossier
            when = next_change_at(dossier, now, self.calendar)
            if when is not None:
                heapq.heappush(self.due_heap, (when.timestamp(), dossier_id))
        else:
            self.running.pop(dossier_id, None)
        if notify and new != old:  # the same contribution: the same state, nothing to tell
            return status_change(dossier, old, new, now, self.calendar)
        return None

    def apply_batch(self, dossiers: Iterable[Touched], now: datetime) -> None:
        """A committed batch's dossiers, in their new states (status changes were told
        before the batch was saved)."""
        facts, closing, instant = self.facts, self.closing, now.timestamp()
        for dossier, dossier_facts, new in dossiers:
            if dossier_facts is not None:
                if dossier.closed_by is None:
                    facts[dossier.dossier_id] = dossier_facts
                elif _ended(dossier_facts) > instant:
                    closing[dossier.dossier_id] = dossier_facts
            self.count(dossier, now, notify=False, new=new)

    @classmethod
    def rebuilt(
        cls,
        calendar: WorkingCalendar,
        meta: PartitionMeta,
        dossiers: Iterable[tuple[Dossier, DossierFacts | None]],
        now: datetime,
    ) -> PartitionLedger:
        """The sums of a partition from all its dossiers, open and closed, in hand (tools and
        tests; a worker reads the closed sums from its store instead). Announces nothing."""
        ledger = cls(calendar, meta)
        facts = ledger.facts
        for dossier, dossier_facts in dossiers:
            if dossier.closed_by is not None:
                ledger.closed.update(contribution(dossier, now, calendar))
                continue
            if dossier_facts is not None:
                facts[dossier.dossier_id] = dossier_facts
            ledger.count(dossier, now, notify=False, index=False)
        ledger.due_index = DueIndex.of(ledger.open.values())
        return ledger

    def ahead(self, now: datetime) -> list[DossierFacts]:
        """The closed dossiers whose end is still ahead of `now` (forgetting the others)."""
        instant = now.timestamp()
        ahead = []
        for dossier_id, facts in list(self.closing.items()):
            if _ended(facts) > instant:
                ahead.append(facts)
            else:
                del self.closing[dossier_id]
        return ahead

    def closed_index_keys(
        self, start: date, end_inclusive: date, now: datetime
    ) -> Counter[tuple[str, str]]:
        """(agency, index mark key) of the closed dossiers in the period, from the day totals,
        those ahead of `now` taken out (they are judged with the open ones)."""
        counts = _strip(keys_between(self.history, INDEX_PREFIX, start, end_inclusive))
        ahead = self.ahead(now)
        if ahead:
            pending = _history_of(ahead)
            counts.subtract(_strip(keys_between(pending, INDEX_PREFIX, start, end_inclusive)))
        return counts

    def closed_report(
        self, start: date, end_inclusive: date, agency: str | None, now: datetime
    ) -> tuple[dict[str, PeriodFigures], list[DossierFacts]]:
        """The closed dossiers' period figures from the day totals, and the facts of those
        whose end is still ahead of `now` (to be judged with the open ones instead)."""
        ahead = self.ahead(now)
        figures = history_report(self.history, (), start, end_inclusive, agency, now=now)
        if ahead:
            taken = history_report(_history_of(ahead), (), start, end_inclusive, agency, now=now)
            for code, part in taken.items():
                figures[code].subtract(part)
        return figures, ahead

    def tick(self, now: datetime) -> list[StatusChange]:
        """Re-evaluate the running dossiers whose state may have changed by `now`."""
        changes: list[StatusChange] = []
        limit = now.timestamp()
        while self.due_heap and self.due_heap[0][0] <= limit:
            _, dossier_id = heapq.heappop(self.due_heap)
            dossier = self.running.get(dossier_id)
            if dossier is None:
                continue  # closed, paused or ended since it was scheduled
            change = self.count(dossier, now)
            if change is not None:
                changes.append(change)
        if len(self.due_heap) > 2 * len(self.running) + 1024:
            self._compact(now)
        return changes

    def _compact(self, now: datetime) -> None:
        # Superseded entries pile up as dossiers change; rebuild from the running set.
        heap = []
        for dossier_id, dossier in self.running.items():
            when = next_change_at(dossier, now, self.calendar)
            if when is not None:
                heap.append((when.timestamp(), dossier_id))
        heapq.heapify(heap)
        self.due_heap = heap


def _subtract(totals: Counter[Key], keys: tuple[Key, ...]) -> None:
    """`totals.subtract(keys)` (zeros kept, as there), without Counter.subtract's checks
    of its argument's type: called for every changed dossier."""
    get = totals.get
    for key in keys:
        totals[key] = get(key, 0) - 1


def _history_of(facts: Iterable[DossierFacts]) -> History:
    """The day totals of these closed dossiers alone (to take them back out of a report)."""
    history = History()
    for item in facts:
        history.add(item)
    return history


def _strip(counts: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """Index keys of the day totals as the index names them (without INDEX_PREFIX)."""
    size = len(INDEX_PREFIX)
    return Counter({(agency, key[size:]): n for (agency, key), n in counts.items()})


def _ended(facts: DossierFacts) -> float:
    end = facts.clock_end if facts.clock_end is not None else facts.withdrawn_at
    return end if end is not None else float("inf")


def status_change(
    dossier: Dossier,
    old: tuple[Key, ...],
    new: tuple[Key, ...],
    now: datetime,
    calendar: WorkingCalendar,
) -> StatusChange | None:
    """What a move from contribution `old` to `new` tells notification systems, if anything."""
    if not new:
        return None
    old_state = next((k[2] for k in old if k[0] == "open"), None)
    new_state = next((k[2] for k in new if k[0] == "open"), None)
    if old_state == new_state:
        return None
    if new_state is None:
        status = "withdrawn" if dossier.withdrawn else "closed"
        at = dossier.closed_at or now
    else:
        status = new_state
        if status not in NOTIFIED:
            return None
        at = now
        state = open_state(dossier, now, calendar)
        if state is OpenState.OVERDUE and dossier.due is not None:
            at = dossier.due
    return StatusChange(dossier.dossier_id, dossier.agency or "", status, at, dossier.due)


# Every day a period report can name (`keys_between` over all of them: all-time totals).
ALL_DAYS = (date(2000, 1, 1), date(2099, 12, 31))


@dataclass(frozen=True)
class ClosedIndex:
    """The closed dossiers' national-index counts: per named period and agency, and every
    mark ever (agency, key), for `index_metrics.scan_index` beside the open dossiers'."""

    by_period: dict[str, dict[str, IndexFigures]]
    marks: Counter[tuple[str, str]]


def add_figures(into: dict[str, PeriodFigures], more: dict[str, PeriodFigures]) -> None:
    """Sum per-agency figures into `into`; agencies with nothing in the period are left out."""
    for code, figures in more.items():
        if figures.carried_over + figures.new == 0:
            continue
        found = into.get(code)
        if found is None:
            into[code] = PeriodFigures().add(figures)
        else:
            found.add(figures)


@dataclass
class Ledger:
    """All partitions this worker holds. Partitions come and go with rebalances.

    A partition is counted once its sums are installed; until then it is `waiting`, with the
    reason. The worker is ready when every assigned partition is counted: exact or absent.
    """

    calendar: WorkingCalendar
    partitions: dict[int, PartitionLedger] = field(default_factory=dict)
    assignment: frozenset[int] | None = None  # None until the first assignment
    waiting: dict[int, str] = field(default_factory=dict)
    last_event_timestamp: float | None = None
    # Readiness is checked against the broker, not remembered: with a maximum age set (the
    # worker sets it), the last broker check that passed (time.monotonic()) must be younger.
    check_max_age: float | None = None
    checked_at: float | None = None

    @property
    def ready(self) -> bool:
        return self.assignment is not None and not self.waiting and self.unchecked() is None

    def unchecked(self, now: float | None = None) -> str | None:
        """Why nothing is exact now for lack of a recent broker check, else None."""
        if self.check_max_age is None:
            return None
        if self.checked_at is None:
            return "not checked against the broker yet"
        age = (time.monotonic() if now is None else now) - self.checked_at
        if age <= self.check_max_age:
            return None
        return (
            f"last checked against the broker {age:.0f} s ago (a stall, or the broker "
            "unreachable): checking again"
        )

    def counted(self, partition: int) -> bool:
        """Whether `partition` is assigned and exact now (what /metrics calls ready)."""
        return (
            self.assignment is not None
            and partition in self.assignment
            and partition not in self.waiting
            and self.unchecked() is None
        )

    def assign(self, partitions: Iterable[int]) -> None:
        """A new assignment: sums of partitions no longer held are dropped (no stale series);
        partitions without sums wait until installed."""
        self.assignment = frozenset(partitions)
        self.keep_only(self.assignment)
        self.waiting = {
            p: "catching up from the log" for p in self.assignment if p not in self.partitions
        }

    def revoke(self) -> None:
        """A rebalance started: nothing is exact until the next assignment is counted."""
        self.assignment = None

    def wait(self, partition: int, reason: str) -> None:
        """`partition` is not counted, for `reason` (its sums are dropped)."""
        self.partitions.pop(partition, None)
        self.waiting[partition] = reason

    def hold(self, partition: int, reason: str) -> None:
        """`partition` is not exact for now, for `reason`, but its sums stay in step with
        the store (a batch being read again): nothing is served until `release`."""
        self.waiting[partition] = reason

    def release(self, partition: int) -> None:
        """A held partition is exact again."""
        if partition in self.partitions:
            self.waiting.pop(partition, None)

    def commit(
        self,
        partition: int,
        meta: PartitionMeta,
        closed: Counter[Key],
        history: History,
        dossiers: list[Touched] | None,
        now: datetime,
        last_timestamp: float = 0.0,
    ) -> None:
        """A saved transaction's part of `partition`: its meta, closed sums and day totals as
        saved, and (`dossiers`, a live transaction's) the open sums, for a partition this
        worker counts now. The one way the sums follow the store."""
        counted = self.partitions.get(partition)
        if counted is None:
            return
        counted.meta = meta
        counted.closed = closed
        counted.history = history
        if dossiers is None or partition not in self.owned():
            return
        counted.apply_batch(dossiers, now)
        if last_timestamp:
            self.last_event_timestamp = max(self.last_event_timestamp or 0.0, last_timestamp)

    def install(self, partition: int, ledger: PartitionLedger) -> None:
        """The sums of `partition`, rebuilt: it counts from now on."""
        if self.assignment is None or partition not in self.assignment:
            return  # revoked meanwhile
        self.partitions[partition] = ledger
        self.waiting.pop(partition, None)

    def owned(self) -> AbstractSet[int]:
        """Partitions whose sums a write may touch: installed, and assigned now. Between a
        revocation and the next assignment the installed sums stay in step with the store
        (nothing is served then, and the next assignment keeps or drops them)."""
        if self.assignment is None:
            return frozenset(self.partitions)
        # A set, not a frozenset: `frozenset & keys view` is computed by the view (a set).
        return self.assignment & self.partitions.keys()

    @classmethod
    def counting(cls, calendar: WorkingCalendar, partitions: Iterable[int]) -> Ledger:
        """A ledger that counts `partitions` from empty (tools and tests without a store)."""
        ledger = cls(calendar)
        ledger.assign(partitions)
        for partition in ledger.assignment or ():
            ledger.install(partition, PartitionLedger(calendar))
        return ledger

    def keep_only(self, partitions: Iterable[int]) -> None:
        """Drop the sums of partitions this worker no longer holds (no stale series)."""
        keep = set(partitions)
        for partition in list(self.partitions):
            if partition not in keep:
                del self.partitions[partition]

    def tick(self, now: datetime | None = None) -> list[StatusChange]:
        """Move every partition's running dossiers with the clock. A partition whose move
        fails (a fault no test foresaw) is held, not served: its sums would stay behind the
        clock while the worker said it was ready. The others move on, and so does the timer
        (an exception out of faust's timer would end it for good)."""
        now = now or datetime.now(UTC)
        changes: list[StatusChange] = []
        for partition, ledger in list(self.partitions.items()):
            try:
                changes.extend(ledger.tick(now))
            except Exception as exc:  # any fault: absent, not stale
                log.exception("partition %d: moving its dossiers with the clock failed", partition)
                self.hold(
                    partition,
                    f"moving its dossiers with the clock failed ({type(exc).__name__}: "
                    f"{exc}); restart the worker to rebuild it from the store",
                )
        return changes

    def totals(self) -> Counter[Key]:
        out: Counter[Key] = Counter()
        for ledger in self.partitions.values():
            out.update(ledger.totals)
            out.update(ledger.closed)
        return +out  # drop zeros and (never expected) negatives

    def events_by_type(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for ledger in self.partitions.values():
            out.update(ledger.meta.events)
        return out

    def duplicates(self) -> Counter[str]:
        """Re-sent events (an event_id the dossier already held), by source."""
        out: Counter[str] = Counter()
        for ledger in self.partitions.values():
            out.update(ledger.meta.duplicates)
        return out

    def rejected(self) -> Counter[str]:
        """Messages sent to the dead-letter topic, by reason."""
        out: Counter[str] = Counter()
        for ledger in self.partitions.values():
            out.update(ledger.meta.rejected)
        return out

    def running_count(self) -> int:
        return sum(len(ledger.running) for ledger in self.partitions.values())

    def facts_snapshot(self) -> list[DossierFacts]:
        """Every open dossier's facts now, for a scan in another thread (the facts are
        immutable; the dicts holding them are not). Copied in C: ~20 ns a dossier."""
        out: list[DossierFacts] = []
        for ledger in self.partitions.values():
            out.extend(ledger.facts.values())
        return out

    def closed_index(self, periods: dict[str, tuple[date, date]], now: datetime) -> ClosedIndex:
        """The closed dossiers' national-index counts per named period, and all their marks
        (from the day totals; on the event loop, cheap)."""
        by_period: dict[str, Counter[tuple[str, str]]] = {name: Counter() for name in periods}
        marks: Counter[tuple[str, str]] = Counter()
        for ledger in self.partitions.values():
            for name, (start, end_inclusive) in periods.items():
                by_period[name].update(ledger.closed_index_keys(start, end_inclusive, now))
            marks.update(_strip(keys_between(ledger.history, INDEX_PREFIX, *ALL_DAYS)))
        return ClosedIndex(
            {name: index_of_keys(counts.items()) for name, counts in by_period.items()}, marks
        )

    def step_report(self, start: date, end_inclusive: date) -> dict[tuple[str, str], Counter[str]]:
        """Step outcomes per (agency, department) in the period: the closed dossiers' from
        the day totals, the open ones' from their completed steps (rules R12–R17)."""
        totals: Counter[tuple[str, str]] = Counter()
        marks: list[tuple[float, str]] = []
        for ledger in self.partitions.values():
            totals.update(keys_between(ledger.history, STEP_PREFIX, start, end_inclusive))
            for dossier in ledger.open.values():
                if dossier.steps_done:
                    marks.extend(step_marks(dossier.steps_done))
        out = step_outcomes_of_totals(totals)
        for place, counts in step_outcomes(marks, *period_bounds(start, end_inclusive)).items():
            out.setdefault(place, Counter()).update(counts)
        return out

    def report_parts(
        self, periods: list[tuple[date, date]], agency: str | None, now: datetime
    ) -> tuple[list[dict[str, PeriodFigures]], list[DossierFacts]]:
        """Period reports in two parts, taken together on the event loop: per period, the
        closed dossiers' figures (from the day totals, cheap), and the facts of the
        dossiers still to judge (open, or closed after `now`) for `period_report` in
        another thread. Their sum (`add_figures`) equals `period_report` over every
        dossier's facts."""
        closed: list[dict[str, PeriodFigures]] = [{} for _ in periods]
        facts = self.facts_snapshot()
        for ledger in self.partitions.values():
            for n, (start, end_inclusive) in enumerate(periods):
                figures, ahead = ledger.closed_report(start, end_inclusive, agency, now)
                add_figures(closed[n], figures)
            facts.extend(ahead)
        return closed, facts

    def iter_contributions(self) -> Iterator[tuple[Key, ...]]:
        for ledger in self.partitions.values():
            yield from ledger.contributions.values()
