"""A dossier's state as a pure function of its set of events (rules R2–R9, R11–R17).

`fold` replays the events in `occurred_at` order, whatever order they arrived in, so a
late-arriving earlier event gives the same state as if it had arrived in order, and a
replay or a duplicate changes nothing. `contribution` says what the dossier adds to each
live counter at a moment `now`; the service sums contributions, never increments blindly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from schemas import Channel, DossierEvent, EventType
from schemas.events import direct_init
from service.domain.calendar import WorkingCalendar
from service.domain.clock import (
    OpenState,
    Outcome,
    computed_due,
    judge,
    next_change,
    running_state,
    shift_due,
)
from service.domain.steps import (
    NO_DEPARTMENT,
    CompletedStep,
    OpenStep,
    finish_step,
    resume_step,
    start_step,
)

CLOCK_ENDING = frozenset({EventType.APPROVED, EventType.REJECTED, EventType.RETURNED})
CLOSING = frozenset({EventType.REJECTED, EventType.RETURNED, EventType.WITHDRAWN})

# A counter key: the metric family, then its label values (agency first).
Key = tuple[str, ...]


@direct_init  # built for every event: slots set directly (schemas/events.py)
@dataclass(frozen=True, slots=True)
class Dossier:
    """What the events say about one dossier. `received_at is None` means an orphan (R8)."""

    dossier_id: str
    agency: str | None = None
    procedure: str | None = None
    channel: Channel | None = None
    received_at: datetime | None = None
    # In force now: after supplement shifts, before any apology; None: no due known (R11).
    due: datetime | None = None
    paused_at: datetime | None = None  # waiting for the citizen's supplement since
    clock_end: datetime | None = None  # first approved / rejected / returned
    outcome: Outcome | None = None
    closed_by: EventType | None = None
    closed_at: datetime | None = None
    apology_at: datetime | None = None  # first apology letter (văn bản xin lỗi)
    new_due_at: datetime | None = None  # the appointment it promised
    passed_due: bool = False  # the running clock went past its due before now's segment
    supplements: int = 0  # supplement requests that paused the clock (yêu cầu bổ sung)
    step: OpenStep | None = None  # the step it is in: who holds it (R12)
    steps_done: tuple[CompletedStep, ...] = ()  # in the order they ended

    @property
    def is_received(self) -> bool:
        return self.received_at is not None

    @property
    def is_open(self) -> bool:
        return self.received_at is not None and self.closed_by is None

    @property
    def is_running(self) -> bool:
        """The clock is ticking: open, not ended, not paused for a supplement."""
        return self.is_open and self.clock_end is None and self.paused_at is None

    @property
    def withdrawn(self) -> bool:
        """R4: withdrawn before the clock ended, so never judged."""
        return self.closed_by is EventType.WITHDRAWN and self.clock_end is None


def ordered_unique(events: Iterable[DossierEvent]) -> list[DossierEvent]:
    """R6 and R7: one event per event_id (the first seen wins), in occurred_at order."""
    seen: dict[str, DossierEvent] = {}
    for event in events:
        seen.setdefault(event.event_id, event)
    if len(seen) < 2:
        return list(seen.values())  # most stored dossiers hold only their receipt
    return sorted(seen.values(), key=lambda e: e.sort_key)


def fold(dossier_id: str, events: Iterable[DossierEvent], calendar: WorkingCalendar) -> Dossier:
    """Replay a dossier's events into its state."""
    state = Dossier(dossier_id)  # R8: an orphan is kept, counted nowhere until received
    for _, state in replay(dossier_id, events, calendar):  # noqa: B007 (the last one counts)
        pass
    return state


