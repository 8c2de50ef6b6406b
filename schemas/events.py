"""Dossier events, contract version 1: record types and validation.

Center systems publish one JSON object per Kafka message (UTF-8, key = dossier_id).
`parse_event` turns the bytes into a `DossierEvent` or raises `InvalidEvent` with a
reason code a machine can count and a sentence a person can read. Unknown fields are
dropped here, so nothing the service stores can carry personal data it did not ask for.
"""

from __future__ import annotations

import enum
import re
from dataclasses import MISSING, dataclass, fields
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, TypeGuard, TypeVar

import orjson

SCHEMA_VERSION = 1
MAX_EVENT_ID = 128
MAX_DOSSIER_ID = 64
MAX_CODE = 64
MAX_PROCESSING_DAYS = 365
MAX_STEP_HOURS = 2000
MAX_STEP_DAYS = 365
# A dossier has a few dozen required components at most; a bound keeps counts sane.
MAX_COMPONENTS = 1000
# The per-dossier satisfaction form has 9 criteria (Thông tư 01/2018 style); room for more.
MAX_CRITERIA = 32
# Center clocks drift; an event from further ahead than this is a bug upstream.
FUTURE_TOLERANCE = timedelta(minutes=5)
# A dossier event is a few hundred bytes; anything this large is not one.
MAX_MESSAGE_BYTES = 64 * 1024
# The Kafka header naming the center system a message came from (the gateway's source name;
# none: 'direct'), read by the worker for its duplicate counts and dead letters.
SOURCE_HEADER = "motcua-source"


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
    STEP_STARTED = "step_started"  # a processing step (bước xử lý) reaches a department
    STEP_COMPLETED = "step_completed"
    PAID = "paid"  # phí, lệ phí paid (QĐ 766 online payment)
    RATED = "rated"  # đánh giá mức độ hài lòng of this dossier (QĐ 766 satisfaction)


TYPE_ORDER: dict[EventType, int] = {t: i for i, t in enumerate(EventType)}


class Channel(enum.StrEnum):
    """How the dossier reached the center (national data: 1 direct, 2 online, 3 postal)."""

    DIRECT = "direct"
    ONLINE = "online"
    POSTAL = "postal"


class OnlineLevel(enum.StrEnum):
    """How much of an online dossier's procedure runs online (Nghị định 42/2022)."""

    PARTIAL = "partial"  # dịch vụ công trực tuyến một phần
    FULL = "full"  # toàn trình


class PaymentMethod(enum.StrEnum):
    """Where a fee was paid (national data `DuocThanhToanTrucTuyen` 1, 2; else the counter)."""

    NATIONAL_PORTAL = "national_portal"
    PROVINCIAL_GATEWAY = "provincial_gateway"
    COUNTER = "counter"


class Rating(enum.StrEnum):
    """The one rating a citizen gives a dossier (rất hài lòng, hài lòng, không hài lòng)."""

    VERY_SATISFIED = "very_satisfied"
    SATISFIED = "satisfied"
    DISSATISFIED = "dissatisfied"


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
    BAD_PROCESSING_DAYS = "bad_processing_days"
    MISSING_NEW_DUE = "missing_new_due_at"
    BAD_FLAG = "bad_flag"
    BAD_COMPONENT_COUNT = "bad_component_count"
    COMPONENTS_OVER_TOTAL = "components_over_total"
    BAD_ONLINE_LEVEL = "bad_online_level"
    BAD_PAYMENT_METHOD = "bad_payment_method"
    BAD_RATING = "bad_rating"
    BAD_CRITERIA = "bad_criteria"
    BAD_RATING_REASON = "bad_rating_reason"
    TOO_MANY_EVENTS = "too_many_events"
    MISSING_STEP = "missing_step"
    MISSING_DEPARTMENT = "missing_department"
    MISSING_STEP_DUE = "missing_step_due"
    BAD_STEP_HOURS = "bad_step_hours"
    BAD_STEP_DAYS = "bad_step_days"


