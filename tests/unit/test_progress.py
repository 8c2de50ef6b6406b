"""The resumable replay (service/domain/progress.py) against the full replay, over random
event sets, arrival orders, duplicates and late arrivals (hypothesis).

After every event, `DossierProgress` must say exactly what `fold` and `fold_with_facts` say
of the events held so far; its packed form must give back an equal progress that goes on
the same way; duplicates and the per-dossier limit behave as the reference `merge`
(tests/reference_records.py).
"""

from __future__ import annotations

import dataclasses
import struct
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
import reference_records as records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_fold import fold, fold_with_facts
from reference_records import merge
from test_properties import CAL, DID, event_sets

from schemas import Channel, DossierEvent, EventType, InvalidEvent, PaymentMethod, Rating, Reason
from service.domain import LOCAL_TZ, Dossier
from service.domain.codec import TYPE_CHAR
from service.domain.progress import MAX_EVENTS_PER_DOSSIER, Arrival, DossierProgress

QUICK = settings(
    deadline=None,
    max_examples=120,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(QUICK, max_examples=3000)


@st.composite
def arrivals(draw: st.DrawFn) -> list[DossierEvent]:
    """A dossier's events as a worker may receive them: in any order, some sent twice (a
    re-send may even carry other content: the first one stored wins), event ids with or
    without the dossier id in front."""
    events = draw(event_sets())
    if draw(st.booleans()):
        events = [dataclasses.replace(e, event_id=f"{DID}-{e.event_id}") for e in events]
    resent = []
    for event in draw(st.lists(st.sampled_from(events), max_size=4)):
        if draw(st.booleans()):
            later = event.occurred_at + timedelta(minutes=draw(st.integers(-600, 600)))
            event = dataclasses.replace(event, occurred_at=later)
        resent.append(event)
    if draw(st.booleans()):
        # In order, as most dossiers arrive; duplicates somewhere after the first copy.
        ordered = sorted(events, key=lambda e: e.sort_key)
        for event in resent:
            ordered.insert(draw(st.integers(0, len(ordered))), event)
        return ordered
    return draw(st.permutations([*events, *resent]))


def _held(events: list[DossierEvent]) -> list[DossierEvent]:
    """R7: the first event of each event_id, in arrival order."""
    seen: dict[str, DossierEvent] = {}
    for event in events:
        seen.setdefault(event.event_id, event)
    return list(seen.values())


def _times(dossier: Dossier) -> list[str | None]:
    """Every instant of the dossier with its UTC offset (== compares instants only)."""
    return [
        value.isoformat() if isinstance(value, datetime) else None
        for value in dataclasses.astuple(dossier)
    ]


def _expected_step(held: list[DossierEvent], event: DossierEvent) -> Arrival:
    if any(e.event_id == event.event_id for e in held):
        return Arrival.DUPLICATE
    if all(e.sort_key < event.sort_key for e in held):
        return Arrival.IN_ORDER
    return Arrival.EARLY


def _check_each_step(data: st.DataObject) -> None:
    arrived = data.draw(arrivals())
    progress = DossierProgress.start(DID)
    held: list[DossierEvent] = []
    for step, event in enumerate(arrived, 1):
        want = _expected_step(held, event)
        assert progress.add(event, CAL) is want
        if want is not Arrival.DUPLICATE:
            held.append(event)
        dossier, facts = fold_with_facts(DID, held, CAL)
        assert progress.dossier == dossier == fold(DID, held, CAL)
        assert _times(progress.dossier) == _times(dossier)
        assert progress.facts == facts
        assert len(progress) == len(held)
        assert progress.duplicates == len(arrived[:step]) - len(held)
        assert progress.events() == sorted(held, key=lambda e: e.sort_key)
        assert progress.event_types() == [e.type for e in held]

        unpacked = DossierProgress.unpack(DID, progress.pack())
        assert unpacked == progress
        assert unpacked.dossier == dossier and unpacked.facts == facts
        assert _times(unpacked.dossier) == _times(dossier)
        if dossier.due is not None:
            assert (unpacked.dossier.due.tzinfo is LOCAL_TZ) == (dossier.due.tzinfo is LOCAL_TZ)
        assert DossierProgress.of(DID, arrived[:step], CAL) == progress
        if data.draw(st.booleans()):
            progress = unpacked  # go on from the stored form, as a restarted worker does


@QUICK
@given(st.data())
def test_advancing_event_by_event_equals_the_full_replay(data: st.DataObject) -> None:
    _check_each_step(data)


@pytest.mark.long
@LONG
@given(st.data())
def test_advancing_event_by_event_equals_the_full_replay_long(data: st.DataObject) -> None:
    _check_each_step(data)


def _receipt(event_id: str = f"{DID}-r") -> DossierEvent:
    return DossierEvent(
        event_id,
        DID,
        EventType.RECEIVED,
        datetime(2026, 3, 2, 8, 0, tzinfo=LOCAL_TZ),
        agency="SXD",
        procedure="1.000948",
        channel=Channel.DIRECT,
        processing_days=5,
    )


def _appraisals(count: int) -> list[DossierEvent]:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=LOCAL_TZ)
    return [
        DossierEvent(f"{DID}-a{i}", DID, EventType.APPRAISED, start + timedelta(minutes=i))
        for i in range(count)
    ]


