"""Period reports from dossier facts: every category boundary by hand, then agreement with
the domain core on random dossiers, then the `motcua report` client against fake workers.

The standard period is March 2026, local: [2026-03-01 00:00+07:00, 2026-04-01 00:00+07:00).
March and early April 2026 have no holidays (Hùng Kings' day is observed on Mon 27 Apr), so
working days are Monday–Friday in every hand count below.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import Channel, DossierEvent, EventType
from service.domain import OpenState, WorkingCalendar, fold, open_state
from service.domain.calendar import LOCAL_TZ, start_of_local_day
from service.domain.progress import facts_of
from service.domain.report import (
    DossierFacts,
    PeriodFigures,
    current_period,
    index_report,
    period_report,
    total,
)
from service.outputs.compare import read_score_sheet
from service.outputs.report import report_json, run_report_cli

CAL = WorkingCalendar()
AG = "SXD"
MAR = (date(2026, 3, 1), date(2026, 3, 31))
FEB = (date(2026, 2, 1), date(2026, 2, 28))
APR = (date(2026, 4, 1), date(2026, 4, 30))
COUNTS = (
    "carried_over",
    "new",
    "resolved_early",
    "resolved_on_time",
    "resolved_late",
    "withdrawn",
    "in_progress_within",
    "in_progress_overdue",
)

_ids = itertools.count()


def T(text: str) -> datetime:
    return datetime.fromisoformat(text)


def ev(did: str, kind: str, at: str | datetime, **fields: Any) -> DossierEvent:
    for name in ("due_at", "new_due_at"):
        if isinstance(fields.get(name), str):
            fields[name] = T(fields[name])
    return DossierEvent(
        event_id=f"ev-{next(_ids)}",
        dossier_id=did,
        type=EventType(kind),
        occurred_at=T(at) if isinstance(at, str) else at,
        **fields,
    )


def rec(
    did: str,
    at: str,
    due: str | None = None,
    days: int | None = None,
    agency: str = AG,
    channel: Channel = Channel.DIRECT,
) -> DossierEvent:
    return ev(
        did,
        "received",
        at,
        agency=agency,
        procedure="1.000948",
        channel=channel,
        due_at=due,
        processing_days=days,
    )


def facts(*events: DossierEvent) -> DossierFacts:
    found = facts_of(events[0].dossier_id, events, CAL)
    assert found is not None
    return found


def counts(
    dossiers: list[DossierFacts], period: tuple[date, date] = MAR, **kwargs: Any
) -> dict[str, int]:
    """The non-zero category counts of the center total (channels checked separately)."""
    figures = total(period_report(dossiers, *period, **kwargs).values()).to_dict()
    return {name: figures[name] for name in COUNTS if figures[name]}


# -- each category boundary, by hand ---------------------------------------------------------


def test_received_before_and_resolved_inside_is_carried_over_and_resolved() -> None:
    # Due Thu 5 Mar; approved Wed 4 Mar, an earlier local date → early.
    d = facts(
        rec("A", "2026-02-25T09:00:00+07:00", due="2026-03-05T23:59:59+07:00"),
        ev("A", "approved", "2026-03-04T10:00:00+07:00"),
        ev("A", "returned", "2026-03-06T10:00:00+07:00"),
    )
    assert counts([d]) == {"carried_over": 1, "resolved_early": 1}
    # In February it was new and, at 1 Mar 00:00, still within its due of 5 Mar.
    assert counts([d], FEB) == {"new": 1, "in_progress_within": 1}
    assert counts([d], APR) == {}


def test_received_inside_and_open_past_the_end_overdue_at_the_end() -> None:
    # Due Fri 20 Mar 23:59:59 < 1 Apr 00:00: overdue when March ends; approved in April, late.
    d = facts(
        rec("B", "2026-03-10T09:00:00+07:00", due="2026-03-20T23:59:59+07:00"),
        ev("B", "approved", "2026-04-03T10:00:00+07:00"),
    )
    assert counts([d]) == {"new": 1, "in_progress_overdue": 1}
    assert counts([d], APR) == {"carried_over": 1, "resolved_late": 1}


def test_received_inside_and_open_past_the_end_within_its_due() -> None:
    d = facts(rec("B2", "2026-03-25T09:00:00+07:00", due="2026-04-08T23:59:59+07:00"))
    assert counts([d]) == {"new": 1, "in_progress_within": 1}


def test_paused_over_the_end_requested_before_the_due_is_within() -> None:
    # Due Fri 27 Mar; supplement requested Wed 25 Mar, before it. At 1 Apr 00:00 the due date
    # has passed, but the dossier waits for the citizen: within.
    events = [
        rec("C", "2026-03-16T09:00:00+07:00", due="2026-03-27T23:59:59+07:00"),
        ev("C", "supplement_requested", "2026-03-25T10:00:00+07:00"),
        ev("C", "supplement_received", "2026-04-03T10:00:00+07:00"),
    ]
    d = facts(*events)
    assert counts([d]) == {"new": 1, "in_progress_within": 1}
    # Resumed Fri 3 Apr: k = working days in (25 Mar, 3 Apr] = 26, 27, 30, 31, 1, 2, 3 = 7;
    # due 27 Mar + 7 working days = Tue 7 Apr 23:59:59.
    assert fold("C", events, CAL).due == T("2026-04-07T23:59:59+07:00")
    assert counts([d], (date(2026, 4, 1), date(2026, 4, 6))) == {
        "carried_over": 1,
        "in_progress_within": 1,
    }
    assert counts([d], (date(2026, 4, 1), date(2026, 4, 7))) == {
        "carried_over": 1,
        "in_progress_overdue": 1,
    }


def test_paused_over_the_end_requested_after_the_due_is_overdue() -> None:
    # Due Fri 13 Mar; the supplement was requested Mon 16 Mar, already past it.
    d = facts(
        rec("D", "2026-03-02T09:00:00+07:00", due="2026-03-13T23:59:59+07:00"),
        ev("D", "supplement_requested", "2026-03-16T09:00:00+07:00"),
    )
    assert counts([d]) == {"new": 1, "in_progress_overdue": 1}


def test_request_exactly_at_the_due_is_within() -> None:
    d = facts(
        rec("D2", "2026-03-02T09:00:00+07:00", due="2026-03-13T23:59:59+07:00"),
        ev("D2", "supplement_requested", "2026-03-13T23:59:59+07:00"),
    )
    assert counts([d]) == {"new": 1, "in_progress_within": 1}


def test_a_second_pause_is_judged_by_its_own_request() -> None:
    # The first request (Mon 16 Mar) came after the due of Fri 13 Mar; the supplement arrived
    # with a new appointment of Fri 27 Mar; the second request (Fri 20 Mar) came before that.
    # Just before the second request the dossier was running within its due of 27 Mar; the
    # pause freezes that verdict, so it is within when March ends. `Dossier.passed_due` stays
    # True from the first pause: the rule is per request, not "ever overdue".
    events = [
        rec("D3", "2026-03-02T09:00:00+07:00", due="2026-03-13T23:59:59+07:00"),
        ev("D3", "supplement_requested", "2026-03-16T09:00:00+07:00"),
        ev(
            "D3",
            "supplement_received",
            "2026-03-17T10:00:00+07:00",
            due_at="2026-03-27T23:59:59+07:00",
        ),
        ev("D3", "supplement_requested", "2026-03-20T10:00:00+07:00"),
    ]
    assert fold("D3", events, CAL).passed_due
    d = facts(*events)
    assert counts([d]) == {"new": 1, "in_progress_within": 1}
    assert counts([d], (date(2026, 3, 1), date(2026, 3, 16))) == {
        "new": 1,
        "in_progress_overdue": 1,
    }
    assert counts([d], (date(2026, 3, 1), date(2026, 3, 18))) == {
        "new": 1,
        "in_progress_within": 1,
    }


def test_supplement_received_exactly_at_the_end_counts_from_the_next_period() -> None:
    # Paused past its due (overdue) until 1 Apr 00:00, when the supplement arrives with a new
    # appointment of 10 Apr: overdue when March ends, within from the first instant of April.
    d = facts(
        rec("D4", "2026-03-02T09:00:00+07:00", due="2026-03-13T23:59:59+07:00"),
        ev("D4", "supplement_requested", "2026-03-16T09:00:00+07:00"),
        ev(
            "D4",
            "supplement_received",
            "2026-04-01T00:00:00+07:00",
            due_at="2026-04-10T23:59:59+07:00",
        ),
    )
    assert counts([d]) == {"new": 1, "in_progress_overdue": 1}
    april_first = (date(2026, 4, 1), date(2026, 4, 1))
    assert counts([d], april_first) == {"carried_over": 1, "in_progress_within": 1}


def test_due_in_force_at_the_end_includes_the_supplement_shift() -> None:
    # Received Mon 2 Mar, 10 working days → due Mon 16 Mar. Paused Fri 13 Mar, resumed
    # Thu 19 Mar: k = 16, 17, 18, 19 = 4 → due Fri 20 Mar 23:59:59.
    d = facts(
        rec("J", "2026-03-02T09:00:00+07:00", days=10),
        ev("J", "supplement_requested", "2026-03-13T10:00:00+07:00"),
        ev("J", "supplement_received", "2026-03-19T10:00:00+07:00"),
    )
    up_to = (date(2026, 3, 1), date(2026, 3, 17))  # ends 18 Mar 00:00: paused
    assert counts([d], up_to) == {"new": 1, "in_progress_within": 1}
    up_to = (date(2026, 3, 1), date(2026, 3, 19))  # ends 20 Mar 00:00: running, due 20 Mar
    assert counts([d], up_to) == {"new": 1, "in_progress_within": 1}
    up_to = (date(2026, 3, 1), date(2026, 3, 20))  # ends 21 Mar 00:00: past the shifted due
    assert counts([d], up_to) == {"new": 1, "in_progress_overdue": 1}
    assert d.segments()[0][1] == T("2026-03-16T23:59:59+07:00").timestamp()


def test_withdrawn_inside_the_period() -> None:
    d = facts(
        rec("E", "2026-03-03T09:00:00+07:00", due="2026-03-17T23:59:59+07:00"),
        ev("E", "withdrawn", "2026-03-05T10:00:00+07:00"),
    )
    assert counts([d]) == {"new": 1, "withdrawn": 1}
    assert counts([d], APR) == {}


def test_withdrawn_after_the_end_is_in_progress_at_the_end() -> None:
    d = facts(
        rec("F", "2026-03-20T09:00:00+07:00", due="2026-04-10T23:59:59+07:00"),
        ev("F", "withdrawn", "2026-04-02T10:00:00+07:00"),
    )
    assert counts([d]) == {"new": 1, "in_progress_within": 1}
    assert counts([d], APR) == {"carried_over": 1, "withdrawn": 1}


def test_withdrawn_after_the_clock_ended_is_resolved_not_withdrawn() -> None:
    d = facts(
        rec("F2", "2026-03-02T09:00:00+07:00", due="2026-03-13T23:59:59+07:00"),
        ev("F2", "approved", "2026-03-13T10:00:00+07:00"),
        ev("F2", "withdrawn", "2026-03-14T10:00:00+07:00"),
    )
    assert counts([d]) == {"new": 1, "resolved_on_time": 1}


def test_resolved_exactly_at_the_period_end_belongs_to_the_next_period() -> None:
    # Approved at 1 Apr 00:00 local, the end instant of March: in progress (and past its due
    # of 31 Mar 23:59:59) when March ends; resolved, late, at the very start of April.
    d = facts(
        rec("G", "2026-03-25T09:00:00+07:00", due="2026-03-31T23:59:59+07:00"),
        ev("G", "approved", "2026-04-01T00:00:00+07:00"),
    )
    assert counts([d]) == {"new": 1, "in_progress_overdue": 1}
    assert counts([d], APR) == {"carried_over": 1, "resolved_late": 1}


def test_supplement_requested_exactly_at_the_end_is_not_yet_applied() -> None:
    # The state at the end is the one after the events strictly before it: still running.
    d = facts(
        rec("G2", "2026-03-25T09:00:00+07:00", due="2026-03-31T23:59:59+07:00"),
        ev("G2", "supplement_requested", "2026-04-01T00:00:00+07:00"),
    )
    assert counts([d]) == {"new": 1, "in_progress_overdue": 1}


def test_receipt_on_the_local_first_day_but_the_utc_day_before() -> None:
    # 00:30 on 1 Mar in Hà Nội is 17:30 on 28 Feb in UTC: a March receipt.
    d = facts(rec("H", "2026-02-28T17:30:00+00:00", due="2026-04-10T23:59:59+07:00"))
    assert counts([d]) == {"new": 1, "in_progress_within": 1}
    assert counts([d], FEB) == {}
    # 23:30 on 28 Feb local (16:30 UTC) is a February receipt, carried into March.
    d = facts(rec("H2", "2026-02-28T23:30:00+07:00", due="2026-04-10T23:59:59+07:00"))
    assert counts([d], FEB) == {"new": 1, "in_progress_within": 1}
    assert counts([d]) == {"carried_over": 1, "in_progress_within": 1}


def test_receipt_exactly_at_local_midnight_opens_the_period() -> None:
    d = facts(rec("H3", "2026-03-01T00:00:00+07:00", due="2026-04-10T23:59:59+07:00"))
    assert counts([d]) == {"new": 1, "in_progress_within": 1}
    assert counts([d], FEB) == {}


def test_received_after_the_period_is_absent() -> None:
    d = facts(rec("I", "2026-04-01T00:00:00+07:00", due="2026-05-08T23:59:59+07:00", agency="SKH"))
    assert period_report([d], *MAR) == {}
    assert counts([d], APR) == {"new": 1, "in_progress_within": 1}


def test_resolved_before_the_period_is_absent() -> None:
    d = facts(
        rec("K", "2026-02-02T09:00:00+07:00", due="2026-02-13T23:59:59+07:00"),
        ev("K", "rejected", "2026-02-27T10:00:00+07:00"),
    )
    assert period_report([d], *MAR) == {}
    assert counts([d], FEB) == {"new": 1, "resolved_late": 1}


def test_orphan_has_no_facts() -> None:
    assert facts_of("O", [ev("O", "approved", "2026-03-04T10:00:00+07:00")], CAL) is None


def test_clock_ended_at_the_receipt_instant() -> None:
    at = "2026-03-04T10:00:00+07:00"
    d = facts(rec("Q", at, due="2026-03-04T23:59:59+07:00"), ev("Q", "approved", at))
    assert counts([d]) == {"new": 1, "resolved_on_time": 1}


# -- rates, scores, channels, sums -----------------------------------------------------------


def _one_of_each() -> list[DossierFacts]:
    due = "2026-03-13T23:59:59+07:00"
    return [
        facts(
            rec("R1", "2026-03-02T09:00:00+07:00", due=due),
            ev("R1", "approved", "2026-03-12T10:00:00+07:00"),
        ),
        facts(
            rec("R2", "2026-03-02T09:00:00+07:00", due=due, channel=Channel.ONLINE),
            ev("R2", "approved", "2026-03-13T10:00:00+07:00"),
        ),
        facts(
            rec("R3", "2026-03-02T09:00:00+07:00", due=due, channel=Channel.POSTAL),
            ev("R3", "approved", "2026-03-16T10:00:00+07:00"),
        ),
        facts(rec("R4", "2026-03-30T09:00:00+07:00", due="2026-04-10T23:59:59+07:00")),
        facts(rec("R5", "2026-03-02T09:00:00+07:00", due=due)),
        facts(
            rec("R6", "2026-03-02T09:00:00+07:00", due=due),
            ev("R6", "withdrawn", "2026-03-03T09:00:00+07:00"),
        ),
        # Carried over from February, online: not part of March's channel shares.
        facts(rec("R7", "2026-02-20T09:00:00+07:00", due=due, channel=Channel.ONLINE)),
    ]


def test_timeliness_rate_and_score() -> None:
    figures = total(period_report(_one_of_each(), *MAR).values())
    assert (figures.resolved_early, figures.resolved_on_time, figures.resolved_late) == (1, 1, 1)
    assert (figures.in_progress_within, figures.in_progress_overdue) == (1, 2)
    assert figures.withdrawn == 1 and figures.carried_over == 1
    # (early 1 + on time 1 + within 1) / (resolved 3 + in progress 3); withdrawn is not handled.
    assert figures.timeliness_rate == pytest.approx(3 / 6)
    assert figures.timeliness_score == pytest.approx(10.0)


def test_rates_are_null_when_nothing_was_handled() -> None:
    d = facts(
        rec("N", "2026-03-02T09:00:00+07:00", due="2026-03-13T23:59:59+07:00"),
        ev("N", "withdrawn", "2026-03-03T09:00:00+07:00"),
    )
    figures = total(period_report([d], *MAR).values())
    assert figures.timeliness_rate is None and figures.timeliness_score is None
    assert figures.to_dict()["timeliness_score"] is None
    empty = total([])
    assert empty.timeliness_rate is None and empty.online_share is None
    assert empty.postal_share is None


def test_channel_shares_are_of_the_new_dossiers() -> None:
    figures = total(period_report(_one_of_each(), *MAR).values())
    assert figures.new == 6
    assert (figures.received_direct, figures.received_online, figures.received_postal) == (4, 1, 1)
    assert figures.online_share == pytest.approx(1 / 6)
    assert figures.postal_share == pytest.approx(1 / 6)


def test_per_agency_rows_and_the_agency_filter() -> None:
    dossiers = [
        facts(rec("P1", "2026-03-02T09:00:00+07:00", due="2026-04-10T23:59:59+07:00")),
        facts(
            rec("P2", "2026-03-02T09:00:00+07:00", due="2026-03-03T23:59:59+07:00", agency="SKH")
        ),
    ]
    by_agency = period_report(dossiers, *MAR)
    assert set(by_agency) == {"SXD", "SKH"}
    assert by_agency["SXD"].in_progress_within == 1 and by_agency["SKH"].in_progress_overdue == 1
    only = period_report(dossiers, *MAR, agency="SKH")
    assert set(only) == {"SKH"} and only["SKH"] == by_agency["SKH"]


def test_figures_round_trip_through_dicts() -> None:
    figures = total(period_report(_one_of_each(), *MAR).values())
    assert PeriodFigures.from_dict(figures.to_dict()) == figures
    with pytest.raises(ValueError):
        PeriodFigures.from_dict({"new": -1})


# -- agreement with the domain core on random dossiers ---------------------------------------

KINDS = [t for t in EventType if t is not EventType.RECEIVED]
WINDOW_START = datetime(2026, 2, 1, tzinfo=LOCAL_TZ)
WINDOW_DAYS = 80


def _instant(rng: random.Random, after: datetime | None = None) -> datetime:
    """A random instant, often exactly a local midnight or a due-like 23:59:59."""
    base = after if after is not None else WINDOW_START
    roll = rng.random()
    if after is not None and roll < 0.08:
        return after  # same instant as the previous event
    moment = base + timedelta(seconds=rng.randrange(0, 9 * 86400 if after else WINDOW_DAYS * 86400))
    local = moment.astimezone(LOCAL_TZ)
    if roll < 0.25:
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    if roll < 0.35:
        return local.replace(hour=23, minute=59, second=59, microsecond=0)
    if roll < 0.40:
        return local.replace(microsecond=rng.randrange(1_000_000))
    return local


def random_dossier(rng: random.Random, did: str) -> list[DossierEvent]:
    received_at = _instant(rng)
    agency = rng.choice(["SXD", "SKH", "STP"])
    channel = rng.choice(list(Channel))
    if rng.random() < 0.5:
        due, days = None, rng.randint(1, 12)
    else:
        local_due = received_at.astimezone(LOCAL_TZ) + timedelta(days=rng.randint(0, 15))
        due = local_due.replace(hour=23, minute=59, second=59, microsecond=0).isoformat()
        days = None
    events = [rec(did, received_at.isoformat(), due, days, agency, channel)]
    if rng.random() < 0.1:  # an event dated before the receipt is ignored (R6)
        events.append(ev(did, "appraised", received_at - timedelta(hours=1)))
    at = received_at
    for _ in range(rng.randint(0, 6)):
        at = _instant(rng, at)
        kind = rng.choice(KINDS)
        extra: dict[str, Any] = {}
        if kind is EventType.EXTENDED:
            extra["new_due_at"] = at + timedelta(days=5)
        elif kind is EventType.SUPPLEMENT_RECEIVED and rng.random() < 0.2:
            extra["due_at"] = at + timedelta(days=rng.randint(0, 6))
        elif kind is EventType.STEP_STARTED:
            extra |= {"step": rng.choice("AB"), "department": "P1", "step_days": 1}
        elif kind is EventType.STEP_COMPLETED:
            extra["step"] = rng.choice("AB")
        events.append(ev(did, kind.value, at, **extra))
    rng.shuffle(events)  # arrival order must not matter
    return events


def _in_progress(state: OpenState | None) -> bool:
    return state not in (None, OpenState.READY)


def oracle(dossiers: list[list[DossierEvent]], start: datetime, end: datetime) -> dict[str, int]:
    """The period's counts from the domain core alone: fold what had happened by each bound."""
    out = dict.fromkeys(COUNTS, 0)
    for events in dossiers:
        did = events[0].dossier_id
        before = fold(did, [e for e in events if e.occurred_at < start], CAL)
        by_end = fold(did, [e for e in events if e.occurred_at < end], CAL)
        if by_end.received_at is None:
            continue
        if before.received_at is None:
            out["new"] += 1
        elif _in_progress(open_state(before, start, CAL)):
            out["carried_over"] += 1
        if by_end.outcome is not None and before.outcome is None:
            out[f"resolved_{by_end.outcome.value}"] += 1
        if by_end.withdrawn and not before.withdrawn:
            out["withdrawn"] += 1
        state = open_state(by_end, end, CAL)
        if state in (OpenState.IN_TIME, OpenState.DUE_SOON):
            out["in_progress_within"] += 1
        elif state is OpenState.OVERDUE:
            out["in_progress_overdue"] += 1
        elif state is OpenState.PAUSED:
            assert by_end.paused_at is not None and by_end.due is not None
            within = by_end.paused_at <= by_end.due
            out["in_progress_within" if within else "in_progress_overdue"] += 1
    return out


