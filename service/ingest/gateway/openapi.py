"""The gateway's published OpenAPI 3.1 document (served at /openapi.json).

Integrators generate clients from it; the property tests (schemathesis) check the running
gateway against it. The event schema is the contract's own JSON Schema, so the two cannot
drift; the reason codes are the validator's and the mapping's enums.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from schemas import SCHEMA_PATH, Reason
from service.ingest.gateway.intake import SYNC_SERVICE
from service.ingest.national_progress import NO_DEPARTMENT, PROGRESS_ROUTE, PROGRESS_SERVICE
from service.ingest.national_sync import SyncReason

VERSION = "1.0.0"
EVENTS_ROUTE = "/v1/events"
SYNC_ROUTE = "/v1/national-sync/dossiers"
# The senders' own base URLs as OpenAPI paths (app.py's routes also take an empty tail).
INBOX_PATH = "/v1/in/{secret}/{path}"
OPENCPS_PATH = "/v1/opencps/{path}"
# OpenCPS's lookup before each sync (answered, never counted).
LOOKUP_SERVICE = "TraCuuHoSo"


def _frozen(node: Any) -> Any:
    """A fragment as module constant: read-only mappings and tuples all the way down."""
    if isinstance(node, Mapping):
        return MappingProxyType({key: _frozen(value) for key, value in node.items()})
    if isinstance(node, list | tuple):
        return tuple(_frozen(value) for value in node)
    return node


def _thawed(node: Any) -> Any:
    """A new, plain JSON structure (dicts and lists) from fragments, for one document."""
    if isinstance(node, Mapping):
        return {key: _thawed(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_thawed(value) for value in node]
    return node


def _rewrite_refs(node: Any) -> Any:
    """The contract schema's `#/$defs/x` references, pointed at components/schemas."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                name = value.removeprefix("#/$defs/")
                out[key] = f"#/components/schemas/Contract{name.capitalize()}"
            else:
                out[key] = _rewrite_refs(value)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(value) for value in node]
    return node


def _contract_schemas() -> dict[str, Any]:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    defs = schema.pop("$defs", {})
    schema.pop("$schema", None)
    schema.pop("$id", None)
    out = {"DossierEvent": _rewrite_refs(schema)}
    for name, definition in defs.items():
        out[f"Contract{name.capitalize()}"] = _rewrite_refs(definition)
    return out


_TIME = _frozen(
    {
        "type": "string",
        "description": "yyyyMMddHHmmss in Asia/Ho_Chi_Minh local time, e.g. 20261120091500;"
        " an empty string means absent.",
        "examples": ["20261120091500"],
    }
)

_SUPPLEMENT = _frozen(
    {
        "type": "object",
        "description": "One supplement cycle (yêu cầu bổ sung). Only the three times are read.",
        "properties": {
            "NgayBoSung": {**_TIME, "description": "When the supplement was requested."},
            "NgayTiepNhanBoSung": {**_TIME, "description": "When the supplement was received."},
            "NgayHenTraMoi": {**_TIME, "description": "The new appointment after the supplement."},
        },
    }
)

_DOSSIER = _frozen(
    {
        "type": "object",
        "description": "One dossier snapshot as sent to the national portal (DongBoHoSoMC). Only"
        " the fields listed here are read; every other field, personal data included (ChuHoSo,"
        " SoGiayToChuHoSo, DinhDanhCHS, SoDienThoai, Email, file links, …), is ignored and never"
        " stored, logged or echoed. See docs/national-sync-mapping.md.",
        "required": ["MaHoSo", "TrangThaiHoSo"],
        "properties": {
            "MaHoSo": {"type": "string", "description": "Dossier number (mã hồ sơ)."},
            "MaTTHC": {"type": "string", "description": "Procedure code (mã thủ tục hành chính)."},
            "KenhThucHien": {
                "type": ["string", "integer", "null"],
                "description": "1 direct (trực tiếp), 2 online (trực tuyến), 3 postal (BCCI)."
                " Absent: the source's profile decides (OpenCPS never sends it).",
            },
            "TrangThaiHoSo": {
                "type": ["string", "integer"],
                "description": "National status code 1–10 (trạng thái hồ sơ).",
            },
            "NgayTiepNhan": {**_TIME, "description": "Received (ngày tiếp nhận)."},
            "NgayHenTra": {**_TIME, "description": "Appointment (ngày hẹn trả)."},
            "NgayKetThucXuLy": {**_TIME, "description": "Processing finished."},
            "NgayTra": {**_TIME, "description": "Result returned (ngày trả kết quả)."},
            "NgayTuChoi": {**_TIME, "description": "Refused (ngày từ chối)."},
            "NgayYeuCauBoSung": {**_TIME, "description": "Supplement requested (status 5)."},
            "DonViXuLy": {
                "type": "string",
                "description": "Processing unit name, compared after Unicode NFC normalization and"
                " case folding.",
            },
            "MaDoiTuong": {
                "type": ["string", "null"],
                "description": "The applicant's national-portal account: personal, never stored;"
                " only whether it is there is read, by a source whose profile says"
                " online_if_applicant_account (then the dossier is online).",
            },
            "MaDinhDanh": {"type": "string", "description": "Processing unit identifier code."},
            "DanhSachHoSoBoSung": {"type": ["array", "null"], "items": _SUPPLEMENT},
        },
    }
)

