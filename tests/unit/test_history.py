"""Bounded history: closed dossiers as day totals, and period reports from them plus the open
dossiers' facts, equal to `period_report` over every dossier's facts.

The hand-worked dossiers live in March–April 2026, local time (no holidays until Hùng
Kings' day on 27 Apr). A mark's day is the local date it falls on; an in-progress mark on
day d is the verdict at the midnight that ends d.
"""

from __future__ import annotations

import itertools
from array import array
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import reference_pages
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import Channel, DossierEvent, EventType
from service.domain import Dossier, WorkingCalendar, contribution, fold
from service.domain.calendar import LOCAL_TZ
from service.domain.codec import (
    PAGE_DAYS,
    DecodeError,
    EncodedPage,
    decode_closed_totals,
    decode_page,
    decode_page_key,
    encode_closed_totals,
    encode_page,
    encode_page_columns,
    encode_page_key,
)
from service.domain.history import (
    INDEX_PREFIX,
    History,
    HistoryDelta,
    add_counts,
    closed_delta,
    history_report,
    local_day,
    marks,
    settled,
)
from service.domain.progress import fold_with_facts
from service.domain.report import DossierFacts, PeriodFigures, period_report

CAL = WorkingCalendar()
AG = "SXD"
SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_ids = itertools.count()


def T(text: str) -> datetime:
    return datetime.fromisoformat(f"{text}+07:00")


def D(month: int, day: int) -> int:
    """The ordinal of a local date in 2026."""
    return date(2026, month, day).toordinal()


def ev(did: str, kind: str, at: str, **fields: Any) -> DossierEvent:
    for name in ("due_at", "new_due_at"):
        if isinstance(fields.get(name), str):
            fields[name] = T(fields[name])
    return DossierEvent(f"ev-{next(_ids)}", did, EventType(kind), T(at), **fields)


def rec(
    did: str, at: str, due: str, channel: Channel = Channel.DIRECT, agency: str = AG
) -> DossierEvent:
    return ev(did, "received", at, agency=agency, procedure="1.000948", channel=channel, due_at=due)


def folded(*events: DossierEvent) -> tuple[Dossier, DossierFacts]:
    dossier, facts = fold_with_facts(events[0].dossier_id, events, CAL)
    assert facts is not None
    return dossier, facts


# Approved Wed 4 Mar before its due Thu 5 Mar: early; the result handed back Fri 6 Mar.
EARLY = (
    rec("A", "2026-03-02T09:00:00", "2026-03-05T23:59:59"),
    ev("A", "approved", "2026-03-04T10:00:00"),
    ev("A", "returned", "2026-03-06T10:00:00"),
)
# Due Thu 5 Mar; overdue from the midnight ending 5 Mar; returned Tue 10 Mar: late.
LATE = (
    rec("B", "2026-03-02T09:00:00", "2026-03-05T23:59:59"),
    ev("B", "returned", "2026-03-10T15:00:00"),
)
# Online, withdrawn by the citizen Thu 12 Mar before any verdict (R4).
WITHDRAWN = (
    rec("C", "2026-03-09T08:00:00", "2026-03-20T23:59:59", Channel.ONLINE),
    ev("C", "withdrawn", "2026-03-12T11:00:00"),
)
# Paused from Mon 30 Mar (before its due of Fri 3 Apr: within while paused) across the end
# of March; the supplement's new appointment is Wed 8 Apr; returned that day: on time.
PAUSED = (
    rec("D", "2026-03-25T09:00:00", "2026-04-03T23:59:59"),
    ev("D", "supplement_requested", "2026-03-30T10:00:00"),
    ev("D", "supplement_received", "2026-04-06T09:00:00", due_at="2026-04-08T23:59:59"),
    ev("D", "returned", "2026-04-08T16:00:00"),
)
# Received in February, returned Thu 5 Mar before its due of Tue 10 Mar: early.
CARRIED = (
    rec("E", "2026-02-20T09:00:00", "2026-03-10T23:59:59"),
    ev("E", "returned", "2026-03-05T10:00:00"),
)
ALL = (EARLY, LATE, WITHDRAWN, PAUSED, CARRIED)


def history_of(*dossiers: tuple[DossierEvent, ...]) -> History:
    history = History()
    for events in dossiers:
        history.add(folded(*events)[1])
    return history


def figures(**counts: int) -> dict[str, PeriodFigures]:
    return {AG: PeriodFigures(**counts)}


# -- marks, by hand ---------------------------------------------------------------------------


def period_marks(facts: DossierFacts) -> list[tuple[int, str, int]]:
    """The marks period reports read (the national index's are tested in test_index.py)."""
    return [mark for mark in marks(facts) if not mark[1].startswith(INDEX_PREFIX)]


