"""Processing steps: who holds a dossier and whether each step kept its due (R12–R17).

Dates are worked out by hand on the 2026 calendar (no holidays in early March). The standard
receipt is Mon 2 Mar 2026 09:00 local at SXD with 10 working days: due Mon 16 Mar 23:59:59.
Working days: Mon 2, Tue 3, Wed 4, Thu 5, Fri 6, Mon 9 … Fri 13, Mon 16.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime

import pytest

from schemas import Channel, DossierEvent, EventType
from service.domain import Outcome, WorkingCalendar, contribution, fold, next_change_at
from service.domain.dossier import held_by
from service.domain.progress import DossierProgress
from service.domain.steps import (
    CompletedStep,
    OpenStep,
    step_due_from_hours,
    step_mark_key,
    step_mark_parts,
    step_marks,
    step_outcomes,
)
from service.outputs.report import ReportError, combine_steps, department_rows, render_steps

CAL = WorkingCalendar()
DID = "HS-STEP-1"
_ids = itertools.count()


def T(text: str) -> datetime:
    return datetime.fromisoformat(text)


def ev(kind: str, at: str, **fields: object) -> DossierEvent:
    if isinstance(fields.get("step_due_at"), str):
        fields["step_due_at"] = T(fields["step_due_at"])  # type: ignore[arg-type]
    return DossierEvent(f"{DID}-{next(_ids)}", DID, EventType(kind), T(at), **fields)  # type: ignore[arg-type]


def rec(due: str | None = None) -> DossierEvent:
    return DossierEvent(
        f"{DID}-r",
        DID,
        EventType.RECEIVED,
        T("2026-03-02T09:00:00+07:00"),
        "SXD",
        "1.000948",
        Channel.DIRECT,
        T(due) if due else None,
        None if due else 10,
    )


def start(at: str, step: str = "S1", department: str = "SXD.P1", **due: object) -> DossierEvent:
    return ev("step_started", at, step=step, department=department, **due)


def done(at: str, step: str = "S1") -> DossierEvent:
    return ev("step_completed", at, step=step)


def keys(events: list[DossierEvent], now: str, family: str) -> list[tuple[str, ...]]:
    dossier = fold(DID, events, CAL)
    return sorted(k for k in contribution(dossier, T(now), CAL) if k[0] == family)


# ------------------------------------------------------------------------ R12: the step's due


def test_step_hours_count_only_working_days() -> None:
    # Fri 6 Mar 10:00: 14 h left on Friday, Sat and Sun stand still, 2 h on Monday.
    assert step_due_from_hours(T("2026-03-06T10:00:00+07:00"), 16, CAL) == T(
        "2026-03-09T02:00:00+07:00"
    )
    # Within the day.
    assert step_due_from_hours(T("2026-03-02T10:00:00+07:00"), 8, CAL) == T(
        "2026-03-02T18:00:00+07:00"
    )
    # Started on Saturday 7 Mar: the clock starts Monday 9 Mar 00:00.
    assert step_due_from_hours(T("2026-03-07T15:00:00+07:00"), 30, CAL) == T(
        "2026-03-10T06:00:00+07:00"
    )


def test_step_due_from_days_hours_or_the_given_instant() -> None:
    by_days = fold(DID, [rec(), start("2026-03-02T10:00:00+07:00", step_days=2)], CAL)
    assert by_days.step == OpenStep(
        "S1", "SXD.P1", "SXD", T("2026-03-02T10:00:00+07:00"), T("2026-03-04T23:59:59+07:00")
    )
    by_hours = fold(DID, [rec(), start("2026-03-06T10:00:00+07:00", step_hours=16)], CAL)
    assert by_hours.step is not None and by_hours.step.due == T("2026-03-09T02:00:00+07:00")
    given = fold(
        DID,
        [rec(), start("2026-03-02T10:00:00+07:00", step_due_at="2026-03-03T11:00:00+07:00")],
        CAL,
    )
    assert given.step is not None and given.step.due == T("2026-03-03T11:00:00+07:00")


def test_a_new_step_closes_the_one_before_at_that_instant() -> None:
    events = [
        rec(),
        start("2026-03-02T10:00:00+07:00", step_days=1),  # due Tue 3 23:59:59
        start("2026-03-04T09:00:00+07:00", "S2", "SXD.P2", step_days=3),
    ]
    dossier = fold(DID, events, CAL)
    assert dossier.steps_done == (
        CompletedStep(
            "S1", "SXD.P1", "SXD", T("2026-03-04T09:00:00+07:00").timestamp(), Outcome.LATE
        ),
    )
    assert dossier.step is not None and (dossier.step.step, dossier.step.department) == (
        "S2",
        "SXD.P2",
    )
    assert held_by(dossier) == ("SXD", "SXD.P2")


# ------------------------------------------------------------------------ R14: late or on time


def test_a_step_completed_by_its_due_is_on_time_after_it_late() -> None:
    first = start("2026-03-02T10:00:00+07:00", step_days=1)  # due Tue 3 23:59:59
    on_time = fold(DID, [rec(), first, done("2026-03-03T23:59:59+07:00")], CAL)
    assert on_time.step is None
    assert [d.outcome for d in on_time.steps_done] == [Outcome.ON_TIME]
    late = fold(DID, [rec(), first, done("2026-03-04T00:00:00+07:00")], CAL)
    assert [d.outcome for d in late.steps_done] == [Outcome.LATE]


def test_completing_another_step_than_the_open_one_changes_nothing() -> None:
    events = [rec(), start("2026-03-02T10:00:00+07:00", step_days=1)]
    dossier = fold(DID, [*events, done("2026-03-03T10:00:00+07:00", "S9")], CAL)
    assert dossier.steps_done == ()
    assert dossier.step == fold(DID, events, CAL).step


# ------------------------------------------------------------------------ R13: the pause


def test_the_step_clock_pauses_with_the_supplement_pause() -> None:
    events = [
        rec(),
        start("2026-03-02T10:00:00+07:00", step_days=1),  # due Tue 3 23:59:59
        ev("supplement_requested", "2026-03-03T09:00:00+07:00"),
        # Waited Wed 4 and Thu 5: the step's due moves two working days, to Thu 5.
        ev("supplement_received", "2026-03-05T10:00:00+07:00"),
        done("2026-03-05T16:00:00+07:00"),
    ]
    dossier = fold(DID, events, CAL)
    assert dossier.steps_done == (
        CompletedStep(
            "S1", "SXD.P1", "SXD", T("2026-03-05T16:00:00+07:00").timestamp(), Outcome.ON_TIME
        ),
    )


def test_a_step_started_during_the_pause_waits_from_its_own_start() -> None:
    events = [
        rec(),
        ev("supplement_requested", "2026-03-02T10:00:00+07:00"),
        start("2026-03-03T09:00:00+07:00", step_days=1),  # due Wed 4 23:59:59
        # Waited Wed 4, Thu 5, Fri 6 after the step began (not Tue 3): due Mon 9.
        ev("supplement_received", "2026-03-06T10:00:00+07:00"),
    ]
    dossier = fold(DID, events, CAL)
    assert dossier.step is not None and dossier.step.due == T("2026-03-09T23:59:59+07:00")
    assert keys(events[:3], "2026-03-05T12:00:00+07:00", "steps_open") == [
        ("steps_open", "SXD", "SXD.P1", "paused")
    ]


# ------------------------------------------------------------------------ R15: the end


def test_the_clock_end_closes_the_open_step_and_later_steps_are_ignored() -> None:
    events = [
        rec(),
        start("2026-03-02T10:00:00+07:00", step_days=1),  # due Tue 3 23:59:59
        ev("approved", "2026-03-04T10:00:00+07:00"),
        start("2026-03-05T09:00:00+07:00", "S2", step_days=1),
        done("2026-03-05T10:00:00+07:00", "S2"),
    ]
    dossier = fold(DID, events, CAL)
    assert dossier.step is None
    assert dossier.steps_done == (
        CompletedStep(
            "S1", "SXD.P1", "SXD", T("2026-03-04T10:00:00+07:00").timestamp(), Outcome.LATE
        ),
    )


def test_a_withdrawal_while_paused_closes_the_step_with_the_pause_excluded() -> None:
    events = [
        rec(),
        start("2026-03-02T10:00:00+07:00", step_days=1),  # due Tue 3 23:59:59
        ev("supplement_requested", "2026-03-03T09:00:00+07:00"),
        ev("withdrawn", "2026-03-06T10:00:00+07:00"),  # waited Wed, Thu, Fri: due Fri 6
    ]
    dossier = fold(DID, events, CAL)
    assert dossier.steps_done == (
        CompletedStep(
            "S1", "SXD.P1", "SXD", T("2026-03-06T10:00:00+07:00").timestamp(), Outcome.ON_TIME
        ),
    )
    assert dossier.step is None


def test_steps_before_the_receipt_are_ignored() -> None:
    early = start("2026-03-02T08:00:00+07:00", step_days=1)
    assert fold(DID, [early, rec()], CAL).step is None


# ------------------------------------------------------------------------ R16: order, duplicates


def test_order_and_duplicates_do_not_change_the_steps() -> None:
    events = [
        rec(),
        start("2026-03-02T10:00:00+07:00", step_days=1),
        done("2026-03-03T10:00:00+07:00"),
        start("2026-03-03T10:00:00+07:00", "S2", "SXD.P2", step_hours=4),
    ]
    expected = fold(DID, events, CAL)
    assert [d.outcome for d in expected.steps_done] == [Outcome.ON_TIME]
    assert expected.step is not None and expected.step.step == "S2"
    assert fold(DID, [*reversed(events), events[1], events[3]], CAL) == expected
    progress = DossierProgress.start(DID)
    for event in [events[3], events[0], events[2], events[2], events[1]]:
        progress.add(event, CAL)
    assert progress.dossier == expected
    assert DossierProgress.unpack(DID, progress.pack()).dossier == expected


# ------------------------------------------------------------------------ R17: liên thông


def _two_agencies(due: str | None = None) -> list[DossierEvent]:
    """Received at SXD; SXD's step on time; STNMT's step runs past its due; back at SXD."""
    return [
        rec(due),
        start("2026-03-02T10:00:00+07:00", step_days=2),  # due Wed 4 23:59:59
        done("2026-03-03T15:00:00+07:00"),
        start(
            "2026-03-03T16:00:00+07:00", "S2", "STNMT.DD", agency="STNMT", step_days=1
        ),  # due Wed 4 23:59:59
        start("2026-03-06T09:00:00+07:00", "S3", step_days=1),  # due Mon 9 23:59:59
        ev("returned", "2026-03-09T10:00:00+07:00"),
    ]


def test_lateness_goes_to_the_agency_whose_step_ran_past_its_due() -> None:
    events = _two_agencies()
    assert keys(events, "2026-03-10T09:00:00+07:00", "steps_completed") == [
        ("steps_completed", "STNMT", "STNMT.DD", "late"),
        ("steps_completed", "SXD", "SXD.P1", "on_time"),
        ("steps_completed", "SXD", "SXD.P1", "on_time"),
    ]
    # The dossier itself was returned a week before its due (Mon 16): early, for SXD.
    assert keys(events, "2026-03-10T09:00:00+07:00", "completed") == [("completed", "SXD", "early")]
    assert step_marks(fold(DID, events, CAL).steps_done) == [
        (T("2026-03-03T15:00:00+07:00").timestamp(), "SXD\x1fSXD.P1\x1fon_time"),
        (T("2026-03-06T09:00:00+07:00").timestamp(), "STNMT\x1fSTNMT.DD\x1flate"),
        (T("2026-03-09T10:00:00+07:00").timestamp(), "SXD\x1fSXD.P1\x1fon_time"),
    ]


def test_an_overdue_dossier_is_held_by_its_open_step() -> None:
    # Appointment Wed 4 17:00; on Thu 5 the dossier is overdue while STNMT holds it.
    events = _two_agencies("2026-03-04T17:00:00+07:00")[:4]
    now = "2026-03-05T12:00:00+07:00"
    assert keys(events, now, "overdue_held") == [("overdue_held", "STNMT", "STNMT.DD")]
    assert keys(events, now, "steps_open") == [("steps_open", "STNMT", "STNMT.DD", "overdue")]
    # Before the step started, SXD held it with no step open: department "none".
    assert keys(events[:3], now, "overdue_held") == [("overdue_held", "SXD", "none")]
    # On Tue 3 at noon the step is due by the next working day, the dossier too.
    assert keys(events, "2026-03-03T18:00:00+07:00", "steps_open") == [
        ("steps_open", "STNMT", "STNMT.DD", "due_soon")
    ]


def test_the_next_change_is_the_step_s_when_it_comes_first() -> None:
    events = [rec(), start("2026-03-02T10:00:00+07:00", step_days=2)]  # due Wed 4 23:59:59
    dossier = fold(DID, events, CAL)
    # The step turns due-soon at Tue 3 00:00, long before the dossier (Fri 13 00:00).
    assert next_change_at(dossier, T("2026-03-02T12:00:00+07:00"), CAL) == T(
        "2026-03-03T00:00:00+07:00"
    )


def test_mark_keys_round_trip() -> None:
    key = step_mark_key("STNMT", "STNMT.DD", Outcome.LATE)
    assert key == "STNMT\x1fSTNMT.DD\x1flate"
    assert step_mark_parts(key) == ("STNMT", "STNMT.DD", Outcome.LATE)


def test_a_period_counts_the_step_marks_inside_it() -> None:
    marks = step_marks(fold(DID, _two_agencies(), CAL).steps_done)
    # Tue 3 Mar 00:00 up to Mon 9 Mar 00:00: the on-time SXD step of Tue 3 and STNMT's late
    # one of Fri 6; the SXD step of Mon 9 10:00 belongs to the next period.
    start = T("2026-03-03T00:00:00+07:00").timestamp()
    end = T("2026-03-09T00:00:00+07:00").timestamp()
    assert step_outcomes(marks, start, end) == {
        ("SXD", "SXD.P1"): Counter({"on_time": 1}),
        ("STNMT", "STNMT.DD"): Counter({"late": 1}),
    }
    assert step_outcomes(marks, end, end + 86_400) == {("SXD", "SXD.P1"): Counter({"on_time": 1})}


def test_the_report_sums_and_prints_the_step_outcomes_per_department() -> None:
    answers = [
        (
            "http://a",
            {
                "departments": [
                    {"agency": "SXD", "department": "SXD.P1", "steps_on_time": 2, "steps_late": 1}
                ]
            },
        ),
        (
            "http://b",
            {
                "departments": [
                    {"agency": "SXD", "department": "SXD.P1", "steps_on_time": 1, "steps_late": 0},
                    {
                        "agency": "STNMT",
                        "department": "STNMT.DD",
                        "steps_on_time": 0,
                        "steps_late": 4,
                    },
                ]
            },
        ),
        ("http://c", {}),  # a worker from before steps: nothing to add
    ]
    steps = combine_steps(answers)
    assert department_rows(steps) == [
        {"agency": "STNMT", "department": "STNMT.DD", "steps_on_time": 0, "steps_late": 4},
        {"agency": "SXD", "department": "SXD.P1", "steps_on_time": 3, "steps_late": 1},
    ]
    assert render_steps(steps).splitlines() == [
        "Bước xử lý theo phòng ban / processing steps by department",
        "Cơ quan  Phòng ban   Bước đúng hạn  Bước trễ hạn",
        "agency   department  steps on time    steps late",
        "-" * 48,  # 7 + 10 + 13 + 12 columns, three gaps of 2
        "STNMT    STNMT.DD                0             4",
        "SXD      SXD.P1                  3             1",
    ]
    with pytest.raises(ReportError, match="http://d"):
        combine_steps([("http://d", {"departments": [{"agency": "SXD", "steps_late": -1}]})])
