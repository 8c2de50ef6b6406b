"""A Kafka message's bytes to a `DossierEvent`: the usual shapes by a fast path, anything
else by the full validation (schemas/validation.py), which then decides and words the
reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeGuard

import orjson

from schemas.events import (
    INDEX_COUNTS,
    MAX_CODE,
    MAX_COMPONENTS,
    MAX_DOSSIER_ID,
    MAX_EVENT_ID,
    MAX_MESSAGE_BYTES,
    MAX_PROCESSING_DAYS,
    MAX_STEP_DAYS,
    MAX_STEP_HOURS,
    SCHEMA_VERSION,
    Channel,
    DossierEvent,
    InvalidEvent,
    Reason,
)
from schemas.validation import (
    _CHANNELS,
    _ENUMS,
    _EVENT_TYPES,
    _EXTENDED,
    _PAID,
    _RATED,
    _RECEIVED,
    _RETURNED,
    _STEP_COMPLETED,
    _STEP_STARTED,
    _SUPPLEMENT_RECEIVED,
    _checked_event,
    _combine,
    _criteria,
    _is_future,
    _usual_time,
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
        # By position (the Nones: procedure, channel, due_at, processing_days, new_due_at):
        # binding keyword arguments costs more than passing the Nones between.
        return DossierEvent(
            event_id,
            dossier_id,
            _STEP_STARTED,
            occurred_at,
            agency,
            None,
            None,
            None,
            None,
            None,
            step,
            department,
            step_due_at,
            hours,
            days,
        )
    if event_type is _STEP_COMPLETED:
        step = get("step")
        if left != 1 or not _usual_code(step):
            return None
        # By position, as for step_started: agency to new_due_at are None.
        return DossierEvent(
            event_id,
            dossier_id,
            _STEP_COMPLETED,
            occurred_at,
            None,
            None,
            None,
            None,
            None,
            None,
            step,
        )
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
    for name in INDEX_COUNTS:
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
        # By position, as in _usual_event: new_due_at and the step's five are None.
        None,
        None,
        None,
        None,
        None,
        None,
        flags[0],  # fee_due
        counts[0],  # components
        counts[1],  # components_digitised
        counts[2],  # components_reused
        counts[3],  # components_from_data_store
        flags[1],  # identity_verified
        level,  # online_level
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


def event_from_dict(data: Any, now: datetime | None = None) -> DossierEvent:
    """Validate a decoded JSON value against contract version 1."""
    if data.__class__ is dict:
        event = _usual_event(data, now)
        if event is not None:
            return event
    return _checked_event(data, now)


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
