"""Dossier events, contract version 1: record types and validation.

Center systems publish one JSON object per Kafka message (UTF-8, key = dossier_id).
`parse_event` turns the bytes into a `DossierEvent` or raises `InvalidEvent` with a
reason code a machine can count and a sentence a person can read. Unknown fields are
dropped here, so nothing the service stores can carry personal data it did not ask for.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

SCHEMA_VERSION = 1
MAX_EVENT_ID = 128
MAX_DOSSIER_ID = 64
MAX_CODE = 64
MAX_PROCESSING_DAYS = 365
# Center clocks drift; an event from further ahead than this is a bug upstream.
FUTURE_TOLERANCE = timedelta(minutes=5)
# A dossier event is a few hundred bytes; anything this large is not one.
MAX_MESSAGE_BYTES = 64 * 1024


class EventType(enum.StrEnum):
    """What happened to a dossier. Declaration order is the tie-break order (rule R6)."""

    RECEIVED = "received"  # tiếp nhận
    APPRAISED = "appraised"  # thẩm định
    SUPPLEMENT_REQUESTED = "supplement_requested"  # yêu cầu bổ sung
    SUPPLEMENT_RECEIVED = "supplement_received"
    EXTENDED = "extended"  # văn bản xin lỗi và hẹn lại
    APPROVED = "approved"  # phê duyệt
    REJECTED = "rejected"  # từ chối
    RETURNED = "returned"  # trả kết quả: the result handed back
    WITHDRAWN = "withdrawn"  # rút hồ sơ


TYPE_ORDER: dict[EventType, int] = {t: i for i, t in enumerate(EventType)}


class Channel(enum.StrEnum):
    """How the dossier reached the center (national data: 1 direct, 2 online, 3 postal)."""

    DIRECT = "direct"
    ONLINE = "online"
    POSTAL = "postal"


class Reason(enum.StrEnum):
    """Why a message was rejected; the value is the dead-letter header and metric label."""

    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    TOO_LARGE = "too_large"
    BAD_SCHEMA_VERSION = "bad_schema_version"
    BAD_EVENT_ID = "bad_event_id"
    BAD_DOSSIER_ID = "bad_dossier_id"
    KEY_MISMATCH = "key_mismatch"
    UNKNOWN_TYPE = "unknown_type"
    BAD_TIMESTAMP = "bad_timestamp"
    NAIVE_TIMESTAMP = "naive_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    MISSING_AGENCY = "missing_agency"
    MISSING_PROCEDURE = "missing_procedure"
    BAD_CHANNEL = "bad_channel"
    MISSING_DUE = "missing_due"
    BAD_PROCESSING_DAYS = "bad_processing_days"
    MISSING_NEW_DUE = "missing_new_due_at"
    TOO_MANY_EVENTS = "too_many_events"


class InvalidEvent(ValueError):
    """A message that is not a valid version-1 dossier event."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class DossierEvent:
    """One validated event. Only the fields below are kept; times are timezone-aware."""

    event_id: str
    dossier_id: str
    type: EventType
    occurred_at: datetime
    agency: str | None = None
    procedure: str | None = None
    channel: Channel | None = None
    due_at: datetime | None = None
    processing_days: int | None = None
    new_due_at: datetime | None = None

    @property
    def sort_key(self) -> tuple[datetime, int, str]:
        """Rule R6: occurred_at, then the type order, then event_id."""
        return (self.occurred_at, TYPE_ORDER[self.type], self.event_id)

    def to_dict(self) -> dict[str, Any]:
        """The event as contract JSON (only the fields that are set)."""
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "dossier_id": self.dossier_id,
            "type": self.type.value,
            "occurred_at": self.occurred_at.isoformat(),
        }
        for name in ("agency", "procedure", "processing_days"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.channel is not None:
            out["channel"] = self.channel.value
        for name in ("due_at", "new_due_at"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.isoformat()
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


# RFC 3339 date-time: a 'T' or space separator, seconds required, offset required.
# Years 2000–2099: the service's calendar and clock have no use for others, and a year
# near 9999 would overflow date arithmetic when the due is shifted.
_RFC3339 = re.compile(
    r"20[0-9]{2}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
)


def parse_timestamp(value: Any, field: str) -> datetime:
    """An RFC 3339 timestamp with an explicit offset, as an aware datetime."""
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidEvent(Reason.BAD_TIMESTAMP, f"{field} must be an RFC 3339 string")
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise InvalidEvent(
            Reason.BAD_TIMESTAMP, f"{field} is not RFC 3339 in years 2000–2099: {value!r:.50}"
        )
    if match.group(2) is None:
        raise InvalidEvent(
            Reason.NAIVE_TIMESTAMP, f"{field} has no UTC offset (e.g. +07:00): {value!r}"
        )
    text = value
    fraction = match.group(1)
    if fraction and len(fraction) > 7:  # Python keeps microseconds; drop finer digits
        text = text.replace(fraction, fraction[:7], 1)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise InvalidEvent(Reason.BAD_TIMESTAMP, f"{field} is not a valid date: {value!r}") from exc
    offset = parsed.utcoffset()
    if offset is None or abs(offset) >= timedelta(hours=24):
        raise InvalidEvent(Reason.BAD_TIMESTAMP, f"{field} has an invalid offset: {value!r}")
    try:
        parsed.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidEvent(Reason.BAD_TIMESTAMP, f"{field} is out of range: {value!r}") from exc
    return parsed


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _identifier(data: dict[str, Any], field: str, limit: int, reason: Reason) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(reason, f"{field} must be a non-empty string")
    if len(value) > limit:
        raise InvalidEvent(reason, f"{field} is longer than {limit} characters")
    return value


def _code(data: dict[str, Any], field: str, reason: Reason) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent(reason, f"{field} must be a non-empty code")
    if len(value) > MAX_CODE or _CONTROL.search(value):
        raise InvalidEvent(reason, f"{field} must be a code of at most {MAX_CODE} printable chars")
    return value


def _whole_number(value: Any) -> int | None:
    """JSON has one number type: 3 and 3.0 are the same integer (as in JSON Schema)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _known_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Validate every contract field present in `data`."""
    out: dict[str, Any] = {}
    if "agency" in data:
        out["agency"] = _code(data, "agency", Reason.MISSING_AGENCY)
    if "procedure" in data:
        out["procedure"] = _code(data, "procedure", Reason.MISSING_PROCEDURE)
    if "channel" in data:
        try:
            out["channel"] = Channel(data["channel"])
        except (ValueError, TypeError):
            raise InvalidEvent(
                Reason.BAD_CHANNEL, "channel must be one of direct, online, postal"
            ) from None
    for name in ("due_at", "new_due_at"):
        if name in data:
            out[name] = parse_timestamp(data[name], name)
    if "processing_days" in data:
        days = _whole_number(data["processing_days"])
        if days is None or not 1 <= days <= MAX_PROCESSING_DAYS:
            raise InvalidEvent(
                Reason.BAD_PROCESSING_DAYS,
                f"processing_days must be an integer 1–{MAX_PROCESSING_DAYS}",
            )
        out["processing_days"] = days
    return out


def event_from_dict(data: Any, now: datetime | None = None) -> DossierEvent:
    """Validate a decoded JSON value against contract version 1."""
    if not isinstance(data, dict):
        raise InvalidEvent(Reason.NOT_OBJECT, "the message must be a JSON object")
    version = data.get("schema_version", SCHEMA_VERSION)
    if _whole_number(version) != SCHEMA_VERSION:
        raise InvalidEvent(
            Reason.BAD_SCHEMA_VERSION, f"schema_version must be {SCHEMA_VERSION}, got {version!r}"
        )
    event_id = _identifier(data, "event_id", MAX_EVENT_ID, Reason.BAD_EVENT_ID)
    dossier_id = _identifier(data, "dossier_id", MAX_DOSSIER_ID, Reason.BAD_DOSSIER_ID)
    raw_type = data.get("type")
    try:
        event_type = EventType(raw_type)
    except (ValueError, TypeError):
        raise InvalidEvent(Reason.UNKNOWN_TYPE, f"unknown event type {raw_type!r:.40}") from None
    occurred_at = parse_timestamp(data.get("occurred_at"), "occurred_at")
    now = now or datetime.now(UTC)
    if occurred_at - now > FUTURE_TOLERANCE:
        raise InvalidEvent(
            Reason.FUTURE_TIMESTAMP, "occurred_at is more than 5 minutes in the future"
        )

    # Known fields are checked wherever they appear (as the JSON Schema does), then
    # only the ones this type uses are kept.
    known = _known_fields(data)
    fields: dict[str, Any] = {}
    if event_type is EventType.RECEIVED:
        for name, reason in (
            ("agency", Reason.MISSING_AGENCY),
            ("procedure", Reason.MISSING_PROCEDURE),
            ("channel", Reason.BAD_CHANNEL),
        ):
            if name not in known:
                raise InvalidEvent(reason, f"received needs {name}")
            fields[name] = known[name]
        if "due_at" in known:  # R1: the appointment on the receipt wins
            fields["due_at"] = known["due_at"]
        elif "processing_days" in known:
            fields["processing_days"] = known["processing_days"]
        else:
            raise InvalidEvent(Reason.MISSING_DUE, "received needs due_at or processing_days")
    elif event_type is EventType.SUPPLEMENT_RECEIVED:
        if "due_at" in known:
            fields["due_at"] = known["due_at"]
    elif event_type is EventType.EXTENDED:
        if "new_due_at" not in known:
            raise InvalidEvent(Reason.MISSING_NEW_DUE, "extended needs new_due_at")
        fields["new_due_at"] = known["new_due_at"]
    return DossierEvent(
        event_id=event_id,
        dossier_id=dossier_id,
        type=event_type,
        occurred_at=occurred_at,
        **fields,
    )


def parse_event(raw: bytes, now: datetime | None = None, key: bytes | None = None) -> DossierEvent:
    """Decode and validate one Kafka message value (and, if given, its key)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(
            Reason.TOO_LARGE, f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}"
        )
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvent(Reason.NOT_UTF8, "the message is not UTF-8") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(Reason.NOT_JSON, f"not JSON: {str(exc)[:80]}") from None
    event = event_from_dict(data, now)
    if key is not None and key != event.dossier_id.encode("utf-8"):
        raise InvalidEvent(
            Reason.KEY_MISMATCH, "the message key must be the dossier_id (partitioning)"
        )
    return event
