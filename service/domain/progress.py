"""A dossier's replay kept between events: an event that arrives in order costs O(1).

`replay` and `fold_with_facts` rebuild a dossier from its whole event set. `DossierProgress`
carries what they carry from one event to the next (the receipt, the due, the pause, the
clock's end, the apology, the facts timeline, the last sort key) so that the common case,
an event that sorts after every event already held, is applied on top of the state. An event
that lands before held events (R6) makes it replay the set, so the result is always exactly
`fold_with_facts` of the set. `pack` / `unpack` store it compactly for the worker's local
store: the state is restored without replaying, the events are decoded only for a replay.
"""

from __future__ import annotations

import enum
import struct
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

from schemas import (
    Channel,
    DossierEvent,
    EventType,
    InvalidEvent,
    OnlineLevel,
    PaymentMethod,
    Rating,
    Reason,
)
from schemas.events import TYPE_ORDER, time_from_text
from service.domain.calendar import LOCAL_TZ, WorkingCalendar
from service.domain.clock import Outcome, judge
from service.domain.dossier import CLOCK_ENDING, CLOSING, Dossier, past, receipt_due, shifted
from service.domain.index import IndexTrack, track_of
from service.domain.report import (
    NO_DUE,
    PAUSED_OVERDUE,
    PAUSED_WITHIN,
    DossierFacts,
    due_at_receipt,
)
from service.domain.steps import (
    CompletedStep,
    OpenStep,
    finish_step,
    resume_step,
    start_step,
)

# A dossier has a handful of events; more than this is a producer bug or an attack. The
# reference records limit (tests/reference_records.py) is the same number.
MAX_EVENTS_PER_DOSSIER = 200


class Step(enum.Enum):
    """What `DossierProgress.advance` did with an event."""

    DUPLICATE = "duplicate"  # R7: its event_id is already held; the first stored wins
    APPLIED = "applied"  # it sorts after every held event: applied on top of the state
    REPLAYED = "replayed"  # it landed before held events (R6): the set was replayed


# Codes of the closed sets, in a fixed order (the packed form stores the position).
_TYPES: tuple[EventType, ...] = tuple(EventType)
_CHANNELS: tuple[Channel, ...] = tuple(Channel)
_OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
_CHANNEL_CODE = {c: i for i, c in enumerate(_CHANNELS)}
_OUTCOME_CODE = {o: i for i, o in enumerate(_OUTCOMES)}
# One char per held event: "0".."8" by position for the first nine types; later types get
# a letter of their own, so inserting a type before them never changes what stored
# dossiers mean.
_TYPE_CHAR = {t: chr(48 + i) for i, t in enumerate(_TYPES[:9])} | {
    EventType.STEP_STARTED: "s",
    EventType.STEP_COMPLETED: "c",
    EventType.PAID: "p",
    EventType.RATED: "r",
}
_CHAR_TYPE = {char: t for t, char in _TYPE_CHAR.items()}
_RANK = {t: TYPE_ORDER[t] for t in _TYPES}  # a plain dict: cheaper than TYPE_ORDER's lookups

# Enum members as module constants: an Enum class attribute is a slower lookup.
_RECEIVED = EventType.RECEIVED
_SUPPLEMENT_REQUESTED = EventType.SUPPLEMENT_REQUESTED
_SUPPLEMENT_RECEIVED = EventType.SUPPLEMENT_RECEIVED
_EXTENDED = EventType.EXTENDED
_WITHDRAWN = EventType.WITHDRAWN
_STEP_STARTED = EventType.STEP_STARTED
_STEP_COMPLETED = EventType.STEP_COMPLETED
_LATE = Outcome.LATE

_SEGMENT = struct.Struct("<dd")  # the facts timeline's segment (service/domain/report.py)
_CODE = struct.Struct("<d")
# Flags in the packed header.
_HAS_RECEIPT, _PASSED_DUE, _RELATIVE_IDS, _LOCAL_DUE = 1, 2, 4, 8
# Packed form, version 1: this header, the facts timeline, a JSON line with the state, the
# event ids and types, then one JSON line per event in arrival order (orjson never writes a
# raw newline, so lines split safely).
_HEAD = struct.Struct("<BBbbbBBIHH")
_VERSION = 1


