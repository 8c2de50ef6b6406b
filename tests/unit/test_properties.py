"""Properties of the dossier fold and its contribution, over random event sets (hypothesis).

One dossier per example: a receipt (processing_days, an explicit due_at or neither) and random
other events dated around it (before it, at the same instant as each other, long after),
steps of a few codes among them, some duplicated, some second receipts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import Channel, DossierEvent, EventType, OnlineLevel, PaymentMethod, Rating
from service.domain import (
    Dossier,
    WorkingCalendar,
    contribution,
    fold,
    next_change_at,
    open_state,
)
from service.domain.clock import due_soon_from

CAL = WorkingCalendar()
DID = "HS-PROP-1"
US = timedelta(microseconds=1)
ZONES = [UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-5))]
SETTINGS = settings(
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

OTHER_TYPES = [t for t in EventType if t is not EventType.RECEIVED]
STEPS = ["S1", "S2", "S3"]


def _instant(base: datetime, minutes: int, zone: timezone) -> datetime:
    return (base + timedelta(minutes=minutes)).astimezone(zone)


@st.composite
def receipts(draw: st.DrawFn, eid: str, start: datetime) -> DossierEvent:
    zone = draw(st.sampled_from(ZONES))
    fields: dict[str, Any] = {
        "agency": draw(st.sampled_from(["SXD", "STP", "SKHDT"])),
        "procedure": draw(st.sampled_from(["1.000948", "2.001234"])),
        "channel": draw(st.sampled_from(list(Channel))),
    }
    if draw(st.booleans()):
        # The optional index fields (issue 18), each present or absent (unknown).
        total = draw(st.integers(0, 5))
        fields["components"] = total
        for name in ("components_digitised", "components_reused", "components_from_data_store"):
            fields[name] = draw(st.none() | st.integers(0, total))
        for name in ("fee_due", "identity_verified"):
            fields[name] = draw(st.none() | st.booleans())
        if fields["channel"] is Channel.ONLINE:
            fields["online_level"] = draw(st.none() | st.sampled_from(list(OnlineLevel)))
    which = draw(st.sampled_from(["days", "due", "none"]))
    if which == "days":
        fields["processing_days"] = draw(st.integers(1, 30))
    elif which == "due":
        # An explicit appointment: usually after the receipt, sometimes (bad data) before.
        fields["due_at"] = _instant(start, draw(st.integers(-2 * 1440, 60 * 1440)), zone)
    # "none": no due known (rule R11)
    return DossierEvent(eid, DID, EventType.RECEIVED, start.astimezone(zone), **fields)


@st.composite
def event_sets(draw: st.DrawFn) -> list[DossierEvent]:
    start = draw(
        st.datetimes(
            min_value=datetime(2025, 1, 1),
            max_value=datetime(2027, 10, 1),
            timezones=st.just(UTC),
        )
    )
    events = [draw(receipts("r0", start))]
    # A few shared offsets so that ties (same instant, different types) are common.
    shared = draw(st.lists(st.integers(-2 * 1440, 45 * 1440), min_size=1, max_size=3))
    count = draw(st.integers(0, 9))
    for i in range(count):
        if draw(st.integers(0, 3)) == 0:
            offset = draw(st.sampled_from(shared))
        else:
            offset = draw(st.integers(-3 * 1440, 60 * 1440))
        zone = draw(st.sampled_from(ZONES))
        at = _instant(start, offset, zone)
        kind = draw(st.sampled_from([*OTHER_TYPES, EventType.RECEIVED]))
        eid = f"e{draw(st.integers(0, 99)):02d}-{i}"
        if kind is EventType.RECEIVED:
            events.append(draw(receipts(eid, at)))
            continue
        fields: dict[str, Any] = {}
        if kind is EventType.SUPPLEMENT_RECEIVED and draw(st.booleans()):
            fields["due_at"] = _instant(at, draw(st.integers(0, 30 * 1440)), zone)
        if kind is EventType.EXTENDED:
            fields["new_due_at"] = _instant(at, draw(st.integers(0, 30 * 1440)), zone)
        if kind in (EventType.STEP_STARTED, EventType.STEP_COMPLETED):
            fields["step"] = draw(st.sampled_from(STEPS))
        if kind is EventType.STEP_STARTED:
            fields["department"] = draw(st.sampled_from(["P1", "P2"]))
            fields["agency"] = draw(st.sampled_from([None, "SXD", "STNMT"]))
            due = draw(st.sampled_from(["step_due_at", "step_hours", "step_days"]))
            if due == "step_due_at":
                fields[due] = _instant(at, draw(st.integers(-1440, 20 * 1440)), zone)
            else:
                fields[due] = draw(st.integers(1, 100))
        if kind is EventType.RETURNED:
            fields["e_result"] = draw(st.none() | st.booleans())
        if kind is EventType.PAID:
            fields["method"] = draw(st.sampled_from(list(PaymentMethod)))
        if kind is EventType.RATED:
            fields["rating"] = draw(st.sampled_from(list(Rating)))
            if draw(st.booleans()):
                fields["criteria"] = (("TC1", draw(st.integers(0, 2))), ("TC7", 0))
                fields["reason"] = draw(st.none() | st.just("STAFF"))
        events.append(DossierEvent(eid, DID, kind, at, **fields))
    return events


@st.composite
def moments(draw: st.DrawFn, events: list[DossierEvent], dossier: Dossier) -> list[datetime]:
    """Several `now` values: random ones around the events, and the instants that matter."""
    base = min(e.occurred_at for e in events)
    out = [
        _instant(base, draw(st.integers(-1440, 90 * 1440)), UTC)
        + timedelta(seconds=draw(st.integers(0, 59)))
        for _ in range(draw(st.integers(2, 5)))
    ]
    if dossier.due is not None:
        soon = due_soon_from(dossier.due, CAL)
        out += [dossier.due - US, dossier.due, dossier.due + US, soon - US, soon]
    return sorted(out)


def F(events: list[DossierEvent]) -> Dossier:
    return fold(DID, events, CAL)


def _opens(keys: tuple[tuple[str, ...], ...]) -> list[tuple[str, ...]]:
    return [k for k in keys if k[0] == "open"]


@SETTINGS
@given(st.data())
def test_order_and_duplicates_do_not_matter(data: st.DataObject) -> None:
    events = data.draw(event_sets())
    shuffled = data.draw(st.permutations(events))
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=4))
    mixed = data.draw(st.permutations([*shuffled, *duplicates]))
    expected = F(events)
    assert F(list(shuffled)) == expected
    assert F(list(mixed)) == expected
    for now in data.draw(moments(events, expected)):
        want = contribution(expected, now, CAL)
        assert contribution(F(list(shuffled)), now, CAL) == want
        assert contribution(F(list(mixed)), now, CAL) == want


@SETTINGS
@given(st.data())
def test_events_before_the_receipt_and_orphans(data: st.DataObject) -> None:
    events = data.draw(event_sets())
    expected = F(events)
    receipt_at = min(e.occurred_at for e in events if e.type is EventType.RECEIVED)
    # R6: more non-receipt events dated strictly before the (first) receipt change nothing.
    early = [
        DossierEvent(
            f"early-{i}",
            DID,
            kind,
            receipt_at - timedelta(minutes=minutes),
            new_due_at=receipt_at if kind is EventType.EXTENDED else None,
        )
        for i, (kind, minutes) in enumerate(
            data.draw(
                st.lists(
                    st.tuples(st.sampled_from(OTHER_TYPES), st.integers(1, 5 * 1440)), max_size=4
                )
            )
        )
    ]
    assert F(events + early) == expected
    # R8: without any receipt, the dossier counts nowhere.
    orphans = [e for e in events if e.type is not EventType.RECEIVED] + early
    orphan = F(orphans)
    assert not orphan.is_received
    for now in data.draw(moments(events, expected)):
        assert contribution(orphan, now, CAL) == ()
        assert open_state(orphan, now, CAL) is None
        assert next_change_at(orphan, now, CAL) is None


@SETTINGS
@given(st.data())
def test_open_states_partition_and_keys_are_consistent(data: st.DataObject) -> None:
    events = data.draw(event_sets())
    d = F(events)
    for now in data.draw(moments(events, d)):
        keys = contribution(d, now, CAL)
        state = open_state(d, now, CAL)
        opens = _opens(keys)
        families = [k[0] for k in keys]
        # R9: exactly one open state per open dossier, none for a closed one.
        if d.is_open:
            assert state is not None
            assert opens == [("open", d.agency, state.value)]
        else:
            assert state is None
            assert opens == []
        assert families.count("received") == 1
        # A dossier is judged or withdrawn (or neither), never both.
        assert not ("completed" in families and "withdrawn" in families)
        assert ("completed" in families) == (d.outcome is not None)
        assert ("withdrawn" in families) == d.withdrawn
        # R5: the apology-less overdue key goes with the overdue open state only.
        if "overdue_without_apology" in families:
            assert state is not None and state.value == "overdue" and d.apology_at is None
        if state is not None and state.value == "overdue":
            assert "became_overdue" in families
        # Every key appears at most once, but a completed step's: the service adds 1 per
        # key given, and one department may complete several steps on time.
        once = [k for k in keys if k[0] != "steps_completed"]
        assert len(set(once)) == len(once)
        assert families.count("steps_completed") == len(d.steps_done)
        # R15: a step is open only while the clock counts, and it is counted once.
        steps_open = [k for k in keys if k[0] == "steps_open"]
        if d.step is None:
            assert steps_open == []
        else:
            assert d.is_open and d.clock_end is None
            assert len(steps_open) == 1
            assert steps_open[0][1:3] == (d.step.agency, d.step.department)
            assert (steps_open[0][3] == "paused") == (d.paused_at is not None)
        held = [k for k in keys if k[0] == "overdue_held"]
        assert len(held) == (1 if state is not None and state.value == "overdue" else 0)


@SETTINGS
@given(st.data())
def test_became_overdue_is_monotone_in_now(data: st.DataObject) -> None:
    events = data.draw(event_sets())
    d = F(events)
    seen = False
    for now in data.draw(moments(events, d)):
        flag = any(k[0] == "became_overdue" for k in contribution(d, now, CAL))
        assert flag or not seen, f"became_overdue went back to false at {now}"
        seen = flag


@SETTINGS
@given(st.data())
def test_next_change_at_is_a_true_horizon(data: st.DataObject) -> None:
    events = data.draw(event_sets())
    d = F(events)
    for now in data.draw(moments(events, d)):
        state = open_state(d, now, CAL)
        keys = contribution(d, now, CAL)
        change = next_change_at(d, now, CAL)
        if change is None:
            # Nothing changes without a new event: look far ahead.
            for days in (1, 7, 45, 400):
                later = now + timedelta(days=days)
                assert open_state(d, later, CAL) == state
                assert contribution(d, later, CAL) == keys
            continue
        assert change > now
        span = change - now
        probes = {
            now + US,
            change - US,
            now + span / 2,
            now + span * data.draw(st.floats(0.001, 0.999)),
        }
        for t in probes:
            if now < t < change:
                assert open_state(d, t, CAL) == state, t
                assert contribution(d, t, CAL) == keys, t
        # ... and at the returned instant something does change (the dossier's state, or
        # its open step's).
        assert contribution(d, change, CAL) != keys
        if d.step is None:
            assert open_state(d, change, CAL) != state
