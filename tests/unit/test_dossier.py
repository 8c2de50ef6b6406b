"""A dossier's state and counter contribution from its events (rules R1–R9).

Every due date is worked out by hand from a calendar (the comment shows the count).
The standard dossier `std()` is received Mon 2 Mar 2026 09:00 local with 10 working days:
Tue 3 (1), Wed 4, Thu 5, Fri 6 (4), Mon 9 … Fri 13 (9), Mon 16 (10) → due Mon 16 Mar 2026
23:59:59 local.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import orjson
import pytest

from schemas import Channel, DossierEvent, EventType, InvalidEvent, Reason, parse_event
from service.domain import (
    Dossier,
    OpenState,
    Outcome,
    WorkingCalendar,
    contribution,
    fold,
    next_change_at,
    open_state,
)

CAL = WorkingCalendar()
US = timedelta(microseconds=1)
DID = "HS-000123"
AG = "SXD"  # agency code of the standard receipt

# The counter families the rules define; other families (drill-downs) are not judged here.
FAMILIES = {
    "received",
    "completed",
    "completed_without_due",
    "withdrawn",
    "became_overdue",
    "open",
    "overdue_without_apology",
}


def T(text: str) -> datetime:
    return datetime.fromisoformat(text)


_ids = itertools.count()


def ev(kind: str, at: str, eid: str | None = None, **fields: object) -> DossierEvent:
    for name in ("due_at", "new_due_at"):
        if isinstance(fields.get(name), str):
            fields[name] = T(fields[name])  # type: ignore[arg-type]
    return DossierEvent(
        event_id=eid or f"ev-{next(_ids)}",
        dossier_id=DID,
        type=EventType(kind),
        occurred_at=T(at),
        **fields,  # type: ignore[arg-type]
    )


def rec(
    at: str,
    days: int | None = None,
    due: str | None = None,
    agency: str = AG,
    eid: str = "rcv",
    channel: Channel = Channel.DIRECT,
) -> DossierEvent:
    return ev(
        "received",
        at,
        eid,
        agency=agency,
        procedure="1.000948",
        channel=channel,
        processing_days=days,
        due_at=due,
    )


def std() -> DossierEvent:
    return rec("2026-03-02T09:00:00+07:00", days=10)


STD_DUE = T("2026-03-16T23:59:59+07:00")


def F(*events: DossierEvent) -> Dossier:
    return fold(DID, list(events), CAL)


def keys(d: Dossier, now: str | datetime) -> set[tuple[str, ...]]:
    at = T(now) if isinstance(now, str) else now
    return {k for k in contribution(d, at, CAL) if k[0] in FAMILIES}


def state(d: Dossier, now: str | datetime) -> OpenState | None:
    return open_state(d, T(now) if isinstance(now, str) else now, CAL)


RECEIVED = ("received", AG, "direct")


def open_key(s: OpenState) -> tuple[str, ...]:
    return ("open", AG, s.value)


# --------------------------------------------------------------------------- R1


@pytest.mark.parametrize(
    ("received", "days", "due"),
    [
        # Fri 13 Feb 2026: weekend, Tết 16–20, weekend → Mon 23 (1), Tue 24 (2), Wed 25 (3).
        ("2026-02-13T10:00:00+07:00", 3, "2026-02-25T23:59:59+07:00"),
        # Wed 3 Feb 2027: Tết Thu 4 – Wed 10 → Thu 11 (1), Fri 12 (2), Mon 15 (3).
        ("2027-02-03T10:00:00+07:00", 3, "2027-02-15T23:59:59+07:00"),
        # Fri 24 Apr 2026: weekend, Mon 27 = observed Hùng Kings → Tue 28 (1).
        ("2026-04-24T16:00:00+07:00", 1, "2026-04-28T23:59:59+07:00"),
        # Fri 25 Apr 2025 → make-up Sat 26 (1). Fri 21 Aug 2026 → make-up Sat 22 (1).
        ("2025-04-25T09:00:00+07:00", 1, "2025-04-26T23:59:59+07:00"),
        ("2026-08-21T09:00:00+07:00", 1, "2026-08-22T23:59:59+07:00"),
        # Fri 28 Aug 2026: weekend, Mon 31 (swapped off), Tue 1 + Wed 2 Sep → Thu 3 Sep (1).
        ("2026-08-28T09:00:00+07:00", 1, "2026-09-03T23:59:59+07:00"),
        # 2026-03-05T18:30Z is Fri 6 Mar 01:30 local → Mon 9 (1); not Fri 6 (UTC date Thu 5).
        ("2026-03-05T18:30:00Z", 1, "2026-03-09T23:59:59+07:00"),
        # Standard dossier.
        ("2026-03-02T09:00:00+07:00", 10, "2026-03-16T23:59:59+07:00"),
    ],
)
def test_r1_computed_due(received: str, days: int, due: str) -> None:
    d = F(rec(received, days=days))
    assert d.due == T(due)
    assert d.received_at == T(received)


def test_r1_explicit_due_at_wins() -> None:
    # A receipt carrying both: the appointment printed on the receipt wins.
    raw = {
        "event_id": "rcv",
        "dossier_id": DID,
        "type": "received",
        "occurred_at": "2026-03-02T09:00:00+07:00",
        "agency": AG,
        "procedure": "1.000948",
        "channel": "online",
        "due_at": "2026-03-20T16:30:00+07:00",
        "processing_days": 3,
    }
    event = parse_event(orjson.dumps(raw), now=T("2026-03-02T09:00:00+07:00"))
    d = F(event)
    assert d.due == T("2026-03-20T16:30:00+07:00")
    # An explicit due on a non-working day is taken as it is (Sun 8 Mar).
    d = F(rec("2026-03-02T09:00:00+07:00", due="2026-03-08T10:00:00+07:00"))
    assert d.due == T("2026-03-08T10:00:00+07:00")


# --------------------------------------------------------------------------- R2


def test_r2_pause_over_tet_counts_only_working_days() -> None:
    # Received Mon 9 Feb 2026, 5 days: Tue 10, Wed 11, Thu 12, Fri 13, then Tết → Mon 23.
    receipt = rec("2026-02-09T09:00:00+07:00", days=5)
    request = ev("supplement_requested", "2026-02-11T10:00:00+07:00")
    resume = ev("supplement_received", "2026-02-24T09:00:00+07:00")
    paused = F(receipt, request)
    assert paused.due == T("2026-02-23T23:59:59+07:00")
    assert paused.paused_at == request.occurred_at
    # While paused, on Wed 25 Feb (past the original due Mon 23): paused, not overdue.
    assert state(paused, "2026-02-25T10:00:00+07:00") is OpenState.PAUSED
    assert keys(paused, "2026-02-25T10:00:00+07:00") == {RECEIVED, open_key(OpenState.PAUSED)}
    assert next_change_at(paused, T("2026-02-25T10:00:00+07:00"), CAL) is None
    # k = (Wed 11, Tue 24] = Thu 12, Fri 13, Mon 23, Tue 24 = 4 (Tết and weekends excluded).
    # Mon 23 + 4 = Tue 24, Wed 25, Thu 26, Fri 27 Feb.
    resumed = F(receipt, request, resume)
    assert resumed.paused_at is None
    assert resumed.due == T("2026-02-27T23:59:59+07:00")
    assert state(resumed, "2026-02-24T10:00:00+07:00") is OpenState.IN_TIME


def test_r2_pause_over_makeup_saturday_and_may_holidays() -> None:
    # Received Mon 21 Apr 2025, 5 days: Tue 22, Wed 23, Thu 24, Fri 25, Sat 26 (make-up).
    receipt = rec("2025-04-21T09:00:00+07:00", days=5)
    assert F(receipt).due == T("2025-04-26T23:59:59+07:00")
    # Paused Fri 25 Apr, resumed Mon 5 May: k = Sat 26, Mon 28, Tue 29, Mon 5 = 4
    # (30/4, 1/5, the swapped Fri 2 May and the weekends excluded).
    # Sat 26 + 4 = Mon 28, Tue 29, Mon 5, Tue 6 May.
    d = F(
        receipt,
        ev("supplement_requested", "2025-04-25T10:00:00+07:00"),
        ev("supplement_received", "2025-05-05T09:00:00+07:00"),
    )
    assert d.due == T("2025-05-06T23:59:59+07:00")


def test_r2_pause_over_hung_kings_2026() -> None:
    # Received Tue 21 Apr 2026, 5 days: Wed 22, Thu 23, Fri 24, Tue 28 (Mon 27 off), Wed 29.
    receipt = rec("2026-04-21T09:00:00+07:00", days=5)
    assert F(receipt).due == T("2026-04-29T23:59:59+07:00")
    # Paused Fri 24, resumed Tue 28: k = Tue 28 = 1 → Wed 29 + 1: 30/4, 1/5, weekend → Mon 4 May.
    d = F(
        receipt,
        ev("supplement_requested", "2026-04-24T15:00:00+07:00"),
        ev("supplement_received", "2026-04-28T08:00:00+07:00"),
    )
    assert d.due == T("2026-05-04T23:59:59+07:00")


@pytest.mark.parametrize("new_due", ["2026-03-25T17:00:00+07:00", "2026-03-12T17:00:00+07:00"])
def test_r2_supplement_received_with_due_at_replaces_the_due(new_due: str) -> None:
    d = F(
        std(),
        ev("supplement_requested", "2026-03-03T10:00:00+07:00"),
        ev("supplement_received", "2026-03-05T09:00:00+07:00", due_at=new_due),
    )
    assert d.due == T(new_due)
    assert d.paused_at is None


def test_r2_second_request_while_paused_changes_nothing() -> None:
    # Paused Tue 3 Mar; a second request Thu 5 Mar; resumed Mon 9 Mar.
    # k counts from the first request: (Tue 3, Mon 9] = Wed 4, Thu 5, Fri 6, Mon 9 = 4
    # → Mon 16 + 4 = Tue 17, Wed 18, Thu 19, Fri 20. (From the second it would be 2 → Wed 18.)
    first = ev("supplement_requested", "2026-03-03T10:00:00+07:00")
    second = ev("supplement_requested", "2026-03-05T10:00:00+07:00")
    resume = ev("supplement_received", "2026-03-09T09:00:00+07:00")
    assert F(std(), first, second).paused_at == first.occurred_at
    assert F(std(), first, second, resume) == F(std(), first, resume)
    assert F(std(), first, second, resume).due == T("2026-03-20T23:59:59+07:00")


def test_r2_resume_while_not_paused_changes_nothing() -> None:
    # Never paused, no new appointment: the resume is ignored.
    stray = ev("supplement_received", "2026-03-04T09:00:00+07:00")
    assert F(std(), stray) == F(std())
    # Paused Tue 3, resumed Wed 4 (k = 1 → Tue 17); a second resume Fri 6 is ignored.
    request = ev("supplement_requested", "2026-03-03T10:00:00+07:00")
    resume = ev("supplement_received", "2026-03-04T09:00:00+07:00")
    again = ev("supplement_received", "2026-03-06T09:00:00+07:00")
    once = F(std(), request, resume)
    assert once.due == T("2026-03-17T23:59:59+07:00")
    assert F(std(), request, resume, again) == once


def test_r2_clock_ending_while_paused_applies_the_shift_up_to_the_end() -> None:
    # Paused Fri 13 Mar; approved (still paused) Thu 19 Mar.
    # k = (Fri 13, Thu 19] = Mon 16, Tue 17, Wed 18, Thu 19 = 4 → Mon 16 + 4 = Fri 20.
    # End Thu 19 < Fri 20 → early (without the shift it would be late).
    d = F(
        std(),
        ev("supplement_requested", "2026-03-13T10:00:00+07:00"),
        ev("approved", "2026-03-19T10:00:00+07:00"),
    )
    assert d.due == T("2026-03-20T23:59:59+07:00")
    assert d.paused_at is None
    assert d.outcome is Outcome.EARLY
    now = "2026-03-23T10:00:00+07:00"
    assert state(d, now) is OpenState.READY
    assert keys(d, now) == {RECEIVED, ("completed", AG, "early"), open_key(OpenState.READY)}


def test_r2_rejected_while_paused_is_judged_with_the_shift() -> None:
    # Paused Fri 13 Mar; rejected Sat 21 Mar: k = Mon 16 … Fri 20 = 5 → Mon 16 + 5 = Mon 23.
    # End Sat 21 < Mon 23 → early; the dossier is closed.
    d = F(
        std(),
        ev("supplement_requested", "2026-03-13T10:00:00+07:00"),
        ev("rejected", "2026-03-21T10:00:00+07:00"),
    )
    assert d.due == T("2026-03-23T23:59:59+07:00")
    assert d.outcome is Outcome.EARLY
    assert not d.is_open
    assert keys(d, "2026-03-30T10:00:00+07:00") == {RECEIVED, ("completed", AG, "early")}


# --------------------------------------------------------------------------- R3


def _judged(end: str) -> Dossier:
    return F(
        rec("2026-03-02T09:00:00+07:00", due="2026-03-10T17:00:00+07:00"),
        ev("approved", end),
    )


@pytest.mark.parametrize(
    ("end", "outcome"),
    [
        ("2026-03-10T17:00:00+07:00", Outcome.ON_TIME),  # end == due
        ("2026-03-10T17:00:00.000001+07:00", Outcome.LATE),  # 1 µs after the due
        ("2026-03-10T08:00:00+07:00", Outcome.ON_TIME),  # same local date
        ("2026-03-09T23:59:59+07:00", Outcome.EARLY),  # the local day before
        ("2026-03-09T17:30:00Z", Outcome.ON_TIME),  # = Tue 10 00:30 local
        ("2026-03-09T16:59:59Z", Outcome.EARLY),  # = Mon 9 23:59:59 local
        ("2026-03-10T10:00:01Z", Outcome.LATE),  # = 17:00:01 local
    ],
)
def test_r3_outcome_boundaries(end: str, outcome: Outcome) -> None:
    d = _judged(end)
    assert d.clock_end == T(end)
    assert d.outcome is outcome
    later = "2026-04-01T00:00:00+07:00"
    assert ("completed", AG, outcome.value) in keys(d, later)
    assert (("became_overdue", AG) in keys(d, later)) is (outcome is Outcome.LATE)


def test_r3_returned_alone_ends_the_clock_and_closes() -> None:
    d = F(std(), ev("returned", "2026-03-16T15:00:00+07:00"))
    assert d.clock_end == T("2026-03-16T15:00:00+07:00")
    assert d.outcome is Outcome.ON_TIME
    assert d.closed_by is EventType.RETURNED
    assert keys(d, "2026-03-20T00:00:00+07:00") == {RECEIVED, ("completed", AG, "on_time")}


def test_r3_the_first_clock_ending_event_is_judged() -> None:
    # Approved Thu 5 Mar (early); result returned Fri 20 Mar, after the due: still early.
    approved = ev("approved", "2026-03-05T10:00:00+07:00")
    d = F(std(), approved, ev("returned", "2026-03-20T10:00:00+07:00"))
    assert d.clock_end == approved.occurred_at
    assert d.outcome is Outcome.EARLY
    assert keys(d, "2026-03-25T00:00:00+07:00") == {RECEIVED, ("completed", AG, "early")}
    # A second approved does not re-judge.
    d = F(std(), approved, ev("approved", "2026-03-20T10:00:00+07:00"))
    assert d.clock_end == approved.occurred_at
    assert d.outcome is Outcome.EARLY


# --------------------------------------------------------------------------- R4


def test_r4_returned_closes_and_later_events_are_ignored() -> None:
    base = [
        std(),
        ev("approved", "2026-03-05T10:00:00+07:00"),
        ev("returned", "2026-03-06T10:00:00+07:00"),
    ]
    later = [
        ev("supplement_requested", "2026-03-09T10:00:00+07:00"),
        ev("extended", "2026-03-10T10:00:00+07:00", new_due_at="2026-03-30T17:00:00+07:00"),
        ev("approved", "2026-03-11T10:00:00+07:00"),
        ev("withdrawn", "2026-03-12T10:00:00+07:00"),
        ev(
            "received",
            "2026-03-13T10:00:00+07:00",
            agency="X",
            procedure="P",
            channel=Channel.ONLINE,
            processing_days=1,
        ),
    ]
    d = F(*base, *later)
    assert d == F(*base)
    assert d.closed_by is EventType.RETURNED
    assert d.closed_at == T("2026-03-06T10:00:00+07:00")
    assert d.apology_at is None
    assert not d.is_open
    assert keys(d, "2026-03-30T00:00:00+07:00") == {RECEIVED, ("completed", AG, "early")}


def test_r4_rejected_closes_and_is_judged() -> None:
    base = [std(), ev("rejected", "2026-03-04T10:00:00+07:00")]
    d = F(
        *base,
        ev("approved", "2026-03-05T10:00:00+07:00"),
        ev("withdrawn", "2026-03-06T10:00:00+07:00"),
    )
    assert d == F(*base)
    assert d.closed_by is EventType.REJECTED
    assert d.outcome is Outcome.EARLY
    assert not d.withdrawn
    assert keys(d, "2026-03-30T00:00:00+07:00") == {RECEIVED, ("completed", AG, "early")}


def test_r4_withdrawn_before_the_clock_ended_is_not_judged() -> None:
    base = [std(), ev("withdrawn", "2026-03-04T10:00:00+07:00")]
    d = F(
        *base,
        ev("approved", "2026-03-05T10:00:00+07:00"),
        ev("returned", "2026-03-06T10:00:00+07:00"),
    )
    assert d == F(*base)
    assert d.closed_by is EventType.WITHDRAWN
    assert d.withdrawn
    assert d.outcome is None
    assert keys(d, "2026-03-30T00:00:00+07:00") == {RECEIVED, ("withdrawn", AG)}


def test_r4_withdrawn_while_paused_is_withdrawn() -> None:
    d = F(
        std(),
        ev("supplement_requested", "2026-03-03T10:00:00+07:00"),
        ev("withdrawn", "2026-03-20T10:00:00+07:00"),
    )
    assert d.withdrawn
    assert keys(d, "2026-03-30T00:00:00+07:00") == {RECEIVED, ("withdrawn", AG)}


def test_r4_withdrawn_after_approved_counts_as_completed() -> None:
    d = F(
        std(),
        ev("approved", "2026-03-05T10:00:00+07:00"),
        ev("withdrawn", "2026-03-06T10:00:00+07:00"),
    )
    assert d.closed_by is EventType.WITHDRAWN
    assert not d.withdrawn
    assert d.outcome is Outcome.EARLY
    assert not d.is_open
    assert keys(d, "2026-03-30T00:00:00+07:00") == {RECEIVED, ("completed", AG, "early")}


# --------------------------------------------------------------------------- R5


def test_r5_extended_on_a_late_dossier_stays_late() -> None:
    apology = ev("extended", "2026-03-17T10:00:00+07:00", new_due_at="2026-03-25T17:00:00+07:00")
    d = F(std(), apology, ev("approved", "2026-03-20T10:00:00+07:00"))
    assert d.due == STD_DUE  # the apology does not move the due
    assert d.apology_at == apology.occurred_at
    assert d.new_due_at == T("2026-03-25T17:00:00+07:00")
    assert d.outcome is Outcome.LATE
    assert keys(d, "2026-03-30T00:00:00+07:00") == {
        RECEIVED,
        ("completed", AG, "late"),
        ("became_overdue", AG),
        open_key(OpenState.READY),
    }


def test_r5_apology_before_the_due_does_not_keep_it_in_time() -> None:
    # Apology Fri 13 Mar promising Mon 30 Mar; on Wed 18 Mar it is overdue (with apology).
    d = F(
        std(), ev("extended", "2026-03-13T10:00:00+07:00", new_due_at="2026-03-30T17:00:00+07:00")
    )
    assert d.due == STD_DUE
    now = "2026-03-18T10:00:00+07:00"
    assert state(d, now) is OpenState.OVERDUE
    assert keys(d, now) == {RECEIVED, ("became_overdue", AG), open_key(OpenState.OVERDUE)}


def test_r5_overdue_without_apology_is_counted_separately() -> None:
    now = "2026-03-18T10:00:00+07:00"
    assert keys(F(std()), now) == {
        RECEIVED,
        ("became_overdue", AG),
        open_key(OpenState.OVERDUE),
        ("overdue_without_apology", AG),
    }
    # The last apology's appointment is the one recorded; the first apology's time is kept.
    first = ev("extended", "2026-03-17T10:00:00+07:00", new_due_at="2026-03-25T17:00:00+07:00")
    second = ev("extended", "2026-03-24T10:00:00+07:00", new_due_at="2026-04-01T17:00:00+07:00")
    d = F(std(), first, second)
    assert d.apology_at == first.occurred_at
    assert d.new_due_at == T("2026-04-01T17:00:00+07:00")
    assert ("overdue_without_apology", AG) not in keys(d, "2026-03-30T10:00:00+07:00")
    assert open_key(OpenState.OVERDUE) in keys(d, "2026-03-30T10:00:00+07:00")


# --------------------------------------------------------------------------- R6


def _scenario() -> list[DossierEvent]:
    return [
        std(),
        ev("appraised", "2026-03-03T09:00:00+07:00", "a1"),
        ev("supplement_requested", "2026-03-04T10:00:00+07:00", "s1"),
        ev("supplement_received", "2026-03-09T09:00:00+07:00", "s2"),
        ev("extended", "2026-03-18T09:00:00+07:00", "x1", new_due_at="2026-03-27T17:00:00+07:00"),
        ev("approved", "2026-03-20T10:00:00+07:00", "p1"),
    ]


def test_r6_any_arrival_order_gives_the_same_state() -> None:
    events = _scenario()
    # In order: k = (Wed 4, Mon 9] = Thu 5, Fri 6, Mon 9 = 3 → Mon 16 + 3 = Thu 19.
    # Approved Fri 20 → late, with an apology.
    expected = F(*events)
    assert expected.due == T("2026-03-19T23:59:59+07:00")
    assert expected.outcome is Outcome.LATE
    assert expected.apology_at == T("2026-03-18T09:00:00+07:00")
    nows = [T(s) for s in ("2026-03-10T00:00:00+07:00", "2026-03-25T00:00:00+07:00")]
    for order in itertools.permutations(events):
        d = F(*order)
        assert d == expected
        for now in nows:
            assert contribution(d, now, CAL) == contribution(expected, now, CAL)


def test_r6_late_arriving_earlier_event_changes_the_state_as_if_in_order() -> None:
    # Known so far: received, approved Fri 20 Mar → late. Then a supplement pause of
    # Wed 4 – Fri 13 Mar arrives: k = (Wed 4, Fri 13] = Thu 5, Fri 6, Mon 9 … Fri 13 = 7
    # → Mon 16 + 7 = Tue 17, Wed 18, Thu 19, Fri 20, Mon 23, Tue 24, Wed 25 → early.
    approved = ev("approved", "2026-03-20T10:00:00+07:00")
    assert F(std(), approved).outcome is Outcome.LATE
    late_pause = [
        ev("supplement_requested", "2026-03-04T10:00:00+07:00"),
        ev("supplement_received", "2026-03-13T09:00:00+07:00"),
    ]
    d = F(std(), approved, *late_pause)
    assert d.due == T("2026-03-25T23:59:59+07:00")
    assert d.outcome is Outcome.EARLY
    assert d == F(std(), *late_pause, approved)


def test_r6_ties_request_before_resume() -> None:
    # Same instant: the request applies first, so the resume ends a zero-length pause
    # (k = 0) and the clock runs. The other way round the dossier would stay paused.
    at = "2026-03-04T10:00:00+07:00"
    for names in (("s-b", "s-a"), ("s-a", "s-b")):
        d = F(
            std(), ev("supplement_received", at, names[0]), ev("supplement_requested", at, names[1])
        )
        assert d.paused_at is None
        assert d.due == STD_DUE


def test_r6_ties_extended_before_approved() -> None:
    at = "2026-03-20T10:00:00+07:00"
    d = F(
        std(),
        ev("approved", at, "a"),
        ev("extended", at, "z", new_due_at="2026-03-27T17:00:00+07:00"),
    )
    assert d.apology_at == T(at)
    assert d.outcome is Outcome.LATE


def test_r6_ties_approved_before_withdrawn_and_closing_order() -> None:
    at = "2026-03-05T10:00:00+07:00"
    # approved < withdrawn: judged, not withdrawn.
    d = F(std(), ev("withdrawn", at, "a"), ev("approved", at, "b"))
    assert d.outcome is Outcome.EARLY and not d.withdrawn
    # approved < rejected: the clock ends at approved; rejected closes.
    d = F(std(), ev("rejected", at, "a"), ev("approved", at, "b"))
    assert d.closed_by is EventType.REJECTED and d.outcome is Outcome.EARLY
    # rejected < returned < withdrawn: the first closing one wins.
    d = F(std(), ev("withdrawn", at, "a"), ev("returned", at, "b"), ev("rejected", at, "c"))
    assert d.closed_by is EventType.REJECTED
    d = F(std(), ev("withdrawn", at, "a"), ev("returned", at, "b"))
    assert d.closed_by is EventType.RETURNED
    assert not d.withdrawn
    # received < anything: an event at the receipt's instant counts.
    d = F(std(), ev("withdrawn", "2026-03-02T09:00:00+07:00", "0"))
    assert d.withdrawn


def test_r6_ties_same_type_by_event_id() -> None:
    # Two resumes at the same instant: the smaller event_id resumes; the other finds the
    # clock running and, carrying an appointment, moves the due to it (R2): the larger
    # event_id's appointment is in force, whatever the arrival order.
    request = ev("supplement_requested", "2026-03-03T10:00:00+07:00")
    at = "2026-03-05T09:00:00+07:00"
    a = ev("supplement_received", at, "res-a", due_at="2026-03-20T17:00:00+07:00")
    b = ev("supplement_received", at, "res-b", due_at="2026-03-27T17:00:00+07:00")
    assert F(std(), request, b, a).due == T("2026-03-27T17:00:00+07:00")
    assert F(std(), request, a, b).due == T("2026-03-27T17:00:00+07:00")
    # Without appointments, the second resume changes nothing.
    plain_a = ev("supplement_received", at, "res-a")
    plain_b = ev("supplement_received", at, "res-b")
    assert F(std(), request, plain_b, plain_a) == F(std(), request, plain_a)


@pytest.mark.parametrize(
    "kind", ["approved", "returned", "rejected", "withdrawn", "supplement_requested", "extended"]
)
def test_r6_events_before_the_receipt_are_ignored(kind: str) -> None:
    fields = {"new_due_at": "2026-03-30T17:00:00+07:00"} if kind == "extended" else {}
    early = ev(kind, "2026-03-02T08:59:59.999999+07:00", **fields)
    d = F(std(), early)
    assert d == F(std())
    assert d.is_running
    assert keys(d, "2026-03-03T10:00:00+07:00") == {RECEIVED, open_key(OpenState.IN_TIME)}


def test_r6_second_received_is_ignored() -> None:
    other = rec(
        "2026-03-04T10:00:00+07:00", due="2026-03-05T17:00:00+07:00", agency="STP", eid="rcv-2"
    )
    d = F(std(), other)
    assert d == F(std())
    assert d.agency == AG and d.due == STD_DUE


def test_r6_late_arriving_earlier_receipt_takes_over() -> None:
    # First known receipt Wed 4 Mar (agency STP); an approval dated Tue 3 Mar is before it
    # and ignored. Then the real receipt of Mon 2 Mar arrives: it is the receipt, the
    # other is a second receipt, and the approval counts.
    later = rec("2026-03-04T10:00:00+07:00", days=1, agency="STP", eid="rcv-2")
    approved = ev("approved", "2026-03-03T10:00:00+07:00")
    before = F(later, approved)
    assert before.agency == "STP" and before.clock_end is None
    after = F(later, approved, std())
    assert after.agency == AG
    assert after.received_at == T("2026-03-02T09:00:00+07:00")
    assert after.clock_end == approved.occurred_at
    assert after.outcome is Outcome.EARLY


def test_r6_two_receipts_at_the_same_instant_by_event_id() -> None:
    at = "2026-03-02T09:00:00+07:00"
    a = rec(at, days=10, agency="AAA", eid="r-a")
    b = rec(at, days=1, agency="BBB", eid="r-b")
    assert F(b, a).agency == "AAA"
    assert F(a, b).agency == "AAA"


# --------------------------------------------------------------------------- R7


def test_r7_duplicates_are_ignored() -> None:
    events = _scenario()
    assert F(*events, *events, events[2]) == F(*events)


def test_r7_a_reused_event_id_is_a_duplicate() -> None:
    # The second event with the same id is ignored, whatever it says.
    approved = ev("approved", "2026-03-05T10:00:00+07:00", "same")
    imposter = ev("returned", "2026-03-06T10:00:00+07:00", "same")
    d = F(std(), approved, imposter)
    assert d.is_open and d.closed_by is None
    assert state(d, "2026-03-07T10:00:00+07:00") is OpenState.READY


# --------------------------------------------------------------------------- R8


def test_r8_orphans_count_nowhere_until_received() -> None:
    orphans = [
        ev("appraised", "2026-03-03T09:00:00+07:00"),
        ev("supplement_requested", "2026-03-04T10:00:00+07:00"),
        ev("approved", "2026-03-20T10:00:00+07:00"),
    ]
    d = F(*orphans)
    assert not d.is_received and not d.is_open
    for now in ("2026-03-05T00:00:00+07:00", "2026-04-30T00:00:00+07:00"):
        assert contribution(d, T(now), CAL) == ()
        assert open_state(d, T(now), CAL) is None
        assert next_change_at(d, T(now), CAL) is None
    # The receipt arrives last: the kept events apply as if in order. The pause never
    # ended, so the approval ends the clock while paused: k = (Wed 4, Fri 20] = 12 →
    # Mon 16 + 12 → Tue 17 … Fri 20 (4), Mon 23 … Fri 27 (9), Mon 30, Tue 31, Wed 1 Apr (12).
    d = F(*orphans, std())
    assert d == F(std(), *orphans)
    assert d.due == T("2026-04-01T23:59:59+07:00")
    assert d.outcome is Outcome.EARLY


# --------------------------------------------------------------------------- R9


def _std5() -> DossierEvent:
    # Mon 2 Mar 2026, 5 days: Tue 3, Wed 4, Thu 5, Fri 6, Mon 9 → due Mon 9 Mar 23:59:59.
    return rec("2026-03-02T09:00:00+07:00", days=5)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-03-04T12:00:00+07:00", OpenState.IN_TIME),
        ("2026-03-05T23:59:59.999999+07:00", OpenState.IN_TIME),  # Thu: next working day Fri
        ("2026-03-06T00:00:00+07:00", OpenState.DUE_SOON),  # Fri: next working day Mon = due
        ("2026-03-05T17:00:00Z", OpenState.DUE_SOON),  # = Fri 00:00 local
        ("2026-03-08T12:00:00+07:00", OpenState.DUE_SOON),  # Sunday
        ("2026-03-09T23:59:59+07:00", OpenState.DUE_SOON),  # the due itself
        ("2026-03-09T23:59:59.000001+07:00", OpenState.OVERDUE),
    ],
)
def test_r9_due_soon_across_a_weekend(now: str, expected: OpenState) -> None:
    d = F(_std5())
    assert d.due == T("2026-03-09T23:59:59+07:00")
    assert state(d, now) is expected
    opens = [k for k in contribution(d, T(now), CAL) if k[0] == "open"]
    assert opens == [open_key(expected)]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Received Mon 9 Feb 2026, 5 days → due Mon 23 Feb (after Tết). The previous
        # working day is Fri 13 Feb → due soon from Fri 13 00:00 local.
        ("2026-02-12T23:59:59+07:00", OpenState.IN_TIME),
        ("2026-02-13T00:00:00+07:00", OpenState.DUE_SOON),
        ("2026-02-17T10:00:00+07:00", OpenState.DUE_SOON),
        ("2026-02-24T00:00:00+07:00", OpenState.OVERDUE),
    ],
)
def test_r9_due_soon_across_tet(now: str, expected: OpenState) -> None:
    d = F(rec("2026-02-09T09:00:00+07:00", days=5))
    assert d.due == T("2026-02-23T23:59:59+07:00")
    assert state(d, now) is expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Received Tue 21 Apr 2026, 4 days: Wed 22, Thu 23, Fri 24, Tue 28 (Mon 27 off)
        # → due Tue 28; due soon from Fri 24 00:00 (next working day after Fri is Tue 28).
        ("2026-04-23T23:59:59+07:00", OpenState.IN_TIME),
        ("2026-04-24T00:00:00+07:00", OpenState.DUE_SOON),
        ("2026-04-27T10:00:00+07:00", OpenState.DUE_SOON),
    ],
)
def test_r9_due_soon_across_hung_kings(now: str, expected: OpenState) -> None:
    d = F(rec("2026-04-21T09:00:00+07:00", days=4))
    assert d.due == T("2026-04-28T23:59:59+07:00")
    assert state(d, now) is expected


def test_r9_states_partition_open_dossiers() -> None:
    now = "2026-03-12T10:00:00+07:00"  # Thu 12 Mar 2026
    cases = {
        # due Mon 16: on Thu 12 the next working day is Fri 13 → in time
        OpenState.IN_TIME: F(std()),
        # due Fri 13 (explicit): next working day after Thu 12 is Fri 13 → due soon
        OpenState.DUE_SOON: F(rec("2026-03-02T09:00:00+07:00", due="2026-03-13T17:00:00+07:00")),
        OpenState.OVERDUE: F(_std5()),
        OpenState.PAUSED: F(std(), ev("supplement_requested", "2026-03-03T10:00:00+07:00")),
        OpenState.READY: F(std(), ev("approved", "2026-03-10T10:00:00+07:00")),
    }
    for expected, d in cases.items():
        got = contribution(d, T(now), CAL)
        assert [k for k in got if k[0] == "open"] == [open_key(expected)]
        assert state(d, now) is expected
    closed = F(std(), ev("returned", "2026-03-10T10:00:00+07:00"))
    assert [k for k in contribution(closed, T(now), CAL) if k[0] == "open"] == []
    assert state(closed, now) is None


def test_r9_ready_until_returned() -> None:
    approved = ev("approved", "2026-03-10T10:00:00+07:00")
    assert state(F(std(), approved), "2026-03-20T10:00:00+07:00") is OpenState.READY
    d = F(std(), approved, ev("returned", "2026-03-11T10:00:00+07:00"))
    assert state(d, "2026-03-20T10:00:00+07:00") is None


# --------------------------------------------------------------------------- next_change_at


def test_next_change_at_in_time_then_due_soon_then_overdue() -> None:
    d = F(_std5())  # due Mon 9 Mar 23:59:59
    now = T("2026-03-03T10:00:00+07:00")
    first = next_change_at(d, now, CAL)
    assert first == T("2026-03-06T00:00:00+07:00")
    assert open_state(d, first - US, CAL) is OpenState.IN_TIME
    assert open_state(d, first, CAL) is OpenState.DUE_SOON
    second = next_change_at(d, first, CAL)
    assert second == T("2026-03-09T23:59:59.000001+07:00")
    assert open_state(d, second - US, CAL) is OpenState.DUE_SOON
    assert open_state(d, second, CAL) is OpenState.OVERDUE
    before, after = keys(d, second - US), keys(d, second)
    assert before == {RECEIVED, open_key(OpenState.DUE_SOON)}
    assert after == {
        RECEIVED,
        ("became_overdue", AG),
        open_key(OpenState.OVERDUE),
        ("overdue_without_apology", AG),
    }
    assert next_change_at(d, second, CAL) is None


def test_next_change_at_across_tet() -> None:
    d = F(rec("2026-02-09T09:00:00+07:00", days=5))  # due Mon 23 Feb 23:59:59
    got = next_change_at(d, T("2026-02-10T10:00:00+07:00"), CAL)
    assert got == T("2026-02-13T00:00:00+07:00")
    assert open_state(d, got - US, CAL) is OpenState.IN_TIME
    assert open_state(d, got, CAL) is OpenState.DUE_SOON


def test_next_change_at_is_none_when_nothing_can_change() -> None:
    now = T("2026-03-12T10:00:00+07:00")
    for d in (
        F(std(), ev("supplement_requested", "2026-03-03T10:00:00+07:00")),  # paused
        F(std(), ev("approved", "2026-03-10T10:00:00+07:00")),  # ready
        F(std(), ev("returned", "2026-03-10T10:00:00+07:00")),  # closed
        F(_std5()),  # overdue
        F(ev("appraised", "2026-03-03T09:00:00+07:00")),  # orphan
    ):
        assert next_change_at(d, now, CAL) is None


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "due_at",
    [
        "9999-12-31T23:59:59Z",  # local (UTC+7) date is past year 9999
        "9999-12-31T16:59:59Z",  # fits, but a supplement shift moves it past 9999
        "9999-12-31T23:59:59+07:00",
    ],
)
def test_a_due_at_the_domain_cannot_hold_is_rejected_at_the_door(due_at: str) -> None:
    """Dues near year 9999 overflow the calendar's arithmetic (local date, supplement
    shift), so parse_event must keep them out of the domain."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(_receipt_with_due(due_at), now=T("2026-03-02T09:00:00+07:00"))
    assert caught.value.reason is Reason.BAD_TIMESTAMP