class DossierProgress:
    """One dossier's events and the state their replay has reached (see the module doc).

    `dossier` is `fold`'s Dossier and `facts` `fold_with_facts`'s DossierFacts of the events
    held; both are cached until the next change. `duplicates` counts refused re-sends.
    """

    __slots__ = (
        "_dossier",
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
        "agency",
        "apology_at",
        "channel",
        "clock_end",
        "closed_at",
        "closed_by",
        "dossier_id",
        "due",
        "duplicates",
        "new_due_at",
        "outcome",
        "passed_due",
        "paused_at",
        "procedure",
        "received_at",
        "step",
        "steps_done",
        "supplements",
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
        self._log = b""  # the held events, one JSON line each, in arrival order

    def _reset(self) -> None:
        """The state before any receipt (R8: an orphan counts nowhere)."""
        self.agency: str | None = None
        self.procedure: str | None = None
        self.channel: Channel | None = None
        self.received_at: datetime | None = None
        self.due: datetime | None = None
        self.paused_at: datetime | None = None
        self.clock_end: datetime | None = None
        self.outcome: Outcome | None = None
        self.closed_by: EventType | None = None
        self.closed_at: datetime | None = None
        self.apology_at: datetime | None = None
        self.new_due_at: datetime | None = None
        self.passed_due = False
        self.supplements = 0
        self.step: OpenStep | None = None
        self.steps_done: tuple[CompletedStep, ...] = ()
        self._due_ts: float | None = None  # due.timestamp(), computed when first needed
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
        wins, later ones count as duplicates: R7), by one full replay; `.dossier` and `.facts`
        equal `fold_with_facts` of them."""
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

    def advance(self, event: DossierEvent, calendar: WorkingCalendar) -> Step:
        """Add one event of this dossier: a duplicate is refused (R7, counted); past
        MAX_EVENTS_PER_DOSSIER events, InvalidEvent(TOO_MANY_EVENTS) as `intake.merge`."""
        event_id = event.event_id
        if self.holds(event_id):
            self.duplicates += 1
            return Step.DUPLICATE
        if len(self._kinds) >= MAX_EVENTS_PER_DOSSIER:
            raise InvalidEvent(
                Reason.TOO_MANY_EVENTS,
                f"dossier already has {MAX_EVENTS_PER_DOSSIER} events; no more are accepted",
            )
        at = event.occurred_at
        rank = _RANK[event.type]
        last_at = self._last_at
        same_instant = last_at is not None and at == last_at
        in_order = (
            last_at is None
            or at > last_at
            or (same_instant and (rank, event_id) > (self._last_rank, self._last_id))
        )
        self._keep(event)
        if in_order:
            self._last_at, self._last_rank, self._last_id = at, rank, event_id
            self._apply(event, calendar, same_instant)
            return Step.APPLIED
        self._replay(self._events(), calendar)
        return Step.REPLAYED

    def _keep(self, event: DossierEvent) -> None:
        """Add the event to the held set (ids, types, the log)."""
        event_id = event.event_id
        if self._relative:
            prefix = self.dossier_id
            if event_id.startswith(prefix):
                self._ids.append(event_id[len(prefix) :])
            else:
                self._ids = [prefix + tail for tail in self._ids]
                self._ids.append(event_id)
                self._relative = False
        else:
            self._ids.append(event_id)
        self._kinds += _TYPE_CHAR[event.type]
        line = orjson.dumps(_row(event))
        self._log = self._log + b"\n" + line if self._log else line

    def _replay(self, events: list[DossierEvent], calendar: WorkingCalendar) -> None:
        """Recompute the state from `events` (the held set), in R6 order."""
        self._reset()
        ordered = sorted(events, key=_sort_key)
        previous: datetime | None = None
        for event in ordered:
            at = event.occurred_at
            self._apply(event, calendar, previous is not None and at == previous)
            previous = at
        if ordered:
            last = ordered[-1]
            self._last_at, self._last_rank, self._last_id = (
                last.occurred_at,
                _RANK[last.type],
                last.event_id,
            )

    def _apply(self, event: DossierEvent, calendar: WorkingCalendar, same_instant: bool) -> None:
        """`replay`'s loop body for an event sorting after every applied one.

        `same_instant`: it occurred at the instant of the previous event, so `replay` would
        give one state for both: the timeline segment of the earlier one is taken back.
        """
        kind = event.type
        at = event.occurred_at
        if self.received_at is None:
            if kind is _RECEIVED:
                self._receive(event, calendar)
                self._index = IndexTrack(event)
                self._emit(at, False)
            return  # R8 and R6: kept, but nothing counts before the receipt
        assert self._index is not None
        if self._index.step(event):
            self._facts = None
        if self.closed_by is not None:
            return  # R4: the dossier is closed; later events are ignored (but the index's)
        self._dossier = self._facts = None
        clock_end = self.clock_end
        paused_at = self.paused_at
        if kind is _SUPPLEMENT_REQUESTED:
            if clock_end is None and paused_at is None:  # R2: a second request changes nothing
                self.passed_due = self.passed_due or past(at, self.due)
                self.paused_at = at
                self.supplements += 1
        elif kind is _SUPPLEMENT_RECEIVED:
            if paused_at is not None and clock_end is None:
                self._set_due(event.due_at or shifted(self.due, paused_at, at, calendar))
                if self.step is not None:  # R13
                    self.step = resume_step(self.step, paused_at, at, calendar)
                self.paused_at = None
            elif clock_end is None and event.due_at is not None:  # R2: a new appointment
                self.passed_due = self.passed_due or past(at, self.due)
                self._set_due(event.due_at)
        elif kind is _EXTENDED:
            # R5: the apology is recorded; the judgement still uses the due.
            if clock_end is None:
                self.apology_at = self.apology_at or at
                self.new_due_at = event.new_due_at
        elif kind is _STEP_STARTED:
            if clock_end is None:  # R15: steps count while the dossier's clock counts
                step = self.step
                if step is not None:  # R12: the new step closes the one before
                    self.steps_done += (finish_step(step, at, paused_at, calendar),)
                self.step = start_step(event, self.agency or "", calendar)
        elif kind is _STEP_COMPLETED:
            step = self.step
            if step is not None and step.step == event.step:  # R14
                self.steps_done += (finish_step(step, at, paused_at, calendar),)
                self.step = None
        elif kind in CLOCK_ENDING and clock_end is None:
            if self.step is not None:  # R15: the step ends with the clock
                self.steps_done += (finish_step(self.step, at, paused_at, calendar),)
                self.step = None
            if paused_at is not None:  # R2: the clock ended while paused
                self._set_due(shifted(self.due, paused_at, at, calendar))
                self.paused_at = None
            else:
                self.passed_due = self.passed_due or past(at, self.due)
            self.clock_end = at
            # R3; R11: a dossier without a due is never judged.
            self.outcome = judge(at, self.due) if self.due is not None else None
            # Late means the clock passed the due, even if a pause shifted it meanwhile.
            self.passed_due = self.passed_due or self.outcome is _LATE
        if kind is _WITHDRAWN and self.clock_end is None:
            if self.step is not None:  # R15: the step ends with the dossier
                self.steps_done += (finish_step(self.step, at, self.paused_at, calendar),)
                self.step = None
            if self.paused_at is None:
                self.passed_due = self.passed_due or past(at, self.due)
        if kind in CLOSING:  # R4: the dossier is closed
            self.paused_at = None
            self.closed_by, self.closed_at = kind, at
        self._emit(at, same_instant)

    def _receive(self, receipt: DossierEvent, calendar: WorkingCalendar) -> None:
        assert receipt.channel is not None
        self._dossier = self._facts = None
        self.agency = _shared(receipt.agency)
        self.procedure = _shared(receipt.procedure)
        self.channel = receipt.channel
        self.received_at = receipt.occurred_at
        self._set_due(receipt_due(receipt, calendar))

    def _set_due(self, due: datetime | None) -> None:
        self.due = due
        self._due_ts = None

    def _emit(self, at: datetime, same_instant: bool) -> None:
        """`fold_with_facts`'s step for the state after the events at `at`."""
        timeline = self._timeline
        # One state per instant: the segment written for this instant is recomputed.
        if (
            same_instant
            and timeline
            and _CODE.unpack_from(timeline, len(timeline) - 16)[0] == at.timestamp()
        ):
            timeline = self._timeline = timeline[:-16]
        if self.clock_end is not None or self.closed_by is not None:
            return  # no longer in progress: the end instants are kept as fields
        code = self._code()
        if not timeline or _CODE.unpack_from(timeline, len(timeline) - 8)[0] != code:
            self._timeline = timeline + _SEGMENT.pack(at.timestamp(), code)

    def _code(self) -> float:
        """The timeline value of the state (report.py `_due_code`)."""
        due = self.due
        if due is None:
            return NO_DUE
        if self.paused_at is not None:
            return PAUSED_WITHIN if self.paused_at <= due else PAUSED_OVERDUE
        return self._due_timestamp()

    def _due_timestamp(self) -> float:
        """The due as epoch seconds; NO_DUE for a dossier without one (R11)."""
        ts = self._due_ts
        if ts is None:
            ts = self._due_ts = self.due.timestamp() if self.due is not None else NO_DUE
        return ts

    def _events(self) -> list[DossierEvent]:
        """The held events, decoded from the log (for a replay)."""
        ids = self._ids
        if self._relative:
            ids = [self.dossier_id + tail for tail in ids]
        rows = orjson.loads(b"[" + self._log.replace(b"\n", b",") + b"]")
        return [
            _event(self.dossier_id, event_id, _CHAR_TYPE[kind], row)
            for event_id, kind, row in zip(ids, self._kinds, rows, strict=True)
        ]

    # -- what it says -------------------------------------------------------------------------

    @property
    def dossier(self) -> Dossier:
        """`fold` of the held events."""
        dossier = self._dossier
        if dossier is None:
            dossier = self._dossier = Dossier(
                self.dossier_id,
                self.agency,
                self.procedure,
                self.channel,
                self.received_at,
                self.due,
                self.paused_at,
                self.clock_end,
                self.outcome,
                self.closed_by,
                self.closed_at,
                self.apology_at,
                self.new_due_at,
                self.passed_due,
                self.supplements,
                self.step,
                self.steps_done,
            )
        return dossier

    @property
    def facts(self) -> DossierFacts | None:
        """`fold_with_facts`'s report facts of the held events; None for an orphan."""
        facts = self._facts
        if facts is None and self.received_at is not None:
            assert self.agency is not None and self.channel is not None
            timeline = self._timeline
            if timeline:
                received_ts = _CODE.unpack_from(timeline)[0]  # the receipt's own segment
            else:
                # The clock ended at the receipt's own instant: a segment keeps `due_at` total.
                received_ts = self.received_at.timestamp()
                timeline = _SEGMENT.pack(received_ts, self._due_timestamp())
            withdrawn = self.closed_by is EventType.WITHDRAWN and self.clock_end is None
            clock_end = self.clock_end.timestamp() if self.clock_end is not None else None
            closed_at = self.closed_at.timestamp() if self.closed_at is not None else None
            index = self._index
            assert index is not None
            dossier = self.dossier
            facts = self._facts = DossierFacts(
                self.agency,
                self.channel,
                received_ts,
                clock_end,
                self.outcome,
                closed_at if withdrawn else None,
                timeline,
                index.facts(
                    dossier, received_ts, clock_end, closed_at, due_at_receipt(timeline, dossier)
                ),
            )
        return facts

    def event_types(self) -> list[EventType]:
        """The types of the held events, in arrival order (for the per-type counters)."""
        return [_CHAR_TYPE[kind] for kind in self._kinds]

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

    # -- the packed form ----------------------------------------------------------------------

    def pack(self) -> bytes:
        """Compact bytes for the local store; `unpack` restores this without a replay."""
        due = self.due
        flags = (
            (_HAS_RECEIPT if self.received_at is not None else 0)
            | (_PASSED_DUE if self.passed_due else 0)
            | (_RELATIVE_IDS if self._relative else 0)
            | (_LOCAL_DUE if due is not None and due.tzinfo is LOCAL_TZ else 0)
        )
        channel, outcome, closed_by = self.channel, self.outcome, self.closed_by
        head = _HEAD.pack(
            _VERSION,
            flags,
            _CHANNEL_CODE[channel] if channel is not None else -1,
            _OUTCOME_CODE[outcome] if outcome is not None else -1,
            _RANK[closed_by] if closed_by is not None else -1,
            self._last_rank,
            self.supplements,
            self.duplicates,
            len(self._timeline),
            self._last_position(),
        )
        state = orjson.dumps(
            [
                self.agency,
                self.procedure,
                self.received_at,
                due,
                self.paused_at,
                self.clock_end,
                self.closed_at,
                self.apology_at,
                self.new_due_at,
                self._last_at,
                self._kinds,
                self._ids,
                # Then the index track (issue 18), then the steps (issue 20), if any.
                self._index.to_list() if self._index is not None else None,
                *_packed_steps(self.step, self.steps_done),
            ]
        )
        return b"".join((head, self._timeline, state, b"\n", self._log))

    def _last_position(self) -> int:
        """Where the last event in R6 order sits among the held ids (0 if none)."""
        if not self._ids:
            return 0
        last_id = self._last_id
        return self._ids.index(last_id[len(self.dossier_id) :] if self._relative else last_id)

    @classmethod
    def unpack(cls, dossier_id: str, raw: bytes) -> DossierProgress:
        """The progress `pack` stored for `dossier_id` (no replay; events stay packed)."""
        (
            version,
            flags,
            channel,
            outcome,
            closed_by,
            last_rank,
            supplements,
            duplicates,
            timeline_len,
            last,
        ) = _HEAD.unpack_from(raw)
        if version != _VERSION:
            raise ValueError(f"unknown packed dossier progress version {version}")
        start = _HEAD.size + timeline_len
        end = raw.index(b"\n", start)
        state = orjson.loads(raw[start:end])
        agency, procedure, received, due, paused, clock_end, closed, apology, new_due = state[:9]
        last_at, kinds, ids = state[9:12]
        progress = cls.__new__(cls)
        progress.dossier_id = dossier_id
        progress.agency = _shared(agency)
        progress.procedure = _shared(procedure)
        progress.channel = _CHANNELS[channel] if channel >= 0 else None
        progress.received_at = time_from_text(received) if received is not None else None
        if due is None:
            progress.due = None
        elif flags & _LOCAL_DUE:
            # Written as its local wall time and offset: the same wall time in the zone.
            naive = datetime.fromisoformat(due[:-6])
            progress.due = datetime.combine(naive.date(), naive.time(), LOCAL_TZ)
        else:
            progress.due = time_from_text(due)
        progress.paused_at = time_from_text(paused) if paused is not None else None
        progress.clock_end = time_from_text(clock_end) if clock_end is not None else None
        progress.outcome = _OUTCOMES[outcome] if outcome >= 0 else None
        progress.closed_by = _TYPES[closed_by] if closed_by >= 0 else None
        progress.closed_at = time_from_text(closed) if closed is not None else None
        progress.apology_at = time_from_text(apology) if apology is not None else None
        progress.new_due_at = time_from_text(new_due) if new_due is not None else None
        progress.passed_due = bool(flags & _PASSED_DUE)
        progress.supplements = supplements
        progress.step, progress.steps_done = _unpacked_steps(state[13:])
        progress.duplicates = duplicates
        timeline = raw[_HEAD.size : start]
        progress._timeline = timeline
        # In progress and running, the last segment holds the due's timestamp (see `_emit`).
        progress._due_ts = (
            _CODE.unpack_from(timeline, timeline_len - 8)[0]
            if timeline
            and progress.clock_end is None
            and progress.closed_by is None
            and progress.paused_at is None
            else None
        )
        progress._last_at = time_from_text(last_at) if last_at is not None else None
        progress._last_rank = last_rank
        relative = bool(flags & _RELATIVE_IDS)
        progress._relative = relative
        progress._ids = ids
        progress._kinds = kinds
        progress._last_id = (dossier_id + ids[last] if relative else ids[last]) if ids else ""
        progress._log = raw[end + 1 :]
        progress._dossier = None
        progress._facts = None
        if len(state) > 12:
            progress._index = IndexTrack.of_list(state[12]) if state[12] is not None else None
        else:  # stored before the index (issue 18): gathered once from the events
            progress._index = track_of(progress._events()) if received is not None else None
        return progress


