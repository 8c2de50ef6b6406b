"""One incoming message as plain functions: `parse` validates it (or says why not, for the
dead-letter topic) against the message's own timestamp; `merge` is the reference path of a
full replay per event (see records.py), which the incremental DossierProgress must equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas import DossierEvent, InvalidEvent, Reason, parse_event
from service.domain import Dossier, WorkingCalendar, fold
from service.domain.report import DossierFacts, fold_with_facts
from service.state.records import MAX_EVENTS_PER_DOSSIER, DossierRecord, decode


@dataclass(frozen=True, slots=True)
class Merged:
    """The outcome of adding one valid event to its dossier."""

    record: DossierRecord
    dossier: Dossier
    duplicate: bool
    facts: DossierFacts | None = None  # for period reports; None for orphans and duplicates


def parse(value: bytes | None, key: bytes | None, now: datetime) -> DossierEvent:
    """Validate a message; the key must be the dossier_id so a dossier stays in one partition."""
    return parse_event(value or b"", now=now, key=key or b"")


def merge(
    event: DossierEvent,
    stored: bytes | None,
    partition: int,
    calendar: WorkingCalendar,
) -> Merged:
    """R7: a seen event_id is a duplicate; otherwise the event joins the dossier's set."""
    record = decode(event.dossier_id, stored) if stored else DossierRecord(partition)
    if record.has(event.event_id):
        record = record.with_duplicate()
        return Merged(record, fold(event.dossier_id, record.events, calendar), duplicate=True)
    if len(record.events) >= MAX_EVENTS_PER_DOSSIER:
        raise InvalidEvent(
            Reason.TOO_MANY_EVENTS,
            f"dossier already has {MAX_EVENTS_PER_DOSSIER} events; no more are accepted",
        )
    record = record.with_event(event)
    dossier, facts = fold_with_facts(event.dossier_id, record.events, calendar)
    return Merged(record, dossier, duplicate=False, facts=facts)