def period_rows(history: History) -> list[tuple[str, int, dict[str, int]]]:
    """The history's rows without the national index's keys."""
    out = []
    for agency, day, row in history.rows():
        kept = {k: v for k, v in row.items() if not k.startswith(INDEX_PREFIX)}
        if kept:
            out.append((agency, day, kept))
    return out


def without_index(rows: dict[int, dict[str, int]]) -> dict[int, dict[str, int]]:
    return {
        day: {k: v for k, v in row.items() if not k.startswith(INDEX_PREFIX)}
        for day, row in rows.items()
    }


def test_marks_of_a_dossier_resolved_early() -> None:
    # In progress (within) at the ends of 2 and 3 Mar; the clock ended on 4 Mar.
    assert sorted(period_marks(folded(*EARLY)[1])) == [
        (D(3, 2), "in_progress.within", 1),
        (D(3, 2), "received.direct", 1),
        (D(3, 4), "in_progress.within", -1),
        (D(3, 4), "resolved.early", 1),
    ]


def test_marks_of_a_dossier_that_became_overdue_then_was_resolved_late() -> None:
    assert sorted(period_marks(folded(*LATE)[1])) == [
        (D(3, 2), "in_progress.within", 1),
        (D(3, 2), "received.direct", 1),
        (D(3, 5), "in_progress.overdue", 1),  # the midnight ending 5 Mar is past 23:59:59
        (D(3, 5), "in_progress.within", -1),
        (D(3, 10), "in_progress.overdue", -1),
        (D(3, 10), "resolved.late", 1),
    ]


def test_marks_of_a_withdrawn_dossier() -> None:
    assert sorted(period_marks(folded(*WITHDRAWN)[1])) == [
        (D(3, 9), "in_progress.within", 1),
        (D(3, 9), "received.online", 1),
        (D(3, 12), "in_progress.within", -1),
        (D(3, 12), "withdrawn", 1),
    ]


def test_marks_of_a_dossier_paused_within_its_due() -> None:
    # Within from its receipt to its return: the pause and the new appointment change
    # nothing at any midnight.
    assert sorted(period_marks(folded(*PAUSED)[1])) == [
        (D(3, 25), "in_progress.within", 1),
        (D(3, 25), "received.direct", 1),
        (D(4, 8), "in_progress.within", -1),
        (D(4, 8), "resolved.on_time", 1),
    ]


def test_a_dossier_paused_after_its_due_is_overdue_at_the_midnights_it_waits() -> None:
    # Due Thu 5 Mar; supplement requested Mon 9 Mar (already late), received Thu 12 Mar with
    # a new appointment of Fri 20 Mar; returned Wed 18 Mar: early against that appointment.
    _, facts = folded(
        rec("F", "2026-03-02T09:00:00", "2026-03-05T23:59:59"),
        ev("F", "supplement_requested", "2026-03-09T10:00:00"),
        ev("F", "supplement_received", "2026-03-12T09:00:00", due_at="2026-03-20T23:59:59"),
        ev("F", "returned", "2026-03-18T10:00:00"),
    )
    assert sorted(period_marks(facts)) == [
        (D(3, 2), "in_progress.within", 1),
        (D(3, 2), "received.direct", 1),
        (D(3, 5), "in_progress.overdue", 1),
        (D(3, 5), "in_progress.within", -1),
        (D(3, 12), "in_progress.overdue", -1),  # the new appointment is in force at 13 Mar
        (D(3, 12), "in_progress.within", 1),
        (D(3, 18), "in_progress.within", -1),
        (D(3, 18), "resolved.early", 1),
    ]


def test_a_dossier_closed_at_its_receipt_instant_has_no_in_progress_marks() -> None:
    _, facts = folded(
        rec("G", "2026-03-02T09:00:00", "2026-03-05T23:59:59"),
        ev("G", "rejected", "2026-03-02T09:00:00"),
    )
    assert sorted(period_marks(facts)) == [
        (D(3, 2), "received.direct", 1),
        (D(3, 2), "resolved.early", 1),
    ]


def test_local_day_turns_at_local_midnight() -> None:
    assert local_day(T("2026-03-01T00:00:00").timestamp()) == D(3, 1)
    assert local_day(T("2026-02-28T23:59:59.999999").timestamp()) == D(2, 28)
    # 17:00 UTC on 28 Feb is already 1 Mar at the center.
    assert local_day(datetime.fromisoformat("2026-02-28T17:00:00+00:00").timestamp()) == D(3, 1)


# -- period reports from the history, by hand -------------------------------------------------


