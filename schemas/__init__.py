"""The event contract center systems publish against (version 1).

`dossier-event.v1.schema.json` is the published JSON Schema for producers; `events.py`
holds the record types, `validation.py` the rules the service applies (each rejection with
its reason) and `parsing.py` a message's bytes to an event (the usual shapes by a fast path
that agrees with the rules). A test keeps the schema and the rules in agreement.
"""

from pathlib import Path

from schemas.events import (
    MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
    SOURCE_HEADER,
    TYPE_ORDER,
    Channel,
    DossierEvent,
    EventType,
    InvalidEvent,
    OnlineLevel,
    PaymentMethod,
    Rating,
    Reason,
)
from schemas.parsing import event_from_dict, parse_event
from schemas.validation import parse_timestamp

SCHEMA_PATH = Path(__file__).with_name("dossier-event.v1.schema.json")

__all__ = [
    "MAX_MESSAGE_BYTES",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "SOURCE_HEADER",
    "TYPE_ORDER",
    "Channel",
    "DossierEvent",
    "EventType",
    "InvalidEvent",
    "OnlineLevel",
    "PaymentMethod",
    "Rating",
    "Reason",
    "event_from_dict",
    "parse_event",
    "parse_timestamp",
]
