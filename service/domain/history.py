"""What a closed dossier leaves behind once its events leave memory: bounded history.

A closed dossier (returned, rejected, withdrawn) no longer changes with time, so what period
reports and live counters need from it can be summed and the dossier forgotten:

- `History`: per agency, per local day, totals of *marks*. A mark is `(day, key, delta)`,
  the day a local date's ordinal (`date.toordinal()`, Asia/Ho_Chi_Minh). Two kinds of key:
  *flow* keys count what happened on that day (received by channel, resolved early / on
  time / late, withdrawn); *state* keys are +1/−1 as a dossier enters or leaves a state, so
  that their sum over days ≤ d is the state at the end of day d (in progress within /
  overdue, judged at the next local midnight exactly as `period_report` judges a period
  end). Memory is agency × day × a few int32, nothing per dossier.
- `history_report`: `period_report`'s figures for any period from a `History` of closed
  dossiers plus the `DossierFacts` of the others; equal to `period_report` over all facts
  when every dossier in the history was `settled` at the query's `now` (see there).
- `closed_delta`: the change to the per-partition sums of closed dossiers' live-counter
  keys (`contribution`, time-invariant once closed) when one dossier changes.
- `History.pages_after(delta)`: the pages a batch writes, one agency's days in a page of
  `PAGE_DAYS` (their stored form, versioned, is codec.py's).

Adding a mark kind (as the index indicators and the step outcomes were added): write a
`Marker`, a function `DossierFacts -> Iterable[Mark]` (use `local_day` for an instant's day;
a flow key's delta is the count, a state key's deltas sum to 0 over the dossier's life), and
append it to `MARKERS`. Stored pages name their keys, so old pages stay readable; a new key
is absent (zero) from pages written before it, so rebuild the history from the store's
dossiers before trusting the new key for days before the change. No I/O.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from functools import lru_cache

from schemas import Channel
from service.domain.calendar import WorkingCalendar, start_of_local_day
from service.domain.clock import Outcome
from service.domain.codec import PAGE_DAYS, EncodedPage, decode_page_columns
from service.domain.dossier import Dossier, Key, contribution
from service.domain.index import index_marks
from service.domain.report import NO_DUE, DossierFacts, PeriodFigures, period_report

Mark = tuple[int, str, int]  # (local day ordinal, key, delta)
Marker = Callable[[DossierFacts], Iterable[Mark]]

RECEIVED = {c: f"received.{c.value}" for c in Channel}  # flow, on the receipt's day
RESOLVED = {o: f"resolved.{o.value}" for o in Outcome}  # flow, on the clock's end day
WITHDRAWN = "withdrawn"  # flow, on the withdrawal's day (R4: before the clock ended)
IN_PROGRESS_WITHIN = "in_progress.within"  # state at the end of the day
IN_PROGRESS_OVERDUE = "in_progress.overdue"  # state at the end of the day
RESOLVED_WITHOUT_DUE = "resolved.without_due"  # flow, R11: the clock ended, never judged
IN_PROGRESS_WITHOUT_DUE = "in_progress.without_due"  # state, R11: no due known


@lru_cache(maxsize=16384)
def _day_start(day: int) -> float:
    """Local midnight opening the day with this ordinal, as `period_bounds` computes it."""
    return start_of_local_day(date.fromordinal(day)).timestamp()


_EPOCH_DAY = date(1970, 1, 1).toordinal()
_UTC7 = 7 * 3600  # a first guess only: the loop below follows the zone's real offsets


def local_day(instant: float) -> int:
    """The ordinal of the local date holding `instant` (epoch seconds).

    Exact against `period_bounds`: `local_day(t) < d` iff `t < ` the start of day `d`, with
    the same float comparison `period_report` makes.
    """
    day = int((instant + _UTC7) // 86400) + _EPOCH_DAY
    while instant < _day_start(day):
        day -= 1
    while instant >= _day_start(day + 1):
        day += 1
    return day


def _ended(facts: DossierFacts) -> float | None:
    return facts.clock_end if facts.clock_end is not None else facts.withdrawn_at


def receipt_marks(facts: DossierFacts) -> Iterable[Mark]:
    return ((local_day(facts.received_at), RECEIVED[facts.channel], 1),)


def end_marks(facts: DossierFacts) -> Iterable[Mark]:
    """Resolved (by outcome) on the clock's end day, or withdrawn on its day."""
    if facts.clock_end is not None:
        key = RESOLVED[facts.outcome] if facts.outcome is not None else RESOLVED_WITHOUT_DUE
        return ((local_day(facts.clock_end), key, 1),)
    if facts.withdrawn_at is not None:
        return ((local_day(facts.withdrawn_at), WITHDRAWN, 1),)
    return ()