def test_march_from_the_history() -> None:
    history = history_of(*ALL)
    assert history_report(history, [], date(2026, 3, 1), date(2026, 3, 31)) == figures(
        carried_over=1,  # E
        new=4,  # A, B, C, D
        resolved_early=2,  # A, E
        resolved_late=1,  # B
        withdrawn=1,  # C
        in_progress_within=1,  # D, paused within at 1 Apr 00:00
        received_direct=3,
        received_online=1,
    )


def test_the_first_days_of_march_from_the_history() -> None:
    history = history_of(*ALL)
    # Up to Wed 4 Mar: B is still within its due of Thu 5 Mar at the end.
    assert history_report(history, [], date(2026, 3, 1), date(2026, 3, 4)) == figures(
        carried_over=1, new=2, resolved_early=1, in_progress_within=2, received_direct=2
    )
    # Up to Thu 5 Mar: E resolved early that day, B overdue at the midnight ending it.
    assert history_report(history, [], date(2026, 3, 1), date(2026, 3, 5)) == figures(
        carried_over=1, new=2, resolved_early=2, in_progress_overdue=1, received_direct=2
    )
    # 6–10 Mar: B carried over and resolved late; C new and within on 10 Mar's end.
    assert history_report(history, [], date(2026, 3, 6), date(2026, 3, 10)) == figures(
        carried_over=1, new=1, resolved_late=1, in_progress_within=1, received_online=1
    )


def test_february_and_april_from_the_history() -> None:
    history = history_of(*ALL)
    assert history_report(history, [], date(2026, 2, 1), date(2026, 2, 28)) == figures(
        new=1, in_progress_within=1, received_direct=1
    )
    assert history_report(history, [], date(2026, 4, 1), date(2026, 4, 30)) == figures(
        carried_over=1, resolved_on_time=1
    )
    assert history_report(history, [], date(2026, 5, 1), date(2026, 5, 31)) == {}


def test_open_dossiers_are_judged_at_now_and_added_to_the_history() -> None:
    history = history_of(EARLY, CARRIED)
    # Open: due Fri 20 Mar, asked on Tue 10 Mar at noon, then after March.
    _, running = folded(rec("H", "2026-03-02T09:00:00", "2026-03-20T23:59:59"))
    now = T("2026-03-10T12:00:00")
    assert history_report(history, [running], date(2026, 3, 1), date(2026, 3, 31), now=now) == (
        figures(
            carried_over=1,
            new=2,
            resolved_early=2,
            in_progress_within=1,
            received_direct=2,
        )
    )
    assert history_report(history, [running], date(2026, 3, 1), date(2026, 3, 31)) == figures(
        carried_over=1, new=2, resolved_early=2, in_progress_overdue=1, received_direct=2
    )


def test_the_agency_filter_and_other_agencies() -> None:
    # STP's dossier, by post, rejected the day after its receipt: early.
    other = rec("K", "2026-03-03T09:00:00", "2026-03-06T23:59:59", Channel.POSTAL, "STP")
    history = history_of(EARLY, (other, ev("K", "rejected", "2026-03-04T09:00:00")))
    march = (date(2026, 3, 1), date(2026, 3, 31))
    assert history_report(history, [], *march, agency="STP") == {
        "STP": PeriodFigures(new=1, resolved_early=1, received_postal=1)
    }
    assert set(history_report(history, [], *march)) == {AG, "STP"}
    assert history_report(history, [], *march, agency="SKHDT") == {}


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        history_report(History(), [], date(2026, 3, 2), date(2026, 3, 1))


def test_settled_means_closed_by_now() -> None:
    _, facts = folded(*LATE)
    assert not settled(facts, T("2026-03-10T14:59:59").timestamp())
    assert settled(facts, T("2026-03-10T15:00:00").timestamp())
    _, running = folded(rec("H", "2026-03-02T09:00:00", "2026-03-20T23:59:59"))
    assert not settled(running, T("2027-01-01T00:00:00").timestamp())


def test_a_dossier_closed_after_now_is_judged_at_now_with_the_open_ones() -> None:
    # Asked at 23:58 on 31 Mar; returned at 00:01 on 1 Apr (a clock a few minutes ahead):
    # at 23:58 it is in progress and within its due of 23:59:59.
    events = (
        rec("L", "2026-03-30T09:00:00", "2026-03-31T23:59:59"),
        ev("L", "returned", "2026-04-01T00:01:00"),
    )
    dossier, facts = folded(*events)
    now = T("2026-03-31T23:58:00")
    assert dossier.closed_by is EventType.RETURNED and not settled(facts, now.timestamp())
    march = (date(2026, 3, 1), date(2026, 3, 31))
    expected = figures(new=1, in_progress_within=1, received_direct=1)
    assert period_report([facts], *march, now=now) == expected
    assert history_report(History(), [facts], *march, now=now) == expected
    # Folded too early, the day totals would judge it at the month's end: overdue.
    assert history_report(history_of(events), [], *march, now=now) == figures(
        new=1, in_progress_overdue=1, received_direct=1
    )