def _random_period(rng: random.Random) -> tuple[date, date]:
    first = WINDOW_START.date() + timedelta(days=rng.randrange(0, WINDOW_DAYS))
    return first, first + timedelta(days=rng.randrange(0, 40))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_report_agrees_with_the_domain_core_for_any_period(seed: int) -> None:
    rng = random.Random(seed)
    dossiers = [random_dossier(rng, f"HS-{i}") for i in range(30)]
    # Facts from the whole history, whatever came after the period: the timeline must
    # recover the state at each bound.
    all_facts = [f for events in dossiers if (f := facts_of(events[0].dossier_id, events, CAL))]
    for _ in range(3):
        first, last = _random_period(rng)
        start = start_of_local_day(first)
        end = start_of_local_day(last + timedelta(days=1))
        expected = {k: v for k, v in oracle(dossiers, start, end).items() if v}
        assert counts(all_facts, (first, last)) == expected
        # Each dossier of the period enters once and leaves once (or is still in progress).
        by_agency = period_report(all_facts, first, last)
        for figures in by_agency.values():
            assert figures.carried_over + figures.new == (
                figures.resolved + figures.withdrawn + figures.in_progress
            )
        assert sum(f.new for f in by_agency.values()) == sum(
            f.received_direct + f.received_online + f.received_postal for f in by_agency.values()
        )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_report_ending_now_agrees_with_open_state(seed: int) -> None:
    rng = random.Random(seed)
    now = _instant(rng)
    # What exists at `now`: the events that had happened by then.
    dossiers = [
        kept
        for i in range(30)
        if (kept := [e for e in random_dossier(rng, f"HS-{i}") if e.occurred_at < now])
    ]
    all_facts = [f for events in dossiers if (f := facts_of(events[0].dossier_id, events, CAL))]
    figures = total(period_report(all_facts, *current_period("month", now), now=now).values())

    folded = [fold(events[0].dossier_id, events, CAL) for events in dossiers]
    states = [open_state(d, now, CAL) for d in folded]
    assert figures.in_progress == sum(1 for s in states if _in_progress(s))
    # Running dossiers: exactly the domain core's verdict at `now`.
    running_within = sum(1 for s in states if s in (OpenState.IN_TIME, OpenState.DUE_SOON))
    running_overdue = states.count(OpenState.OVERDUE)
    # Paused ones: within iff the supplement was requested by the due (the rule).
    paused = [d for d, s in zip(folded, states, strict=True) if s is OpenState.PAUSED]
    paused_within = sum(1 for d in paused if d.paused_at and d.due and d.paused_at <= d.due)
    assert figures.in_progress_within == running_within + paused_within
    assert figures.in_progress_overdue == running_overdue + len(paused) - paused_within