def _sort_key(event: DossierEvent) -> tuple[datetime, int, str]:
    return (event.occurred_at, _RANK[event.type], event.event_id)


def _shared(code: str | None) -> str | None:
    # A million dossiers share a few dozen agency and a few thousand procedure codes.
    return sys.intern(code) if code is not None else None


def _row(event: DossierEvent) -> list[Any]:
    """An event's log line, without its id and type (kept beside) and trailing nulls."""
    if event.type is EventType.RECEIVED:
        channel = event.channel
        row: list[Any] = [
            event.occurred_at,
            event.agency,
            event.procedure,
            _CHANNEL_CODE[channel] if channel is not None else None,
            event.due_at,
            event.processing_days,
        ]
    elif event.step is not None:
        row = [
            event.occurred_at,
            event.agency,
            None,
            None,
            None,
            None,
            None,
            event.step,
            event.department,
            event.step_due_at,
            event.step_hours,
            event.step_days,
        ]
    elif event.due_at is not None:
        row = [event.occurred_at, None, None, None, event.due_at]
    else:
        row = [event.occurred_at]
    if event.new_due_at is not None:
        row += [None] * (6 - len(row))
        row.append(event.new_due_at)
    index = _index_row(event)
    if index:
        row += [None] * (12 - len(row))
        row.append(index)
    while row[-1] is None:
        row.pop()
    return row