def test_only_ended_dossiers_enter_the_history() -> None:
    _, running = folded(rec("H", "2026-03-02T09:00:00", "2026-03-20T23:59:59"))
    with pytest.raises(ValueError, match="clock ended or that was withdrawn"):
        HistoryDelta().add(running)


# -- changes, rows and stored forms -----------------------------------------------------------


def test_a_late_event_is_applied_as_remove_old_then_add_new() -> None:
    # An approval dated Wed 4 Mar arrives after B was closed: B becomes early, never overdue.
    _, old = folded(*LATE)
    _, new = folded(*LATE, ev("B", "approved", "2026-03-04T10:00:00"))
    history = history_of(EARLY, LATE)
    delta = HistoryDelta()
    delta.add(old, -1)
    delta.add(new)
    # The store's batch gets the pages as they will be: 2–4 Mar fall in one page (days
    # 739,648–739,679); 5 and 10 Mar in the next, which empties out.
    pages = history.pages_after(delta)
    assert set(pages) == {(AG, D(3, 4) // PAGE_DAYS), (AG, D(3, 5) // PAGE_DAYS)}
    assert pages[AG, D(3, 5) // PAGE_DAYS] is None
    assert without_index(
        decode_page(D(3, 4) // PAGE_DAYS, pages[AG, D(3, 4) // PAGE_DAYS] or b"")
    ) == {
        D(3, 2): {"in_progress.within": 2, "received.direct": 2},
        D(3, 4): {"in_progress.within": -2, "resolved.early": 2},
    }
    history.add_delta(delta)
    assert history == history_of(EARLY, (*LATE, ev("B", "approved", "2026-03-04T10:00:00")))
    assert period_rows(history) == [
        (AG, D(3, 2), {"in_progress.within": 2, "received.direct": 2}),
        (AG, D(3, 4), {"in_progress.within": -2, "resolved.early": 2}),
    ]


def test_removing_every_dossier_leaves_an_empty_history() -> None:
    history = history_of(*ALL)
    for events in ALL:
        history.add(folded(*events)[1], -1)
    assert period_rows(history) == []
    assert history.agencies() == []


def test_a_page_encodes_columns_of_int32_then_sorted_keys() -> None:
    page = 23114  # days 739,648 to 739,679
    raw = encode_page(
        {
            739649: {"received.direct": 2, "in_progress.within": 2},
            739651: {"in_progress.within": -2, "resolved.early": 2, "withdrawn": 0},
            739660: {"resolved.late": 0},  # an empty row is not stored
        }
    )
    assert raw == (
        b"\x01\x02\x03"  # version 1, two days, three keys
        b"\x01\x03"  # the days' offsets in the page
        b"\x02\x00\x00\x00\xfe\xff\xff\xff"  # in_progress.within: 2, -2
        b"\x02\x00\x00\x00\x00\x00\x00\x00"  # received.direct: 2, 0
        b"\x00\x00\x00\x00\x02\x00\x00\x00"  # resolved.early: 0, 2
        b"in_progress.within\nreceived.direct\nresolved.early"
    )
    assert decode_page(page, raw) == {
        739649: {"received.direct": 2, "in_progress.within": 2},
        739651: {"in_progress.within": -2, "resolved.early": 2},
    }


def test_a_page_of_more_than_255_keys_is_version_2_and_reads_back() -> None:
    """An agency with ~130 departments has more than 255 keys in a page (two step outcomes
    per department): its batches must not fail. Version 2 counts keys in two bytes."""
    page = 23114
    keys = {f"step.D{n:03d}.on_time": n + 1 for n in range(300)}
    rows = {739649: keys, 739651: {"withdrawn": 1}}
    raw = encode_page(rows)
    assert raw[:4] == b"\x02\x02\x2d\x01"  # version 2, two days, 301 keys (0x012D)
    assert decode_page(page, raw) == rows
    # Up to 255 keys a page is written as version 1, byte for byte as before.
    assert encode_page({739649: {"withdrawn": 1}})[:3] == b"\x01\x01\x01"


def test_a_page_holds_the_days_of_one_page() -> None:
    with pytest.raises(ValueError, match="one page"):
        encode_page({739679: {"withdrawn": 1}, 739680: {"withdrawn": 1}})
    with pytest.raises(ValueError, match="one page"):
        encode_page({739679: {"withdrawn": 0}})


def test_a_page_key_sorts_one_agencys_pages_in_order() -> None:
    key = encode_page_key(AG, 23114)
    assert key == b"\x03SXD\x00\x00\x5a\x4a"  # 23114 = 0x5A4A, big-endian
    assert decode_page_key(key) == (AG, 23114)
    assert encode_page_key(AG, 23114) < encode_page_key(AG, 23115)
    with pytest.raises(DecodeError):
        decode_page_key(key[:-1])


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # no version
        b"\x03\x01\x01\x00\x01\x00\x00\x00a",  # a version this code does not know
        b"\x01\x01\x01\x00\x01\x00",  # one total announced, half of it there
        b"\x01\x01\x01\x00\x01\x00\x00\x00a\nb",  # two keys for one column
        b"\x01\x01\x01\x00\x01\x00\x00\x00",  # an empty key
        b"\x01\x01\x01\x00\x01\x00\x00\x00\xff",  # not UTF-8
        b"\x01\x02\x01\x03\x01\x01\x00\x00\x00\x01\x00\x00\x00a",  # days out of order
        b"\x01\x01\x01\x20\x01\x00\x00\x00a",  # offset 32: beyond the page
        b"\x01\x00\x00",  # no day
    ],
)
def test_bad_page_bytes_are_refused(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_page(23114, raw)


def test_a_history_reloads_from_its_pages() -> None:
    history = history_of(*ALL)
    delta = HistoryDelta()
    for events in ALL:
        delta.add(folded(*events)[1])
    # What a batch adding them to an empty history writes, read back in key order.
    stored = {encode_page_key(*where): raw for where, raw in History().pages_after(delta).items()}
    loaded = History.from_pages(
        (*decode_page_key(key), raw) for key, raw in sorted(stored.items()) if raw is not None
    )
    assert loaded == history
    march = (date(2026, 3, 1), date(2026, 3, 31))
    assert history_report(loaded, [], *march) == history_report(history, [], *march)


# -- the closed dossiers' share of the live counters -----------------------------------------


def test_closed_delta_of_a_closing_then_changed_dossier() -> None:
    running = fold("B", LATE[:1], CAL)
    late = fold("B", LATE, CAL)
    early = fold("B", (*LATE, ev("B", "approved", "2026-03-04T10:00:00")), CAL)
    assert closed_delta(None, running, CAL) == Counter()  # open: counted live, not here
    assert closed_delta(running, late, CAL) == Counter(
        {
            ("received", AG, "direct"): 1,
            ("completed", AG, "late"): 1,
            ("became_overdue", AG): 1,
        }
    )
    change = closed_delta(late, early, CAL)
    assert +change == Counter({("completed", AG, "early"): 1})
    assert -change == Counter({("completed", AG, "late"): 1, ("became_overdue", AG): 1})

    totals: Counter[tuple[str, ...]] = Counter()
    add_counts(totals, closed_delta(running, late, CAL))
    add_counts(totals, change)
    assert totals == Counter({("received", AG, "direct"): 1, ("completed", AG, "early"): 1})


def test_closed_totals_encode_to_sorted_keys() -> None:
    totals = Counter({("withdrawn", AG): 2, ("completed", AG, "late"): 1})
    raw = encode_closed_totals(totals)
    # Version 2, then each key's parts and its total, sorted.
    assert raw == b'\x02[["completed","SXD","late",1],["withdrawn","SXD",2]]'

    assert decode_closed_totals(raw) == totals
    with pytest.raises(DecodeError):
        decode_closed_totals(raw[:-1])


# -- properties over random dossiers ---------------------------------------------------------

WINDOW_START = datetime(2026, 2, 1, tzinfo=LOCAL_TZ)
WINDOW_DAYS = 90
KINDS = [*(t for t in EventType if t is not EventType.RECEIVED), EventType.RECEIVED]
ZONES = [LOCAL_TZ, UTC, timezone(timedelta(hours=-5))]


@st.composite
def instants(draw: st.DrawFn, after: datetime, max_days: int) -> datetime:
    """An instant after `after`, often exactly a local midnight or a due-like 23:59:59."""
    days, seconds = draw(st.integers(0, max_days)), draw(st.integers(0, 86399))
    moment = after + timedelta(days=days, seconds=seconds)
    snap = draw(st.sampled_from(["as is", "midnight", "23:59:59", "same"]))
    if snap == "midnight":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if snap == "23:59:59":
        return moment.replace(hour=23, minute=59, second=59, microsecond=0)
    if snap == "same":
        return after
    return moment


@st.composite
def receipts(draw: st.DrawFn, did: str, eid: str, at: datetime) -> DossierEvent:
    fields: dict[str, Any] = {
        "agency": draw(st.sampled_from(["SXD", "STP", "SKHDT"])),
        "procedure": "1.000948",
        "channel": draw(st.sampled_from(list(Channel))),
    }
    kind = draw(st.sampled_from(["limit", "appointment", "none"]))
    if kind == "limit":
        fields["processing_days"] = draw(st.integers(1, 12))
    elif kind == "appointment":  # now and then (bad data) before the receipt
        fields["due_at"] = draw(instants(at - timedelta(days=1), 15))
    # "none": no due known (R11), unless a supplement's new appointment gives one later
    return DossierEvent(eid, did, EventType.RECEIVED, at, **fields)


@st.composite
def dossiers(draw: st.DrawFn, did: str) -> list[DossierEvent]:
    """A receipt and events after it in any zone; now and then one dated before the receipt
    (ignored, R6) or a second receipt (ignored)."""
    received_at = draw(instants(WINDOW_START, WINDOW_DAYS))
    events = [draw(receipts(did, f"{did}-r", received_at))]
    at = received_at
    for i in range(draw(st.integers(0, 5))):
        at = draw(instants(at, 9))
        when = at.astimezone(draw(st.sampled_from(ZONES)))
        if draw(st.integers(0, 9)) == 0:
            when = received_at - timedelta(hours=draw(st.integers(1, 48)))
        kind = draw(st.sampled_from(KINDS))
        extra: dict[str, Any] = {}
        if kind is EventType.RECEIVED:
            events.append(draw(receipts(did, f"{did}-{i}", when)))
            continue
        if kind is EventType.EXTENDED:
            extra["new_due_at"] = when + timedelta(days=5)
        elif kind is EventType.SUPPLEMENT_RECEIVED and draw(st.booleans()):
            extra["due_at"] = draw(instants(when, 6))
        elif kind is EventType.STEP_STARTED:  # steps never change the period's figures
            extra.update(step=draw(st.sampled_from(["S1", "S2"])), department="D1", step_days=2)
        elif kind is EventType.STEP_COMPLETED:
            extra["step"] = draw(st.sampled_from(["S1", "S2"]))
        events.append(DossierEvent(f"{did}-{i}", did, kind, when, **extra))
    return events


@st.composite
def periods(draw: st.DrawFn) -> tuple[date, date]:
    """Before, across and after the window (so before, around and after any `now`); most
    end inside it, where dossiers are in progress at the end."""
    last = WINDOW_START.date() + timedelta(days=draw(st.integers(-20, WINDOW_DAYS + 20)))
    return last - timedelta(days=draw(st.integers(0, 70))), last


def _split(
    event_sets: list[list[DossierEvent]], as_of: datetime
) -> tuple[list[DossierFacts], History, list[DossierFacts]]:
    """Every dossier's facts; the closed ones settled at `as_of` in a history; the others."""
    every, history, others = [], History(), []
    for events in event_sets:
        dossier, facts = fold_with_facts(events[0].dossier_id, events, CAL)
        assert facts is not None
        every.append(facts)
        if dossier.closed_by is not None and settled(facts, as_of.timestamp()):
            history.add(facts)
        else:
            others.append(facts)
    return every, history, others


@SETTINGS
@given(st.data())
def test_the_report_from_the_history_equals_the_report_over_all_facts(
    data: st.DataObject,
) -> None:
    count = data.draw(st.integers(1, 25))
    event_sets = [data.draw(dossiers(f"HS-{i}")) for i in range(count)]
    as_of = data.draw(instants(WINDOW_START + timedelta(days=20), WINDOW_DAYS))
    every, history, others = _split(event_sets, as_of)
    later = as_of + timedelta(seconds=data.draw(st.integers(0, 40 * 86400)))
    for _ in range(3):
        first, last = data.draw(periods())
        agency = data.draw(st.sampled_from([None, "SXD", "STP"]))
        for now in (as_of, later, None):
            expected = period_report(every, first, last, agency, now=now)
            assert history_report(history, others, first, last, agency, now=now) == expected


@SETTINGS
@given(st.data())
def test_a_changed_dossier_removed_then_added_gives_the_history_built_afresh(
    data: st.DataObject,
) -> None:
    event_sets = [data.draw(dossiers(f"HS-{i}")) for i in range(data.draw(st.integers(0, 8)))]
    # A dossier returned after all its other events; the late event is any one of those
    # other events but the receipt, arriving after the return.
    drawn = data.draw(dossiers("HS-X"))
    last = max(e.occurred_at for e in drawn)
    returned_at = max(last, data.draw(instants(last, 9)))  # a snap may fall before `last`
    changed = [*drawn, DossierEvent("HS-X-end", "HS-X", EventType.RETURNED, returned_at)]
    late = data.draw(st.sampled_from(changed[1:-1] or changed[-1:]))
    before = [e for e in changed if e is not late] if late is not changed[-1] else changed
    old_dossier, old = fold_with_facts("HS-X", before, CAL)
    new_dossier, new = fold_with_facts("HS-X", changed, CAL)
    assert old is not None and new is not None
    assert old_dossier.closed_by is not None and new_dossier.closed_by is not None
    closed = [
        facts
        for events in event_sets
        for dossier, facts in [fold_with_facts(events[0].dossier_id, events, CAL)]
        if dossier.closed_by is not None and facts is not None
    ]

    history = History()
    for facts in [*closed, old]:
        history.add(facts)
    delta = HistoryDelta()
    delta.add(old, -1)
    delta.add(new)
    written = history.pages_after(delta)
    history.add_delta(delta)

    afresh = History()
    for facts in [*closed, new]:
        afresh.add(facts)
    assert history == afresh
    for (agency, page), raw in written.items():
        assert (decode_page(page, raw) if raw else {}) == afresh.page_rows(agency, page)
    # Every page of it, loaded in any order, gives it back.
    pages = {(a, d // PAGE_DAYS) for a, d, _ in afresh.rows()}
    stored = [(a, p, encode_page(afresh.page_rows(a, p))) for a, p in pages]
    assert History.from_pages(data.draw(st.permutations(stored))) == afresh

    # The live counters' closed sums follow the same change.
    sums: Counter[tuple[str, ...]] = Counter()
    for events in [*event_sets, before]:
        add_counts(sums, closed_delta(None, fold(events[0].dossier_id, events, CAL), CAL))
    add_counts(sums, closed_delta(old_dossier, new_dossier, CAL))
    expected: Counter[tuple[str, ...]] = Counter()
    for events in [*event_sets, changed]:
        dossier = fold(events[0].dossier_id, events, CAL)
        if dossier.closed_by is not None:
            expected.update(contribution(dossier, WINDOW_START + timedelta(days=400), CAL))
    assert sums == +expected
    assert decode_closed_totals(encode_closed_totals(sums)) == sums


# -- the pages by column against the rows reference (tests/reference_pages.py) ---------------

PAGE_KEYS = ["in_progress.within", "received.direct", "resolved.early", "withdrawn", "step.D1.late"]
FIRST_DAY = 739648 - 9  # the test pages: days before, in and after page 23,114


@st.composite
def page_rows(draw: st.DrawFn) -> dict[int, dict[str, int]]:
    """Rows of one page, zeros and empty rows included (neither is stored)."""
    page = draw(st.integers(23113, 23115))
    day_numbers = st.integers(page * PAGE_DAYS, page * PAGE_DAYS + PAGE_DAYS - 1)
    row = st.dictionaries(st.sampled_from(PAGE_KEYS), st.integers(-3, 3), max_size=4)
    return draw(st.dictionaries(day_numbers, row, max_size=8))


def as_columns(rows: dict[int, dict[str, int]]) -> tuple[list[int], dict[str, array[int]]]:
    days = sorted(rows)
    keys = {key for row in rows.values() for key in row}
    return days, {key: array("i", [rows[day].get(key, 0) for day in days]) for key in keys}


@SETTINGS
@given(page_rows())
def test_a_page_from_columns_is_the_page_from_rows(rows: dict[int, dict[str, int]]) -> None:
    encoded = encode_page_columns(*as_columns(rows))
    if not any(value for row in rows.values() for value in row.values()):
        assert encoded is None
        with pytest.raises(ValueError):
            encode_page(rows)
        return
    assert encoded == encode_page(rows) == reference_pages.encode_page(rows)


def test_a_page_of_more_than_255_keys_from_columns_is_version_2() -> None:
    rows = {739649: {f"step.D{n:03d}.on_time": n + 1 for n in range(300)}, 739651: {"w": 1}}
    assert encode_page_columns(*as_columns(rows)) == reference_pages.encode_page(rows)


def test_columns_that_are_not_one_page_are_refused() -> None:
    with pytest.raises(ValueError, match="one page"):
        encode_page_columns([739679, 739680], {"withdrawn": array("i", [1, 1])})
    with pytest.raises(ValueError, match="one page"):
        encode_page_columns([739651, 739649], {"withdrawn": array("i", [1, 1])})
    with pytest.raises(ValueError, match="number of days"):
        encode_page_columns([739649], {"withdrawn": array("i", [1, 1])})
    with pytest.raises(ValueError, match="newline"):
        encode_page_columns([739649], {"with\ndrawn": array("i", [1])})


@st.composite
def day_changes(draw: st.DrawFn) -> list[tuple[str, int, str, int]]:
    """A batch's changes: (agency, day, key, delta) over four pages, deltas of either sign
    (state keys' totals may be negative), zeros included."""
    change = st.tuples(
        st.sampled_from(["SXD", "STP"]),
        st.integers(FIRST_DAY, FIRST_DAY + 3 * PAGE_DAYS),
        st.sampled_from(PAGE_KEYS),
        st.integers(-2, 2),
    )
    return draw(st.lists(change, max_size=25))


def delta_of(changes: list[tuple[str, int, str, int]]) -> HistoryDelta:
    delta = HistoryDelta()
    for agency, day, key, value in changes:
        row = delta.changes.setdefault((agency, day), {})
        row[key] = row.get(key, 0) + value
    return delta


@SETTINGS
@given(st.data())
def test_pages_by_column_are_the_pages_of_the_rows_reference(data: st.DataObject) -> None:
    """Batch after batch, the pages a batch writes and the rows it leaves are the reference's;
    a batch often takes back an earlier one, so rows and pages empty out."""
    history, reference = History(), reference_pages.ReferenceHistory()
    stored: dict[tuple[str, int], bytes] = {}
    batches: list[list[tuple[str, int, str, int]]] = []
    for _ in range(data.draw(st.integers(1, 8))):
        changes = data.draw(day_changes())
        if batches and data.draw(st.booleans()):
            taken = data.draw(st.sampled_from(batches))
            changes += [(agency, day, key, -value) for agency, day, key, value in taken]
        batches.append(changes)
        delta = delta_of(changes)
        written = history.pages_after(delta)
        assert written == reference.pages_after(delta.changes)
        history.add_delta(delta)
        reference.apply(delta.changes)
        assert list(history.rows()) == reference.rows()
        for where, raw in written.items():
            if raw is None:
                stored.pop(where, None)
            else:
                stored[where] = raw
                assert decode_page(where[1], raw) == history.page_rows(*where)
    # What the store holds is the history, as a restart loads it.
    assert History.from_pages((a, p, raw) for (a, p), raw in sorted(stored.items())) == history
    assert set(stored) == {(a, d // PAGE_DAYS) for a, d, _ in history.rows()}


@SETTINGS
@given(st.data())
def test_kept_pages_give_the_bytes_of_encoding_afresh(data: st.DataObject) -> None:
    """A history keeps the pages it wrote and patches them when a batch changes totals they
    hold; what it writes is what a history that keeps nothing writes for the same batch,
    also after a batch that failed (its pages written, the batch not applied) and after a
    change applied without writing pages (as `History.add` does)."""
    history, plain = History(), History()  # `plain` never keeps a page: see the end
    # Few days and keys of one page, so that a batch mostly lands on totals already held.
    change = st.tuples(
        st.sampled_from(["SXD", "STP"]),
        st.integers(FIRST_DAY + 9, FIRST_DAY + 12),
        st.sampled_from(PAGE_KEYS[:3]),
        st.integers(-2, 2),
    )
    for _ in range(data.draw(st.integers(1, 12))):
        changes = data.draw(st.lists(change, max_size=6))
        delta = delta_of(changes)
        assert history.pages_after(delta) == plain.pages_after(delta_of(changes))
        outcome = data.draw(st.sampled_from(["saved", "failed", "applied without pages"]))
        if outcome == "saved":
            history.add_delta(delta)
        elif outcome == "applied without pages":
            history.add_delta(delta_of(changes))
        if outcome != "failed":
            plain.add_delta(delta_of(changes))
        assert list(history.rows()) == list(plain.rows())
        for where, page in history._pages.items():
            assert page.data == encode_page(plain.page_rows(*where))
    assert not plain._pages


def test_a_kept_page_is_patched_not_encoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    history = History()
    day = FIRST_DAY + 10
    first = delta_of([(AG, day, "received.direct", 2), (AG, day + 1, "withdrawn", 1)])
    history.pages_after(first)
    history.add_delta(first)
    encoded: list[object] = []
    real = EncodedPage.of_columns

    def counted(days: Any, columns: Any) -> EncodedPage | None:
        encoded.append(days)
        return real(days, columns)

    monkeypatch.setattr(EncodedPage, "of_columns", staticmethod(counted))
    # Totals the page holds, one falling to zero without emptying its day or key: patched.
    held = delta_of([(AG, day, "received.direct", 1), (AG, day + 1, "received.direct", 3)])
    written = history.pages_after(held)
    assert not encoded
    page = (AG, day // PAGE_DAYS)
    assert decode_page(page[1], written[page] or b"") == {
        day: {"received.direct": 3},
        day + 1: {"received.direct": 3, "withdrawn": 1},
    }
    history.add_delta(held)
    # A new key, a new day, a key or a day emptied: the page is encoded from its columns.
    for changes in (
        [(AG, day, "resolved.early", 1)],
        [(AG, day + 2, "withdrawn", 1)],
        [(AG, day + 1, "withdrawn", -1)],
    ):
        before = len(encoded)
        delta = delta_of(changes)
        assert history.pages_after(delta) == History.from_pages(
            [(AG, page[1], history._pages[page].data)]
        ).pages_after(delta_of(changes))
        assert len(encoded) > before