@pytest.mark.parametrize(
    "due_at",
    [
        "2099-12-31T23:59:59+07:00",  # the latest due parse_event accepts, locally
        "2099-12-31T23:59:59Z",  # its local date is in 2100
        "2099-12-31T23:59:59-12:00",  # the latest instant it accepts
    ],
)
def test_the_latest_accepted_due_at_folds_and_counts(due_at: str) -> None:
    """Whatever parse_event accepts, the domain folds and counts: in time, paused, then
    in time again with the due moved by the working days waited (R2)."""
    receipt = parse_event(_receipt_with_due(due_at), now=T("2026-03-02T09:00:00+07:00"))
    events = [
        receipt,
        ev("supplement_requested", "2026-03-03T10:00:00+07:00"),
        ev("supplement_received", "2026-03-05T10:00:00+07:00"),
    ]
    now = T("2026-03-12T10:00:00+07:00")
    states = []
    for subset in (events[:1], events[:2], events):
        d = F(*subset)
        states.append(open_state(d, now, CAL))
        assert open_key(states[-1]) in contribution(d, now, CAL)
        change = next_change_at(d, now, CAL)
        assert change is None if d.paused_at is not None else change is not None and change > now
    assert states == [OpenState.IN_TIME, OpenState.PAUSED, OpenState.IN_TIME]
    resumed = F(*events)
    assert receipt.due_at is not None and resumed.due is not None
    assert resumed.due > receipt.due_at  # shifted by k = 2 working days (Wed 4, Thu 5 Mar)


