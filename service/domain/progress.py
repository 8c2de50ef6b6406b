"""A dossier's held events and the state their replay has reached: an in-order event is O(1).

`DossierProgress` keeps a dossier's events (ids, types, a compact log) and, beside them, the
rule engine's state (rules.py) and the report facts' timeline (report.py), so the common
case, an event that sorts after every event already held, is one `rules.take` on top of the
state. An event that lands before held events (R6) makes it replay the set, so the result is
always what the events say in R6 order. `pack` / `unpack` are its stored form (codec.py):
the state is restored without replaying, the events are decoded only for a replay.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from schemas import DossierEvent, EventType, InvalidEvent, Reason
from service.domain.building import builder
from service.domain.calendar import DEFAULT_CALENDAR, WorkingCalendar
from service.domain.clock import epoch_seconds
from service.domain.codec import (
    CHAR_TYPE,
    RANK,
    TYPE_CHAR,
    HeldEvents,
    event_row,
    events_of_log,
    last_segment_value,
    read_dossier_record,
    write_dossier_record,
)
from service.domain.dossier import Dossier
from service.domain.index import IndexTrack
from service.domain.report import (
    NO_DUE,
    PAUSED_OVERDUE,
    PAUSED_WITHIN,
    SEGMENT,
    DossierFacts,
    due_at_receipt,
)
from service.domain.rules import CHANGED, RECEIVED, STEPPED, DossierState, take

# A dossier has a handful of events; more than this is a producer bug or an attack. The
# reference records limit (tests/reference_records.py) is the same number.
MAX_EVENTS_PER_DOSSIER = 200


class Arrival(enum.Enum):
    """How an event arrived at its dossier (what `DossierProgress.add` did with it)."""

    DUPLICATE = "duplicate"  # R7: its event_id is already held; the first stored wins
    IN_ORDER = "in_order"  # it sorts after every held event: taken on top of the state
    EARLY = "early"  # it sorts before held events (R6): the set was replayed


# Enum members as module constants: an Enum class attribute is a slower lookup (every event).
_DUPLICATE, _IN_ORDER, _EARLY = Arrival.DUPLICATE, Arrival.IN_ORDER, Arrival.EARLY
_WITHDRAWN = EventType.WITHDRAWN


_NOT_COMPUTED = object()  # `_due_ts` is not the timestamp of any due yet
# A changed dossier's facts are built once per batch it is in (building.py).
_build_facts = builder(DossierFacts)


class DossierProgress(DossierState):
    """One dossier's events and the state their replay has reached (see the module doc).

    `dossier` is the state as a `Dossier`, `facts` its report facts; both are cached until
    the next change. `duplicates` counts refused re-sends.
    """

    __slots__ = (
        "_dossier",
        "_due_of",
        "_due_ts",
        "_facts",
        "_ids",
        "_index",
        "_kinds",
        "_last_at",
        "_last_id",
        "_last_rank",
        "_log",
        "_relative",
        "_timeline",
        "dossier_id",
        "duplicates",
    )

    def __init__(self, dossier_id: str) -> None:
        self.dossier_id = dossier_id
        self._reset()
        self.duplicates = 0
        self._last_at: datetime | None = None
        self._last_rank = 0
        self._last_id = ""
        # Held event ids, stored without the dossier_id prefix while all of them have it
        # (center systems usually derive event ids from the dossier id).
        self._ids: list[str] = []
        self._relative = True
        self._kinds = ""  # one character per held event: its type, in arrival order
        self._log = b""  # the held events, one line each, in arrival order (codec.event_row)

    def _reset(self) -> None:
        """The state before any receipt (R8: an orphan counts nowhere)."""
        self.clear()
        self._due_ts = NO_DUE  # the due's timestamp, computed when first needed
        self._due_of: object = None  # the due `_due_ts` belongs to
        self._timeline = b""
        self._dossier: Dossier | None = None
        self._facts: DossierFacts | None = None
        self._index: IndexTrack | None = None  # the national index's part (index.py)

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def start(cls, dossier_id: str) -> DossierProgress:
        """A dossier with no events yet."""
        return cls(dossier_id)

    @classmethod
    def of(
        cls, dossier_id: str, events: Iterable[DossierEvent], calendar: WorkingCalendar
    ) -> DossierProgress:
        """The progress of a dossier's events in arrival order (the first of an event_id
        wins, later ones count as duplicates: R7), by one full replay."""
        progress = cls(dossier_id)
        held: list[DossierEvent] = []
        for event in events:
            if progress.holds(event.event_id):
                progress.duplicates += 1
            else:
                progress._keep(event)
                held.append(event)
        progress._replay(held, calendar)
        return progress

    def holds(self, event_id: str) -> bool:
        """R7: an event with this id is already held."""
        if self._relative:
            prefix = self.dossier_id
            return event_id.startswith(prefix) and event_id[len(prefix) :] in self._ids
        return event_id in self._ids

    def __len__(self) -> int:
        """How many events are held (duplicates excluded)."""
        return len(self._kinds)

    def add(self, event: DossierEvent, calendar: WorkingCalendar) -> Arrival:
        """Add one event of this dossier: a duplicate is refused (R7, counted); past
        MAX_EVENTS_PER_DOSSIER events, InvalidEvent(TOO_MANY_EVENTS)."""
        event_id = event.event_id
        # `holds`, keeping the id's tail for `_keep` (each event of a dossier passes here).
        tail: str | None = None
        if self._relative:
            prefix = self.dossier_id
            if event_id.startswith(prefix):
                tail = event_id[len(prefix) :]
                held = tail in self._ids
            else:
                held = False
        else:
            held = event_id in self._ids
        if held:
            self.duplicates += 1
            return _DUPLICATE
        if len(self._kinds) >= MAX_EVENTS_PER_DOSSIER:
            raise InvalidEvent(
                Reason.TOO_MANY_EVENTS,
                f"dossier already has {MAX_EVENTS_PER_DOSSIER} events; no more are accepted",
            )
        at = event.occurred_at
        rank = RANK[event.type]
        last_at = self._last_at
        same_instant = last_at is not None and at == last_at
        in_order = (
            last_at is None
            or at > last_at
            or (same_instant and (rank, event_id) > (self._last_rank, self._last_id))
        )
        self._keep(event, tail)
        if in_order:
            self._last_at, self._last_rank, self._last_id = at, rank, event_id
            self._take(event, calendar, same_instant)
            return _IN_ORDER
        self._replay(self._events(), calendar)
        return _EARLY

    def _keep(self, event: DossierEvent, tail: str | None = None) -> None:
        """Add the event to the held set (ids, types, the log). `tail`: the event id without
        the dossier id in front, when the caller has cut it already."""
        event_id = event.event_id
        if self._relative:
            prefix = self.dossier_id
            if tail is not None:
                self._ids.append(tail)
            elif event_id.startswith(prefix):
                self._ids.append(event_id[len(prefix) :])
            else:
                self._ids = [prefix + rest for rest in self._ids]
                self._ids.append(event_id)
                self._relative = False
        else:
            self._ids.append(event_id)
        self._kinds += TYPE_CHAR[event.type]
        line = event_row(event)
        self._log = self._log + b"\n" + line if self._log else line

    def _replay(self, events: list[DossierEvent], calendar: WorkingCalendar) -> None:
        """Recompute the state from `events` (the held set), in R6 order."""
        self._reset()
        ordered = sorted(events, key=_sort_key)
        previous: datetime | None = None
        for event in ordered:
            at = event.occurred_at
            self._take(event, calendar, previous is not None and at == previous)
            previous = at
        if ordered:
            last = ordered[-1]
            self._last_at, self._last_rank, self._last_id = (
                last.occurred_at,
                RANK[last.type],
                last.event_id,
            )

    def _take(self, event: DossierEvent, calendar: WorkingCalendar, same_instant: bool) -> None:
        """The rule engine's step for an event sorting after every one taken, and what
        follows from it: the index track and the facts' timeline.

        `same_instant`: it occurred at the instant of the previous event; events at one
        instant act together, so the timeline segment of the earlier one is taken back.
        """
        change = take(self, event, calendar)
        if change & RECEIVED:
            self._dossier = self._facts = None
            self._index = IndexTrack(event)
            # The receipt's own due, kept: a pause at the receipt's instant replaces its
            # timeline segment, and the portal judges against this (docs/report.md).
            self._index.receipt_due = self._due_timestamp()
            self._emit(event.occurred_at, False)
            return
        index = self._index
        if index is None:
            return  # R8 and R6: kept, but nothing counts before the receipt
        if index.follow(event, change):
            self._facts = None
        if change & CHANGED:
            # An event that changed no field (an appraisal) keeps the dossier value and,
            # when the index track kept too, the facts: nothing is built again for it. A
            # step moves no fact either (the facts hold no step; its timeline is the same).
            self._dossier = None
            if not change & STEPPED:
                self._facts = None
            self._emit(event.occurred_at, same_instant)

    def _emit(self, at: datetime, same_instant: bool) -> None:
        """The facts timeline's step for the state after the events at `at`."""
        timeline = self._timeline
        # One state per instant: the segment written for this instant is recomputed.
        if (
            same_instant
            and timeline
            and SEGMENT.unpack_from(timeline, len(timeline) - 16)[0] == epoch_seconds(at)
        ):
            timeline = self._timeline = timeline[:-16]
        if self.clock_end is not None or self.closed_by is not None:
            return  # no longer in progress: the end instants are kept as fields
        code = self._code()
        if not timeline or last_segment_value(timeline) != code:
            self._timeline = timeline + SEGMENT.pack(epoch_seconds(at), code)

    def _code(self) -> float:
        """The timeline value of the state (report.py's segments)."""
        due = self.due
        if due is None:
            return NO_DUE
        if self.paused_at is not None:
            return PAUSED_WITHIN if self.paused_at <= due else PAUSED_OVERDUE
        return self._due_timestamp()

    def _due_timestamp(self) -> float:
        """The due as epoch seconds; NO_DUE for a dossier without one (R11)."""
        due = self.due
        if self._due_of is not due:
            self._due_of = due
            self._due_ts = due.timestamp() if due is not None else NO_DUE
        return self._due_ts

    def _events(self) -> list[DossierEvent]:
        """The held events, decoded from the log (for a replay)."""
        ids = self._ids
        if self._relative:
            ids = [self.dossier_id + tail for tail in ids]
        return events_of_log(self.dossier_id, ids, self._kinds, self._log)

    # -- what it says -------------------------------------------------------------------------

    @property
    def dossier(self) -> Dossier:
        """The state of the held events as a `Dossier` value."""
        dossier = self._dossier
        if dossier is None:
            dossier = self._dossier = self.as_dossier(self.dossier_id)
        return dossier

    @property
    def facts(self) -> DossierFacts | None:
        """The report facts of the held events; None for an orphan."""
        facts = self._facts
        if facts is None and self.received_at is not None:
            assert self.agency is not None and self.channel is not None
            timeline = self._timeline
            if timeline:
                received_ts = SEGMENT.unpack_from(timeline)[0]  # the receipt's own segment
            else:
                # The clock ended at the receipt's own instant: a segment keeps `due_at` total.
                received_ts = self.received_at.timestamp()
                timeline = SEGMENT.pack(received_ts, self._due_timestamp())
            withdrawn = self.closed_by is _WITHDRAWN and self.clock_end is None
            clock_end = epoch_seconds(self.clock_end) if self.clock_end is not None else None
            closed_at = epoch_seconds(self.closed_at) if self.closed_at is not None else None
            index = self._index
            assert index is not None
            dossier = self.dossier
            facts = self._facts = _build_facts(
                self.agency,
                self.channel,
                received_ts,
                clock_end,
                self.outcome,
                closed_at if withdrawn else None,
                timeline,
                index.facts(
                    dossier,
                    received_ts,
                    clock_end,
                    closed_at,
                    index.receipt_due
                    if index.receipt_due is not None
                    else due_at_receipt(timeline, dossier),
                ),
            )
        return facts

    def event_types(self) -> list[EventType]:
        """The types of the held events, in arrival order (for the per-type counters)."""
        return [CHAR_TYPE[kind] for kind in self._kinds]

    def events(self) -> list[DossierEvent]:
        """The held events in R6 order."""
        return sorted(self._events(), key=_sort_key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DossierProgress):
            return NotImplemented
        return self._compared() == other._compared()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def _compared(self) -> tuple[Any, ...]:
        ids = self._ids if not self._relative else [self.dossier_id + t for t in self._ids]
        return (
            self.dossier,
            self.facts,
            self.duplicates,
            ids,
            self._kinds,
            self._events(),
            self._last_at,
            self._last_rank,
            self._last_id,
        )

    def __repr__(self) -> str:
        return f"DossierProgress({self.dossier_id!r}, {len(self)} events, {self.dossier!r})"

    # -- the stored form ----------------------------------------------------------------------

    def pack(self) -> bytes:
        """Compact bytes for the local store; `unpack` restores this without a replay."""
        held = HeldEvents(
            self.duplicates,
            self._timeline,
            self._last_at,
            self._last_rank,
            self._last_position(),
            self._kinds,
            self._ids,
            self._relative,
            self._index,
            True,
            self._log,
        )
        return write_dossier_record(self, held)

    def _last_position(self) -> int:
        """Where the last event in R6 order sits among the held ids (0 if none)."""
        if not self._ids:
            return 0
        last_id = self._last_id
        return self._ids.index(last_id[len(self.dossier_id) :] if self._relative else last_id)

    @classmethod
    def unpack(cls, dossier_id: str, raw: bytes) -> DossierProgress:
        """The progress `pack` stored for `dossier_id` (no replay; events stay packed)."""
        progress = cls.__new__(cls)
        progress.dossier_id = dossier_id
        held = read_dossier_record(raw, progress)
        progress.duplicates = held.duplicates
        timeline = progress._timeline = held.timeline
        if (
            timeline
            and progress.clock_end is None
            and progress.closed_by is None
            and progress.paused_at is None
        ):
            # In progress and running: the last segment holds the due's timestamp.
            progress._due_ts, progress._due_of = last_segment_value(timeline), progress.due
        else:
            progress._due_ts, progress._due_of = NO_DUE, _NOT_COMPUTED
        progress._last_at = held.last_at
        progress._last_rank = held.last_rank
        relative = progress._relative = held.relative
        ids = progress._ids = held.ids
        progress._kinds = held.kinds
        last = held.last_position
        progress._last_id = (dossier_id + ids[last] if relative else ids[last]) if ids else ""
        progress._log = held.log
        progress._dossier = None
        progress._facts = None
        progress._index = held.index_track
        if not held.has_index and progress.received_at is not None:
            # Stored before the index track existed: gathered once from the events.
            progress._index = _index_track_of(progress._events())
        return progress


