"""The reference record, kept only for comparison: a dossier as its plain list of events.

The worker stores `DossierProgress.pack()` (service/domain/progress.py), which resumes a
replay. This simpler form, with `merge` (a full replay per event), is the reference the
property tests compare the incremental path with: both must give the same state for the
same events.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Any

import orjson
from reference_fold import fold, fold_with_facts

from schemas import Channel, DossierEvent, EventType, InvalidEvent, Reason
from service.domain import Dossier, WorkingCalendar
from service.domain.report import DossierFacts

# A dossier has a handful of events; more than this is a producer bug or an attack.
MAX_EVENTS_PER_DOSSIER = 200


@dataclass(frozen=True, slots=True)
class DossierRecord:
    """The table value for one dossier."""

    partition: int  # input partition, so sums can be rebuilt per partition
    events: tuple[DossierEvent, ...] = ()
    duplicates: int = 0

    def has(self, event_id: str) -> bool:
        return any(e.event_id == event_id for e in self.events)

    def with_event(self, event: DossierEvent) -> DossierRecord:
        if event.type in _KEPT_IN_STATE:
            event = _compact(event)
        return DossierRecord(self.partition, (*self.events, event), self.duplicates)

    def with_duplicate(self) -> DossierRecord:
        return DossierRecord(self.partition, self.events, self.duplicates + 1)


# The ledger keeps the state of every running dossier in memory, and that state points at
# the codes and times of its events: a million times over, a copy of "SKHDT" or of a +07:00
# time zone per dossier adds up. Shared ones save ~290 bytes a dossier (docs/benchmarks.md).
_ZONES: dict[tzinfo, tzinfo] = {}
# The events whose codes and times a running dossier's state holds on to (receipt, due,
# apology); the others only matter once the dossier has stopped running.
_KEPT_IN_STATE = frozenset({EventType.RECEIVED, EventType.SUPPLEMENT_RECEIVED, EventType.EXTENDED})


def _shared(code: str | None) -> str | None:
    return sys.intern(code) if code is not None else None


def _zoned(value: datetime) -> datetime:
    """The same instant and offset, with a time zone object shared by all (fromisoformat
    makes a new one for every string it parses)."""
    zone = value.tzinfo
    assert zone is not None  # the contract only admits timestamps with an offset
    shared = _ZONES.setdefault(zone, zone)
    return value if shared is zone else value.replace(tzinfo=shared)


def _zoned_or_none(value: datetime | None) -> datetime | None:
    return _zoned(value) if value is not None else None


def _compact(event: DossierEvent) -> DossierEvent:
    return replace(
        event,
        occurred_at=_zoned(event.occurred_at),
        agency=_shared(event.agency),
        procedure=_shared(event.procedure),
        due_at=_zoned_or_none(event.due_at),
        new_due_at=_zoned_or_none(event.new_due_at),
    )


def _time(text: str) -> datetime:
    return _zoned(datetime.fromisoformat(text))


# Lookups by value: a dict is several times cheaper than calling the Enum class, and decode
# runs for every event that reaches a stored dossier.
_EVENT_TYPES = {t.value: t for t in EventType}
_CHANNELS = {c.value: c for c in Channel}


def encode(record: DossierRecord) -> bytes:
    rows = [
        [
            e.event_id,
            e.type.value,
            e.occurred_at.isoformat(),
            e.agency,
            e.procedure,
            e.channel.value if e.channel else None,
            e.due_at.isoformat() if e.due_at is not None else None,
            e.processing_days,
            e.new_due_at.isoformat() if e.new_due_at is not None else None,
        ]
        for e in record.events
    ]
    return orjson.dumps({"p": record.partition, "d": record.duplicates, "e": rows})


def decode(dossier_id: str, raw: bytes) -> DossierRecord:
    data = orjson.loads(raw)
    events = tuple(_event(dossier_id, row) for row in data["e"])
    return DossierRecord(data["p"], events, data["d"])


def _event(dossier_id: str, row: list[Any]) -> DossierEvent:
    event_id, kind, occurred_at, agency, procedure, channel, due_at, days, new_due_at = row
    event_type = _EVENT_TYPES[kind]
    time = _time if event_type in _KEPT_IN_STATE else datetime.fromisoformat
    return DossierEvent(
        event_id,
        dossier_id,
        event_type,
        time(occurred_at),
        _shared(agency),
        _shared(procedure),
        _CHANNELS[channel] if channel else None,
        time(due_at) if due_at is not None else None,
        days,
        time(new_due_at) if new_due_at is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Merged:
    """The outcome of adding one valid event to its dossier."""

    record: DossierRecord
    dossier: Dossier
    duplicate: bool
    facts: DossierFacts | None = None  # for period reports; None for orphans and duplicates


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