def _receipt_with_due(due_at: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": "rcv",
            "dossier_id": DID,
            "type": "received",
            "occurred_at": "2026-03-02T09:00:00+07:00",
            "agency": AG,
            "procedure": "1.000948",
            "channel": "direct",
            "due_at": due_at,
        }
    )


def test_late_after_a_pause_counts_as_became_overdue() -> None:
    # due Mon 2 Mar 17:00; paused Mon 10:00; approved Tue 3 Mar 18:00 while paused.
    # R2 shifts the due by k = 1 (Tue 3) → Tue 17:00; the end is an hour later: late,
    # so the clock did pass its due and the dossier counts once as became overdue.
    events = [
        ev(
            "received",
            "2026-03-02T08:00:00+07:00",
            agency=AG,
            procedure="1.000948",
            channel=Channel.DIRECT,
            due_at="2026-03-02T17:00:00+07:00",
        ),
        ev("supplement_requested", "2026-03-02T10:00:00+07:00"),
        ev("approved", "2026-03-03T18:00:00+07:00"),
    ]
    dossier = fold(DID, events, CAL)
    assert dossier.due == T("2026-03-03T17:00:00+07:00")
    assert dossier.outcome is Outcome.LATE
    keys = contribution(dossier, T("2026-03-04T09:00:00+07:00"), CAL)
    assert ("became_overdue", AG) in keys