def replay(
    dossier_id: str, events: Iterable[DossierEvent], calendar: WorkingCalendar
) -> Iterator[tuple[datetime, Dossier]]:
    """The state after each instant at which events occurred, from the receipt on.

    Events at one instant act together, so one state is given per instant. Nothing is
    given before the receipt (an orphan gives nothing); the last state is `fold`'s.
    """
    ordered = ordered_unique(events)
    receipt = next((e for e in ordered if e.type is EventType.RECEIVED), None)
    if receipt is None:
        return

    assert receipt.channel is not None
    due = receipt_due(receipt, calendar)
    paused_at: datetime | None = None
    clock_end: datetime | None = None
    outcome: Outcome | None = None
    apology_at: datetime | None = None
    new_due_at: datetime | None = None
    passed_due = False
    supplements = 0
    step: OpenStep | None = None
    steps_done: tuple[CompletedStep, ...] = ()
    agency = receipt.agency or ""

    def state(closed_by: EventType | None = None, closed_at: datetime | None = None) -> Dossier:
        return Dossier(
            dossier_id,
            receipt.agency,
            receipt.procedure,
            receipt.channel,
            receipt.occurred_at,
            due,
            paused_at,
            clock_end,
            outcome,
            closed_by,
            closed_at,
            apology_at,
            new_due_at,
            passed_due,
            supplements,
            step,
            steps_done,
        )

    # R6: events dated before the receipt and any second receipt are ignored.
    start = ordered.index(receipt)
    for i in range(start, len(ordered)):
        event = ordered[i]
        at = event.occurred_at
        kind = event.type
        running = clock_end is None and paused_at is None

        if i == start:
            pass  # the receipt itself: the state above is its state
        elif kind is EventType.SUPPLEMENT_REQUESTED:
            if running:  # R2: a second request while paused changes nothing
                passed_due = passed_due or past(at, due)
                paused_at = at
                supplements += 1
        elif kind is EventType.SUPPLEMENT_RECEIVED:
            if paused_at is not None and clock_end is None:
                due = event.due_at or shifted(due, paused_at, at, calendar)
                if step is not None:  # R13
                    step = resume_step(step, paused_at, at, calendar)
                paused_at = None
            elif running and event.due_at is not None:  # R2: a new appointment, no pause
                passed_due = passed_due or past(at, due)
                due = event.due_at
        elif kind is EventType.EXTENDED:
            # R5: the apology is recorded; the judgement still uses the due.
            if clock_end is None:
                apology_at = apology_at or at
                new_due_at = event.new_due_at
        elif kind is EventType.STEP_STARTED:
            if clock_end is None:  # R15: steps count while the dossier's clock counts
                if step is not None:  # R12: the new step closes the one before
                    steps_done += (finish_step(step, at, paused_at, calendar),)
                step = start_step(event, agency, calendar)
        elif kind is EventType.STEP_COMPLETED:
            if step is not None and step.step == event.step:  # R14
                steps_done += (finish_step(step, at, paused_at, calendar),)
                step = None
        elif kind in CLOCK_ENDING and clock_end is None:
            if step is not None:  # R15: the step ends with the clock
                steps_done += (finish_step(step, at, paused_at, calendar),)
                step = None
            if paused_at is not None:  # R2: the clock ended while paused
                due = shifted(due, paused_at, at, calendar)
                paused_at = None
            else:
                passed_due = passed_due or past(at, due)
            clock_end = at
            outcome = judge(at, due) if due is not None else None  # R3; R11: not judged
            # Late means the clock passed the due, even if a pause shifted it meanwhile.
            passed_due = passed_due or outcome is Outcome.LATE

        if i > start and kind is EventType.WITHDRAWN and clock_end is None:
            if step is not None:  # R15: the step ends with the dossier
                steps_done += (finish_step(step, at, paused_at, calendar),)
                step = None
            if paused_at is None:
                passed_due = passed_due or past(at, due)
        if i > start and kind in CLOSING:  # R4: the dossier is closed; later events ignored
            paused_at = None
            yield at, state(kind, at)
            return
        if i + 1 == len(ordered) or ordered[i + 1].occurred_at != at:
            yield at, state()


def receipt_due(receipt: DossierEvent, calendar: WorkingCalendar) -> datetime | None:
    """R1: the appointment on the receipt wins, else the computed due; R11: else none."""
    if receipt.due_at is not None:
        return receipt.due_at
    if receipt.processing_days is not None:
        return computed_due(receipt.occurred_at, receipt.processing_days, calendar)
    return None


def past(at: datetime, due: datetime | None) -> bool:
    """`at` is after the due; never for a dossier without one (R11)."""
    return due is not None and at > due


def shifted(
    due: datetime | None, paused_at: datetime, resumed_at: datetime, calendar: WorkingCalendar
) -> datetime | None:
    """R2's shift of the due by the waiting time; no due stays no due (R11)."""
    return shift_due(due, paused_at, resumed_at, calendar) if due is not None else None