def test_an_event_that_changes_no_field_keeps_the_dossier_value_and_facts() -> None:
    """An appraisal changes no field: the dossier value and its facts are not built again
    (the same objects), and still equal the fold of all the events. A step changes the
    dossier value but no fact: only the value is built again. A payment changes the index
    track: the facts are built again."""
    receipt = _receipt()
    progress = DossierProgress.start(DID)
    progress.add(receipt, CAL)
    dossier, facts = progress.dossier, progress.facts
    appraisal = _appraisals(1)[0]
    progress.add(appraisal, CAL)
    assert progress.dossier is dossier and progress.facts is facts
    assert (dossier, facts) == fold_with_facts(DID, [receipt, appraisal], CAL)
    at = appraisal.occurred_at + timedelta(minutes=5)
    step = DossierEvent(
        f"{DID}-s", DID, EventType.STEP_STARTED, at, step="S1", department="D1", step_hours=8
    )
    progress.add(step, CAL)
    assert progress.dossier is not dossier and progress.dossier.step is not None
    assert progress.facts is facts
    assert (progress.dossier, progress.facts) == fold_with_facts(
        DID, [receipt, appraisal, step], CAL
    )
    stepped, stepped_facts = progress.dossier, progress.facts
    paid = DossierEvent(f"{DID}-p", DID, EventType.PAID, at + timedelta(minutes=1))
    progress.add(paid, CAL)
    assert progress.dossier is stepped and progress.facts is not stepped_facts
    assert (progress.dossier, progress.facts) == fold_with_facts(
        DID, [receipt, appraisal, step, paid], CAL
    )
    # R2, a new appointment without a pause: no index transition, but the due and so the
    # facts' timeline move: built again.
    paid_facts = progress.facts
    appointment = DossierEvent(
        f"{DID}-n",
        DID,
        EventType.SUPPLEMENT_RECEIVED,
        at + timedelta(minutes=2),
        due_at=datetime(2026, 3, 20, 17, 0, tzinfo=LOCAL_TZ),
    )
    progress.add(appointment, CAL)
    assert progress.facts is not paid_facts
    assert (progress.dossier, progress.facts) == fold_with_facts(
        DID, [receipt, appraisal, step, paid, appointment], CAL
    )