def test_r2_new_appointment_without_a_pause_moves_the_due() -> None:
    # A supplement_received with due_at on a running dossier: the due becomes due_at
    # (the national sync's changed NgayHenTra). No pause is counted.
    moved = ev(
        "supplement_received", "2026-03-04T09:00:00+07:00", due_at="2026-04-30T17:00:00+07:00"
    )
    d = F(std(), moved)
    assert d.due == T("2026-04-30T17:00:00+07:00")
    assert d.supplements == 0 and d.paused_at is None and not d.passed_due
    # Approved Fri 20 Mar: after the old due (Mon 16), before the moved one → early.
    done = F(std(), moved, ev("approved", "2026-03-20T10:00:00+07:00"))
    assert done.outcome is Outcome.EARLY
    assert keys(done, "2026-03-21T00:00:00+07:00") == {
        RECEIVED,
        ("completed", AG, "early"),
        open_key(OpenState.READY),
    }


def test_r2_new_appointment_after_the_old_due_still_counts_the_passing() -> None:
    # Moved on Wed 18 Mar, after the old due (Mon 16 23:59:59): the clock had passed it.
    moved = ev(
        "supplement_received", "2026-03-18T09:00:00+07:00", due_at="2026-03-27T17:00:00+07:00"
    )
    d = F(std(), moved)
    assert d.passed_due
    assert keys(d, "2026-03-19T09:00:00+07:00") == {
        RECEIVED,
        ("became_overdue", AG),
        open_key(OpenState.IN_TIME),
    }


