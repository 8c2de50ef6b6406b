"""The reference fold: a dossier's state as a plain replay of its whole event set.

The property tests compare production (service/domain/rules.py through
service/domain/progress.py) with this independent reading of docs/rules.md: a plain loop
over the events in R6 order, with its own copy of the rules and of the index track's
transitions, so a change to the rule engine that changes behaviour shows up as a
disagreement here. Never imported by the service.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from datetime import datetime

from schemas import DossierEvent, EventType, Rating
from service.domain.calendar import WorkingCalendar
from service.domain.clock import Outcome, computed_due, judge, shift_due
from service.domain.dossier import Dossier
from service.domain.index import IndexFacts, IndexTrack
from service.domain.report import (
    NO_DUE,
    PAUSED_OVERDUE,
    PAUSED_WITHIN,
    SEGMENT,
    DossierFacts,
)
from service.domain.steps import CompletedStep, OpenStep, finish_step, resume_step, start_step

CLOCK_ENDING = frozenset({EventType.APPROVED, EventType.REJECTED, EventType.RETURNED})
CLOSING = frozenset({EventType.REJECTED, EventType.RETURNED, EventType.WITHDRAWN})
_ONLINE_PAYMENT = frozenset({"national_portal", "provincial_gateway"})


def ordered_unique(events: Iterable[DossierEvent]) -> list[DossierEvent]:
    """R6 and R7: one event per event_id (the first seen wins), in occurred_at order."""
    seen: dict[str, DossierEvent] = {}
    for event in events:
        seen.setdefault(event.event_id, event)
    if len(seen) < 2:
        return list(seen.values())  # most stored dossiers hold only their receipt
    return sorted(seen.values(), key=lambda e: e.sort_key)


def fold(dossier_id: str, events: Iterable[DossierEvent], calendar: WorkingCalendar) -> Dossier:
    """Replay a dossier's events into its state."""
    state = Dossier(dossier_id)  # R8: an orphan is kept, counted nowhere until received
    for _, state in replay(dossier_id, events, calendar):  # noqa: B007 (the last one counts)
        pass
    return state