def test_current_periods_are_local() -> None:
    now = T("2026-02-28T17:30:00+00:00")  # 00:30 on 1 March in Hà Nội
    assert current_period("month", now) == MAR
    assert current_period("year", now) == (date(2026, 1, 1), date(2026, 12, 31))
    assert current_period("month", T("2026-12-31T16:59:59+00:00")) == (
        date(2026, 12, 1),
        date(2026, 12, 31),
    )
    with pytest.raises(ValueError):
        current_period("week", now)


def test_a_running_month_judges_at_now_not_at_its_end() -> None:
    # Due 20 Mar; asked on 10 Mar, the month so far has it within; at the month's end, overdue.
    d = facts(rec("M", "2026-03-02T09:00:00+07:00", due="2026-03-20T23:59:59+07:00"))
    now = T("2026-03-10T12:00:00+07:00")
    assert counts([d], now=now) == {"new": 1, "in_progress_within": 1}
    assert counts([d]) == {"new": 1, "in_progress_overdue": 1}


def test_two_halves_add_up_to_the_whole() -> None:
    rng = random.Random(20260301)
    dossiers = [random_dossier(rng, f"HS-{i}") for i in range(200)]
    all_facts = [f for events in dossiers if (f := facts_of(events[0].dossier_id, events, CAL))]
    half = len(all_facts) // 2
    whole = period_report(all_facts, *MAR)
    first, second = period_report(all_facts[:half], *MAR), period_report(all_facts[half:], *MAR)
    summed: dict[str, PeriodFigures] = {}
    for part in (first, second):
        for code, figures in part.items():
            summed.setdefault(code, PeriodFigures()).add(figures)
    assert summed == whole
    assert total(summed.values()) == total(whole.values())


