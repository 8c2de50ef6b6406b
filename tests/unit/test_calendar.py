"""The working calendar: Vietnamese public holidays, make-up Saturdays, operator overrides.

Every expected date below was worked out by hand from a printed calendar and the
announcements (Labour Code 2019 art. 112 and the government's yearly swap notices); the
comment next to each case says how. Nothing here is copied from the code's output.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from service.domain import CalendarError, WorkingCalendar

CAL = WorkingCalendar()
D = date


def _off(*days: date) -> list[tuple[date, bool]]:
    return [(d, False) for d in days]


def _on(*days: date) -> list[tuple[date, bool]]:
    return [(d, True) for d in days]


# --------------------------------------------------------------------------- is_working_day

WORKING_DAY_CASES = [
    # Tết 2026 (Bính Ngọ, day 1 = Tue 2026-02-17): Mon 16 – Fri 20 February off.
    *_off(D(2026, 2, 16), D(2026, 2, 17), D(2026, 2, 18), D(2026, 2, 19), D(2026, 2, 20)),
    # ... the weekends around it, and the working days just outside it.
    *_off(D(2026, 2, 14), D(2026, 2, 15), D(2026, 2, 21), D(2026, 2, 22)),
    *_on(D(2026, 2, 12), D(2026, 2, 13), D(2026, 2, 23)),
    # Tết 2027 (Đinh Mùi, day 1 = Sat 2027-02-06): Thu 4 – Wed 10 February off; the
    # holidays on Sat 6 and Sun 7 are made up by Mon 8 – Wed 10 (observed).
    *_off(D(2027, 2, 4), D(2027, 2, 5), D(2027, 2, 8), D(2027, 2, 9), D(2027, 2, 10)),
    *_off(D(2027, 2, 6), D(2027, 2, 7)),
    *_on(D(2027, 2, 3), D(2027, 2, 11), D(2027, 2, 12)),
    # Hùng Kings 2026: 10/3 lunar = Sun 2026-04-26, observed on Mon 2026-04-27.
    *_off(D(2026, 4, 26), D(2026, 4, 27)),
    *_on(D(2026, 4, 24), D(2026, 4, 28), D(2026, 4, 29)),
    # 30/4 and 1/5: 2026 Thu + Fri; 2025 Wed + Thu.
    *_off(D(2026, 4, 30), D(2026, 5, 1), D(2025, 4, 30), D(2025, 5, 1)),
    *_on(D(2026, 5, 4), D(2025, 4, 29)),
    # 2/9 + an adjacent day: 2025 Mon 1 + Tue 2 September; 2026 Tue 1 + Wed 2 September.
    *_off(D(2025, 9, 1), D(2025, 9, 2), D(2026, 9, 1), D(2026, 9, 2)),
    *_on(D(2025, 9, 3), D(2026, 9, 3)),
    # Vietnam Culture Day 24/11, from 2026 only: Tue 2026-11-24 off, Mon 2025-11-24 worked.
    *_off(D(2026, 11, 24)),
    *_on(D(2025, 11, 24), D(2026, 11, 23), D(2026, 11, 25)),
    # New Year's Day 2026 is a Thursday.
    *_off(D(2026, 1, 1)),
    # Make-up Saturdays (announced swaps): Sat 2025-04-26 worked for Fri 2025-05-02 off;
    # Sat 2026-08-22 worked for Mon 2026-08-31 off.
    *_on(D(2025, 4, 26), D(2026, 8, 22)),
    *_off(D(2025, 5, 2), D(2026, 8, 31)),
    # Ordinary weekends stay off, ordinary weekdays stay on.
    *_off(D(2026, 3, 7), D(2026, 3, 8), D(2025, 4, 27), D(2026, 8, 23)),
    *_on(D(2026, 3, 5), D(2026, 3, 6), D(2026, 3, 9)),
]


@pytest.mark.parametrize(("day", "working"), WORKING_DAY_CASES, ids=str)
def test_is_working_day(day: date, working: bool) -> None:
    assert CAL.is_working_day(day) is working


def test_weekday_days_off_2026_are_exactly_the_announced_ones() -> None:
    # Listed by hand: 1/1 (Thu), Tết Mon 16 – Fri 20 Feb, Hùng Kings observed Mon 27 Apr,
    # 30/4 (Thu), 1/5 (Fri), the 2/9 bridge Mon 31 Aug (swapped with Sat 22 Aug),
    # Tue 1 + Wed 2 Sep, Culture Day Tue 24 Nov.
    assert CAL.days_off_on_weekdays(2026) == [
        D(2026, 1, 1),
        D(2026, 2, 16),
        D(2026, 2, 17),
        D(2026, 2, 18),
        D(2026, 2, 19),
        D(2026, 2, 20),
        D(2026, 4, 27),
        D(2026, 4, 30),
        D(2026, 5, 1),
        D(2026, 8, 31),
        D(2026, 9, 1),
        D(2026, 9, 2),
        D(2026, 11, 24),
    ]


@pytest.mark.parametrize(("year", "saturday"), [(2025, D(2025, 4, 26)), (2026, D(2026, 8, 22))])
def test_makeup_saturdays_are_listed(year: int, saturday: date) -> None:
    assert saturday.weekday() == 5
    assert saturday in CAL.makeup_working_days(year)


# --------------------------------------------------------------------------- Tết 2030


def test_tet_2030_is_february_2_in_vietnam() -> None:
    # The Vietnamese lunar calendar (UTC+7) puts the new moon of Tết 2030 on Sat 2 Feb;
    # the Chinese one (UTC+8) on Sun 3 Feb. Compare the names with a year whose Tết is
    # beyond doubt: Tết 2026 day 1 = Tue 17 Feb, its eve Mon 16 Feb, day 2 Wed 18 Feb.
    day1 = CAL.holiday_name(D(2026, 2, 17))
    eve = CAL.holiday_name(D(2026, 2, 16))
    day2 = CAL.holiday_name(D(2026, 2, 18))
    assert day1 and eve and day2
    assert len({day1, eve, day2}) == 3
    assert CAL.holiday_name(D(2030, 2, 2)) == day1
    assert CAL.holiday_name(D(2030, 2, 1)) == eve
    assert CAL.holiday_name(D(2030, 2, 3)) == day2
    assert CAL.holiday_name(D(2030, 2, 3)) != day1


def test_hung_kings_2026_is_sunday_observed_monday() -> None:
    sunday = CAL.holiday_name(D(2026, 4, 26))
    monday = CAL.holiday_name(D(2026, 4, 27))
    assert sunday is not None and monday is not None
    assert D(2026, 4, 26).weekday() == 6
    assert CAL.holiday_name(D(2026, 4, 28)) is None


# --------------------------------------------------------------------------- counting


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        # Fri 13 Feb 2026; 14–15 weekend, 16–20 Tết, 21–22 weekend → Mon 23 is day 1.
        (D(2026, 2, 13), 1, D(2026, 2, 23)),
        # ... Tue 24 day 2, Wed 25 day 3.
        (D(2026, 2, 13), 3, D(2026, 2, 25)),
        # Wed 3 Feb 2027; Thu 4 – Wed 10 off → Thu 11 day 1, Fri 12 day 2, Mon 15 day 3.
        (D(2027, 2, 3), 1, D(2027, 2, 11)),
        (D(2027, 2, 3), 3, D(2027, 2, 15)),
        # Fri 24 Apr 2026; 25–26 weekend, Mon 27 observed Hùng Kings → Tue 28 day 1.
        (D(2026, 4, 24), 1, D(2026, 4, 28)),
        # ... Wed 29 day 2; Thu 30/4, Fri 1/5, weekend → Mon 4 May day 3.
        (D(2026, 4, 24), 2, D(2026, 4, 29)),
        (D(2026, 4, 24), 3, D(2026, 5, 4)),
        # Fri 25 Apr 2025 → Sat 26 (make-up) day 1; Sun off; Mon 28 day 2; Tue 29 day 3;
        # Wed 30, Thu 1, Fri 2 (swapped) off, weekend → Mon 5 May day 4.
        (D(2025, 4, 25), 1, D(2025, 4, 26)),
        (D(2025, 4, 25), 2, D(2025, 4, 28)),
        (D(2025, 4, 25), 4, D(2025, 5, 5)),
        # Fri 21 Aug 2026 → Sat 22 (make-up) day 1.
        (D(2026, 8, 21), 1, D(2026, 8, 22)),
        # Fri 28 Aug 2026: weekend, Mon 31 (swapped), Tue 1, Wed 2 off → Thu 3 Sep.
        (D(2026, 8, 28), 1, D(2026, 9, 3)),
        # Mon 23 Nov 2026: Tue 24 Culture Day → Wed 25 day 1.
        (D(2026, 11, 23), 1, D(2026, 11, 25)),
        # Ordinary week: Thu 5 Mar 2026 + 2 → Fri 6, Mon 9.
        (D(2026, 3, 5), 2, D(2026, 3, 9)),
        # Starting on a weekend: Sat 7 Mar 2026 + 1 → Mon 9.
        (D(2026, 3, 7), 1, D(2026, 3, 9)),
        # n = 0 is the start itself.
        (D(2026, 3, 7), 0, D(2026, 3, 7)),
        # Ten working days from Mon 2 Mar 2026: 3,4,5,6,9,10,11,12,13,16 → Mon 16 Mar.
        (D(2026, 3, 2), 10, D(2026, 3, 16)),
    ],
)
def test_add_working_days(start: date, n: int, expected: date) -> None:
    assert CAL.add_working_days(start, n) == expected


def test_add_working_days_rejects_negative() -> None:
    with pytest.raises(ValueError):
        CAL.add_working_days(D(2026, 3, 5), -1)


@pytest.mark.parametrize(
    ("after", "until", "expected"),
    [
        # (Fri 13 Feb, Mon 23 Feb 2026]: only Mon 23 is worked.
        (D(2026, 2, 13), D(2026, 2, 23), 1),
        # (Wed 11 Feb, Tue 24 Feb 2026]: Thu 12, Fri 13, Mon 23, Tue 24.
        (D(2026, 2, 11), D(2026, 2, 24), 4),
        # (Mon 2, Mon 9 Mar 2026]: Tue–Fri + Mon.
        (D(2026, 3, 2), D(2026, 3, 9), 5),
        # (Fri 25 Apr, Mon 5 May 2025]: Sat 26 (make-up), Mon 28, Tue 29, Mon 5.
        (D(2025, 4, 25), D(2025, 5, 5), 4),
        # (Fri 24 Apr, Tue 28 Apr 2026]: Mon 27 is observed Hùng Kings → only Tue 28.
        (D(2026, 4, 24), D(2026, 4, 28), 1),
        # Same day, or until before after: nothing.
        (D(2026, 3, 5), D(2026, 3, 5), 0),
        (D(2026, 3, 9), D(2026, 3, 5), 0),
        # (Fri 6, Sun 8 Mar 2026]: weekend only.
        (D(2026, 3, 6), D(2026, 3, 8), 0),
    ],
)
def test_working_days_between(after: date, until: date, expected: int) -> None:
    assert CAL.working_days_between(after, until) == expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        # Before Mon 23 Feb 2026: weekend, Tết 16–20, weekend → Fri 13 Feb.
        (D(2026, 2, 23), D(2026, 2, 13)),
        # Before Tue 28 Apr 2026: Mon 27 observed, weekend → Fri 24 Apr.
        (D(2026, 4, 28), D(2026, 4, 24)),
        # Before Mon 28 Apr 2025 and before Sun 27 Apr 2025: Sat 26 (make-up).
        (D(2025, 4, 28), D(2025, 4, 26)),
        (D(2025, 4, 27), D(2025, 4, 26)),
        # Before Thu 3 Sep 2026: Wed 2, Tue 1, Mon 31 off, weekend → Fri 28 Aug.
        (D(2026, 9, 3), D(2026, 8, 28)),
        # Before Thu 11 Feb 2027: Thu 4 – Wed 10 off → Wed 3 Feb.
        (D(2027, 2, 11), D(2027, 2, 3)),
        # Ordinary: before Tue 10 Mar 2026 → Mon 9; before Mon 9 → Fri 6.
        (D(2026, 3, 10), D(2026, 3, 9)),
        (D(2026, 3, 9), D(2026, 3, 6)),
    ],
)
def test_previous_working_day(day: date, expected: date) -> None:
    assert CAL.previous_working_day(day) == expected


def test_next_working_day() -> None:
    # Fri 13 Feb 2026 → Mon 23 Feb (Tết); Fri 25 Apr 2025 → Sat 26 (make-up).
    assert CAL.next_working_day(D(2026, 2, 13)) == D(2026, 2, 23)
    assert CAL.next_working_day(D(2025, 4, 25)) == D(2025, 4, 26)


# --------------------------------------------------------------------------- overrides


def test_overrides_from_toml(tmp_path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text(
        "# the province's own swaps\n"
        "days_off = [2026-03-09, 2026-08-22]\n"  # a Monday; and a make-up Saturday undone
        "working_days = [2026-03-07, 2026-11-24]\n",  # a Saturday; and a holiday worked
        encoding="utf-8",
    )
    cal = WorkingCalendar.from_file(path)
    assert cal.is_working_day(D(2026, 3, 9)) is False
    assert cal.is_working_day(D(2026, 8, 22)) is False
    assert cal.is_working_day(D(2026, 3, 7)) is True
    assert cal.is_working_day(D(2026, 11, 24)) is True
    # Everything else is unchanged.
    assert cal.is_working_day(D(2026, 3, 10)) is True
    assert cal.is_working_day(D(2026, 3, 8)) is False
    assert cal.is_working_day(D(2026, 2, 17)) is False
    assert cal.is_working_day(D(2025, 4, 26)) is True
    # Counting uses the overrides: Fri 6 Mar + 1 → Sat 7 (worked); + 2 → Mon 9 is off →
    # Tue 10.
    assert cal.add_working_days(D(2026, 3, 6), 1) == D(2026, 3, 7)
    assert cal.add_working_days(D(2026, 3, 6), 2) == D(2026, 3, 10)
    assert cal.working_days_between(D(2026, 3, 6), D(2026, 3, 10)) == 2
    assert cal.previous_working_day(D(2026, 3, 10)) == D(2026, 3, 7)
    # The default calendar is not affected by someone else's overrides.
    assert CAL.is_working_day(D(2026, 3, 9)) is True
    assert CAL.add_working_days(D(2026, 3, 6), 2) == D(2026, 3, 10)
    assert CAL.add_working_days(D(2026, 3, 6), 1) == D(2026, 3, 9)


def test_overrides_file_may_be_empty_or_partial(tmp_path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    assert WorkingCalendar.from_file(empty).is_working_day(D(2026, 3, 9)) is True
    partial = tmp_path / "partial.toml"
    partial.write_text("working_days = [2026-03-07]\n", encoding="utf-8")
    cal = WorkingCalendar.from_file(str(partial))
    assert cal.is_working_day(D(2026, 3, 7)) is True
    assert cal.is_working_day(D(2026, 2, 17)) is False


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("days_off = [2026-03-09", id="unclosed-list"),
        pytest.param("days_off = 2026-03-09\n", id="not-a-list"),
        pytest.param('days_off = ["2026-03-09"]\n', id="strings-not-dates"),
        pytest.param("days_off = [2026-03-09T00:00:00]\n", id="datetime-not-date"),
        pytest.param("working_days = [20260307]\n", id="integers"),
        pytest.param("holidays = [2026-03-09]\n", id="unknown-key"),
        pytest.param(
            "days_off = [2026-03-09]\nworking_days = [2026-03-09]\n", id="both-off-and-working"
        ),
        pytest.param("this is not toml at all", id="garbage"),
    ],
)
def test_malformed_overrides_raise_calendar_error(tmp_path, content: str) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CalendarError):
        WorkingCalendar.from_file(path)


def test_unreadable_overrides_raise_calendar_error(tmp_path) -> None:
    with pytest.raises(CalendarError):
        WorkingCalendar.from_file(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"days_off = [\xff\xfe]\n")
    with pytest.raises(CalendarError):
        WorkingCalendar.from_file(binary)


# --------------------------------------------------------------------------- is_open_at

ICT = timezone(timedelta(hours=7))

OPEN_AT_CASES = [
    # Mon 7 Dec 2026, an ordinary working day: 07:30 up to, not including, 17:00 local.
    (datetime(2026, 12, 7, 7, 29, 59, tzinfo=ICT), False),
    (datetime(2026, 12, 7, 7, 30, tzinfo=ICT), True),
    (datetime(2026, 12, 7, 16, 59, 59, tzinfo=ICT), True),
    (datetime(2026, 12, 7, 17, 0, tzinfo=ICT), False),
    # The same 10:00 local given in UTC (03:00): the local clock decides.
    (datetime(2026, 12, 7, 3, 0, tzinfo=UTC), True),
    # 23:30 UTC on Sun 6 Dec is 06:30 local on Monday: before opening.
    (datetime(2026, 12, 6, 23, 30, tzinfo=UTC), False),
    # Wed 2 Sep 2026, National Day: a weekday, closed all day.
    (datetime(2026, 9, 2, 10, 0, tzinfo=ICT), False),
    # Sat 22 Aug 2026, the announced make-up working Saturday: open.
    (datetime(2026, 8, 22, 10, 0, tzinfo=ICT), True),
    # Sat 29 Aug 2026, an ordinary Saturday: closed.
    (datetime(2026, 8, 29, 10, 0, tzinfo=ICT), False),
]


@pytest.mark.parametrize(("moment", "open_"), OPEN_AT_CASES)
def test_a_center_is_open_on_working_days_from_0730_until_1700(
    moment: datetime, open_: bool
) -> None:
    assert CAL.is_open_at(moment) is open_


def test_an_operator_day_off_closes_the_center() -> None:
    # Fri 4 Dec 2026 is an ordinary working day until the operator's file says otherwise.
    moment = datetime(2026, 12, 4, 10, 0, tzinfo=ICT)
    assert CAL.is_open_at(moment)
    assert not WorkingCalendar(extra_days_off=frozenset({D(2026, 12, 4)})).is_open_at(moment)
