"""The dossier clock: the due date, supplement pauses and the outcome (rules R1–R3, R9).

Pure functions over aware datetimes and the working calendar; no I/O.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from service.domain.calendar import (
    LOCAL_TZ,
    WorkingCalendar,
    end_of_local_day,
    local_date,
    start_of_local_day,
)

# The smallest step past an instant: "overdue" means strictly after the due.
TICK = timedelta(microseconds=1)


class Outcome(enum.StrEnum):
    """How a dossier's clock ended (trước hạn, đúng hạn, quá hạn)."""

    EARLY = "early"
    ON_TIME = "on_time"
    LATE = "late"


class OpenState(enum.StrEnum):
    """Where an open dossier stands at a moment (rule R9); the states partition open dossiers."""

    IN_TIME = "in_time"  # trong hạn
    DUE_SOON = "due_soon"  # due by the next working day
    OVERDUE = "overdue"  # quá hạn
    PAUSED = "paused"  # waiting for the citizen's supplement
    READY = "ready"  # clock ended (approved), result not yet returned


def computed_due(
    received_at: datetime, processing_days: int, calendar: WorkingCalendar
) -> datetime:
    """R1: 23:59:59 local on the N-th working day after the receipt's local date."""
    return end_of_local_day(calendar.add_working_days(local_date(received_at), processing_days))


def shift_due(
    due: datetime,
    paused_at: datetime,
    resumed_at: datetime,
    calendar: WorkingCalendar,
) -> datetime:
    """R2: move the due forward by the working days the dossier waited for the citizen.

    k = working days d with date(request) < d ≤ date(resume); the time of day is kept.
    """
    waited = calendar.working_days_between(local_date(paused_at), local_date(resumed_at))
    if waited == 0:
        return due
    local_due = due.astimezone(LOCAL_TZ)
    new_day = calendar.add_working_days(local_due.date(), waited)
    return local_due.replace(year=new_day.year, month=new_day.month, day=new_day.day)


def judge(clock_end: datetime, due: datetime) -> Outcome:
    """R3: late if the clock ended after the due; early if on an earlier local date."""
    if clock_end > due:
        return Outcome.LATE
    if local_date(clock_end) < local_date(due):
        return Outcome.EARLY
    return Outcome.ON_TIME


def running_state(due: datetime, now: datetime, calendar: WorkingCalendar) -> OpenState:
    """R9 for a dossier whose clock runs: overdue, due soon or in time."""
    if now > due:
        return OpenState.OVERDUE
    if local_date(due) <= calendar.next_working_day(local_date(now)):
        return OpenState.DUE_SOON
    return OpenState.IN_TIME


def due_soon_from(due: datetime, calendar: WorkingCalendar) -> datetime:
    """The instant a running dossier turns due-soon: local midnight of the last working day
    before the due's date (from then on, the next working day reaches the due)."""
    return start_of_local_day(calendar.previous_working_day(local_date(due)))


def next_change(due: datetime, now: datetime, calendar: WorkingCalendar) -> datetime | None:
    """When `running_state` will next change with no event, or None if it never will."""
    if now > due:
        return None
    soon = due_soon_from(due, calendar)
    if now < soon:
        return soon
    return due + TICK