def replay(
    dossier_id: str, events: Iterable[DossierEvent], calendar: WorkingCalendar
) -> Iterator[tuple[datetime, Dossier]]:
    """The state after each instant at which events occurred, from the receipt on.

    Events at one instant act together, so one state is given per instant. Nothing is
    given before the receipt (an orphan gives nothing); the last state is `fold`'s.
    """
    ordered = ordered_unique(events)
    receipt = next((e for e in ordered if e.type is EventType.RECEIVED), None)
    if receipt is None:
        return

    assert receipt.channel is not None
    due = receipt_due(receipt, calendar)
    paused_at: datetime | None = None
    clock_end: datetime | None = None
    outcome: Outcome | None = None
    apology_at: datetime | None = None
    new_due_at: datetime | None = None
    passed_due = False
    supplements = 0
    step: OpenStep | None = None
    steps_done: tuple[CompletedStep, ...] = ()
    agency = receipt.agency or ""

    def state(closed_by: EventType | None = None, closed_at: datetime | None = None) -> Dossier:
        return Dossier(
            dossier_id,
            receipt.agency,
            receipt.procedure,
            receipt.channel,
            receipt.occurred_at,
            due,
            paused_at,
            clock_end,
            outcome,
            closed_by,
            closed_at,
            apology_at,
            new_due_at,
            passed_due,
            supplements,
            step,
            steps_done,
        )

    # R6: events dated before the receipt and any second receipt are ignored.
    start = ordered.index(receipt)
    for i in range(start, len(ordered)):
        event = ordered[i]
        at = event.occurred_at
        kind = event.type
        running = clock_end is None and paused_at is None

        if i == start:
            pass  # the receipt itself: the state above is its state
        elif kind is EventType.SUPPLEMENT_REQUESTED:
            if running:  # R2: a second request while paused changes nothing
                passed_due = passed_due or past(at, due)
                paused_at = at
                supplements += 1
        elif kind is EventType.SUPPLEMENT_RECEIVED:
            if paused_at is not None and clock_end is None:
                due = event.due_at or shifted(due, paused_at, at, calendar)
                if step is not None:  # R13
                    step = resume_step(step, paused_at, at, calendar)
                paused_at = None
            elif running and event.due_at is not None:  # R2: a new appointment, no pause
                passed_due = passed_due or past(at, due)
                due = event.due_at
        elif kind is EventType.EXTENDED:
            # R5: the apology is recorded; the judgement still uses the due.
            if clock_end is None:
                apology_at = apology_at or at
                new_due_at = event.new_due_at
        elif kind is EventType.STEP_STARTED:
            if clock_end is None:  # R15: steps count while the dossier's clock counts
                if step is not None:  # R12: the new step closes the one before
                    steps_done += (finish_step(step, at, paused_at, calendar),)
                step = start_step(event, agency, calendar)
        elif kind is EventType.STEP_COMPLETED:
            if step is not None and step.step == event.step:  # R14
                steps_done += (finish_step(step, at, paused_at, calendar),)
                step = None
        elif kind in CLOCK_ENDING and clock_end is None:
            if step is not None:  # R15: the step ends with the clock
                steps_done += (finish_step(step, at, paused_at, calendar),)
                step = None
            if paused_at is not None:  # R2: the clock ended while paused
                due = shifted(due, paused_at, at, calendar)
                paused_at = None
            else:
                passed_due = passed_due or past(at, due)
            clock_end = at
            outcome = judge(at, due) if due is not None else None  # R3; R11: not judged
            # Late means the clock passed the due, even if a pause shifted it meanwhile.
            passed_due = passed_due or outcome is Outcome.LATE

        if i > start and kind is EventType.WITHDRAWN and clock_end is None:
            if step is not None:  # R15: the step ends with the dossier
                steps_done += (finish_step(step, at, paused_at, calendar),)
                step = None
            if paused_at is None:
                passed_due = passed_due or past(at, due)
        if i > start and kind in CLOSING:  # R4: the dossier is closed; later events ignored
            paused_at = None
            yield at, state(kind, at)
            return
        if i + 1 == len(ordered) or ordered[i + 1].occurred_at != at:
            yield at, state()


def receipt_due(receipt: DossierEvent, calendar: WorkingCalendar) -> datetime | None:
    """R1: the appointment on the receipt wins, else the computed due; R11: else none."""
    if receipt.due_at is not None:
        return receipt.due_at
    if receipt.processing_days is not None:
        return computed_due(receipt.occurred_at, receipt.processing_days, calendar)
    return None


def past(at: datetime, due: datetime | None) -> bool:
    """`at` is after the due; never for a dossier without one (R11)."""
    return due is not None and at > due


def shifted(
    due: datetime | None, paused_at: datetime, resumed_at: datetime, calendar: WorkingCalendar
) -> datetime | None:
    """R2's shift of the due by the waiting time; no due stays no due (R11)."""
    return shift_due(due, paused_at, resumed_at, calendar) if due is not None else None


def _due_code(dossier: Dossier) -> float:
    """The segment value for an in-progress dossier's state (see `_SEGMENT`)."""
    if dossier.due is None:
        return NO_DUE
    if dossier.paused_at is not None:
        # The issue: a paused dossier counts as within iff its supplement was requested at or
        # before its due; `fold` keeps the due unshifted until the supplement arrives.
        return PAUSED_WITHIN if dossier.paused_at <= dossier.due else PAUSED_OVERDUE
    return dossier.due.timestamp()