class InvalidEvent(ValueError):
    """A message that is not a valid version-1 dossier event."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


T = TypeVar("T")


def direct_init(cls: type[T]) -> type[T]:
    """Give a frozen slots dataclass an `__init__` that stores each field through its slot.

    The generated one calls object.__setattr__ per field; one of these is built for every
    message and every dossier state, so this one, with the same signature and defaults,
    stores straight into the slots. It lends the instance, for the length of `__init__`, to
    a subclass with the same slots and the plain `__setattr__` (class assignment between
    such layouts is allowed), where a store is one bytecode instead of a call through the
    slot's descriptor. The class stays frozen: only construction changes. An instance of a
    subclass of `cls` (whose layout may differ) is filled through the descriptors instead.
    """
    names, params = [], []
    # Both hooks share one type slot, so both are reset for stores to take the plain path.
    unfrozen = type(
        f"_Unfrozen{cls.__name__}",
        (cls,),
        {
            "__slots__": (),
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
            "__module__": cls.__module__,
        },
    )
    namespace: dict[str, Any] = {
        "_direct_cls": cls,
        "_direct_unfrozen": unfrozen,
        "_direct_type": type,
        "_direct_setattr": object.__setattr__,
    }
    for item in fields(cls):  # type: ignore[arg-type]
        assert item.default_factory is MISSING, "direct_init takes plain defaults only"
        assert not item.name.startswith("_direct_"), "direct_init's own names"
        namespace[f"_direct_set_{item.name}"] = cls.__dict__[item.name].__set__
        names.append(item.name)
        if item.default is MISSING:
            params.append(item.name)
        else:
            namespace[f"_direct_default_{item.name}"] = item.default
            params.append(f"{item.name}=_direct_default_{item.name}")
    stores = "".join(f"        self.{name} = {name}\n" for name in names)
    calls = "".join(f"        _direct_set_{name}(self, {name})\n" for name in names)
    exec(
        f"def __init__(self, {', '.join(params)}):\n"
        "    if _direct_type(self) is _direct_cls:\n"
        "        _direct_setattr(self, '__class__', _direct_unfrozen)\n"
        f"{stores}"
        "        self.__class__ = _direct_cls\n"
        "    else:\n"
        f"{calls}",
        namespace,
    )
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = dict(cls.__init__.__annotations__)
    init.__doc__ = cls.__init__.__doc__
    # The point of direct_init: the dataclass's __init__ replaced by the one built here.
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


@direct_init
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
    step: str | None = None
    department: str | None = None
    step_due_at: datetime | None = None
    step_hours: int | None = None
    step_days: int | None = None
    # QĐ 766 index fields (all optional; absent means unknown, never false or zero).
    fee_due: bool | None = None  # received: the procedure charges a fee for this dossier
    components: int | None = None  # received: required components (thành phần hồ sơ)
    components_digitised: int | None = None  # received: of those, with a digitised file
    components_reused: int | None = None  # received: reused digitised data
    components_from_data_store: int | None = None  # received: from the personal data store
    identity_verified: bool | None = None  # received: the account was verified with VNeID
    online_level: OnlineLevel | None = None  # received, channel online only
    e_result: bool | None = None  # returned: an electronic result was issued
    method: PaymentMethod | None = None  # paid
    rating: Rating | None = None  # rated
    criteria: tuple[tuple[str, int], ...] | None = None  # rated: form scores by code, sorted
    reason: str | None = None  # rated: a dissatisfaction reason code, never words

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
        for name in (
            "agency",
            "procedure",
            "processing_days",
            "step",
            "department",
            "step_hours",
            "step_days",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.channel is not None:
            out["channel"] = self.channel.value
        for name in ("due_at", "new_due_at", "step_due_at"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.isoformat()
        for name in _INDEX_SCALARS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value.value if isinstance(value, enum.Enum) else value
        if self.criteria is not None:
            out["criteria"] = dict(self.criteria)
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
# fraction of at most 6 digits (parse_timestamp cuts longer ones).
_USUAL_TIME = re.compile(
    r"20[0-9]{2}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
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
_FLAGS = ("fee_due", "identity_verified", "e_result")
_COUNTS = ("components", "components_digitised", "components_reused", "components_from_data_store")
_ENUMS: dict[str, tuple[dict[str, Any], Reason]] = {
    "online_level": ({v.value: v for v in OnlineLevel}, Reason.BAD_ONLINE_LEVEL),
    "method": ({v.value: v for v in PaymentMethod}, Reason.BAD_PAYMENT_METHOD),
    "rating": ({v.value: v for v in Rating}, Reason.BAD_RATING),
}
# The national index's fields (QĐ 766), checked apart so events without them pay one set test.
_INDEX_KNOWN = frozenset((*_FLAGS, *_COUNTS, *_ENUMS, "criteria", "reason"))
_INDEX_SCALARS = (*_FLAGS[:2], *_COUNTS, "online_level", "e_result", "method", "rating", "reason")
# What each type keeps of them (a known field on another type is checked, then dropped).
_RECEIVED_INDEX = (*_FLAGS[:2], *_COUNTS, "online_level")
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
    for name in _FLAGS:
        if name in data:
            if not isinstance(data[name], bool):
                raise InvalidEvent(Reason.BAD_FLAG, f"{name} must be true or false")
            out[name] = data[name]
    for name in _COUNTS:
        if name in data:
            count = _whole_number(data[name])
            if count is None or not 0 <= count <= MAX_COMPONENTS:
                raise InvalidEvent(
                    Reason.BAD_COMPONENT_COUNT, f"{name} must be an integer 0–{MAX_COMPONENTS}"
                )
            out[name] = count
    total = out.get("components")
    if total is not None:
        for name in _COUNTS[1:]:
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


def event_from_dict(data: Any, now: datetime | None = None) -> DossierEvent:
    """Validate a decoded JSON value against contract version 1."""
    if data.__class__ is dict:
        event = _usual_event(data, now)
        if event is not None:
            return event
    return _checked_event(data, now)


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


# ------------------------------------------------------------------- the usual event, fast
# Every message pays for its validation, and almost all of them are well-formed events of a
# few usual shapes. `_usual_event` accepts exactly those, checking the same rules with fewer
# steps, and hands anything else (a rejection, a field of another type, an unknown field, a
# null, a number written 3.0, an unusual code or timestamp) to `_checked_event`, which then
# decides and words the reason. It never rejects by itself, so rejections cannot differ;
# tests/unit/test_events_fast.py holds its events equal to the full validation's.

_ONLINE_LEVELS = _ENUMS["online_level"][0]
_METHODS = _ENUMS["method"][0]
_RATINGS = _ENUMS["rating"][0]
_ONLINE = Channel.ONLINE
_datetime = datetime
# The last UTC `now` given and its naive time: the messages of one batch often share one.
_LAST_NOW: tuple[datetime | None, datetime] = (None, datetime.min)


def _usual_code(value: Any) -> TypeGuard[str]:
    """A code `_code` accepts. A printable string has no control characters, and the space
    is the only whitespace it can hold, so strip() leaves nothing only of spaces."""
    return (
        value.__class__ is str
        and len(value) <= MAX_CODE
        and value.isprintable()
        and value.strip() != ""
    )


def _usual_due(value: Any) -> datetime | None:
    """An appointment timestamp in the usual shape, as parse_timestamp returns it."""
    usual = _usual_time(value)
    if usual is None:
        return None
    naive = usual[0]
    return _combine(naive, naive.time(), usual[1])


def _usual_event(data: dict[str, Any], now: datetime | None) -> DossierEvent | None:
    """The event `_checked_event` would return for `data`, when `data` is a usual event;
    None when it is anything else (then `_checked_event` decides)."""
    global _LAST_NOW
    get = data.get
    # Fields present beyond event_id, dossier_id, type and occurred_at, each taken off as it
    # is read: any left over at the end is a field this path does not read (or a null).
    left = len(data) - 4
    version = get("schema_version")
    if version is not None:
        if version.__class__ is not int or version != SCHEMA_VERSION:
            return None
        left -= 1
    event_id = get("event_id")
    dossier_id = get("dossier_id")
    kind = get("type")
    if (
        event_id.__class__ is not str
        or not 0 < len(event_id) <= MAX_EVENT_ID
        or dossier_id.__class__ is not str
        or not 0 < len(dossier_id) <= MAX_DOSSIER_ID
        or kind.__class__ is not str
    ):
        return None
    event_type = _EVENT_TYPES.get(kind)
    if event_type is None:
        return None
    usual = _usual_time(get("occurred_at"))
    if usual is None:
        return None
    naive, zone, ahead = usual
    occurred_at = _combine(naive, naive.time(), zone)
    if now.__class__ is _datetime and now.tzinfo is UTC:
        # The future test on naive times: occurred_at - now > FUTURE_TOLERANCE is the naive
        # time past now's naive UTC time plus the offset and the tolerance.
        last = _LAST_NOW
        if last[0] == now:
            naive_now = last[1]
        else:
            naive_now = _combine(now, now.time())
            _LAST_NOW = (now, naive_now)
        try:
            if naive > naive_now + ahead:
                return None
        except OverflowError:  # a `now` at the end of time
            return None
    elif _is_future(occurred_at, now):
        return None

    if event_type is _RECEIVED:
        agency = get("agency")
        procedure = get("procedure")
        channel = get("channel")
        if not (_usual_code(agency) and _usual_code(procedure)) or channel.__class__ is not str:
            return None
        channel = _CHANNELS.get(channel)
        if channel is None:
            return None
        left -= 3
        due_at = None
        if (value := get("due_at")) is not None:
            due_at = _usual_due(value)
            if due_at is None:
                return None
            left -= 1
        days = get("processing_days")
        if days is not None:
            if days.__class__ is not int or not 1 <= days <= MAX_PROCESSING_DAYS:
                return None
            left -= 1
            if due_at is not None:
                days = None  # R1: the appointment on the receipt wins
        if not left:
            return DossierEvent(
                event_id,
                dossier_id,
                _RECEIVED,
                occurred_at,
                agency,
                procedure,
                channel,
                due_at,
                days,
            )
        return _usual_receipt(
            data, left, event_id, dossier_id, occurred_at, agency, procedure, channel, due_at, days
        )
    if event_type is _STEP_STARTED:
        step = get("step")
        department = get("department")
        if not (_usual_code(step) and _usual_code(department)):
            return None
        left -= 2
        agency = get("agency")
        if agency is not None:
            if not _usual_code(agency):
                return None
            left -= 1
        step_due_at = None
        if (value := get("step_due_at")) is not None:
            step_due_at = _usual_due(value)
            if step_due_at is None:
                return None
            left -= 1
        hours = get("step_hours")
        if hours is not None:
            if hours.__class__ is not int or not 1 <= hours <= MAX_STEP_HOURS:
                return None
            left -= 1
        days = get("step_days")
        if days is not None:
            if days.__class__ is not int or not 1 <= days <= MAX_STEP_DAYS:
                return None
            left -= 1
        if left:
            return None
        # The first of step_due_at, step_hours, step_days wins; none at all is a rejection.
        if step_due_at is not None:
            hours = days = None
        elif hours is not None:
            days = None
        elif days is None:
            return None
        return DossierEvent(
            event_id,
            dossier_id,
            _STEP_STARTED,
            occurred_at,
            agency=agency,
            step=step,
            department=department,
            step_due_at=step_due_at,
            step_hours=hours,
            step_days=days,
        )
    if event_type is _STEP_COMPLETED:
        step = get("step")
        if left != 1 or not _usual_code(step):
            return None
        return DossierEvent(event_id, dossier_id, _STEP_COMPLETED, occurred_at, step=step)
    if event_type is _RETURNED:
        e_result = get("e_result")
        if e_result is not None:
            if e_result.__class__ is not bool:
                return None
            left -= 1
        if left:
            return None
        return DossierEvent(event_id, dossier_id, _RETURNED, occurred_at, e_result=e_result)
    if event_type is _PAID:
        method = get("method")
        if left != 1 or method.__class__ is not str:
            return None
        method = _METHODS.get(method)
        if method is None:
            return None
        return DossierEvent(event_id, dossier_id, _PAID, occurred_at, method=method)
    if event_type is _SUPPLEMENT_RECEIVED:
        value = get("due_at")
        if value is None:
            return None if left else DossierEvent(event_id, dossier_id, event_type, occurred_at)
        due_at = _usual_due(value)
        if left != 1 or due_at is None:
            return None
        return DossierEvent(event_id, dossier_id, event_type, occurred_at, due_at=due_at)
    if event_type is _EXTENDED:
        new_due_at = _usual_due(get("new_due_at"))
        if left != 1 or new_due_at is None:
            return None
        return DossierEvent(event_id, dossier_id, event_type, occurred_at, new_due_at=new_due_at)
    if event_type is _RATED:
        return _usual_rating(data, left, event_id, dossier_id, occurred_at)
    if left:
        return None
    return DossierEvent(event_id, dossier_id, event_type, occurred_at)


def _usual_receipt(
    data: dict[str, Any],
    left: int,
    event_id: str,
    dossier_id: str,
    occurred_at: datetime,
    agency: str,
    procedure: str,
    channel: Channel,
    due_at: datetime | None,
    days: int | None,
) -> DossierEvent | None:
    """A receipt with index fields (QĐ 766): the flags, the counts, online_level."""
    get = data.get
    flags = []
    for name in ("fee_due", "identity_verified"):
        flag = get(name)
        if flag is not None:
            if flag.__class__ is not bool:
                return None
            left -= 1
        flags.append(flag)
    counts = []
    for name in _COUNTS:
        count = get(name)
        if count is not None:
            if count.__class__ is not int or not 0 <= count <= MAX_COMPONENTS:
                return None
            left -= 1
        counts.append(count)
    total = counts[0]
    if total is not None:
        for count in counts[1:]:
            if count is not None and count > total:
                return None
    level = get("online_level")
    if level is not None:
        if level.__class__ is not str:
            return None
        level = _ONLINE_LEVELS.get(level)
        if level is None:
            return None
        left -= 1
        if channel is not _ONLINE:
            level = None  # only meaningful for an online dossier
    if left:
        return None
    return DossierEvent(
        event_id,
        dossier_id,
        _RECEIVED,
        occurred_at,
        agency,
        procedure,
        channel,
        due_at,
        days,
        fee_due=flags[0],
        components=counts[0],
        components_digitised=counts[1],
        components_reused=counts[2],
        components_from_data_store=counts[3],
        identity_verified=flags[1],
        online_level=level,
    )


def _usual_rating(
    data: dict[str, Any], left: int, event_id: str, dossier_id: str, occurred_at: datetime
) -> DossierEvent | None:
    """A rated event: the rating, the form's scores and a reason code when given."""
    get = data.get
    rating = get("rating")
    if rating.__class__ is not str:
        return None
    rating = _RATINGS.get(rating)
    if rating is None:
        return None
    left -= 1
    criteria = get("criteria")
    if criteria is not None:
        try:
            criteria = _criteria(criteria)
        except InvalidEvent:
            return None
        left -= 1
    reason = get("reason")
    if reason is not None:
        if not _usual_code(reason):
            return None
        left -= 1
    if left:
        return None
    return DossierEvent(
        event_id, dossier_id, _RATED, occurred_at, rating=rating, criteria=criteria, reason=reason
    )


def parse_event(raw: bytes, now: datetime | None = None, key: bytes | None = None) -> DossierEvent:
    """Decode and validate one Kafka message value (and, if given, its key)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(
            Reason.TOO_LARGE, f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}"
        )
    try:
        # orjson accepts only strict UTF-8 (as bytes.decode does), so a message it decodes
        # is UTF-8; which of the two failed is only worked out for a rejected message.
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent(Reason.NOT_UTF8, "the message is not UTF-8") from None
        raise InvalidEvent(Reason.NOT_JSON, f"not JSON: {str(exc)[:80]}") from None
    event = _usual_event(data, now) if data.__class__ is dict else None
    if event is None:
        event = _checked_event(data, now)
    if key is not None and key != event.dossier_id.encode("utf-8"):
        raise InvalidEvent(
            Reason.KEY_MISMATCH, "the message key must be the dossier_id (partitioning)"
        )
    return event