# The index fields (issue 18) in the log: a thirteenth item, a JSON object of the ones set.
_INDEX_FIELDS: tuple[str, ...] = (
    "fee_due",
    "components",
    "components_digitised",
    "components_reused",
    "components_from_data_store",
    "identity_verified",
    "online_level",
    "e_result",
    "method",
    "rating",
    "reason",
)
_WITH_INDEX_FIELDS = frozenset(
    {EventType.RECEIVED, EventType.RETURNED, EventType.PAID, EventType.RATED}
)
_INDEX_ENUMS: dict[str, type[enum.Enum]] = {
    "online_level": OnlineLevel,
    "method": PaymentMethod,
    "rating": Rating,
}


def _index_row(event: DossierEvent) -> dict[str, Any] | None:
    if event.type not in _WITH_INDEX_FIELDS:
        return None
    out: dict[str, Any] = {}
    for name in _INDEX_FIELDS:
        value = getattr(event, name)
        if value is not None:
            out[name] = value.value if isinstance(value, enum.Enum) else value
    if event.criteria is not None:
        out["criteria"] = [list(pair) for pair in event.criteria]
    return out or None


def _index_kwargs(stored: dict[str, Any]) -> dict[str, Any]:
    out = dict(stored)
    for name, kind in _INDEX_ENUMS.items():
        if name in out:
            out[name] = kind(out[name])
    if "criteria" in out:
        out["criteria"] = tuple((code, score) for code, score in out["criteria"])
    return out


