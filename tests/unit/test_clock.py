"""The dossier clock (rules R1, R2, R3, R9) on hand-computed cases.

Dates are worked out from a printed calendar; the comment on each case shows the count.
`T` parses an RFC 3339 string so that the instants read like the events producers send.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest

from service.domain import LOCAL_TZ, OpenState, Outcome, WorkingCalendar
from service.domain.clock import (
    Moment,
    computed_due,
    due_soon_from,
    epoch_seconds,
    judge,
    next_change,
    running_state,
    shift_due,
)

CAL = WorkingCalendar()
US = timedelta(microseconds=1)


def T(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --------------------------------------------------------------------------- R1


@pytest.mark.parametrize(
    ("received", "days", "due"),
    [
        # Fri 13 Feb 2026 10:00: weekend, Tết 16–20, weekend; Mon 23 (1), Tue 24 (2), Wed 25 (3).
        ("2026-02-13T10:00:00+07:00", 3, "2026-02-25T23:59:59+07:00"),
        ("2026-02-13T10:00:00+07:00", 1, "2026-02-23T23:59:59+07:00"),
        # Thu 12 Feb 2026 17:30 UTC is Fri 13 Feb 00:30 local → 1 day = Mon 23 Feb
        # (counting from the UTC date, Thu 12, would give Fri 13).
        ("2026-02-12T17:30:00Z", 1, "2026-02-23T23:59:59+07:00"),
        # Wed 3 Feb 2027: Thu 4 – Wed 10 off; Thu 11 (1), Fri 12 (2), Mon 15 (3).
        ("2027-02-03T10:00:00+07:00", 3, "2027-02-15T23:59:59+07:00"),
        # Tue 2 Feb 2027 + 2: Wed 3 (1), then Tết → Thu 11 (2).
        ("2027-02-02T15:00:00+07:00", 2, "2027-02-11T23:59:59+07:00"),
        # Fri 24 Apr 2026: weekend, Mon 27 observed Hùng Kings → Tue 28 (1).
        ("2026-04-24T09:00:00+07:00", 1, "2026-04-28T23:59:59+07:00"),
        # ... Wed 29 (2), then 30/4, 1/5, weekend → Mon 4 May (3).
        ("2026-04-24T09:00:00+07:00", 3, "2026-05-04T23:59:59+07:00"),
        # Fri 25 Apr 2025: Sat 26 is a make-up working day → due Sat 26 (1).
        ("2025-04-25T09:00:00+07:00", 1, "2025-04-26T23:59:59+07:00"),
        # ... Mon 28 (2), Tue 29 (3), 30/4, 1/5, Fri 2 (swapped), weekend → Mon 5 May (4).
        ("2025-04-25T09:00:00+07:00", 4, "2025-05-05T23:59:59+07:00"),
        # Fri 21 Aug 2026 → Sat 22 (make-up) (1); Fri 28 Aug → Thu 3 Sep (1).
        ("2026-08-21T09:00:00+07:00", 1, "2026-08-22T23:59:59+07:00"),
        ("2026-08-28T09:00:00+07:00", 1, "2026-09-03T23:59:59+07:00"),
        # Thu 5 Mar 2026 18:30 UTC = Fri 6 Mar 01:30 local → Mon 9 (1)
        # (from the UTC date it would be Fri 6).
        ("2026-03-05T18:30:00Z", 1, "2026-03-09T23:59:59+07:00"),
        # Received on a Saturday (online): Sat 7 Mar 2026 → Mon 9 (1).
        ("2026-03-07T10:00:00+07:00", 1, "2026-03-09T23:59:59+07:00"),
        # At 23:59:59 local the receipt is still that local day: Thu 5 → Fri 6 (1).
        ("2026-03-05T23:59:59+07:00", 1, "2026-03-06T23:59:59+07:00"),
        # Mon 23 Nov 2026 → Tue 24 is Culture Day → Wed 25 (1).
        ("2026-11-23T08:00:00+07:00", 1, "2026-11-25T23:59:59+07:00"),
    ],
)
def test_computed_due(received: str, days: int, due: str) -> None:
    got = computed_due(T(received), days, CAL)
    assert got == T(due)
    assert got.astimezone(LOCAL_TZ).time() == time(23, 59, 59)


# --------------------------------------------------------------------------- R2


@pytest.mark.parametrize(
    ("due", "paused", "resumed", "expected"),
    [
        # Paused Thu 12 Feb 2026, resumed Tue 24 Feb: k = Fri 13, Mon 23, Tue 24 = 3
        # (the Tết days and weekends do not count). Fri 13 + 3 = Mon 23, Tue 24, Wed 25.
        (
            "2026-02-13T23:59:59+07:00",
            "2026-02-12T10:00:00+07:00",
            "2026-02-24T09:00:00+07:00",
            "2026-02-25T23:59:59+07:00",
        ),
        # Time of day kept: due Tue 10 Mar 17:00; paused Mon 9, resumed Wed 11 → k = 10, 11 = 2
        # → Thu 12 Mar 17:00.
        (
            "2026-03-10T17:00:00+07:00",
            "2026-03-09T10:00:00+07:00",
            "2026-03-11T08:00:00+07:00",
            "2026-03-12T17:00:00+07:00",
        ),
        # The same due written in UTC (10:00Z = 17:00 local) moves the same way.
        (
            "2026-03-10T10:00:00Z",
            "2026-03-09T10:00:00+07:00",
            "2026-03-11T08:00:00+07:00",
            "2026-03-12T10:00:00Z",
        ),
        # Paused and resumed the same local day: k = 0, nothing moves.
        (
            "2026-03-10T17:00:00+07:00",
            "2026-03-09T08:00:00+07:00",
            "2026-03-09T16:00:00+07:00",
            "2026-03-10T17:00:00+07:00",
        ),
        # Paused Fri 6 Mar, resumed Sun 8 Mar: only the weekend → k = 0.
        (
            "2026-03-10T17:00:00+07:00",
            "2026-03-06T10:00:00+07:00",
            "2026-03-08T10:00:00+07:00",
            "2026-03-10T17:00:00+07:00",
        ),
        # Paused Fri 6 Mar 2026 18:00 UTC (= Sat 7 01:00 local), resumed Mon 9 08:00 local:
        # (Sat 7, Mon 9] → k = 1 (Mon 9) → due Tue 10 → Wed 11. From the UTC date (Fri 6)
        # it would be the same; the reverse case follows.
        (
            "2026-03-10T17:00:00+07:00",
            "2026-03-06T18:00:00Z",
            "2026-03-09T08:00:00+07:00",
            "2026-03-11T17:00:00+07:00",
        ),
        # Paused Thu 5 Mar 18:00 UTC (= Fri 6 01:00 local), resumed Fri 6 09:00 local:
        # same local day → k = 0 (from the UTC date Thu 5 it would be 1).
        (
            "2026-03-10T17:00:00+07:00",
            "2026-03-05T18:00:00Z",
            "2026-03-06T09:00:00+07:00",
            "2026-03-10T17:00:00+07:00",
        ),
        # Hùng Kings 2026: paused Fri 24 Apr, resumed Tue 28 Apr → k = Tue 28 only = 1.
        # Due Wed 29 Apr 23:59:59 + 1 → Thu 30/4, Fri 1/5 off, weekend → Mon 4 May.
        (
            "2026-04-29T23:59:59+07:00",
            "2026-04-24T15:00:00+07:00",
            "2026-04-28T09:00:00+07:00",
            "2026-05-04T23:59:59+07:00",
        ),
        # Make-up Saturday: paused Fri 25 Apr 2025, resumed Mon 5 May → k = Sat 26, Mon 28,
        # Tue 29, Mon 5 = 4. Due Sat 26 Apr 23:59:59 + 4 → Mon 28, Tue 29, Mon 5, Tue 6 May.
        (
            "2025-04-26T23:59:59+07:00",
            "2025-04-25T10:00:00+07:00",
            "2025-05-05T09:00:00+07:00",
            "2025-05-06T23:59:59+07:00",
        ),
        # Tết 2027: paused Tue 2 Feb, resumed Fri 12 Feb → k = Wed 3, Thu 11, Fri 12 = 3.
        # Due Wed 3 Feb 17:00 + 3 → Thu 11, Fri 12, Mon 15 at 17:00.
        (
            "2027-02-03T17:00:00+07:00",
            "2027-02-02T10:00:00+07:00",
            "2027-02-12T09:00:00+07:00",
            "2027-02-15T17:00:00+07:00",
        ),
    ],
)
def test_shift_due(due: str, paused: str, resumed: str, expected: str) -> None:
    got = shift_due(T(due), T(paused), T(resumed), CAL)
    assert got == T(expected)
    # The local time of day is kept.
    assert got.astimezone(LOCAL_TZ).time() == T(due).astimezone(LOCAL_TZ).time()


# --------------------------------------------------------------------------- R3


DUE = T("2026-03-10T17:00:00+07:00")  # Tue 10 Mar 2026, 17:00 local


@pytest.mark.parametrize(
    ("end", "outcome"),
    [
        (DUE, Outcome.ON_TIME),  # exactly at the due: on time
        (DUE + US, Outcome.LATE),  # one microsecond after: late
        (DUE - US, Outcome.ON_TIME),  # same local date, before the due
        (T("2026-03-10T00:00:00+07:00"), Outcome.ON_TIME),  # local midnight of the due date
        (T("2026-03-09T23:59:59.999999+07:00"), Outcome.EARLY),  # an earlier local date
        (T("2026-03-02T09:00:00+07:00"), Outcome.EARLY),
        # 9 Mar 17:30 UTC = 10 Mar 00:30 local: same local date → on time (not early).
        (T("2026-03-09T17:30:00Z"), Outcome.ON_TIME),
        # 9 Mar 16:59:59 UTC = 9 Mar 23:59:59 local → early.
        (T("2026-03-09T16:59:59Z"), Outcome.EARLY),
        (T("2026-03-10T10:00:00.000001Z"), Outcome.LATE),  # 17:00:00.000001 local
        (T("2026-03-11T08:00:00+07:00"), Outcome.LATE),
    ],
)
def test_judge(end: datetime, outcome: Outcome) -> None:
    assert judge(end, DUE) is outcome


# --------------------------------------------------------------------------- R9


MON_DUE = T("2026-03-09T23:59:59+07:00")  # Mon 9 Mar 2026


@pytest.mark.parametrize(
    ("now", "state"),
    [
        # Due Monday: due soon from the previous Friday 00:00 local (on Friday, the next
        # working day is Monday).
        (T("2026-03-02T09:00:00+07:00"), OpenState.IN_TIME),
        (T("2026-03-05T23:59:59.999999+07:00"), OpenState.IN_TIME),  # Thu: next is Fri 6
        (T("2026-03-06T00:00:00+07:00"), OpenState.DUE_SOON),
        (T("2026-03-05T16:59:59Z"), OpenState.IN_TIME),  # Thu 23:59:59 local
        (T("2026-03-05T17:00:00Z"), OpenState.DUE_SOON),  # Fri 00:00 local
        (T("2026-03-07T12:00:00+07:00"), OpenState.DUE_SOON),  # Saturday
        (T("2026-03-09T23:59:59+07:00"), OpenState.DUE_SOON),  # exactly the due
        (T("2026-03-09T23:59:59.000001+07:00"), OpenState.OVERDUE),
        (T("2026-03-20T09:00:00+07:00"), OpenState.OVERDUE),
    ],
)
def test_running_state_due_monday(now: datetime, state: OpenState) -> None:
    assert running_state(MON_DUE, now, CAL) is state


@pytest.mark.parametrize(
    ("due", "now", "state"),
    [
        # Due Mon 23 Feb 2026 17:00 (first day after Tết): the previous working day is
        # Fri 13 Feb, so due soon from Fri 13 Feb 00:00 local, through the whole of Tết.
        ("2026-02-23T17:00:00+07:00", "2026-02-12T23:59:59+07:00", OpenState.IN_TIME),
        ("2026-02-23T17:00:00+07:00", "2026-02-13T00:00:00+07:00", OpenState.DUE_SOON),
        ("2026-02-23T17:00:00+07:00", "2026-02-18T10:00:00+07:00", OpenState.DUE_SOON),
        # Due Tue 28 Apr 2026: Mon 27 is the observed Hùng Kings day → due soon from Fri 24.
        ("2026-04-28T23:59:59+07:00", "2026-04-23T12:00:00+07:00", OpenState.IN_TIME),
        ("2026-04-28T23:59:59+07:00", "2026-04-24T00:00:00+07:00", OpenState.DUE_SOON),
        # Due Mon 28 Apr 2025: the previous working day is the make-up Sat 26 Apr, so on
        # Fri 25 (next working day Sat 26 < Mon 28) it is still in time.
        ("2025-04-28T23:59:59+07:00", "2025-04-25T12:00:00+07:00", OpenState.IN_TIME),
        ("2025-04-28T23:59:59+07:00", "2025-04-26T00:00:00+07:00", OpenState.DUE_SOON),
        # Due Wed 11 Mar 2026: on Mon 9 the next working day is Tue 10 → in time; Tue 10 → soon.
        ("2026-03-11T17:00:00+07:00", "2026-03-09T23:00:00+07:00", OpenState.IN_TIME),
        ("2026-03-11T17:00:00+07:00", "2026-03-10T00:00:00+07:00", OpenState.DUE_SOON),
        # A due on a non-working day (explicit due_at Sun 8 Mar): soon from Fri 6.
        ("2026-03-08T12:00:00+07:00", "2026-03-05T23:00:00+07:00", OpenState.IN_TIME),
        ("2026-03-08T12:00:00+07:00", "2026-03-06T00:00:00+07:00", OpenState.DUE_SOON),
    ],
)
def test_running_state_around_holidays(due: str, now: str, state: OpenState) -> None:
    assert running_state(T(due), T(now), CAL) is state


@pytest.mark.parametrize(
    ("due", "soon_from"),
    [
        ("2026-03-09T23:59:59+07:00", "2026-03-06T00:00:00+07:00"),  # Mon → Fri
        ("2026-02-23T17:00:00+07:00", "2026-02-13T00:00:00+07:00"),  # after Tết 2026
        ("2027-02-11T23:59:59+07:00", "2027-02-03T00:00:00+07:00"),  # after Tết 2027
        ("2026-04-28T23:59:59+07:00", "2026-04-24T00:00:00+07:00"),  # Hùng Kings observed
        ("2025-04-28T23:59:59+07:00", "2025-04-26T00:00:00+07:00"),  # make-up Saturday
        ("2026-03-11T17:00:00+07:00", "2026-03-10T00:00:00+07:00"),  # ordinary midweek
    ],
)
def test_due_soon_from(due: str, soon_from: str) -> None:
    got = due_soon_from(T(due), CAL)
    assert got == T(soon_from)
    # Consistent with running_state on both sides of the instant.
    assert running_state(T(due), got - US, CAL) is OpenState.IN_TIME
    assert running_state(T(due), got, CAL) is OpenState.DUE_SOON


def test_next_change() -> None:
    # In time on Wed 4 Mar → next change at Fri 6 Mar 00:00 local.
    assert next_change(MON_DUE, T("2026-03-04T10:00:00+07:00"), CAL) == T(
        "2026-03-06T00:00:00+07:00"
    )
    # Due soon → next change one microsecond after the due (then overdue).
    assert next_change(MON_DUE, T("2026-03-06T00:00:00+07:00"), CAL) == MON_DUE + US
    assert next_change(MON_DUE, MON_DUE, CAL) == MON_DUE + US
    # Overdue never changes back without an event.
    assert next_change(MON_DUE, MON_DUE + US, CAL) is None


# --------------------------------------------------------------------------- the caches


def test_epoch_seconds_is_timestamp() -> None:
    """The same float as `timestamp()`, in every kind of zone (fixed offsets of any size,
    with seconds and microseconds, UTC, a zone with rules) and at any microsecond."""
    zones = [
        UTC,
        timezone(timedelta(hours=7)),
        timezone(timedelta(hours=-9, minutes=-30)),
        timezone(timedelta(hours=23, minutes=59)),
        timezone(timedelta(seconds=25201, microseconds=7)),
        LOCAL_TZ,
    ]
    start = T("2000-01-01T00:00:00+00:00")
    for i in range(5000):
        instant = start + timedelta(seconds=i * 2_345_678.901, microseconds=i * 7919)
        for zone in zones:
            moment = instant.astimezone(zone)
            assert epoch_seconds(moment) == moment.timestamp()


@pytest.mark.parametrize(
    "due",
    [
        T("2026-03-09T23:59:59+07:00"),
        datetime(2026, 3, 9, 23, 59, 59, tzinfo=LOCAL_TZ),
        T("2026-03-09T16:59:59+00:00"),
        T("2026-03-09T16:59:59.000001+00:00"),
    ],
)
def test_moment_compares_instants_across_zones(due: datetime) -> None:
    """`after` and `before` judge instants, whatever the zones of `now` and of the due
    (a due in a zone with rules is taken through the UTC cache), at and around it."""
    for now in (due - US, due, due + US):
        for zone in (UTC, timezone(timedelta(hours=7)), LOCAL_TZ):
            at = Moment(now.astimezone(zone), CAL)
            for _ in range(2):  # the second time from the caches
                assert at.after(due) is (now > due)
                assert at.before(due) is (now < due)