def fold_with_facts(
    dossier_id: str, events: Iterable[DossierEvent], calendar: WorkingCalendar
) -> tuple[Dossier, DossierFacts | None]:
    """`fold` and the report facts of the same events, in one replay."""
    events = list(events)  # read twice: the replay, then the index facts
    timeline = bytearray()
    last_code: float | None = None
    final: Dossier | None = None
    ended = False
    for instant, state in replay(dossier_id, events, calendar):
        final = state
        if ended:
            continue
        if state.clock_end is not None or state.closed_by is not None:
            ended = True  # no longer in progress; the end instants are kept as fields
            continue
        code = _due_code(state)
        if code != last_code:
            timeline += SEGMENT.pack(instant.timestamp(), code)
            last_code = code
    if final is None:
        return Dossier(dossier_id), None  # R8: an orphan counts nowhere until its receipt
    assert final.agency is not None and final.channel is not None
    if not timeline:
        # The clock ended at the receipt's own instant: a segment keeps `due_at` total.
        due = final.due.timestamp() if final.due is not None else NO_DUE
        timeline += SEGMENT.pack(final.received_at.timestamp(), due)

    withdrawn_at = final.closed_at if final.withdrawn else None
    timeline = bytes(timeline)
    return final, DossierFacts(
        # Interned: a million facts share a few dozen agency codes instead of a copy each.
        agency=sys.intern(final.agency),
        channel=final.channel,
        received_at=final.received_at.timestamp(),
        clock_end=final.clock_end.timestamp() if final.clock_end is not None else None,
        outcome=final.outcome,
        withdrawn_at=withdrawn_at.timestamp() if withdrawn_at is not None else None,
        timeline=timeline,
        index=index_facts(final, events, _receipt_due_of(events, calendar)),
    )


def _receipt_due_of(events: Iterable[DossierEvent], calendar: WorkingCalendar) -> float:
    """NgayHenTra as the receipt set it (R1, R11: NO_DUE for none), from the receipt itself."""
    receipt = next(e for e in ordered_unique(events) if e.type is EventType.RECEIVED)
    due = receipt_due(receipt, calendar)
    return due.timestamp() if due is not None else NO_DUE


def index_track(events: Iterable[DossierEvent]) -> IndexTrack | None:
    """The index track of a whole event set, by its own reading of R2 and R4."""
    ordered = ordered_unique(events)
    start = next((i for i, e in enumerate(ordered) if e.type is EventType.RECEIVED), None)
    if start is None:
        return None
    track = IndexTrack(ordered[start])
    for event in ordered[start + 1 :]:
        _index_step(track, event)
    return track


def _index_step(track: IndexTrack, event: DossierEvent) -> None:
    kind = event.type
    if kind is EventType.PAID:
        track.paid = True
        track.paid_online = track.paid_online or (
            event.method is not None and event.method.value in _ONLINE_PAYMENT
        )
        return
    if kind is EventType.RATED:
        track.dissatisfied = track.dissatisfied or event.rating is Rating.DISSATISFIED
        return
    if track.closed:
        return
    if kind in CLOSING:
        track.closed = True
        if kind is EventType.RETURNED:
            track.e_result = event.e_result
    if track.ended:
        return
    if kind is EventType.SUPPLEMENT_REQUESTED and not track.paused:
        track.paused = True
        if track.first is None:
            track.first = event.occurred_at.timestamp()
        elif track.second is None:
            track.second = event.occurred_at.timestamp()
    elif kind is EventType.SUPPLEMENT_RECEIVED and track.paused:
        track.paused = False
        if track.back is None:
            track.back = event.occurred_at.timestamp()
        if event.due_at is not None:
            track.new_due = event.due_at.timestamp()
    elif kind is EventType.SUPPLEMENT_RECEIVED and event.due_at is not None:
        track.new_due = event.due_at.timestamp()  # R2: a new appointment while it runs
    elif kind in CLOCK_ENDING or kind is EventType.WITHDRAWN:
        track.ended = True


def index_facts(
    dossier: Dossier, events: Iterable[DossierEvent], receipt_due: float
) -> IndexFacts | None:
    track = index_track(events)
    if dossier.received_at is None or track is None:
        return None
    clock_end, closed_at = dossier.clock_end, dossier.closed_at
    return track.facts(
        dossier,
        dossier.received_at.timestamp(),
        clock_end.timestamp() if clock_end is not None else None,
        closed_at.timestamp() if closed_at is not None else None,
        receipt_due,
    )