def _event(dossier_id: str, event_id: str, kind: EventType, row: list[Any]) -> DossierEvent:
    # The log line: the seven base items, the step's five, then the index fields' object.
    row = row + [None] * (13 - len(row))
    occurred_at, agency, procedure, channel, due_at, days, new_due_at = row[:7]
    step, department, step_due_at, step_hours, step_days, index = row[7:]
    return DossierEvent(
        event_id,
        dossier_id,
        kind,
        time_from_text(occurred_at),
        agency,
        procedure,
        _CHANNELS[channel] if channel is not None else None,
        time_from_text(due_at) if due_at is not None else None,
        days,
        time_from_text(new_due_at) if new_due_at is not None else None,
        step,
        department,
        time_from_text(step_due_at) if step_due_at is not None else None,
        step_hours,
        step_days,
        **(_index_kwargs(index) if index is not None else {}),
    )


def _packed_steps(step: OpenStep | None, done: tuple[CompletedStep, ...]) -> list[Any]:
    """The steps' part of the packed state: nothing for a dossier without steps (the
    form stays as before steps existed), else the open step and the completed ones."""
    if step is None and not done:
        return []
    return [
        None
        if step is None
        else [step.step, step.department, step.agency, step.started_at, step.due],
        [[d.step, d.department, d.agency, d.completed_ts, _OUTCOME_CODE[d.outcome]] for d in done],
    ]


def _unpacked_steps(part: list[Any]) -> tuple[OpenStep | None, tuple[CompletedStep, ...]]:
    if not part:
        return None, ()
    packed_step, done = part
    step = None
    if packed_step is not None:
        name, department, agency, started_at, due = packed_step
        step = OpenStep(
            name,
            _shared(department),
            _shared(agency),
            time_from_text(started_at),
            time_from_text(due),
        )
    return step, tuple(
        CompletedStep(name, _shared(department), _shared(agency), at, _OUTCOMES[o])
        for name, department, agency, at, o in done
    )