def in_progress_marks(facts: DossierFacts) -> Iterable[Mark]:
    """±1 on the days whose end changes the dossier's in-progress verdict.

    `period_report` counts a dossier in progress at a period's end instant E (a local
    midnight) when received < E ≤ ended, overdue iff `overdue_at(E)`. That verdict is
    constant between the instants where it can change (receipt, end, a segment's start, a
    finite due), so it is evaluated only at the first midnight after each of them.
    """
    ended = _ended(facts)
    if ended is None:
        return ()  # open: judged from its facts at query time, never aggregated
    received = facts.received_at
    critical = [received, ended]
    for start, due in facts.segments():
        critical.append(start)
        if math.isfinite(due) and received <= due <= ended:
            critical.append(due)
    out: list[Mark] = []
    verdict: str | None = None
    # The receipt is also the first segment's start: each instant's day computed once.
    for boundary_day in sorted({local_day(c) + 1 for c in set(critical)}):
        boundary = _day_start(boundary_day)
        now: str | None = None
        if received < boundary <= ended:
            due = facts.due_at(boundary)
            if due == NO_DUE:
                now = IN_PROGRESS_WITHOUT_DUE
            else:
                now = IN_PROGRESS_OVERDUE if due < boundary else IN_PROGRESS_WITHIN
        if now != verdict:
            # The midnight opening `boundary_day` is the end of the day before it.
            if verdict is not None:
                out.append((boundary_day - 1, verdict, -1))
            if now is not None:
                out.append((boundary_day - 1, now, 1))
            verdict = now
    return out


INDEX_PREFIX = "index:"  # the national index's marks (service/domain/index.py)


def index_history_marks(facts: DossierFacts) -> Iterable[Mark]:
    """The national index's marks of a closed dossier, each on its instant's day (a rating or
    payment after the close changes its facts: the old marks are taken back, as any)."""
    if facts.index is None:
        return ()
    # A dossier's dozen marks sit at a few instants (mostly the receipt, in a run) and name
    # keys from a small set: a day computed when the instant changes, each prefixed key
    # once a process.
    last_instant, day = None, 0
    named = _INDEX_KEYS
    out: list[Mark] = []
    for instant, key in index_marks(facts.index):
        if instant != last_instant:
            last_instant, day = instant, local_day(instant)
        prefixed = named.get(key)
        if prefixed is None:
            prefixed = named[key] = INDEX_PREFIX + key
        out.append((day, prefixed, 1))
    return out


_INDEX_KEYS: dict[str, str] = {}  # index mark key -> the same with INDEX_PREFIX


MARKERS: tuple[Marker, ...] = (receipt_marks, end_marks, in_progress_marks, index_history_marks)


def marks(facts: DossierFacts) -> list[Mark]:
    """Every mark a closed dossier leaves (see `MARKERS`)."""
    return [mark for marker in MARKERS for mark in marker(facts)]


def settled(facts: DossierFacts, now: float) -> bool:
    """Closed no later than `now`: safe to fold into a `History` queried at `now` or after.

    A period that has not ended is judged at `now`; a dossier that closes after `now`
    (events may be up to 5 minutes in the future) could be in progress at `now` with a
    verdict no day total records. Keep it with the open facts until it is settled.
    """
    ended = _ended(facts)
    return ended is not None and ended <= now


class HistoryDelta:
    """The marks of one batch, applied to a `History` only once the batch is saved."""

    __slots__ = ("changes", "written")

    def __init__(self) -> None:
        self.changes: dict[tuple[str, int], dict[str, int]] = {}  # (agency, day): key deltas
        # Set by `History.pages_after`: the history and its version the pages were encoded
        # against, and the pages (None: deleted), kept by it once the delta is applied.
        self.written: tuple[History, int, dict[tuple[str, int], EncodedPage | None]] | None = None

    def add(self, facts: DossierFacts, sign: int = 1) -> None:
        """Add (+1) or remove (−1) a closed dossier; a changed one is −old then +new."""
        if _ended(facts) is None:
            raise ValueError("only a dossier whose clock ended or that was withdrawn")
        agency, changes = facts.agency, self.changes
        # A dossier's marks mostly fall on one or two days (the index's on the receipt's):
        # the row of the last mark's day is looked up again only when the day changes.
        row_day, row = None, {}
        for marker in MARKERS:
            for day, key, delta in marker(facts):
                if day != row_day:
                    found = changes.get((agency, day))
                    if found is None:
                        found = changes[agency, day] = {}
                    row_day, row = day, found
                row[key] = row.get(key, 0) + sign * delta

    def add_instant_marks(self, marks: Iterable[tuple[str, float, str]], sign: int = 1) -> None:
        """Marks at instants, each under an agency of its own: (agency, epoch seconds, key).
        A closed dossier's completed steps count for the step's agency (liên thông, R17)."""
        changes = self.changes
        for agency, instant, key in marks:
            where = (agency, local_day(instant))
            row = changes.get(where)
            if row is None:
                row = changes[where] = {}
            row[key] = row.get(key, 0) + sign