def test_r2_new_appointment_after_the_clock_ended_changes_nothing() -> None:
    done = F(std(), ev("approved", "2026-03-10T10:00:00+07:00"))
    late_move = ev(
        "supplement_received", "2026-03-11T09:00:00+07:00", due_at="2026-03-05T17:00:00+07:00"
    )
    assert F(std(), ev("approved", "2026-03-10T10:00:00+07:00"), late_move) == done


def no_due() -> DossierEvent:
    return rec("2026-03-02T09:00:00+07:00")


def test_r11_received_without_a_due_is_open_no_due_and_never_overdue() -> None:
    d = F(no_due())
    assert d.due is None
    assert state(d, "2027-03-02T09:00:00+07:00") is OpenState.NO_DUE
    assert keys(d, "2027-03-02T09:00:00+07:00") == {RECEIVED, open_key(OpenState.NO_DUE)}
    assert next_change_at(d, T("2026-03-03T09:00:00+07:00"), CAL) is None


def test_r11_no_due_resolved_counts_without_an_outcome() -> None:
    d = F(no_due(), ev("approved", "2026-05-04T10:00:00+07:00"))
    assert d.outcome is None and d.clock_end == T("2026-05-04T10:00:00+07:00")
    assert keys(d, "2026-05-05T09:00:00+07:00") == {
        RECEIVED,
        ("completed_without_due", AG),
        open_key(OpenState.READY),
    }
    returned = F(no_due(), ev("returned", "2026-05-04T10:00:00+07:00"))
    assert keys(returned, "2026-05-05T09:00:00+07:00") == {
        RECEIVED,
        ("completed_without_due", AG),
    }


def test_r11_no_due_pauses_resumes_and_can_get_a_due() -> None:
    request = ev("supplement_requested", "2026-03-03T10:00:00+07:00")
    resume = ev("supplement_received", "2026-03-09T09:00:00+07:00")
    d = F(no_due(), request)
    assert state(d, "2026-03-04T09:00:00+07:00") is OpenState.PAUSED
    assert F(no_due(), request, resume).due is None
    # A later appointment (a snapshot's first NgayHenTra) gives the dossier a due.
    moved = ev(
        "supplement_received", "2026-03-10T09:00:00+07:00", due_at="2026-03-12T17:00:00+07:00"
    )
    d = F(no_due(), request, resume, moved)
    assert d.due == T("2026-03-12T17:00:00+07:00")
    assert state(d, "2026-03-13T09:00:00+07:00") is OpenState.OVERDUE
    withdrawn = F(no_due(), ev("withdrawn", "2026-03-05T09:00:00+07:00"))
    assert keys(withdrawn, "2026-03-06T09:00:00+07:00") == {RECEIVED, ("withdrawn", AG)}