def test_the_event_limit_and_duplicates_behave_as_intake_merge() -> None:
    assert MAX_EVENTS_PER_DOSSIER == records.MAX_EVENTS_PER_DOSSIER
    full = [_receipt(), *_appraisals(MAX_EVENTS_PER_DOSSIER - 1)]
    progress = DossierProgress.start(DID)
    record = records.DossierRecord(0)
    for event in full:
        assert progress.add(event, CAL) is Arrival.IN_ORDER
        record = record.with_event(event)
    stored = records.encode(record)
    extra = _appraisals(MAX_EVENTS_PER_DOSSIER)[-1]
    with pytest.raises(InvalidEvent) as merged:
        merge(extra, stored, 0, CAL)
    with pytest.raises(InvalidEvent) as advanced:
        progress.add(extra, CAL)
    assert advanced.value.reason is merged.value.reason is Reason.TOO_MANY_EVENTS
    assert str(advanced.value) == str(merged.value)
    # A full dossier still recognises a re-send (R7 is checked first, as merge does).
    assert merge(full[3], stored, 0, CAL).duplicate
    assert progress.add(full[3], CAL) is Arrival.DUPLICATE
    assert progress.duplicates == 1
    assert len(progress) == MAX_EVENTS_PER_DOSSIER
    assert progress.dossier == merge(full[3], stored, 0, CAL).dossier
    again = DossierProgress.unpack(DID, progress.pack())
    assert again == progress
    with pytest.raises(InvalidEvent):
        again.add(extra, CAL)


def test_a_reused_event_id_with_other_content_keeps_the_first() -> None:
    receipt = _receipt()
    earlier = receipt.occurred_at.replace(hour=7)
    other = dataclasses.replace(receipt, agency="STP", occurred_at=earlier)
    progress = DossierProgress.start(DID)
    assert progress.add(receipt, CAL) is Arrival.IN_ORDER
    assert progress.add(other, CAL) is Arrival.DUPLICATE
    assert progress.dossier == fold(DID, [receipt], CAL)
    assert progress.dossier.agency == "SXD"


def test_an_orphan_counts_nowhere_until_its_receipt() -> None:
    progress = DossierProgress.start(DID)
    (appraised,) = _appraisals(1)
    assert progress.add(appraised, CAL) is Arrival.IN_ORDER
    assert progress.dossier == Dossier(DID)
    assert progress.facts is None
    restored = DossierProgress.unpack(DID, progress.pack())
    assert restored.dossier == Dossier(DID) and restored.facts is None
    # The receipt sorts before the appraisal: a replay, and now both count.
    assert restored.add(_receipt(), CAL) is Arrival.EARLY
    assert restored.dossier == fold(DID, [appraised, _receipt()], CAL)
    assert restored.dossier.is_received


@QUICK
@given(event_sets())
def test_a_dossier_stored_before_the_index_unpacks_with_its_index(events: list[Any]) -> None:
    # Packed before issue 18, the state line had 12 items and no index track: unpack
    # gathers the track from the stored events, and the facts come out the same. (Steps came
    # after the index: such a dossier had none.)
    steps = (EventType.STEP_STARTED, EventType.STEP_COMPLETED)
    events = [e for e in events if e.type not in steps]
    progress = DossierProgress.of(DID, events, CAL)
    raw = progress.pack()
    head = "<BBbbbBBIHH"  # progress.py's header; the 9th item is the timeline's length
    start = struct.calcsize(head) + struct.unpack_from(head, raw)[8]
    end = raw.index(b"\n", start)
    state = orjson.loads(raw[start:end])
    old = raw[:start] + orjson.dumps(state[:12]) + raw[end:]
    assert DossierProgress.unpack(DID, old) == progress
    assert DossierProgress.unpack(DID, old).facts == progress.facts


def test_every_event_type_has_its_own_packed_char() -> None:
    # A new event type needs a char in codec.TYPE_CHAR; the first nine keep theirs.
    chars = TYPE_CHAR
    assert set(chars) == set(EventType)
    assert len(set(chars.values())) == len(chars)
    assert "".join(chars[t] for t in list(EventType)[:9]) == "012345678"


def test_unpack_refuses_an_unknown_version() -> None:
    raw = bytearray(DossierProgress.start(DID).pack())
    raw[0] = 99
    with pytest.raises(ValueError, match="version 99"):
        DossierProgress.unpack(DID, bytes(raw))


