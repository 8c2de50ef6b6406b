"""Dossier events, contract version 1: the record types.

Center systems publish one JSON object per Kafka message (UTF-8, key = dossier_id).
`schemas.parsing.parse_event` turns the bytes into a `DossierEvent` or raises
`InvalidEvent` with a reason code a machine can count and a sentence a person can read
(`schemas.validation` holds the rules). Unknown fields are dropped there, so nothing the
service stores can carry personal data it did not ask for.
"""

from __future__ import annotations

import enum
from dataclasses import MISSING, dataclass, fields
from datetime import datetime, timedelta
from typing import Any, TypeVar

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

# The national index's fields (QĐ 766) by kind: flags, counts, and the scalars an event keeps.
INDEX_FLAGS = ("fee_due", "identity_verified", "e_result")
INDEX_COUNTS = (
    "components",
    "components_digitised",
    "components_reused",
    "components_from_data_store",
)
INDEX_SCALARS = (
    *INDEX_FLAGS[:2],
    *INDEX_COUNTS,
    "online_level",
    "e_result",
    "method",
    "rating",
    "reason",
)


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
    # Not the sender's fault: the worker's own code failed on the event (a bug). The event is
    # set aside so that its partition goes on; the worker logs the error with its trace.
    INTERNAL_ERROR = "internal_error"


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
        for name in INDEX_SCALARS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value.value if isinstance(value, enum.Enum) else value
        if self.criteria is not None:
            out["criteria"] = dict(self.criteria)
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())