def open_state(dossier: Dossier, now: datetime, calendar: WorkingCalendar) -> OpenState | None:
    """R9: the state of an open dossier at `now`; None if not open."""
    if not dossier.is_open:
        return None
    if dossier.clock_end is not None:
        return OpenState.READY
    if dossier.paused_at is not None:
        return OpenState.PAUSED
    if dossier.due is None:
        return OpenState.NO_DUE
    return running_state(dossier.due, now, calendar)


def became_overdue(dossier: Dossier, now: datetime) -> bool:
    """The running clock has gone past its due at some moment up to `now`."""
    if dossier.passed_due:
        return True
    return dossier.is_running and dossier.due is not None and now > dossier.due


_CHANNEL_VALUES = {c: c.value for c in Channel}
_OUTCOME_VALUES = {o: o.value for o in Outcome}
_STATE_VALUES = {s: s.value for s in OpenState}
_PAUSED = OpenState.PAUSED.value


def contribution(dossier: Dossier, now: datetime, calendar: WorkingCalendar) -> tuple[Key, ...]:
    """The counter keys this dossier adds 1 to at `now`, once per occurrence (a department
    that completed two steps on time gives its key twice); the sum over dossiers is the truth."""
    if dossier.received_at is None:
        return ()
    agency = dossier.agency or ""
    assert dossier.channel is not None
    keys: list[Key] = [("received", agency, _CHANNEL_VALUES[dossier.channel])]
    outcome = dossier.outcome
    clock_end = dossier.clock_end
    if outcome is not None:
        keys.append(("completed", agency, _OUTCOME_VALUES[outcome]))
    elif clock_end is not None:  # R11: resolved, never judged
        keys.append(("completed_without_due", agency))
    closed_by = dossier.closed_by
    if closed_by is EventType.WITHDRAWN and clock_end is None:
        keys.append(("withdrawn", agency))
    # open_state and became_overdue, sharing what they look at (one judgement of `now`).
    state: OpenState | None = None
    if closed_by is None:
        if clock_end is not None:
            state = OpenState.READY
        elif dossier.paused_at is not None:
            state = OpenState.PAUSED
        elif dossier.due is None:
            state = OpenState.NO_DUE
        else:
            state = running_state(dossier.due, now, calendar)
    if dossier.passed_due or state is OpenState.OVERDUE:
        keys.append(("became_overdue", agency))
    if state is not None:
        value = _STATE_VALUES[state]
        keys.append(("open", agency, value))
        # Per-procedure detail for the JSON drill-down; never exported as metric labels.
        keys.append(("open_procedure", agency, dossier.procedure or "", value))
        if state is OpenState.OVERDUE and dossier.apology_at is None:
            keys.append(("overdue_without_apology", agency))
    step = dossier.step
    for done in dossier.steps_done:  # R17: the step's own agency answers for it
        keys.append(
            ("steps_completed", done.agency, done.department, _OUTCOME_VALUES[done.outcome])
        )
    if step is not None:
        # A step is open only while the clock counts (R15): running, or paused with it.
        if state is OpenState.PAUSED:
            step_state = _PAUSED
        else:
            step_state = _STATE_VALUES[running_state(step.due, now, calendar)]
        keys.append(("steps_open", step.agency, step.department, step_state))
    if state is OpenState.OVERDUE:
        if step is None:
            keys.append(("overdue_held", agency, NO_DEPARTMENT))
        else:
            keys.append(("overdue_held", step.agency, step.department))
    return tuple(keys)


def held_by(dossier: Dossier) -> tuple[str, str]:
    """Where the dossier sits now: the agency and department of its open step, else the
    receiving agency and `none`."""
    step = dossier.step
    if step is None:
        return dossier.agency or "", NO_DEPARTMENT
    return step.agency, step.department


def next_change_at(dossier: Dossier, now: datetime, calendar: WorkingCalendar) -> datetime | None:
    """When this dossier's contribution will change with no new event (None: never)."""
    if not dossier.is_running:
        return None
    when = next_change(dossier.due, now, calendar) if dossier.due is not None else None
    step = dossier.step
    if step is not None:
        step_when = next_change(step.due, now, calendar)
        if when is None or (step_when is not None and step_when < when):
            return step_when
    return when
