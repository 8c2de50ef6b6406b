"""The contract's validation: timestamps, identifiers, codes and each event type's fields,
every rule with its `Reason`. `_checked_event` decides every message the fast path
(schemas/parsing.py) does not accept, and words the reason of every rejection.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from schemas.events import (
    FUTURE_TOLERANCE,
    INDEX_COUNTS,
    INDEX_FLAGS,
    MAX_CODE,
    MAX_COMPONENTS,
    MAX_CRITERIA,
    MAX_DOSSIER_ID,
    MAX_EVENT_ID,
    MAX_PROCESSING_DAYS,
    MAX_STEP_DAYS,
    MAX_STEP_HOURS,
    SCHEMA_VERSION,
    Channel,
    DossierEvent,
    EventType,
    InvalidEvent,
    OnlineLevel,
    PaymentMethod,
    Rating,
    Reason,
)

# RFC 3339 date-time: a 'T' or space separator, seconds required, offset required.
# Years 2000–2099: the service's calendar and clock have no use for others, and a year
# near 9999 would overflow date arithmetic when the due is shifted.
_RFC3339 = re.compile(
    r"20[0-9]{2}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
)


# Time zone objects shared by every parsed timestamp, by offset text: fromisoformat makes a
# new one per string, and comparing datetimes whose tzinfo is the same object is ~20 times
# cheaper than comparing across objects (both offsets are computed otherwise). Contract


# offsets are ±HH:MM or Z, so this holds at most a few dozen entries.
_ZONES: dict[str, tzinfo] = {}


def _zone(offset: str) -> tzinfo:
    zone = _ZONES.get(offset)
    if zone is None:
        parsed = datetime.fromisoformat("2000-01-01T00:00:00" + offset.upper()).tzinfo
        assert parsed is not None
        zone = _ZONES[offset] = parsed
    return zone


def time_from_text(text: str) -> datetime:
    """An RFC 3339 text with a ±HH:MM offset, as isoformat and orjson write it (trusted:
    for the service's own stored form), with the shared time zone object."""
    naive = _fromisoformat(text[:-6])
    offset = text[-6:]
    # combine takes a datetime as its date: one object fewer than naive.date().
    return _combine(naive, naive.time(), _ZONES.get(offset) or _zone(offset))


def parse_timestamp(value: Any, field: str) -> datetime:
    """An RFC 3339 timestamp with an explicit offset, as an aware datetime."""
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidEvent(Reason.BAD_TIMESTAMP, f"{field} must be an RFC 3339 string")
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise InvalidEvent(
            Reason.BAD_TIMESTAMP, f"{field} is not RFC 3339 in years 2000–2099: {value!r:.50}"
        )
    offset_at = match.start(2)
    if offset_at < 0:
        raise InvalidEvent(
            Reason.NAIVE_TIMESTAMP, f"{field} has no UTC offset (e.g. +07:00): {value!r}"
        )
    text = value[:offset_at]
    fraction = match.group(1)
    if fraction and len(fraction) > 7:  # Python keeps microseconds; drop finer digits
        text = text[: match.start(1) + 7]
    try:
        naive = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidEvent(Reason.BAD_TIMESTAMP, f"{field} is not a valid date: {value!r}") from exc
    # The pattern bounds the offset below 24 h and the year to 2000–2099, so the instant is
    # always valid and convertible (no overflow check needed).
    offset = value[offset_at:]
    zone = _zone(offset)
    if offset not in _USUAL_OFFSETS:  # the pattern took it: the fast path may trust it now
        _USUAL_OFFSETS[offset] = (zone, zone.utcoffset(None) + FUTURE_TOLERANCE)  # type: ignore[operator]
    return datetime.combine(naive.date(), naive.time(), zone)


# Offset texts parse_timestamp has accepted (its pattern checked them), each with the shared
# zone and the offset plus FUTURE_TOLERANCE (the future test on naive times).
_USUAL_OFFSETS: dict[str, tuple[tzinfo, timedelta]] = {}
# What comes before such an offset in the usual timestamp: _RFC3339 without its offset, and a
# fraction of at most 6 digits (parse_timestamp cuts longer ones). Each [0-9]{2} spelled out:
# the matcher runs single character sets with less work than counted repeats.
_USUAL_TIME = re.compile(
    r"20[0-9][0-9]-[0-9][0-9]-[0-9][0-9][Tt ][0-9][0-9]:[0-9][0-9]:[0-9][0-9](?:\.[0-9]{1,6})?"
)
_fromisoformat = datetime.fromisoformat
_combine = datetime.combine


def _usual_time(value: Any) -> tuple[datetime, tzinfo, timedelta] | None:
    """`value` as its naive time, shared zone and offset plus FUTURE_TOLERANCE, when it is a
    timestamp parse_timestamp would accept with an offset it has seen; None otherwise (also
    for an invalid date: parse_timestamp says why). The naive time comes from the same text
    through the same fromisoformat call as there, so the two always agree."""
    if value.__class__ is not str:
        return None
    usual = _USUAL_OFFSETS.get(value[-6:])
    if usual is not None:
        body = value[:-6]
    else:
        usual = _USUAL_OFFSETS.get(value[-1:])  # Z or z
        if usual is None:
            return None
        body = value[:-1]
    if _USUAL_TIME.fullmatch(body) is None:
        return None
    try:
        naive = _fromisoformat(body)
    except ValueError:
        return None
    return naive, usual[0], usual[1]


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


# Lookups by value: a dict is several times cheaper than calling the Enum class.
_EVENT_TYPES: dict[str, EventType] = {t.value: t for t in EventType}
_CHANNELS: dict[str, Channel] = {c.value: c for c in Channel}
_KNOWN = frozenset(
    (
        "agency",
        "procedure",
        "channel",
        "due_at",
        "new_due_at",
        "processing_days",
        "step",
        "department",
        "step_due_at",
        "step_hours",
        "step_days",
    )
)
_ENUMS: dict[str, tuple[dict[str, Any], Reason]] = {
    "online_level": ({v.value: v for v in OnlineLevel}, Reason.BAD_ONLINE_LEVEL),
    "method": ({v.value: v for v in PaymentMethod}, Reason.BAD_PAYMENT_METHOD),
    "rating": ({v.value: v for v in Rating}, Reason.BAD_RATING),
}
# The national index's fields (QĐ 766), checked apart so events without them pay one set test.
_INDEX_KNOWN = frozenset((*INDEX_FLAGS, *INDEX_COUNTS, *_ENUMS, "criteria", "reason"))
# What each type keeps of them (a known field on another type is checked, then dropped).
_RECEIVED_INDEX = (*INDEX_FLAGS[:2], *INDEX_COUNTS, "online_level")
# Enum members as module constants: an Enum class attribute is a slower lookup.
_RECEIVED = EventType.RECEIVED
_SUPPLEMENT_RECEIVED = EventType.SUPPLEMENT_RECEIVED
_EXTENDED = EventType.EXTENDED
_STEP_STARTED = EventType.STEP_STARTED
_STEP_COMPLETED = EventType.STEP_COMPLETED
_RETURNED = EventType.RETURNED
_PAID = EventType.PAID
_RATED = EventType.RATED


def _known_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Validate every contract field present in `data`."""
    out: dict[str, Any] = {}
    if "agency" in data:
        out["agency"] = _code(data, "agency", Reason.MISSING_AGENCY)
    if "procedure" in data:
        out["procedure"] = _code(data, "procedure", Reason.MISSING_PROCEDURE)
    if "channel" in data:
        value = data["channel"]
        channel = _CHANNELS.get(value) if isinstance(value, str) else None
        if channel is None:
            raise InvalidEvent(Reason.BAD_CHANNEL, "channel must be one of direct, online, postal")
        out["channel"] = channel
    if "step" in data:
        out["step"] = _code(data, "step", Reason.MISSING_STEP)
    if "department" in data:
        out["department"] = _code(data, "department", Reason.MISSING_DEPARTMENT)
    for name in ("due_at", "new_due_at", "step_due_at"):
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
    for name, limit, reason in (
        ("step_hours", MAX_STEP_HOURS, Reason.BAD_STEP_HOURS),
        ("step_days", MAX_STEP_DAYS, Reason.BAD_STEP_DAYS),
    ):
        if name in data:
            number = _whole_number(data[name])
            if number is None or not 1 <= number <= limit:
                raise InvalidEvent(reason, f"{name} must be an integer 1–{limit}")
            out[name] = number
    return out


def _index_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Validate every index field present in `data` (issue 18: QĐ 766 beyond timeliness)."""
    out: dict[str, Any] = {}
    for name in INDEX_FLAGS:
        if name in data:
            if not isinstance(data[name], bool):
                raise InvalidEvent(Reason.BAD_FLAG, f"{name} must be true or false")
            out[name] = data[name]
    for name in INDEX_COUNTS:
        if name in data:
            count = _whole_number(data[name])
            if count is None or not 0 <= count <= MAX_COMPONENTS:
                raise InvalidEvent(
                    Reason.BAD_COMPONENT_COUNT, f"{name} must be an integer 0–{MAX_COMPONENTS}"
                )
            out[name] = count
    total = out.get("components")
    if total is not None:
        for name in INDEX_COUNTS[1:]:
            if out.get(name, 0) > total:
                raise InvalidEvent(
                    Reason.COMPONENTS_OVER_TOTAL, f"{name} is more than components ({total})"
                )
    for name, (members, reason) in _ENUMS.items():
        if name in data:
            value = data[name]
            member = members.get(value) if isinstance(value, str) else None
            if member is None:
                raise InvalidEvent(reason, f"{name} must be one of {', '.join(members)}")
            out[name] = member
    if "criteria" in data:
        out["criteria"] = _criteria(data["criteria"])
    if "reason" in data:
        out["reason"] = _code(data, "reason", Reason.BAD_RATING_REASON)
    return out


def _criteria(value: Any) -> tuple[tuple[str, int], ...]:
    """The satisfaction form's scores: {criterion code: 0, 1 or 2}, as sorted pairs."""
    if not isinstance(value, dict) or len(value) > MAX_CRITERIA:
        raise InvalidEvent(
            Reason.BAD_CRITERIA, f"criteria must be an object of at most {MAX_CRITERIA} scores"
        )
    pairs = []
    for code, score in value.items():
        number = _whole_number(score)
        if (
            not isinstance(code, str)
            or not code.strip()
            or len(code) > MAX_CODE
            or _CONTROL.search(code)
            or number is None
            or not 0 <= number <= 2
        ):
            raise InvalidEvent(
                Reason.BAD_CRITERIA, "criteria maps criterion codes (≤ 64 chars) to 0, 1 or 2"
            )
        pairs.append((code, number))
    return tuple(sorted(pairs))


# The latest `now` given and, per time zone, the instant beyond which an event is "future"
# expressed in that zone: one comparison between datetimes of one zone per event, instead
# of a subtraction across zones. Replaced whole, so threads never see a mixed pair.
_FUTURE: tuple[datetime | None, dict[tzinfo | None, datetime]] = (None, {})


def _is_future(occurred_at: datetime, now: datetime | None) -> bool:
    """occurred_at is more than FUTURE_TOLERANCE after `now` (default: the clock)."""
    if now is None:
        return occurred_at - datetime.now(UTC) > FUTURE_TOLERANCE
    global _FUTURE
    cached_now, limits = _FUTURE
    if cached_now is not now:
        limits = {}
        _FUTURE = (now, limits)
    zone = occurred_at.tzinfo
    limit = limits.get(zone)
    if limit is None:
        try:
            limit = limits[zone] = (now + FUTURE_TOLERANCE).astimezone(zone)
        except OverflowError:  # a `now` at the end of time: compare the plain way
            return occurred_at - now > FUTURE_TOLERANCE
    return occurred_at > limit


def _checked_event(data: Any, now: datetime | None) -> DossierEvent:
    """The full validation: every rule in contract order, each rejection with its reason."""
    if not isinstance(data, dict):
        raise InvalidEvent(Reason.NOT_OBJECT, "the message must be a JSON object")
    version = data.get("schema_version", SCHEMA_VERSION)
    if _whole_number(version) != SCHEMA_VERSION:
        raise InvalidEvent(
            Reason.BAD_SCHEMA_VERSION, f"schema_version must be {SCHEMA_VERSION}, got {version!r}"
        )
    event_id = data.get("event_id")
    if type(event_id) is not str or not 0 < len(event_id) <= MAX_EVENT_ID:
        event_id = _identifier(data, "event_id", MAX_EVENT_ID, Reason.BAD_EVENT_ID)
    dossier_id = data.get("dossier_id")
    if type(dossier_id) is not str or not 0 < len(dossier_id) <= MAX_DOSSIER_ID:
        dossier_id = _identifier(data, "dossier_id", MAX_DOSSIER_ID, Reason.BAD_DOSSIER_ID)
    raw_type = data.get("type")
    event_type = _EVENT_TYPES.get(raw_type) if isinstance(raw_type, str) else None
    if event_type is None:
        raise InvalidEvent(Reason.UNKNOWN_TYPE, f"unknown event type {raw_type!r:.40}")
    occurred_at = parse_timestamp(data.get("occurred_at"), "occurred_at")
    if _is_future(occurred_at, now):
        raise InvalidEvent(
            Reason.FUTURE_TIMESTAMP, "occurred_at is more than 5 minutes in the future"
        )

    # Known fields are checked wherever they appear (as the JSON Schema does), then
    # only the ones this type uses are kept.
    known = {} if _KNOWN.isdisjoint(data) else _known_fields(data)
    index = {} if _INDEX_KNOWN.isdisjoint(data) else _index_fields(data)
    if event_type is _RECEIVED:
        for name, reason in (
            ("agency", Reason.MISSING_AGENCY),
            ("procedure", Reason.MISSING_PROCEDURE),
            ("channel", Reason.BAD_CHANNEL),
        ):
            if name not in known:
                raise InvalidEvent(reason, f"received needs {name}")
        due_at = known.get("due_at")  # R1: the appointment on the receipt wins
        days = known.get("processing_days") if due_at is None else None  # R11: both may lack
        kept = {name: index[name] for name in _RECEIVED_INDEX if name in index}
        if kept and known["channel"] is not Channel.ONLINE:
            kept.pop("online_level", None)  # only meaningful for an online dossier
        return DossierEvent(
            event_id,
            dossier_id,
            event_type,
            occurred_at,
            known["agency"],
            known["procedure"],
            known["channel"],
            due_at,
            days,
            **kept,
        )
    if event_type is _SUPPLEMENT_RECEIVED and "due_at" in known:
        return DossierEvent(event_id, dossier_id, event_type, occurred_at, due_at=known["due_at"])
    if event_type is _EXTENDED:
        if "new_due_at" not in known:
            raise InvalidEvent(Reason.MISSING_NEW_DUE, "extended needs new_due_at")
        return DossierEvent(
            event_id, dossier_id, event_type, occurred_at, new_due_at=known["new_due_at"]
        )
    if event_type is _STEP_STARTED:
        return _step_started(event_id, dossier_id, occurred_at, known)
    if event_type is _STEP_COMPLETED:
        if "step" not in known:
            raise InvalidEvent(Reason.MISSING_STEP, "step_completed needs step")
        return DossierEvent(event_id, dossier_id, event_type, occurred_at, step=known["step"])
    if event_type is _RETURNED and "e_result" in index:
        return DossierEvent(
            event_id, dossier_id, event_type, occurred_at, e_result=index["e_result"]
        )
    if event_type is _PAID:
        if "method" not in index:
            raise InvalidEvent(Reason.BAD_PAYMENT_METHOD, "paid needs method")
        return DossierEvent(event_id, dossier_id, event_type, occurred_at, method=index["method"])
    if event_type is _RATED:
        if "rating" not in index:
            raise InvalidEvent(Reason.BAD_RATING, "rated needs rating")
        return DossierEvent(
            event_id,
            dossier_id,
            event_type,
            occurred_at,
            rating=index["rating"],
            criteria=index.get("criteria"),
            reason=index.get("reason"),
        )
    return DossierEvent(event_id, dossier_id, event_type, occurred_at)


def _step_started(
    event_id: str, dossier_id: str, occurred_at: datetime, known: dict[str, Any]
) -> DossierEvent:
    """A step_started: step, department, the step's own due; agency only when given."""
    if "step" not in known:
        raise InvalidEvent(Reason.MISSING_STEP, "step_started needs step")
    if "department" not in known:
        raise InvalidEvent(Reason.MISSING_DEPARTMENT, "step_started needs department")
    # The first of step_due_at, step_hours, step_days wins (as due_at wins on a receipt).
    step_due_at = known.get("step_due_at")
    hours = known.get("step_hours") if step_due_at is None else None
    days = known.get("step_days") if step_due_at is None and hours is None else None
    if step_due_at is None and hours is None and days is None:
        raise InvalidEvent(
            Reason.MISSING_STEP_DUE, "step_started needs step_due_at, step_hours or step_days"
        )
    return DossierEvent(
        event_id,
        dossier_id,
        _STEP_STARTED,
        occurred_at,
        agency=known.get("agency"),
        step=known["step"],
        department=known["department"],
        step_due_at=step_due_at,
        step_hours=hours,
        step_days=days,
    )
