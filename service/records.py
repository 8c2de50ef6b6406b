"""How a dossier is stored in the table: its validated events, compactly.

The table keeps events, not just a summary, because a late-arriving earlier event must
change the state exactly as if it had arrived in order (rule R6): only the event set
allows that. Only contract fields are stored; unknown fields were dropped on parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from schemas import Channel, DossierEvent, EventType

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
        return DossierRecord(self.partition, (*self.events, event), self.duplicates)

    def with_duplicate(self) -> DossierRecord:
        return DossierRecord(self.partition, self.events, self.duplicates + 1)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def encode(record: DossierRecord) -> bytes:
    rows = [
        [
            e.event_id,
            e.type.value,
            e.occurred_at.isoformat(),
            e.agency,
            e.procedure,
            e.channel.value if e.channel else None,
            _time(e.due_at),
            e.processing_days,
            _time(e.new_due_at),
        ]
        for e in record.events
    ]
    return orjson.dumps({"p": record.partition, "d": record.duplicates, "e": rows})


def decode(dossier_id: str, raw: bytes) -> DossierRecord:
    data = orjson.loads(raw)
    events = tuple(
        DossierEvent(
            event_id=row[0],
            dossier_id=dossier_id,
            type=EventType(row[1]),
            occurred_at=datetime.fromisoformat(row[2]),
            agency=row[3],
            procedure=row[4],
            channel=Channel(row[5]) if row[5] else None,
            due_at=_parse_time(row[6]),
            processing_days=row[7],
            new_due_at=_parse_time(row[8]),
        )
        for row in data["e"]
    )
    return DossierRecord(data["p"], events, data["d"])