# -- the motcua report client ----------------------------------------------------------------


class _FakeWorker(BaseHTTPRequestHandler):
    answers: ClassVar[dict[int, tuple[int, bytes]]] = {}  # by server port: (status, body)

    def do_GET(self) -> None:
        status, body = self.answers[self.server.server_address[1]]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def workers() -> Iterator[list[tuple[str, int]]]:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _FakeWorker) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield [(f"http://127.0.0.1:{s.server_address[1]}", s.server_address[1]) for s in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


def _answer(port: int, dossiers: list[DossierFacts], partitions: list[int]) -> None:
    index = index_report(dossiers, *MAR)
    body = report_json(period_report(dossiers, *MAR), partitions, *MAR, index_by_agency=index)
    _FakeWorker.answers[port] = (200, json.dumps(body).encode())


def test_cli_sums_the_workers_and_recomputes_the_rates(
    workers: list[tuple[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    dossiers = _one_of_each()
    (url_a, port_a), (url_b, port_b) = workers
    _answer(port_a, dossiers[:3], [0, 1])
    _answer(port_b, dossiers[3:], [2])
    assert run_report_cli(*MAR, None, "json", f"{url_a},{url_b}", 3) == 0
    out, err = capsys.readouterr()
    assert err == ""
    body = json.loads(out)
    assert body["partitions"] == [0, 1, 2]
    center_index = body["total"].pop("index")
    assert body["total"] == total(period_report(dossiers, *MAR).values()).to_dict()
    assert body["total"]["timeliness_score"] == pytest.approx(10.0)
    # The index counts are summed across workers and its ratios recomputed.
    assert center_index == index_report(dossiers, *MAR)[AG].to_dict()
    legal = center_index["indicators"]["timeliness"]
    assert legal["portal"] is None  # the legal clock is not the portal's
    legal = legal["motcua"]
    assert (legal["numerator"], legal["denominator"], legal["points"]) == (3, 6, 10.0)

    assert run_report_cli(*MAR, None, "table", f"{url_a},{url_b}", 3) == 0
    table = capsys.readouterr().out
    total_line = next(line for line in table.splitlines() if line.startswith("TỔNG / total"))
    assert total_line.split()[3:11] == ["1", "6", "1", "1", "1", "1", "1", "2"]
    assert "50.0%" in total_line and "10.00" in total_line

    assert run_report_cli(*MAR, None, "csv", f"{url_a},{url_b}", 3) == 0
    figures, index = capsys.readouterr().out.split("\n\n")
    rows = figures.splitlines()
    assert rows[0].startswith("agency,carried_over,new,")
    assert rows[-1].startswith("TOTAL,1,6,1,1,1,1,1,2,")
    index_rows = index.splitlines()
    assert index_rows[0] == (
        "agency,indicator,rule,numerator,denominator,ratio,points,max,weight_verified"
    )
    assert "TOTAL,timeliness,motcua,3,6,0.5,10.0,20,true" in index_rows
    assert not any(row.startswith("TOTAL,timeliness,portal,") for row in index_rows)


@pytest.mark.parametrize(
    ("partitions_a", "partitions_b", "expected", "said"),
    [
        # A worker left out of --url (compose runs two): half the center is no total.
        ([0, 1], None, 4, "partitions 2-3 of 4 are not answered"),
        ([0, 1], [2], 4, "partitions 3 of 4 are not answered"),
        # A rebalance: one partition answered by both workers would count twice.
        ([0, 1], [1, 2], 3, "partitions 1 are answered by two workers"),
        # The topic has more partitions than expected: a dead worker's could be unseen.
        ([0, 1], [2, 3, 4], 4, "partitions 4 are beyond the 4 expected"),
    ],
)
def test_cli_prints_no_report_unless_every_partition_is_answered_once(
    workers: list[tuple[str, int]],
    capsys: pytest.CaptureFixture[str],
    partitions_a: list[int],
    partitions_b: list[int] | None,
    expected: int,
    said: str,
) -> None:
    (url_a, port_a), (url_b, port_b) = workers
    _answer(port_a, _one_of_each()[:2], partitions_a)
    url = url_a
    if partitions_b is not None:
        _answer(port_b, _one_of_each()[2:], partitions_b)
        url = f"{url_a},{url_b}"
    for fmt in ("table", "json", "csv"):
        assert run_report_cli(*MAR, None, fmt, url, expected) == 1
        out, err = capsys.readouterr()
        assert out == ""  # no figure at all: each agency's dossiers span the partitions
        assert err.count("\n") == 1 and "no report: " in err and said in err, err


def test_cli_fails_in_one_line_when_a_worker_is_unreachable_or_errs(
    workers: list[tuple[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    (url_a, port_a), (url_b, port_b) = workers
    _answer(port_a, _one_of_each(), [0])
    _FakeWorker.answers[port_b] = (500, b'{"error": "not ready"}')
    assert run_report_cli(*MAR, None, "table", f"{url_a},{url_b}", 1) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "HTTP 500" in err

    # The discard port: nobody listens there on a test machine.
    assert run_report_cli(*MAR, None, "json", "http://127.0.0.1:9", 1) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "unreachable" in err


def test_report_json_names_its_scope_and_partitions() -> None:
    body = report_json(period_report(_one_of_each(), *MAR), [3, 1], *MAR)
    assert body["from"] == "2026-03-01" and body["to"] == "2026-03-31"
    assert body["partitions"] == [1, 3]
    assert "sums all workers" in body["scope"]
    assert set(body["agencies"]) == {AG}
    assert body["total"]["new"] == 6


def test_fold_with_facts_gives_the_same_state_as_fold() -> None:
    # The worker replays once for both; the state must be exactly `fold`'s.
    from collections import defaultdict

    from schemas import event_from_dict
    from service.domain.progress import fold_with_facts
    from service.tools.simulate import SimulationConfig, generate

    now = datetime(2026, 11, 20, 8, 30, tzinfo=LOCAL_TZ)
    config = SimulationConfig(dossiers=600, seed=4, now=now, shuffle_window=30)
    by_dossier: dict[str, list[DossierEvent]] = defaultdict(list)
    for raw in generate(config):
        event = event_from_dict(raw, now=now)
        by_dossier[event.dossier_id].append(event)
    for dossier_id, events in by_dossier.items():
        state, facts = fold_with_facts(dossier_id, events, CAL)
        assert state == fold(dossier_id, events, CAL)
        assert (facts is None) == (state.received_at is None)


def test_dossiers_without_a_due_count_as_resolved_or_in_progress_but_are_never_judged() -> None:
    def event(number: int, kind: str, at: str, **fields: Any) -> DossierEvent:
        return DossierEvent(
            f"nd-{number}-{kind}",
            f"ND-{number}",
            EventType(kind),
            datetime.fromisoformat(at),
            **fields,
        )

    def receipt(number: int, **due: Any) -> DossierEvent:
        fields = {"agency": "SXD", "procedure": "1.000948", "channel": Channel.DIRECT}
        return event(number, "received", "2026-03-02T09:00:00+07:00", **fields, **due)

    dossiers = [
        # No due, approved 10 March: resolved without a due.
        facts_of("ND-1", [receipt(1), event(1, "approved", "2026-03-10T09:00:00+07:00")], CAL),
        # No due, still in progress at the end of March.
        facts_of("ND-2", [receipt(2)], CAL),
        # A due of 5 working days (Mon 9 March), approved Fri 6 March: early.
        facts_of(
            "ND-3",
            [receipt(3, processing_days=5), event(3, "approved", "2026-03-06T09:00:00+07:00")],
            CAL,
        ),
    ]
    figures = period_report([f for f in dossiers if f is not None], *MAR)["SXD"]
    assert (figures.resolved_early, figures.resolved_without_due) == (1, 1)
    assert (figures.in_progress_within, figures.in_progress_without_due) == (0, 1)
    assert (figures.resolved, figures.in_progress, figures.judged) == (2, 1, 1)
    assert figures.timeliness_rate == 1.0  # 1 early / 1 judged


def test_combine_refuses_index_counts_that_are_not_counts() -> None:
    from service.outputs.report import ReportError, combine

    row = PeriodFigures(new=1).to_dict()
    for bad in ({"counts": {"made_up:num": 1}}, {"counts": {"online_share:den": -1}}, {}):
        answer = {"partitions": [0], "agencies": {AG: {**row, "index": bad}}}
        with pytest.raises(ReportError, match="agency 'SXD'"):
            combine([("http://w", answer)])
    # A worker from before the index answers without one: it adds no index counts.
    _, _, index = combine([("http://w", {"partitions": [0], "agencies": {AG: row}})])
    assert index[AG].counts == {}


def test_cli_leads_with_the_portals_figure_and_lines_up_a_score_sheet(
    workers: list[tuple[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    # March: 6 dossiers received, 4 on time by the portal's rule (R1, R2, R6 withdrawn in
    # time, R4 not yet due at the end); nobody reports an electronic result.
    (url_a, port_a), _ = workers
    _answer(port_a, _one_of_each(), [0])
    sheet = read_score_sheet("SXD,2.1,13.33,4,6\nSXD,4.1,1.5\nTOTAL,2.1,13.33\n")
    assert run_report_cli(*MAR, None, "table", url_a, 1, sheet, "march.csv") == 0
    lines = capsys.readouterr().out.splitlines()
    e_result = next(i for i, line in enumerate(lines) if line.startswith("4.1 e_result"))
    # The portal's row first: 0 of the 6 received; motcua's has no dossier that says.
    assert lines[e_result].split()[2:] == [
        "portal",
        "0.0%",
        "0.00/6",
        "(0/6)",
        "0.0%",
        "0.00/6",
        "(0/6)",
    ]
    assert lines[e_result + 1].split() == ["motcua", "–", "–"]
    assert any(line.startswith("3.3 online_share (weight unverified)") for line in lines)
    assert "differ (1 of 3): SXD 4.1 e_result" in lines

    assert run_report_cli(*MAR, None, "json", url_a, 1, sheet, "march.csv") == 0
    body = json.loads(capsys.readouterr().out)
    assert [line["differs"] for line in body["compare"]["lines"]] == [[], ["points"], []]
    e_result_here = body["agencies"][AG]["index"]["indicators"]["e_result"]
    assert e_result_here["portal"]["denominator"] == 6 and e_result_here["motcua"]["ratio"] is None
    assert body["total"]["index"]["totals"]["portal"]["maximum"] == 50


# -- the month-end projection ----------------------------------------------------------------

NOW_MAR18 = T("2026-03-18T10:00:00+07:00")


def _march_to_project() -> list[DossierFacts]:
    """Three SXD dossiers at Wed 18 Mar 2026 10:00 (no holiday in March):
    A online, received Mon 2 Mar, 5 working days (due Mon 9 Mar), returned Thu 5 Mar: on time;
    B received Mon 16 Mar, 1 working day (due Tue 17 Mar), open: already late;
    C received Wed 18 Mar 08:00, 5 working days (due Wed 25 Mar), open: in time now, late
    at the month's end if nothing moves."""
    return [
        facts(
            rec("A", "2026-03-02T09:00:00+07:00", days=5, channel=Channel.ONLINE),
            ev("A", "returned", "2026-03-05T15:00:00+07:00"),
        ),
        facts(rec("B", "2026-03-16T09:00:00+07:00", days=1)),
        facts(rec("C", "2026-03-18T08:00:00+07:00", days=5)),
    ]


def test_the_month_end_projection_judges_the_open_dossiers_at_the_months_end() -> None:
    from service.domain.index import PORTAL, IndexFigures
    from service.outputs.index_metrics import month_end_projection

    dossiers = _march_to_project()
    # Now: A and C on time, B late: 2.1 = 20 × 2/3 = 13.33; 5.4 = 6 × (2/3) / 0.9 = 4.44.
    now = index_report(dossiers, *MAR, now=NOW_MAR18)[AG]
    assert now.figure("timeliness_portal", PORTAL).points == pytest.approx(40 / 3)
    # At the month's end C is late too: 20 × 1/3 = 6.67; 5.4: 6 × (1/3) / 0.9 = 2.22.
    projected = month_end_projection(dossiers, MAR, {}, {})[AG]
    timeliness = projected.figure("timeliness_portal", PORTAL)
    assert (timeliness.numerator, timeliness.denominator) == (1, 3)
    assert timeliness.points == pytest.approx(20 / 3)
    satisfaction = projected.figure("dossier_satisfaction", PORTAL)
    assert (satisfaction.numerator, satisfaction.denominator) == (1, 3)
    assert satisfaction.points == pytest.approx(6 * (1 / 3) / 0.9)
    # What does not depend on time is today's figure: 3.3 1 of 3 online, T 50%: 8.
    online = projected.figure("online_share", PORTAL)
    assert (online.numerator, online.denominator, online.points) == (1, 3, pytest.approx(8.0))
    # The legal clock at the month's end: A early (the law's own rule), B and C overdue.
    assert (projected.numerator("timeliness"), projected.denominator("timeliness")) == (1, 3)
    # A closed dossier's counts (the day totals: one received on time) are added as they
    # are: 2 of 4 on time, 20 × 2/4 = 10; another agency's are left out with a filter.
    closed = {
        AG: IndexFigures(
            {
                "online_share:den": 1,
                "timeliness_portal:den": 1,
                "timeliness_portal:num": 1,
                "dossier_satisfaction:den": 1,
            }
        ),
        "STP": IndexFigures({"online_share:den": 5}),
    }
    both = month_end_projection(dossiers, MAR, closed, {}, agency=AG)
    assert set(both) == {AG}
    assert both[AG].figure("timeliness_portal", PORTAL).points == pytest.approx(10.0)
    # The portal's total, 3.3 left out: 2.1 10 + 5.4 6 × (2/4) / 0.9 = 3.33, the rest 0.
    assert both[AG].total_points(PORTAL) == pytest.approx(10 + 10 / 3)


def _answer_with_projection(port: int, dossiers: list[DossierFacts], partitions: list[int]) -> None:
    from service.outputs.index_metrics import month_end_projection

    index = index_report(dossiers, *MAR, now=NOW_MAR18)
    body = report_json(
        period_report(dossiers, *MAR, now=NOW_MAR18),
        partitions,
        *MAR,
        index_by_agency=index,
        projection=(MAR, month_end_projection(dossiers, MAR, {}, {})),
    )
    _FakeWorker.answers[port] = (200, json.dumps(body).encode())


def test_cli_sums_the_workers_month_end_projections(
    workers: list[tuple[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    dossiers = _march_to_project()
    (url_a, port_a), (url_b, port_b) = workers
    _answer_with_projection(port_a, dossiers[:2], [0])
    _answer_with_projection(port_b, dossiers[2:], [1])
    assert run_report_cli(*MAR, None, "json", f"{url_a},{url_b}", 2) == 0
    out, err = capsys.readouterr()
    assert err == ""
    projection = json.loads(out)["projection"]
    assert (projection["from"], projection["to"]) == ("2026-03-01", "2026-03-31")
    # Summed over the two workers and rescored: A on time of A, B, C (worked above).
    timeliness = projection["total"]["indicators"]["timeliness_portal"]["portal"]
    assert (timeliness["numerator"], timeliness["denominator"]) == (1, 3)
    assert timeliness["points"] == pytest.approx(20 / 3)
    sxd = projection["agencies"][AG]
    assert sxd["indicators"]["online_share"]["weight_verified"] is False
    # 2.1 6.67 + 5.4 2.22, every other verified indicator 0 of its portal denominator.
    assert sxd["total"] == {"points": pytest.approx(20 / 3 + 20 / 9), "maximum": 50}

    assert run_report_cli(*MAR, None, "table", f"{url_a},{url_b}", 2) == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("Dự kiến cuối tháng"))
    assert "2026-03-01 – 2026-03-31" in lines[head]
    row = next(line for line in lines[head:] if line.startswith("2.1 timeliness_portal"))
    assert row.split()[2:] == ["33.3%", "6.67/20", "(1/3)"] * 2  # SXD, then the center
    row = next(line for line in lines[head:] if line.startswith("3.3 online_share"))
    assert "(weight unverified)" in row and row.split()[-3:] == ["33.3%", "8.00/12", "(1/3)"]
    row = next(line for line in lines[head:] if line.startswith("total compared"))
    assert row.split()[-1] == "8.89/50"

    assert run_report_cli(*MAR, None, "csv", f"{url_a},{url_b}", 2) == 0
    sections = capsys.readouterr().out.split("\n\n")
    assert len(sections) == 3
    projected = sections[2].splitlines()
    assert projected[0].startswith("agency,indicator,rule,numerator,denominator")
    assert "TOTAL,timeliness_portal,portal_projected,1,3," in "\n".join(projected)


def test_cli_leaves_out_a_projection_not_every_worker_gave(
    workers: list[tuple[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    dossiers = _march_to_project()
    (url_a, port_a), (url_b, port_b) = workers
    _answer_with_projection(port_a, dossiers[:2], [0])
    _answer(port_b, dossiers[2:], [1])  # a period not through today: no projection
    assert run_report_cli(*MAR, None, "json", f"{url_a},{url_b}", 2) == 0
    out, err = capsys.readouterr()
    assert "projection" not in json.loads(out)
    assert err.count("\n") == 1 and "month-end projection is left out" in err
