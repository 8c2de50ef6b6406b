"""A dossier's state as a value, and what it adds to the live counters (rules R9, R11, R17).

`Dossier` is what the events say about one dossier (rules.py makes it, event by event;
progress.fold from a whole set). `contribution` says what the dossier adds to each live
counter at a moment `now`; the service sums contributions, never increments blindly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas import Channel, EventType
from schemas.events import direct_init
from service.domain.calendar import WorkingCalendar
from service.domain.clock import OpenState, Outcome, next_change, running_state
from service.domain.steps import NO_DEPARTMENT, CompletedStep, OpenStep

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
        return self.closed_by is _WITHDRAWN and self.clock_end is None


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
# Enum members as module constants: an Enum class attribute is a slower lookup, and
# contribution reads several for every touched dossier.
_WITHDRAWN = EventType.WITHDRAWN
_READY = OpenState.READY
_PAUSED_STATE = OpenState.PAUSED
_NO_DUE = OpenState.NO_DUE
_OVERDUE = OpenState.OVERDUE


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
    if closed_by is _WITHDRAWN and clock_end is None:
        keys.append(("withdrawn", agency))
    # open_state and became_overdue, sharing what they look at (one judgement of `now`).
    state: OpenState | None = None
    if closed_by is None:
        if clock_end is not None:
            state = _READY
        elif dossier.paused_at is not None:
            state = _PAUSED_STATE
        elif dossier.due is None:
            state = _NO_DUE
        else:
            state = running_state(dossier.due, now, calendar)
    if dossier.passed_due or state is _OVERDUE:
        keys.append(("became_overdue", agency))
    if state is not None:
        value = _STATE_VALUES[state]
        keys.append(("open", agency, value))
        # Per-procedure detail for the JSON drill-down; never exported as metric labels.
        keys.append(("open_procedure", agency, dossier.procedure or "", value))
        if state is _OVERDUE and dossier.apology_at is None:
            keys.append(("overdue_without_apology", agency))
    step = dossier.step
    for done in dossier.steps_done:  # R17: the step's own agency answers for it
        keys.append(
            ("steps_completed", done.agency, done.department, _OUTCOME_VALUES[done.outcome])
        )
    if step is not None:
        # A step is open only while the clock counts (R15): running, or paused with it.
        if state is _PAUSED_STATE:
            step_state = _PAUSED
        else:
            step_state = _STATE_VALUES[running_state(step.due, now, calendar)]
        keys.append(("steps_open", step.agency, step.department, step_state))
    if state is _OVERDUE:
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
