"""Vietnam's working calendar for the dossier clock.

A working day is Monday–Friday that is not a public holiday (Labour Code 2019, art. 112,
with observed and substituted days), plus the make-up working Saturdays the government
announces when it swaps days. Dates are local (Asia/Ho_Chi_Minh). The `holidays` package
computes the Vietnamese lunar calendar at UTC+7 (Tết 2030 is 2 Feb here, 3 Feb in China).
Operators add the year's announced swaps in a TOML file:

    days_off = [2027-04-30]          # extra non-working days
    working_days = [2027-04-24]      # extra working days (make-up Saturdays)
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# A center's opening hours on a working day, local time: when center systems send events
# (the stalled-pipeline alert expects events only then).
OPENS_AT = time(7, 30)
CLOSES_AT = time(17, 0)


class CalendarError(ValueError):
    """The calendar overrides file is unreadable or malformed."""


def _makeup_working_days(years: Iterable[int]) -> set[date]:
    """Make-up working days recorded by `holidays` for its substituted days off.

    The VN calendar stores each swap as (month, day, from_month, from_day[, from_year]):
    the first date is a day off, the `from` date is worked instead (e.g. 2026-08-22).
    """
    from holidays.countries.vietnam import VietnamStaticHolidays

    found: set[date] = set()
    # One swap (a tuple of ints) or a tuple of swaps: holidays leaves the class attribute
    # unannotated, so its inferred type says only `tuple[object, ...]`.
    swaps: Mapping[int, tuple[Any, ...]] = VietnamStaticHolidays.special_public_holidays
    for year in years:
        entries = swaps.get(year, ())
        if entries and isinstance(entries[0], int):
            entries = (entries,)
        for entry in entries:
            if len(entry) >= 4:
                from_year = entry[4] if len(entry) >= 5 else year
                found.add(date(from_year, entry[2], entry[3]))
    return found


@dataclass(frozen=True)
class WorkingCalendar:
    """Which local dates are working days, and counting across them."""

    extra_days_off: frozenset[date] = field(default_factory=frozenset)
    extra_working_days: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def from_file(cls, path: Path | str) -> WorkingCalendar:
        """Load operator overrides (see the module docstring for the format)."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CalendarError(f"cannot read calendar file {path}: {exc}") from None
        unknown = set(data) - {"days_off", "working_days"}
        if unknown:
            raise CalendarError(f"{path}: unknown keys {sorted(unknown)}")

        def dates(key: str) -> frozenset[date]:
            values = data.get(key, [])
            if not isinstance(values, list) or not all(
                isinstance(v, date) and not isinstance(v, datetime) for v in values
            ):
                raise CalendarError(f"{path}: {key} must be a list of dates like 2027-04-24")
            return frozenset(values)

        days_off, working = dates("days_off"), dates("working_days")
        if days_off & working:
            clash = min(days_off & working)
            raise CalendarError(f"{path}: {clash} is both a day off and a working day")
        return cls(extra_days_off=days_off, extra_working_days=working)

    def is_working_day(self, day: date) -> bool:
        return _is_working_day(day, self.extra_days_off, self.extra_working_days)

    def is_open_at(self, moment: datetime) -> bool:
        """A center is open at `moment` (aware): a working day by this calendar (holidays
        off, make-up Saturdays on) and, local time, from OPENS_AT until before CLOSES_AT."""
        local = moment.astimezone(LOCAL_TZ)
        return OPENS_AT <= local.time() < CLOSES_AT and self.is_working_day(local.date())

    def holiday_name(self, day: date) -> str | None:
        return _holidays_for(day.year).get(day)

    def makeup_working_days(self, year: int) -> list[date]:
        """Weekend days that are worked in `year` (announced swaps and overrides)."""
        days = {d for d in _makeup_days_for(year) if d.year == year}
        days |= {d for d in self.extra_working_days if d.year == year}
        return sorted(d for d in days if d.weekday() >= 5 and d not in self.extra_days_off)

    def days_off_on_weekdays(self, year: int) -> list[date]:
        """Monday–Friday dates of `year` that are not worked."""
        day, end, out = date(year, 1, 1), date(year, 12, 31), []
        while day <= end:
            if day.weekday() < 5 and not self.is_working_day(day):
                out.append(day)
            day += timedelta(days=1)
        return out

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after `start` (`start` itself is not counted)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        return _add_working_days(start, n, self.extra_days_off, self.extra_working_days)

    def working_days_between(self, after: date, until: date) -> int:
        """How many working days d satisfy after < d ≤ until (0 if until ≤ after)."""
        count, day = 0, after + timedelta(days=1)
        while day <= until:
            if self.is_working_day(day):
                count += 1
            day += timedelta(days=1)
        return count

    def next_working_day(self, day: date) -> date:
        return self.add_working_days(day, 1)

    def previous_working_day(self, day: date) -> date:
        """The last working day strictly before `day`."""
        day -= timedelta(days=1)
        while not self.is_working_day(day):
            day -= timedelta(days=1)
        return day


def local_date(moment: datetime) -> date:
    """The date at the center (Asia/Ho_Chi_Minh) of an aware datetime."""
    return moment.astimezone(LOCAL_TZ).date()


# Cached: dues and step dues fall on a few hundred days a year, and one datetime shared by
# the dossiers of a day is one object for the clock's caches (clock.py) to find again.
@lru_cache(maxsize=4096)
def end_of_local_day(day: date) -> datetime:
    """23:59:59 local on `day`: the computed due (rule R1)."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=LOCAL_TZ)


@lru_cache(maxsize=4096)
def start_of_local_day(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=LOCAL_TZ)


@lru_cache(maxsize=256)
def _holidays_for(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("VN", years=year)


@lru_cache(maxsize=256)
def _makeup_days_for(year: int) -> frozenset[date]:
    # A swap may reach into the previous or next year (2015-01-02 for 2014-12-27).
    return frozenset(_makeup_working_days((year - 1, year, year + 1)))


@lru_cache(maxsize=65536)
def _add_working_days(
    start: date, n: int, extra_off: frozenset[date], extra_working: frozenset[date]
) -> date:
    # Cached: a center's receipts share a few hundred (date, time limit) pairs a year.
    day, counted = start, 0
    while counted < n:
        day += timedelta(days=1)
        if _is_working_day(day, extra_off, extra_working):
            counted += 1
    return day


@lru_cache(maxsize=65536)
def _is_working_day(day: date, extra_off: frozenset[date], extra_working: frozenset[date]) -> bool:
    if day in extra_off:
        return False
    if day in extra_working or day in _makeup_days_for(day.year):
        return True
    return day.weekday() < 5 and day not in _holidays_for(day.year)


DEFAULT_CALENDAR = WorkingCalendar()