_PROGRESS_ROW = _frozen(
    {
        "type": "object",
        "description": "One progress row (CapNhatTienDoHoSoMC): a processing action on a dossier."
        " Only the fields listed here are read; the person (NguoiXuLy), their title (ChucDanh)"
        " and the note (NoiDungXuLy) are never read, stored or echoed. See"
        " docs/national-sync-mapping.md.",
        "required": ["MaHoSo", "PhongBanXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh"],
        "properties": {
            "MaHoSo": {"type": "string", "description": "Dossier number (mã hồ sơ)."},
            "PhongBanXuLy": {
                "type": "string",
                "description": "The department holding the step, as the units file's department"
                " column names it (compared after Unicode NFC normalization and case folding)."
                " Empty: refused `no_department`.",
            },
            "NgayBatDau": {**_TIME, "description": "The step began (a step_started)."},
            "NgayKetThucTheoQuyDinh": {**_TIME, "description": "The step's own due."},
            "ThoiDiemXuLy": {
                **_TIME,
                "description": "The department acted: a step_completed when after NgayBatDau.",
            },
        },
    }
)

_REASONS = tuple(
    sorted({r.value for r in Reason} | {r.value for r in SyncReason} | {NO_DEPARTMENT})
)

_ITEM_RESULT = _frozen(
    {
        "type": "object",
        "required": ["index", "status"],
        "properties": {
            "index": {
                "type": "integer",
                "minimum": 0,
                "description": "0-based position in the body.",
            },
            "status": {"enum": ["accepted", "rejected"]},
            "event_id": {"type": "string", "description": "The accepted event's id (/v1/events)."},
            "dossier_id": {"type": "string"},
            "event_ids": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The contract events an accepted dossier gave (may be empty: a"
                " dossier not received yet gives none).",
            },
            "reason": {"enum": _REASONS, "description": "Why the item was rejected."},
            "sentence": {"type": "string", "description": "The reason for a person to read."},
        },
    }
)

_ITEM_RESULTS = _frozen(
    {
        "type": "object",
        "required": ["accepted", "rejected", "results"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "rejected": {"type": "integer", "minimum": 0},
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/ItemResult"}},
        },
    }
)

_ERROR = _frozen(
    {
        "type": "object",
        "required": ["error", "sentence"],
        "properties": {
            "error": {"type": "string", "description": "A code a machine can count."},
            "sentence": {"type": "string", "description": "What happened, for a person."},
            "retry_after": {"type": "integer", "description": "Seconds to wait (429, 503)."},
        },
    }
)

_RETRY_AFTER = _frozen(
    {
        "Retry-After": {
            "description": "Seconds to wait before sending the same request again.",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
)


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


_PORTAL_ANSWER = _frozen(
    {
        "type": "object",
        "description": "The national portal's answer shape, for a source whose profile says"
        ' answer = "portal": error_code "0" and a message containing "thành công" when every'
        ' dossier was accepted, else "-1"; motcua\'s own answer is kept under `motcua`.',
        "required": ["error_code", "message", "motcua"],
        "properties": {
            "error_code": {"enum": ["0", "-1"]},
            "message": {"type": "string"},
            "motcua": {
                "oneOf": [
                    {"$ref": "#/components/schemas/ItemResults"},
                    {"$ref": "#/components/schemas/Error"},
                ]
            },
        },
    }
)


def _either(ref: str, portal: bool) -> dict[str, Any]:
    """Our schema, or (national sync) also the portal's shape around it."""
    if not portal:
        return _json(ref)
    return {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": f"#/components/schemas/{ref}"},
                    {"$ref": "#/components/schemas/PortalAnswer"},
                ]
            }
        }
    }


