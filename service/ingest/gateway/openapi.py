"""The gateway's published OpenAPI 3.1 document (served at /openapi.json).

Integrators generate clients from it; the property tests (schemathesis) check the running
gateway against it. The event schema is the contract's own JSON Schema, so the two cannot
drift; the reason codes are the validator's and the mapping's enums.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from schemas import SCHEMA_PATH, Reason
from service.ingest.national_sync import SyncReason

VERSION = "1.0.0"
EVENTS_ROUTE = "/v1/events"
SYNC_ROUTE = "/v1/national-sync/dossiers"


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


_TIME = {
    "type": "string",
    "description": "yyyyMMddHHmmss in Asia/Ho_Chi_Minh local time, e.g. 20261120091500;"
    " an empty string means absent.",
    "examples": ["20261120091500"],
}

_SUPPLEMENT = {
    "type": "object",
    "description": "One supplement cycle (yêu cầu bổ sung). Only the three times are read.",
    "properties": {
        "NgayBoSung": {**_TIME, "description": "When the supplement was requested."},
        "NgayTiepNhanBoSung": {**_TIME, "description": "When the supplement was received."},
        "NgayHenTraMoi": {**_TIME, "description": "The new appointment after the supplement."},
    },
}

_DOSSIER = {
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
            "type": ["string", "integer"],
            "description": "1 direct (trực tiếp), 2 online (trực tuyến), 3 postal (BCCI).",
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
        "DonViXuLy": {"type": "string", "description": "Processing unit name."},
        "MaDinhDanh": {"type": "string", "description": "Processing unit identifier code."},
        "DanhSachHoSoBoSung": {"type": ["array", "null"], "items": _SUPPLEMENT},
    },
}

_REASONS = sorted({r.value for r in Reason} | {r.value for r in SyncReason})

_ITEM_RESULT = {
    "type": "object",
    "required": ["index", "status"],
    "properties": {
        "index": {"type": "integer", "minimum": 0, "description": "0-based position in the body."},
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

_ITEM_RESULTS = {
    "type": "object",
    "required": ["accepted", "rejected", "results"],
    "properties": {
        "accepted": {"type": "integer", "minimum": 0},
        "rejected": {"type": "integer", "minimum": 0},
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/ItemResult"}},
    },
}

_ERROR = {
    "type": "object",
    "required": ["error", "sentence"],
    "properties": {
        "error": {"type": "string", "description": "A code a machine can count."},
        "sentence": {"type": "string", "description": "What happened, for a person."},
        "retry_after": {"type": "integer", "description": "Seconds to wait (429, 503)."},
    },
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending the same request again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _responses(what: str) -> dict[str, Any]:
    return {
        "200": {
            "description": f"Every {what} accepted: acknowledged by Kafka (acks=all).",
            "content": _json("ItemResults"),
        },
        "207": {
            "description": f"Some {what}s accepted (acknowledged), some rejected; `results`"
            " says which, in order. Send only the rejected ones again, once fixed.",
            "content": _json("ItemResults"),
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
                        ]
                    }
                }
            },
        },
        "400": {
            "description": "The body cannot be read at all (not UTF-8, not JSON, not an"
            " object or array).",
            "content": _json("Error"),
        },
        "401": {
            "description": "No bearer token, or one the tokens file does not list.",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            "content": _json("Error"),
        },
        "413": {
            "description": "Body larger than the byte limit, or more items than allowed"
            " per request.",
            "content": _json("Error"),
        },
        "415": {"description": "Unsupported Content-Type.", "content": _json("Error")},
        "429": {
            "description": "This system sent more items than its rate allows.",
            "headers": _RETRY_AFTER,
            "content": _json("Error"),
        },
        "503": {
            "description": "The broker did not acknowledge in time. NOTHING is claimed as"
            " accepted: send the same request again after Retry-After (safe: event ids).",
            "headers": _RETRY_AFTER,
            "content": _json("Error"),
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The document as a dict (JSON Schema 2020-12 inside, as OpenAPI 3.1 allows)."""
    return {
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
                                            "items": {"$ref": "#/components/schemas/DossierEvent"},
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
            SYNC_ROUTE: {
                "post": {
                    "operationId": "postNationalSyncDossiers",
                    "summary": "Send DongBoHoSoMC dossier snapshots (the national portal's"
                    " sync body), converted into contract events.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/SyncDossier"},
                                        },
                                        {"$ref": "#/components/schemas/SyncEnvelope"},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": _responses("dossier"),
                }
            },
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
                }
            },
            "schemas": {
                **_contract_schemas(),
                "SyncDossier": _DOSSIER,
                "SyncSupplement": _SUPPLEMENT,
                "SyncEnvelope": {
                    "type": "object",
                    "description": "OpenCPS's form: {service, isUpdating, data}.",
                    "required": ["data"],
                    "properties": {
                        "service": {"const": "DongBoHoSoMC"},
                        "isUpdating": {"type": ["string", "boolean"]},
                        "data": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/SyncDossier"},
                        },
                    },
                },
                "ItemResult": _ITEM_RESULT,
                "ItemResults": _ITEM_RESULTS,
                "Error": _ERROR,
                "Status": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"type": "string"}},
                },
            },
        },
    }
