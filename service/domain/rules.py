"""The dossier rules in one place: every change of a dossier's state is a `take` of one event.

`DossierState` is what a dossier's events have said so far; `take` applies the next event in
R6 order (the caller orders them: `progress.DossierProgress` replays the set when an event
lands before held ones) under rules R1–R5, R8, R11–R15 of docs/rules.md and answers with the
transitions it made, so the national index's track (index.py) follows the same transitions
instead of judging them again. The processing steps' dues and verdicts are steps.py's. No I/O.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import overload

from schemas import Channel, DossierEvent, EventType
from service.domain.building import builder
from service.domain.calendar import WorkingCalendar
from service.domain.clock import Outcome, computed_due, judge, shift_due
from service.domain.dossier import Dossier
from service.domain.steps import CompletedStep, OpenStep, finish_step, resume_step, start_step

CLOCK_ENDING = frozenset({EventType.APPROVED, EventType.REJECTED, EventType.RETURNED})
CLOSING = frozenset({EventType.REJECTED, EventType.RETURNED, EventType.WITHDRAWN})
# R4's exception: facts for the national index that count even after the close.
AFTER_CLOSE = frozenset({EventType.PAID, EventType.RATED})

# What `take` did: a sum of these bits (0: the event changed nothing and counts nowhere).
RECEIVED = 1  # the receipt: the dossier starts counting (R8)
APPLIED = 2  # an event of an open dossier: any field may have changed
PAUSED = 4  # R2: the clock stopped for a supplement request
RESUMED = 8  # R2: the supplement came back and the clock runs again
ENDED = 16  # R3: the clock ended, or R4: the dossier was withdrawn before it did
CLOSED = 32  # R4: returned, rejected or withdrawn; later events are ignored
KEPT_AFTER_CLOSE = 64  # R4: a payment or rating of a closed dossier
CHANGED = 128  # a field of the state changed (APPLIED without it: none did, as an appraisal)
STEPPED = 256  # R12–R14: only the processing steps changed (with CHANGED)
DUE_SET = 512  # R2: the event's due_at became the due (a new appointment; with CHANGED)

# Enum members as module constants: an Enum class attribute is a slower lookup.
_RECEIVED = EventType.RECEIVED
_SUPPLEMENT_REQUESTED = EventType.SUPPLEMENT_REQUESTED
_SUPPLEMENT_RECEIVED = EventType.SUPPLEMENT_RECEIVED
_EXTENDED = EventType.EXTENDED
_WITHDRAWN = EventType.WITHDRAWN
_STEP_STARTED = EventType.STEP_STARTED
_STEP_COMPLETED = EventType.STEP_COMPLETED
_LATE = Outcome.LATE
# A changed dossier's value is built once per batch it is in (building.py).
_build_dossier = builder(Dossier)


class DossierState:
    """What the events taken so far say about one dossier; the fields mean what `Dossier`'s
    do. `received_at is None`: no receipt taken yet (R8)."""

    __slots__ = (
        "agency",
        "apology_at",
        "channel",
        "clock_end",
        "closed_at",
        "closed_by",
        "due",
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

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """The state before any receipt."""
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

    def as_dossier(self, dossier_id: str) -> Dossier:
        """The state as the frozen value the counters read."""
        return _build_dossier(
            dossier_id,
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


def take(state: DossierState, event: DossierEvent, calendar: WorkingCalendar) -> int:
    """Apply `event`, which sorts after every event taken before (R6), to `state`; the
    transitions made, as a sum of the bits above."""
    kind = event.type
    at = event.occurred_at
    if state.received_at is None:
        if kind is not _RECEIVED:
            return 0  # R8 and R6: nothing counts before the receipt
        assert event.channel is not None
        state.agency = shared_code(event.agency)
        state.procedure = shared_code(event.procedure)
        state.channel = event.channel
        state.received_at = at
        state.due = receipt_due(event, calendar)
        return RECEIVED
    if state.closed_by is not None:
        # R4: the dossier is closed; later events are ignored, but for the index's facts.
        return KEPT_AFTER_CLOSE if kind in AFTER_CLOSE else 0
    change = APPLIED
    clock_end = state.clock_end
    paused_at = state.paused_at
    if kind is _SUPPLEMENT_REQUESTED:
        if clock_end is None and paused_at is None:  # R2: a second request changes nothing
            state.passed_due = state.passed_due or past(at, state.due)
            state.paused_at = at
            state.supplements += 1
            change |= PAUSED | CHANGED
    elif kind is _SUPPLEMENT_RECEIVED:
        if paused_at is not None and clock_end is None:
            state.due = event.due_at or shifted(state.due, paused_at, at, calendar)
            if state.step is not None:  # R13
                state.step = resume_step(state.step, paused_at, at, calendar)
            state.paused_at = None
            change |= RESUMED | CHANGED | (DUE_SET if event.due_at is not None else 0)
        elif clock_end is None and event.due_at is not None:  # R2: a new appointment
            state.passed_due = state.passed_due or past(at, state.due)
            state.due = event.due_at
            change |= CHANGED | DUE_SET
    elif kind is _EXTENDED:
        # R5: the apology is recorded; the judgement still uses the due.
        if clock_end is None:
            state.apology_at = state.apology_at or at
            state.new_due_at = event.new_due_at
            change |= CHANGED
    elif kind is _STEP_STARTED:
        if clock_end is None:  # R15: steps count while the dossier's clock counts
            step = state.step
            if step is not None:  # R12: the new step closes the one before
                state.steps_done += (finish_step(step, at, paused_at, calendar),)
            state.step = start_step(event, state.agency or "", calendar)
            change |= CHANGED | STEPPED
    elif kind is _STEP_COMPLETED:
        step = state.step
        if step is not None and step.step == event.step:  # R14
            state.steps_done += (finish_step(step, at, paused_at, calendar),)
            state.step = None
            change |= CHANGED | STEPPED
    elif kind in CLOCK_ENDING and clock_end is None:
        if state.step is not None:  # R15: the step ends with the clock
            state.steps_done += (finish_step(state.step, at, paused_at, calendar),)
            state.step = None
        if paused_at is not None:  # R2: the clock ended while paused
            state.due = shifted(state.due, paused_at, at, calendar)
            state.paused_at = None
        else:
            state.passed_due = state.passed_due or past(at, state.due)
        state.clock_end = at
        # R3; R11: a dossier without a due is never judged.
        state.outcome = judge(at, state.due) if state.due is not None else None
        # Late means the clock passed the due, even if a pause shifted it meanwhile.
        state.passed_due = state.passed_due or state.outcome is _LATE
        change |= ENDED | CHANGED
    if kind is _WITHDRAWN and state.clock_end is None:
        if state.step is not None:  # R15: the step ends with the dossier
            state.steps_done += (finish_step(state.step, at, state.paused_at, calendar),)
            state.step = None
        if state.paused_at is None:
            state.passed_due = state.passed_due or past(at, state.due)
        change |= ENDED | CHANGED
    if kind in CLOSING:  # R4: the dossier is closed
        state.paused_at = None
        state.closed_by, state.closed_at = kind, at
        change |= CLOSED | CHANGED
    return change


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


@overload
def shared_code(code: str) -> str: ...
@overload
def shared_code(code: None) -> None: ...
def shared_code(code: str | None) -> str | None:
    """One string object per agency or procedure code (a million dossiers share a few
    dozen agency and a few thousand procedure codes)."""
    return sys.intern(code) if code is not None else None