class _AgencyDays:
    """One agency's day rows, by column: `days` sorted, `columns[key][i]` the key's total.

    Columns are the agency's own keys: an agency's departments (step outcomes) are columns
    of that agency only, so memory is days × the keys each agency uses."""

    __slots__ = ("columns", "days")

    def __init__(self) -> None:
        self.days = array("i")
        self.columns: dict[str, array[int]] = {}

    def through(self, day: int) -> dict[str, int]:
        """Each column's sum over the rows of days ≤ `day` (non-zero ones)."""
        stop = bisect_right(self.days, day)
        out = {}
        for key, column in self.columns.items():
            total = sum(column[:stop])
            if total:
                out[key] = total
        return out


# Encoded pages a history keeps to patch (`EncodedPage.patched`), the least recently written
# going first: a live center touches each agency's current page and a few before it.
KEPT_PAGES = 256


class History:
    """Per agency, per local day, the totals of closed dossiers' marks."""

    __slots__ = ("_agencies", "_pages", "_version")

    def __init__(self) -> None:
        self._agencies: dict[str, _AgencyDays] = {}
        # The last pages written, as encoded from `_agencies` now (a cache, never the truth:
        # dropped for any page a change reaches without `pages_after`).
        self._pages: dict[tuple[str, int], EncodedPage] = {}
        self._version = 0  # deltas applied: the pages `pages_after` notes belong to one

    @classmethod
    def from_pages(cls, pages: Iterable[tuple[str, int, bytes]]) -> History:
        """Load the stored pages (agency, page number, `encode_page` bytes).

        Fastest in store order (by agency, then page): each page's columns are appended
        whole, with no per-day work.
        """
        history = cls()
        agencies = history._agencies
        for agency, page, data in pages:
            days, incoming = decode_page_columns(page, data)
            found = agencies.get(agency)
            if found is not None and found.days and days[0] <= found.days[-1]:
                for i, day in enumerate(days):  # out of order: insert day by day
                    history._add_to_row(agency, day, {k: v[i] for k, v in incoming.items()})
                continue
            if found is None:
                found = agencies[agency] = _AgencyDays()
            columns, before = found.columns, len(found.days)
            found.days.extend(days)
            for key in incoming:
                if key not in columns:
                    columns[key] = array("i", [0]) * before
            zeros = array("i", [0]) * len(days)
            for key, column in columns.items():
                column.extend(incoming.get(key, zeros))
        return history

    def add(self, facts: DossierFacts, sign: int = 1) -> None:
        """Add (+1) or remove (−1) one closed dossier at once (see `HistoryDelta`)."""
        delta = HistoryDelta()
        delta.add(facts, sign)
        self.add_delta(delta)

    def add_delta(self, delta: HistoryDelta) -> None:
        """A saved batch's changes to the day totals."""
        pages = self._pages
        written = delta.written
        if written is not None and written[0] is self and written[1] == self._version:
            # Encoded from the columns as they are now, with this delta: kept to patch.
            for where, page in written[2].items():
                pages.pop(where, None)
                if page is not None:
                    pages[where] = page
            while len(pages) > KEPT_PAGES:
                del pages[next(iter(pages))]
        elif pages:
            for agency, day in delta.changes:
                pages.pop((agency, day // PAGE_DAYS), None)
        self._version += 1
        for (agency, day), changes in delta.changes.items():
            self._add_to_row(agency, day, changes)

    def pages_after(self, delta: HistoryDelta) -> dict[tuple[str, int], bytes | None]:
        """The pages `delta` changes, encoded as they will be once applied (None: delete).

        For the store's write batch, before `add_delta`: nothing here changes (the pages are
        noted in `delta`, for `add_delta` to keep). A page kept from an earlier batch is
        patched when the change keeps its days and keys (`EncodedPage.patched`); otherwise
        the page is a slice of the agency's columns, patched on its touched days and encoded
        from columns: no dict per stored row either way.
        """
        touched: dict[tuple[str, int], list[tuple[int, dict[str, int]]]] = {}
        for (agency, day), changes in delta.changes.items():
            if not any(changes.values()):
                continue
            where = (agency, day // PAGE_DAYS)
            found = touched.get(where)
            if found is None:
                touched[where] = [(day, changes)]
            else:
                found.append((day, changes))
        agencies, kept = self._agencies, self._pages
        out: dict[tuple[str, int], bytes | None] = {}
        written: dict[tuple[str, int], EncodedPage | None] = {}
        delta.written = (self, self._version, written)
        for where, days_changes in touched.items():
            agency, page = where
            before = kept.get(where)
            if before is not None:
                patched = before.patched(days_changes)
                if patched is not None:
                    written[where] = patched
                    out[where] = patched.data
                    continue
            stored = agencies.get(agency)
            if stored is None:
                days: array[int] = array("i")
                columns: dict[str, array[int]] = {}
            else:
                first = page * PAGE_DAYS
                start = bisect_left(stored.days, first)
                stop = bisect_left(stored.days, first + PAGE_DAYS, start)
                days = stored.days[start:stop]
                columns = {key: column[start:stop] for key, column in stored.columns.items()}
            for day, changes in days_changes:
                i = bisect_left(days, day)
                if i == len(days) or days[i] != day:
                    days.insert(i, day)
                    for each in columns.values():
                        each.insert(i, 0)
                for key, value in changes.items():
                    if value:
                        column = columns.get(key)
                        if column is None:
                            column = columns[key] = array("i", [0]) * len(days)
                        column[i] += value
            encoded = written[where] = EncodedPage.of_columns(days, columns)
            out[where] = encoded.data if encoded is not None else None
        return out

    def page_rows(self, agency: str, page: int) -> dict[int, dict[str, int]]:
        """The non-empty rows of one agency's page, by day."""
        found = self._agencies.get(agency)
        if found is None:
            return {}
        first = page * PAGE_DAYS
        start = bisect_left(found.days, first)
        stop = bisect_left(found.days, first + PAGE_DAYS)
        return {found.days[i]: self._row_at(found, i) for i in range(start, stop)}

    def rows(self) -> Iterator[tuple[str, int, dict[str, int]]]:
        """Every non-empty agency-day row, by agency then day."""
        for agency in sorted(self._agencies):
            found = self._agencies[agency]
            for i, day in enumerate(found.days):
                yield agency, day, self._row_at(found, i)

    def agencies(self) -> list[str]:
        return sorted(self._agencies)

    def through(self, agency: str, day: int) -> dict[str, int]:
        """The agency's totals over days ≤ `day`: flows so far, and states at its end."""
        found = self._agencies.get(agency)
        if found is None:
            return {}
        return found.through(day)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, History):
            return NotImplemented
        return list(self.rows()) == list(other.rows())

    __hash__ = None  # type: ignore[assignment]  # mutable

    def _row_at(self, found: _AgencyDays, i: int) -> dict[str, int]:
        return {key: column[i] for key, column in found.columns.items() if column[i]}

    def _add_to_row(self, agency: str, day: int, changes: dict[str, int]) -> None:
        if not any(changes.values()):
            return
        found = self._agencies.get(agency)
        if found is None:
            found = self._agencies[agency] = _AgencyDays()
        days, columns = found.days, found.columns
        i = bisect_left(days, day)
        if i == len(days) or days[i] != day:
            days.insert(i, day)
            for each in columns.values():
                each.insert(i, 0)
        zeroed = False
        for key, value in changes.items():
            if not value:
                continue  # a mark taken back in the same batch: no column for it
            column = columns.get(key)
            if column is None:
                column = columns[key] = array("i", [0]) * len(days)
            column[i] += value
            if not column[i]:
                zeroed = True
        # A stored row is never empty, so it can only empty out where a total fell to zero.
        if zeroed and not any(column[i] for column in columns.values()):
            # An empty row is no row: a remove-then-add leaves what building afresh leaves.
            del days[i]
            for column in columns.values():
                del column[i]
            if not days:
                del self._agencies[agency]


def _closed_figures(before: dict[str, int], through: dict[str, int]) -> PeriodFigures | None:
    """The closed dossiers' figures from the totals through the day before the period and
    through its last day; None when none of them belongs to the period."""

    def during(key: str) -> int:
        return through.get(key, 0) - before.get(key, 0)

    ended_before = (
        sum(before.get(RESOLVED[o], 0) for o in Outcome)
        + before.get(RESOLVED_WITHOUT_DUE, 0)
        + before.get(WITHDRAWN, 0)
    )
    # A dossier ends on or after its receipt day, so those received before the period and
    # not ended before it are exactly the ones in progress when it starts.
    carried = sum(before.get(RECEIVED[c], 0) for c in Channel) - ended_before
    new = sum(during(RECEIVED[c]) for c in Channel)
    if carried + new == 0:
        return None
    return PeriodFigures(
        carried_over=carried,
        new=new,
        resolved_early=during(RESOLVED[Outcome.EARLY]),
        resolved_on_time=during(RESOLVED[Outcome.ON_TIME]),
        resolved_late=during(RESOLVED[Outcome.LATE]),
        withdrawn=during(WITHDRAWN),
        in_progress_within=through.get(IN_PROGRESS_WITHIN, 0),
        in_progress_overdue=through.get(IN_PROGRESS_OVERDUE, 0),
        received_direct=during(RECEIVED[Channel.DIRECT]),
        received_online=during(RECEIVED[Channel.ONLINE]),
        received_postal=during(RECEIVED[Channel.POSTAL]),
        resolved_without_due=during(RESOLVED_WITHOUT_DUE),
        in_progress_without_due=through.get(IN_PROGRESS_WITHOUT_DUE, 0),
    )


def keys_between(
    history: History, prefix: str, start: date, end_inclusive: date
) -> Counter[tuple[str, str]]:
    """(agency, key) totals of the keys starting with `prefix` over the local days
    start..end_inclusive: flow marks (e.g. step outcomes) in a period."""
    out: Counter[tuple[str, str]] = Counter()
    first, last = start.toordinal(), end_inclusive.toordinal()
    for agency in history.agencies():
        before, through = history.through(agency, first - 1), history.through(agency, last)
        for key, total in through.items():
            if key.startswith(prefix):
                during = total - before.get(key, 0)
                if during:
                    out[agency, key] += during
    return out


def history_report(
    history: History,
    open_facts: Iterable[DossierFacts],
    start: date,
    end_inclusive: date,
    agency: str | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, PeriodFigures]:
    """`period_report` over the history's dossiers and `open_facts` together.

    Exactly equal to it when every dossier in `history` is `settled` at `now` (any, if
    `now` is None): the period's bounds are local midnights, so membership and every flow
    is a sum of day totals, and the in-progress figures at the end are the state totals
    through its last day. When the period has not ended at `now`, no settled dossier is in
    progress at its end, and the open facts are judged at `now` by `period_report` itself.
    """
    if end_inclusive < start:
        raise ValueError("the period ends before it starts")
    out = period_report(open_facts, start, end_inclusive, agency, now=now)
    first, last = start.toordinal(), end_inclusive.toordinal()
    for code in [agency] if agency is not None else history.agencies():
        figures = _closed_figures(history.through(code, first - 1), history.through(code, last))
        if figures is None:
            continue
        found = out.get(code)
        out[code] = figures if found is None else found.add(figures)
    return out


# -- the closed dossiers' share of the live counters ------------------------------------------


def closed_delta(
    old: Dossier | None, new: Dossier | None, calendar: WorkingCalendar
) -> Counter[Key]:
    """What one dossier's change does to the sums of closed dossiers' counter keys.

    `contribution` of a closed dossier does not depend on `now`, so the sums are kept as
    they are and persisted; an open dossier (or None) adds nothing here.
    """
    # closed_by is set when closed_at is.
    gained = (
        () if new is None or new.closed_at is None else contribution(new, new.closed_at, calendar)
    )
    if old is None or old.closed_at is None:
        return Counter(gained)  # counted in C: a dossier closing in the batch, the common case
    out: Counter[Key] = Counter()
    out.subtract(contribution(old, old.closed_at, calendar))
    out.update(gained)
    return Counter({key: value for key, value in out.items() if value})


def add_counts(totals: Counter[Key], delta: Counter[Key]) -> None:
    """`totals += delta` in place, dropping keys that fall to zero."""
    for key, value in delta.items():
        total = totals[key] + value
        if total:
            totals[key] = total
        else:
            totals.pop(key, None)
