"""The dossier clock: the due date, supplement pauses and the outcome (rules R1–R3, R9).

Pure functions over aware datetimes and the working calendar; no I/O.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache

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
    NO_DUE = "no_due"  # running with no appointment and no time limit: never judged (R11)


# Enum members as module constants: an Enum class attribute is a slower lookup (judged for
# every running dossier a batch touches).
_LATE, _EARLY, _ON_TIME = Outcome.LATE, Outcome.EARLY, Outcome.ON_TIME
_OVERDUE, _DUE_SOON, _IN_TIME = OpenState.OVERDUE, OpenState.DUE_SOON, OpenState.IN_TIME


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
# The epoch in each fixed offset seen (schemas/validation.py shares one zone per offset).
_EPOCHS: dict[timezone, datetime] = {}


def epoch_seconds(moment: datetime) -> float:
    """`moment.timestamp()`, the same float. For a fixed offset (what every event carries)
    the epoch in the same zone is subtracted: datetimes of one zone subtract without asking
    it for offsets, and dividing by a second divides the same microseconds the same way."""
    zone = moment.tzinfo
    if type(zone) is not timezone:
        return moment.timestamp()
    epoch = _EPOCHS.get(zone)
    if epoch is None:
        if len(_EPOCHS) >= 256:
            _EPOCHS.clear()
        epoch = _EPOCHS[zone] = _EPOCH.astimezone(zone)
    return (moment - epoch) / _SECOND


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
        return _LATE
    if local_date(clock_end) < local_date(due):
        return _EARLY
    return _ON_TIME


class Moment:
    """One `now` with what every dossier judged at it shares: `now` in each due's fixed
    offset (datetimes of one tzinfo object compare much faster than across zones) and
    the next working day after today. The worker judges a whole batch at one `now`."""

    __slots__ = ("_zoned", "calendar", "changes", "next_working_day", "now", "states")

    def __init__(self, now: datetime, calendar: WorkingCalendar) -> None:
        self.now = now
        self.calendar = calendar
        self.next_working_day = calendar.next_working_day(local_date(now))
        self._zoned: dict[object, datetime] = {now.tzinfo: now}
        # Per due judged at `now`: its `running_state` and its `next_change` (dossiers share
        # dues: a computed due is one datetime per day). Keyed by the datetime, fold 0 only
        # (see `_in_utc`); at most MOMENT_CACHE of each, so a rebuild's one `now` stays small.
        self.states: dict[datetime, OpenState] = {}
        self.changes: dict[datetime, object] = {}

    def like(self, moment: datetime) -> datetime:
        """`now`, in the time zone of `moment` when that makes comparing them cheaper and
        still exact: a fixed offset (a zone with daylight saving or other changes of offset
        compares wall times as equal across a repeated hour, so `now` stays as it is)."""
        zone = moment.tzinfo
        now = self._zoned.get(zone)
        if now is None:
            now = self.now.astimezone(zone) if type(zone) is timezone else self.now
            self._zoned[zone] = now
        return now

    def after(self, moment: datetime) -> bool:
        """now > moment."""
        zone = moment.tzinfo
        if type(zone) is not timezone and zone is not None:
            moment, zone = _in_utc(moment), UTC
        now = self._zoned.get(zone)  # `like`, without a call when known
        return (now if now is not None else self.like(moment)) > moment

    def before(self, moment: datetime) -> bool:
        """now < moment."""
        zone = moment.tzinfo
        if type(zone) is not timezone and zone is not None:
            moment, zone = _in_utc(moment), UTC
        now = self._zoned.get(zone)
        return (now if now is not None else self.like(moment)) < moment


# Instants in a zone with rules (a ZoneInfo, as computed dues are) as the same instants in
# UTC, for `Moment`: comparing across zones asks each side's zone for its offset, a zone
# with rules by looking them up, and a due is judged again at every batch and tick. Keyed by
# the datetime (which keeps its own hash), fold 0 only: two wall times of one zone that
# differ only by fold compare equal but are different instants. Emptied when full.
_IN_UTC: dict[datetime, datetime] = {}
IN_UTC_SIZE = 16384


def _in_utc(moment: datetime) -> datetime:
    if moment.fold:
        return moment.astimezone(UTC)
    found = _IN_UTC.get(moment)
    if found is None:
        if len(_IN_UTC) >= IN_UTC_SIZE:
            _IN_UTC.clear()
        found = _IN_UTC[moment] = moment.astimezone(UTC)
    return found


MOMENT_CACHE = 4096
_UNKNOWN = object()  # not in `Moment.changes`
_PAST_DUE = object()  # in `Moment.changes`: the change is a tick past the due itself

# The last Moment made: replaced whole, so a thread sees a consistent one or makes its own.
_MOMENT: Moment | None = None


def moment(now: datetime, calendar: WorkingCalendar) -> Moment:
    """The shared `Moment` for `now` (made again only when `now` or the calendar changes)."""
    global _MOMENT
    last = _MOMENT
    if last is not None and last.now is now and last.calendar is calendar:
        return last
    last = _MOMENT = Moment(now, calendar)
    return last


def running_state(due: datetime, now: datetime, calendar: WorkingCalendar) -> OpenState:
    """R9 for a dossier whose clock runs: overdue, due soon or in time."""
    at = moment(now, calendar)
    known = at.states.get(due) if not due.fold else None
    if known is not None:
        return known
    if at.after(due):
        state = _OVERDUE
    elif local_date(due) <= at.next_working_day:
        state = _DUE_SOON
    else:
        state = _IN_TIME
    if not due.fold and len(at.states) < MOMENT_CACHE:
        at.states[due] = state
    return state


def due_soon_from(due: datetime, calendar: WorkingCalendar) -> datetime:
    """The instant a running dossier turns due-soon: local midnight of the last working day
    before the due's date (from then on, the next working day reaches the due)."""
    return _due_soon_from(local_date(due), calendar.extra_days_off, calendar.extra_working_days)


@lru_cache(maxsize=4096)
def _due_soon_from(
    due_day: date, extra_off: frozenset[date], extra_working: frozenset[date]
) -> datetime:
    # Cached: dues fall on a few hundred dates a year. Keyed by the calendar's sets, which
    # keep their hash, as calendar.py's caches are (the calendar's own hash is computed).
    calendar = WorkingCalendar(extra_off, extra_working)
    return start_of_local_day(calendar.previous_working_day(due_day))


def next_change(due: datetime, now: datetime, calendar: WorkingCalendar) -> datetime | None:
    """When `running_state` will next change with no event, or None if it never will."""
    at = moment(now, calendar)
    cached = not due.fold
    if cached:
        known = at.changes.get(due, _UNKNOWN)
        if known is not _UNKNOWN:
            # Past the due: computed again, in the due's own zone (an equal due may not be).
            return due + TICK if known is _PAST_DUE else known  # type: ignore[return-value]
    when: datetime | None
    if at.after(due):
        when = None
    else:
        soon = due_soon_from(due, calendar)
        when = soon if at.before(soon) else due + TICK
    if cached and len(at.changes) < MOMENT_CACHE:
        at.changes[due] = when if when is None or when is soon else _PAST_DUE
    return when
