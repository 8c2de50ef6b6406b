"""Request bodies as items, and each item's outcome: the pure part of the gateway.

`POST /v1/events` takes one contract event, a JSON array of them, or JSON Lines; each item is
checked by the worker's own validator (schemas/). `POST /v1/national-sync/dossiers` takes the
national portal's DongBoHoSoMC body; each dossier goes through national_sync.map_dossier.
Nothing here does I/O, so the HTTP layer only translates outcomes into a response.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from schemas import MAX_MESSAGE_BYTES, DossierEvent, InvalidEvent, Reason, event_from_dict
from schemas import parse_event as parse_event_bytes
from service.ingest.national_sync import (
    DEFAULT_PROFILE,
    ProcedureCatalogue,
    SyncProfile,
    UnitDirectory,
    UnmappableDossier,
    map_dossier,
)

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/json-seq"})
JSON_TYPES = frozenset({"application/json", ""})
SYNC_SERVICE = "DongBoHoSoMC"


class BodyError(ValueError):
    """A body that cannot be read at all: answered as a whole with `status`."""

    def __init__(self, status: int, code: str, sentence: str) -> None:
        super().__init__(f"{code}: {sentence}")
        self.status = status
        self.code = code
        self.sentence = sentence


@dataclass(frozen=True, slots=True)
class Rejection:
    """One item refused: a reason code a machine can count and a sentence a person can read."""

    reason: str
    sentence: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """One item's contract events (one for /v1/events; zero or more for a dossier)."""

    events: tuple[DossierEvent, ...]
    dossier_id: str


Outcome = Accepted | Rejection

# A validator sentence may quote the offending value ("… 'Nguyễn Văn A'"). The gateway never
# repeats what it was sent: everything from the first quote on is left out.
_QUOTED = re.compile(r"""\s*:?\s*['"].*$""", re.DOTALL)


def public_sentence(detail: str) -> str:
    """The validator's sentence without any value it quoted."""
    cut = _QUOTED.sub("", detail)
    return cut if cut == detail else f"{cut} (value not repeated)"


def _count_check(count: int, max_items: int, what: str = "items") -> None:
    if count > max_items:
        raise BodyError(
            413,
            "too_many_items",
            f"the body holds {count} {what}; at most {max_items} are accepted per request",
        )


def _loads(body: bytes) -> Any:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(400, Reason.NOT_UTF8.value, "the body is not UTF-8") from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(400, Reason.NOT_JSON.value, f"the body is not JSON: {exc}") from None


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def read_event_items(body: bytes, content_type: str | None, max_items: int) -> list[Any]:
    """The items of a /v1/events body: decoded JSON values, or raw lines (bytes) for JSON
    Lines, each validated on its own so one bad line does not spoil the others."""
    kind = media_type(content_type)
    if kind in NDJSON_TYPES:
        lines = [line for line in body.split(b"\n") if line.strip()]
        _count_check(len(lines), max_items)
        return lines
    if kind not in JSON_TYPES:
        raise BodyError(
            415,
            "unsupported_media_type",
            "send application/json (one event or an array) or application/x-ndjson",
        )
    data = _loads(body)
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise BodyError(
            400, "not_object_or_array", "the body must be one event object or an array of them"
        )
    _count_check(len(data), max_items)
    return data


def validate_event(item: Any, now: datetime) -> Outcome:
    """One /v1/events item, checked exactly as the worker checks a Kafka message."""
    try:
        if isinstance(item, bytes):
            event = parse_event_bytes(item.strip(), now)
        else:
            if len(orjson.dumps(item)) > MAX_MESSAGE_BYTES:
                raise InvalidEvent(
                    Reason.TOO_LARGE, f"the event is larger than {MAX_MESSAGE_BYTES} bytes"
                )
            event = event_from_dict(item, now)
    except InvalidEvent as exc:
        return Rejection(exc.reason.value, public_sentence(exc.detail))
    except (TypeError, orjson.JSONEncodeError):
        return Rejection(Reason.NOT_OBJECT.value, "the item is not a JSON event object")
    return Accepted((event,), event.dossier_id)


def validate_events(items: Iterable[Any], now: datetime) -> list[Outcome]:
    return [validate_event(item, now) for item in items]


def json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None if it is not one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def session_of(body: bytes) -> str | None:
    """The `session` of an OpenCPS envelope (its token), or None if the body has none."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    session = data.get("session") if isinstance(data, dict) else None
    return session if isinstance(session, str) and session else None


def read_portal_items(
    body: bytes, content_type: str | None, max_items: int, *, service: str, what: str
) -> list[Any]:
    """The items of a national-portal body (`what` names them in answers): a bare JSON array
    (as the .NET system posts it), OpenCPS's envelope {"session", "madonvi", "isUpdating",
    "data": [...], "service": `service`} (only `service` and `data` are read), or a single
    object."""
    if media_type(content_type) not in JSON_TYPES:
        raise BodyError(415, "unsupported_media_type", "send application/json")
    data = _loads(body)
    if isinstance(data, dict) and "data" in data and "MaHoSo" not in data:
        if data.get("service", service) != service:
            raise BodyError(
                422,
                "unsupported_service",
                f"only {service} {what} are accepted on this route",
            )
        data = data["data"]
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise BodyError(400, "not_object_or_array", f"the body must be a JSON array of {what}")
    _count_check(len(data), max_items, what)
    return data


def read_sync_items(body: bytes, content_type: str | None, max_items: int) -> list[Any]:
    """The dossier snapshots of a DongBoHoSoMC body (see `read_portal_items`)."""
    return read_portal_items(
        body, content_type, max_items, service=SYNC_SERVICE, what="dossier objects"
    )


def map_snapshot(
    item: Any,
    units: UnitDirectory,
    now: datetime,
    profile: SyncProfile = DEFAULT_PROFILE,
    procedures: ProcedureCatalogue | None = None,
) -> Outcome:
    """One national-sync dossier as its contract events, or why it cannot be mapped."""
    try:
        mapped = map_dossier(item, units, now, profile, procedures)
    except UnmappableDossier as exc:
        return Rejection(str(exc.reason), public_sentence(exc.detail))
    return Accepted(mapped.events, mapped.dossier_id)


def map_snapshots(
    items: Iterable[Any],
    units: UnitDirectory,
    now: datetime,
    profile: SyncProfile = DEFAULT_PROFILE,
    procedures: ProcedureCatalogue | None = None,
) -> list[Outcome]:
    return [map_snapshot(item, units, now, profile, procedures) for item in items]