def _sort_key(event: DossierEvent) -> tuple[datetime, int, str]:
    return (event.occurred_at, RANK[event.type], event.event_id)


def _index_track_of(events: list[DossierEvent]) -> IndexTrack | None:
    """The index track of a held set, from the rule engine's transitions (which never
    depend on the calendar: only dues do, so any calendar gives the same track)."""
    state = DossierState()
    track: IndexTrack | None = None
    for event in sorted(events, key=_sort_key):
        change = take(state, event, DEFAULT_CALENDAR)
        if change & RECEIVED:
            track = IndexTrack(event)
        elif track is not None:
            track.follow(event, change)
    return track


def fold(dossier_id: str, events: Iterable[DossierEvent], calendar: WorkingCalendar) -> Dossier:
    """A dossier's state from its set of events, in any order (R6; duplicates: R7)."""
    return DossierProgress.of(dossier_id, events, calendar).dossier


def fold_with_facts(
    dossier_id: str, events: Iterable[DossierEvent], calendar: WorkingCalendar
) -> tuple[Dossier, DossierFacts | None]:
    """`fold` and the report facts of the same events (None for an orphan)."""
    progress = DossierProgress.of(dossier_id, events, calendar)
    return progress.dossier, progress.facts


def facts_of(
    dossier_id: str, events: Iterable[DossierEvent], calendar: WorkingCalendar
) -> DossierFacts | None:
    """A dossier's report facts from its set of events; None for an orphan (no receipt)."""
    return DossierProgress.of(dossier_id, events, calendar).facts