def test_records_built_through_their_slots_stay_frozen_dataclasses() -> None:
    # schemas.events.direct_init replaces the generated __init__ of DossierEvent and Dossier.
    receipt = _receipt()
    again = DossierEvent(**{f.name: getattr(receipt, f.name) for f in dataclasses.fields(receipt)})
    assert again == receipt and hash(again) == hash(receipt)
    assert (
        DossierEvent(receipt.event_id, DID, EventType.APPRAISED, receipt.occurred_at).agency is None
    )
    assert dataclasses.replace(receipt, agency="STP").agency == "STP"
    with pytest.raises(dataclasses.FrozenInstanceError):
        receipt.agency = "STP"  # type: ignore[misc]
    assert Dossier(DID) == Dossier(DID, None, None, None, None, None, None, None, None, None)
    assert Dossier(DID).passed_due is False and Dossier(DID).supplements == 0


def _one_of_each(at: datetime) -> dict[str, DossierEvent]:
    """One event of every kind (and both kinds of supplement return), `at` and after."""
    minute = timedelta(minutes=1)
    due = datetime(2026, 3, 25, 17, 0, tzinfo=LOCAL_TZ)

    def make(name: str, kind: EventType, n: int, **fields: Any) -> DossierEvent:
        return DossierEvent(f"{DID}-{name}", DID, kind, at + n * minute, **fields)

    return {
        "appraised": make("a", EventType.APPRAISED, 0),
        "supplement_requested": make("q", EventType.SUPPLEMENT_REQUESTED, 1),
        "supplement_received": make("b", EventType.SUPPLEMENT_RECEIVED, 2),
        "new_appointment": make("n", EventType.SUPPLEMENT_RECEIVED, 2, due_at=due),
        "extended": make("x", EventType.EXTENDED, 3, new_due_at=due),
        "step_started": make(
            "s", EventType.STEP_STARTED, 4, step="S1", department="D1", step_hours=8
        ),
        "step_completed": make("c", EventType.STEP_COMPLETED, 5, step="S1"),
        "approved": make("v", EventType.APPROVED, 6),
        "rejected": make("j", EventType.REJECTED, 6),
        "returned": make("t", EventType.RETURNED, 7, e_result=True),
        "withdrawn": make("w", EventType.WITHDRAWN, 7),
        "paid": make("p", EventType.PAID, 8, method=PaymentMethod.NATIONAL_PORTAL),
        "rated": make("g", EventType.RATED, 9, rating=Rating.SATISFIED),
    }


# Where a dossier may stand when the next event comes: the events that put it there.
_STANDINGS = {
    "received": (),
    "paused": ("supplement_requested",),
    "stepping": ("step_started",),
    "decided": ("approved",),
    "closed": ("approved", "returned"),
}


@pytest.mark.parametrize("standing", sorted(_STANDINGS))
@pytest.mark.parametrize("name", sorted(_one_of_each(datetime(2026, 3, 2, tzinfo=LOCAL_TZ))))
def test_every_kind_of_event_from_every_standing_keeps_value_and_facts_exact(
    standing: str, name: str
) -> None:
    """The kept dossier value and report facts (built once, kept while an event changes
    nothing they hold) equal the full replay's after any one more event, whatever the
    dossier's standing: a table of every kind of event, not left to a random draw."""
    receipt = _receipt()
    later = _one_of_each(receipt.occurred_at + timedelta(hours=1))
    before = [later[n] for n in _STANDINGS[standing]]
    # The event comes after the ones that set the standing (an in-order arrival).
    event = dataclasses.replace(
        later[name],
        event_id=f"{DID}-next",
        occurred_at=max(e.occurred_at for e in [receipt, *before]) + timedelta(minutes=30),
    )
    progress = DossierProgress.start(DID)
    for earlier in (receipt, *before):
        progress.add(earlier, CAL)
    _ = progress.dossier, progress.facts  # built and kept, as a worker's batch does
    assert progress.add(event, CAL) is Arrival.IN_ORDER
    held = [receipt, *before, event]
    assert (progress.dossier, progress.facts) == fold_with_facts(DID, held, CAL)
    unpacked = DossierProgress.unpack(DID, progress.pack())
    assert (unpacked.dossier, unpacked.facts) == fold_with_facts(DID, held, CAL)