def _responses(what: str, portal: bool = False) -> dict[str, Any]:
    """`portal`: a national-sync route, answered in the portal's shape when the source's
    profile says so."""
    return {
        "200": {
            "description": f"Every {what} accepted: acknowledged by Kafka (acks=all).",
            "content": _either("ItemResults", portal),
        },
        "207": {
            "description": f"Some {what}s accepted (acknowledged), some rejected; `results`"
            " says which, in order. Send only the rejected ones again, once fixed.",
            "content": _either("ItemResults", portal),
        },
        "422": {
            "description": f"Every {what} rejected (nothing was produced), or an envelope"
            " for another sync service; `results` or `error` says why.",
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/ItemResults"},
                            {"$ref": "#/components/schemas/Error"},
                            *([{"$ref": "#/components/schemas/PortalAnswer"}] if portal else []),
                        ]
                    }
                }
            },
        },
        "400": {
            "description": "The body cannot be read at all (not decodable by its"
            " Content-Encoding, not UTF-8, not JSON, not an object or array).",
            "content": _either("Error", portal),
        },
        "401": {
            "description": "No bearer token, or one the tokens file does not list (on the"
            " national-sync route a source whose profile says opencps_session may instead"
            " send its token as the body's `session` with the `dstcode` header).",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            "content": _json("Error"),
        },
        "403": {
            "description": "The caller's address is outside the source's `networks`"
            " (`forbidden_network`; behind a proxy listed in MOTCUA_GATEWAY_TRUSTED_PROXIES,"
            " the forwarded address).",
            "content": _either("Error", portal),
        },
        "413": {
            "description": "Body larger than the byte limit, or more items than allowed"
            " per request.",
            "content": _either("Error", portal),
        },
        "415": {"description": "Unsupported Content-Type.", "content": _either("Error", portal)},
        "429": {
            "description": "This system sent more items than its rate allows.",
            "headers": _RETRY_AFTER,
            "content": _either("Error", portal),
        },
        "503": {
            "description": "The broker did not acknowledge in time. NOTHING is claimed as"
            " accepted: send the same request again after Retry-After (safe: event ids).",
            "headers": _RETRY_AFTER,
            "content": _either("Error", portal),
        },
    }


def _national_sync(
    operation: str, summary: str, body: tuple[str, ...], what: str
) -> dict[str, Any]:
    """A national-sync route: a JSON array of `body[0]`, or any of the other forms named
    (an envelope, a single item); bearer or OpenCPS's session; answered as the profile says."""
    item, *others = body
    forms = [{"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}}]
    forms += [{"$ref": f"#/components/schemas/{name}"} for name in others]
    return {
        "post": {
            "operationId": operation,
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"oneOf": forms}}},
            },
            "security": [{"bearer": []}, {"opencpsSession": []}],
            "responses": _responses(what, portal=True),
        }
    }


def _sender_responses(what: str, login: bool) -> dict[str, Any]:
    """A sender's own base URL (`login`: OpenCPS's, which also answers its login and lookup):
    the national-sync answers, plus relay mode's own failures."""
    out = _responses(what, portal=True)
    out["401"] = {
        "description": "A path secret no profile lists (/v1/in), or a session the gateway"
        " did not issue or that expired, or a wrong `dstcode` (/v1/opencps): motcua's shape,"
        " the caller is not known yet."
        + (
            " A refused login (wrong user name, password or dstcode) is 401 `login_failed`"
            " in the portal's shape."
            if login
            else ""
        ),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        "content": _either("Error", login),
    }
    out["502"] = {
        "description": "Relay mode: the upstream could not be reached (`upstream_unreachable`);"
        " the body was counted, send it again.",
        "content": _either("Error", True),
    }
    out["504"] = {
        "description": "Relay mode: the upstream did not answer within upstream_timeout"
        " (`upstream_timeout`); the body was counted, send it again.",
        "content": _either("Error", True),
    }
    if login:
        out["200"] = {
            "description": "A login accepted (the session to send back), a lookup"
            f" ({LOOKUP_SERVICE}: motcua keeps no dossier, so its `result` is empty), or"
            " every item of a sync envelope accepted.",
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/OpencpsSession"},
                            {"$ref": "#/components/schemas/OpencpsLookupAnswer"},
                            {"$ref": "#/components/schemas/ItemResults"},
                            {"$ref": "#/components/schemas/PortalAnswer"},
                        ]
                    }
                }
            },
        }
        out["422"]["description"] += (
            f" A service other than {SYNC_SERVICE}, {PROGRESS_SERVICE} and"
            f" {LOOKUP_SERVICE} is `unsupported_service`."
        )
        out["429"]["description"] = (
            "This system sent more items than its rate allows, or (login) too many failed"
            " logins from this address: `too_many_failed_logins`, in the portal's shape."
        )
    return out


