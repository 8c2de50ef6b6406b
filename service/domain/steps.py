"""Processing steps (bước xử lý): who holds a dossier, and whether each step kept its due.

Rules R12–R17 (docs/rules.md). A step belongs to a department of an agency (for liên thông
not necessarily the receiving one); its due is its own, in working time on the dossier's
calendar, and its clock stops with the dossier's supplement pause. The rule engine
(`rules.take`) is what calls these pure functions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas import DossierEvent
from schemas.events import direct_init
from service.domain.building import builder
from service.domain.calendar import (
    LOCAL_TZ,
    WorkingCalendar,
    end_of_local_day,
    local_date,
    start_of_local_day,
)
from service.domain.clock import Outcome, epoch_seconds, shift_due

# What a dossier holds when no step is open: `overdue_held`'s department label.
NO_DEPARTMENT = "none"
# Joins a step mark's parts: codes never hold control characters (schemas/validation.py).
MARK_SEPARATOR = "\x1f"
# Enum members as module constants: an Enum class attribute is a slower lookup.
_LATE, _ON_TIME = Outcome.LATE, Outcome.ON_TIME


@direct_init
@dataclass(frozen=True, slots=True)
class OpenStep:
    """The step a dossier is in: held by `department` of `agency` since `started_at`."""

    step: str
    department: str
    agency: str
    started_at: datetime
    due: datetime  # in force now: shifted by the supplement pauses it sat through


@direct_init
@dataclass(frozen=True, slots=True)
class CompletedStep:
    """A step that ended (completed, replaced by the next, or closed with the dossier)."""

    step: str
    department: str
    agency: str
    completed_ts: float  # when it ended, epoch seconds (as the report facts keep instants)
    outcome: Outcome  # ON_TIME or LATE: R14


# Built for most events (building.py).
_build_open_step = builder(OpenStep)
_build_completed_step = builder(CompletedStep)


def step_due_from_hours(started_at: datetime, hours: int, calendar: WorkingCalendar) -> datetime:
    """R12: `hours` of working time from the start; only working days' hours count.

    The clock runs through a working day's 24 hours and stands still through a day off, so
    16 hours from Friday 10:00 are due Monday 02:00 (local).
    """
    left = timedelta(hours=hours)
    at = started_at.astimezone(LOCAL_TZ)
    day = at.date()
    if not calendar.is_working_day(day):
        day = calendar.next_working_day(day)
        at = start_of_local_day(day)
    while True:
        day_end = start_of_local_day(day + timedelta(days=1))
        if at + left <= day_end:
            return at + left
        left -= day_end - at
        day = calendar.next_working_day(day)
        at = start_of_local_day(day)


def start_step(event: DossierEvent, receiving_agency: str, calendar: WorkingCalendar) -> OpenStep:
    """R12: the step a `step_started` opens, with its due."""
    assert event.step is not None and event.department is not None
    at = event.occurred_at
    if event.step_due_at is not None:
        due = event.step_due_at
    elif event.step_hours is not None:
        due = step_due_from_hours(at, event.step_hours, calendar)
    else:
        assert event.step_days is not None
        due = end_of_local_day(calendar.add_working_days(local_date(at), event.step_days))
    return _build_open_step(event.step, event.department, event.agency or receiving_agency, at, due)


def resume_step(
    step: OpenStep, paused_at: datetime, resumed_at: datetime, calendar: WorkingCalendar
) -> OpenStep:
    """R13: the step's due moves by the working days it waited for the citizen (from the
    pause, or from its own start if it began during the pause)."""
    since = paused_at if paused_at > step.started_at else step.started_at
    due = shift_due(step.due, since, resumed_at, calendar)
    if due == step.due:
        return step
    return _build_open_step(step.step, step.department, step.agency, step.started_at, due)


def finish_step(
    step: OpenStep, at: datetime, paused_at: datetime | None, calendar: WorkingCalendar
) -> CompletedStep:
    """R14: the step ends at `at`; late if that is after its due (paused time excluded)."""
    if paused_at is not None:
        step = resume_step(step, paused_at, at, calendar)
    outcome = _LATE if at > step.due else _ON_TIME
    return _build_completed_step(
        step.step, step.department, step.agency, epoch_seconds(at), outcome
    )


def step_mark_key(agency: str, department: str, outcome: Outcome) -> str:
    """The key of a step-outcome mark: agency, department, outcome."""
    return MARK_SEPARATOR.join((agency, department, outcome.value))


def step_mark_parts(key: str) -> tuple[str, str, Outcome]:
    """`step_mark_key`'s parts back."""
    agency, department, outcome = key.split(MARK_SEPARATOR)
    return agency, department, Outcome(outcome)


def step_marks(steps_done: tuple[CompletedStep, ...]) -> list[tuple[float, str]]:
    """One mark per completed step, at its completion instant: (epoch seconds, key).

    Each mark adds 1 to its key at that instant; a period's step outcomes are the marks
    inside it. A pure function of the dossier's events, as `fold` is.
    """
    return [
        (done.completed_ts, step_mark_key(done.agency, done.department, done.outcome))
        for done in steps_done
    ]


# The step-outcome marks of closed dossiers, as keys of the day totals (domain/history.py).
HISTORY_PREFIX = "step" + MARK_SEPARATOR


def history_marks(steps_done: tuple[CompletedStep, ...]) -> list[tuple[str, float, str]]:
    """`step_marks` as the day totals keep them: (the step's agency, instant, key)."""
    return [
        (done.agency, done.completed_ts, HISTORY_PREFIX + key)
        for done, (_, key) in zip(steps_done, step_marks(steps_done), strict=True)
    ]


def step_outcomes_of_totals(
    totals: Counter[tuple[str, str]],
) -> dict[tuple[str, str], Counter[str]]:
    """Step outcomes per (agency, department) from the day totals' step keys."""
    out: dict[tuple[str, str], Counter[str]] = {}
    for (_, key), count in totals.items():
        agency, department, outcome = step_mark_parts(key[len(HISTORY_PREFIX) :])
        out.setdefault((agency, department), Counter())[outcome.value] += count
    return out


def step_outcomes(
    marks: Iterable[tuple[float, str]], start: float, end: float
) -> dict[tuple[str, str], Counter[str]]:
    """A period's step outcomes per (agency, department): the marks with start ≤ t < end
    (epoch seconds, as `report.period_bounds` gives), counted by outcome."""
    out: dict[tuple[str, str], Counter[str]] = {}
    for instant, key in marks:
        if start <= instant < end:
            agency, department, outcome = step_mark_parts(key)
            out.setdefault((agency, department), Counter())[outcome.value] += 1
    return out