_RELAY_NOTE = (
    " With `upstream` in the source's profile (relay mode) the body, once counted, is"
    " forwarded unchanged and the answer is the upstream's own status and body, which this"
    " document does not describe; only 502 and 504 are the gateway's."
)


def _sender_paths() -> dict[str, Any]:
    """The two senders' own base URLs (docs/senders.md)."""
    tail = {
        "name": "path",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "The path the sender appends to its base URL (it may hold further"
        " `/`), kept for relaying.",
    }
    inbox_body = {
        "anyOf": [
            {"type": "array", "items": {"$ref": "#/components/schemas/SyncDossier"}},
            {"$ref": "#/components/schemas/SyncEnvelope"},
            {"type": "array", "items": {"$ref": "#/components/schemas/ProgressRow"}},
            {"$ref": "#/components/schemas/ProgressEnvelope"},
        ]
    }
    opencps_body = {
        "anyOf": [
            {"$ref": "#/components/schemas/OpencpsLogin"},
            {"$ref": "#/components/schemas/SyncEnvelope"},
            {"$ref": "#/components/schemas/ProgressEnvelope"},
            {"$ref": "#/components/schemas/OpencpsLookup"},
        ]
    }
    return {
        INBOX_PATH: {
            "post": {
                "operationId": "postSenderInbox",
                "summary": "A sender that sends no credential (the .NET system): its base URL"
                " is /v1/in/<path secret>. A path equal to the profile's progress_path carries"
                f" {PROGRESS_SERVICE} progress rows, any other DongBoHoSoMC dossier snapshots;"
                " answered in the profile's shape." + _RELAY_NOTE,
                "security": [],
                "parameters": [
                    {
                        "name": "secret",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "The path secret: its SHA-256 is in the source's"
                        " path_secret_sha256 (`motcua gateway-secret`). Never logged.",
                    },
                    tail,
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": inbox_body}},
                },
                "responses": _sender_responses("dossier or row", login=False),
            }
        },
        OPENCPS_PATH: {
            "post": {
                "operationId": "postOpencps",
                "summary": "OpenCPS's adapter_url: its login ({username, password}: the"
                " session to send back) and, with that session, its envelopes by `service`:"
                f" {SYNC_SERVICE} (dossiers), {PROGRESS_SERVICE} (progress rows),"
                f" {LOOKUP_SERVICE} (answered with an empty result)." + _RELAY_NOTE,
                "security": [],
                "parameters": [
                    {
                        **tail,
                        "description": "OpenCPS's auth_endpoint or integration_endpoint;"
                        " the body, not the path, says which.",
                    },
                    {
                        "name": "dstcode",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "Checked against the profile's dstcode_sha256 when"
                        " it has one (login and every envelope).",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": opencps_body}},
                },
                "responses": _sender_responses("dossier or row", login=True),
            }
        },
    }


_OPENCPS_SCHEMAS = _frozen(
    {
        "OpencpsLogin": {
            "type": "object",
            "description": "OpenCPS's getAccessToken body, checked against the profile's"
            " login_user and login_password (scrypt). Never logged.",
            "required": ["username", "password"],
            "properties": {
                "username": {"type": "string"},
                "password": {"type": "string", "writeOnly": True},
            },
        },
        "OpencpsSession": {
            "type": "object",
            "description": "An accepted login: the session OpenCPS sends back in every envelope"
            " (valid session_minutes).",
            "required": ["error_code", "message", "session"],
            "properties": {
                "error_code": {"const": 0},
                "message": {"type": "string"},
                "session": {"type": "string"},
            },
        },
        "OpencpsLookup": {
            "type": "object",
            "description": f"Another service, such as {LOOKUP_SERVICE} (the lookup OpenCPS"
            " makes before each dossier), with the session.",
            "required": ["session", "service"],
            "properties": {
                "session": {"type": "string", "writeOnly": True},
                "service": {"type": "string"},
            },
        },
        "OpencpsLookupAnswer": {
            "type": "object",
            "description": f"{LOOKUP_SERVICE} in direct mode: motcua keeps no dossier to find.",
            "required": ["error_code", "message", "result"],
            "properties": {
                "error_code": {"const": "0"},
                "message": {"type": "string"},
                "result": {"type": "array", "maxItems": 0},
            },
        },
    }
)


def openapi_document() -> dict[str, Any]:
    """The document as a new dict each call (JSON Schema 2020-12 inside, as OpenAPI 3.1
    allows); nothing a caller changes in it reaches the module's fragments."""
    return _thawed(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "motcua gateway",
                "version": VERSION,
                "description": "HTTP ingestion of dossier events for one-stop service centers"
                " (Trung tâm Phục vụ hành chính công). See docs/gateway.md.",
            },
            "security": [{"bearer": []}],
            "paths": {
                EVENTS_ROUTE: {
                    "post": {
                        "operationId": "postEvents",
                        "summary": "Send contract events (one, a JSON array, or JSON Lines).",
                        "requestBody": {
                            "required": True,
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [
                                            {"$ref": "#/components/schemas/DossierEvent"},
                                            {
                                                "type": "array",
                                                "items": {
                                                    "$ref": "#/components/schemas/DossierEvent"
                                                },
                                            },
                                        ]
                                    }
                                },
                                "application/x-ndjson": {
                                    "schema": {
                                        "type": "string",
                                        "description": "One contract event per line.",
                                    }
                                },
                            },
                        },
                        "responses": _responses("event"),
                    }
                },
                SYNC_ROUTE: _national_sync(
                    "postNationalSyncDossiers",
                    "Send DongBoHoSoMC dossier snapshots (the national portal's sync body),"
                    " converted into contract events.",
                    ("SyncDossier", "SyncEnvelope"),
                    "dossier",
                ),
                PROGRESS_ROUTE: _national_sync(
                    "postNationalSyncProgress",
                    f"Send {PROGRESS_SERVICE} progress rows (who holds a dossier, at which step),"
                    " converted into step_started and step_completed events.",
                    ("ProgressRow", "ProgressEnvelope", "ProgressRow"),
                    "row",
                ),
                **_sender_paths(),
                "/healthz": {
                    "get": {
                        "operationId": "health",
                        "security": [],
                        "summary": "The process is up.",
                        "responses": {"200": {"description": "Up.", "content": _json("Status")}},
                    }
                },
                "/readyz": {
                    "get": {
                        "operationId": "ready",
                        "security": [],
                        "summary": "Ready: the broker answers.",
                        "responses": {
                            "200": {"description": "Ready.", "content": _json("Status")},
                            "503": {
                                "description": "The broker does not answer.",
                                "content": _json("Status"),
                            },
                        },
                    }
                },
            },
            "components": {
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "One token per center system (MOTCUA_GATEWAY_TOKENS_FILE)."
                        " A gateway on loopback without a tokens file is open.",
                    },
                    "opencpsSession": {
                        "type": "apiKey",
                        "in": "header",
                        "name": "dstcode",
                        "description": "OpenCPS's form (national sync only, for a source whose"
                        ' profile says auth = "opencps_session"): the token of the tokens file as'
                        " the body's `session`, and this header, checked against the profile's"
                        " dstcode_sha256.",
                    },
                },
                "schemas": {
                    **_contract_schemas(),
                    "SyncDossier": _DOSSIER,
                    "SyncSupplement": _SUPPLEMENT,
                    "SyncEnvelope": {
                        "type": "object",
                        "description": "OpenCPS's form: {session, madonvi, isUpdating, data,"
                        " service}. `session` authenticates (opencpsSession); `madonvi` is not"
                        " read.",
                        "required": ["data"],
                        "properties": {
                            "session": {"type": "string", "writeOnly": True},
                            "madonvi": {"type": "string"},
                            "service": {"const": "DongBoHoSoMC"},
                            "isUpdating": {"type": ["string", "boolean"]},
                            "data": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/SyncDossier"},
                            },
                        },
                    },
                    "ProgressRow": _PROGRESS_ROW,
                    "ProgressEnvelope": {
                        "type": "object",
                        "description": "OpenCPS's form: {session, service, data}. `session`"
                        " authenticates (opencpsSession).",
                        "required": ["data"],
                        "properties": {
                            "session": {"type": "string", "writeOnly": True},
                            "service": {"const": PROGRESS_SERVICE},
                            "data": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/ProgressRow"},
                            },
                        },
                    },
                    **_OPENCPS_SCHEMAS,
                    "ItemResult": _ITEM_RESULT,
                    "ItemResults": _ITEM_RESULTS,
                    "Error": _ERROR,
                    "PortalAnswer": _PORTAL_ANSWER,
                    "Status": {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"type": "string"}},
                    },
                },
            },
        }
    )
