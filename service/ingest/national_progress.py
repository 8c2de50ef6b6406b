"""The national portal's progress rows (CapNhatTienDoHoSoMC) as step events: who holds it.

A progress row records one processing action on a dossier: the department holding the step
(`PhongBanXuLy`), when the step began (`NgayBatDau`), its own deadline
(`NgayKetThucTheoQuyDinh`) and when the department acted (`ThoiDiemXuLy`). A row maps to a
`step_started` at `NgayBatDau` with `step_due_at` = `NgayKetThucTheoQuyDinh` and, when the
department acted after the step began, a `step_completed` at `ThoiDiemXuLy`. The person
(`NguoiXuLy`), their title (`ChucDanh`) and the note (`NoiDungXuLy`) are never read. Event
ids derive from the dossier, the department and the times, so a re-sent row is a duplicate.
The gateway serves it at `POST /v1/national-sync/progress` (gateway/routes.py, docs/gateway.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from schemas import DossierEvent, EventType, InvalidEvent, Reason, event_from_dict
from service.ingest.gateway.intake import (
    Accepted,
    Outcome,
    Rejection,
    public_sentence,
    read_portal_items,
)
from service.ingest.national_sync import (
    SyncReason,
    UnmappableDossier,
    compact_time,
    parse_local_time,
)
from service.reference import Departments

PROGRESS_ROUTE = "/v1/national-sync/progress"
PROGRESS_SERVICE = "CapNhatTienDoHoSoMC"
# A department name longer than this is not a name (the units file's own limit).
_MAX_NAME = 300
# Reason codes of this route beyond the contract's and the dossier sync's.
NO_DEPARTMENT = "no_department"


def read_progress_items(body: bytes, content_type: str | None, max_items: int) -> list[Any]:
    """The rows of a CapNhatTienDoHoSoMC body: a bare JSON array (the .NET system posts
    chunks of ten), OpenCPS's envelope {"service": "CapNhatTienDoHoSoMC", "data": [...]},
    or a single row (see `read_portal_items`)."""
    return read_portal_items(
        body, content_type, max_items, service=PROGRESS_SERVICE, what="progress rows"
    )


def _tag(department: str) -> str:
    """A short fixed-width tag of a department code, for event ids and step codes."""
    return hashlib.blake2b(department.encode("utf-8"), digest_size=4).hexdigest()


def map_progress_row(row: Any, departments: Departments, now: datetime) -> Outcome:
    """One progress row as its step events, or why it gives none."""
    try:
        return Accepted(*_step_events(row, departments, now))
    except UnmappableDossier as exc:
        return Rejection(str(exc.reason), public_sentence(exc.detail))
    except InvalidEvent as exc:
        return Rejection(exc.reason.value, public_sentence(exc.detail))


def _step_events(
    row: Any, departments: Departments, now: datetime
) -> tuple[tuple[DossierEvent, ...], str]:
    if not isinstance(row, dict):
        raise UnmappableDossier(Reason.NOT_OBJECT, "each row must be a JSON object")
    dossier_id = row.get("MaHoSo")
    if not isinstance(dossier_id, str) or not dossier_id.strip():
        raise UnmappableDossier(Reason.BAD_DOSSIER_ID, "MaHoSo must be a non-empty string")
    name = row.get("PhongBanXuLy")
    if not isinstance(name, str) or not name.strip():
        # Both open senders leave it empty: such a row cannot say who holds the dossier.
        raise UnmappableDossier(
            NO_DEPARTMENT, "the row names no department (PhongBanXuLy is empty)"
        )
    found = departments.find(name) if len(name) <= _MAX_NAME else None
    if found is None:
        raise UnmappableDossier(
            SyncReason.UNKNOWN_UNIT,
            "PhongBanXuLy is not a department listed in the units file (MOTCUA_UNITS_FILE)",
        )
    agency, department = found
    started = parse_local_time(row.get("NgayBatDau"), "NgayBatDau")
    if started is None:
        raise UnmappableDossier(SyncReason.MISSING_DATE, "the row has no NgayBatDau")
    due = parse_local_time(row.get("NgayKetThucTheoQuyDinh"), "NgayKetThucTheoQuyDinh")
    if due is None:
        raise UnmappableDossier(
            Reason.MISSING_STEP_DUE, "the row has no NgayKetThucTheoQuyDinh (the step's due)"
        )
    acted = parse_local_time(row.get("ThoiDiemXuLy"), "ThoiDiemXuLy")
    tag = _tag(department)
    step = f"{department[:40]}@{compact_time(started)}"
    base = {"schema_version": 1, "dossier_id": dossier_id, "step": step}
    docs = [
        base
        | {
            "event_id": f"{dossier_id}:step_started:{compact_time(started)}:{tag}",
            "type": EventType.STEP_STARTED.value,
            "occurred_at": started.isoformat(),
            "agency": agency,
            "department": department,
            "step_due_at": due.isoformat(),
        }
    ]
    if acted is not None and acted > started:
        docs.append(
            base
            | {
                "event_id": f"{dossier_id}:step_completed:{compact_time(acted)}:{tag}",
                "type": EventType.STEP_COMPLETED.value,
                "occurred_at": acted.isoformat(),
            }
        )
    # The contract's own validator: lengths, the future limit, codes.
    return tuple(event_from_dict(doc, now) for doc in docs), dossier_id


def map_progress_rows(
    rows: Iterable[Any], departments: Departments, now: datetime
) -> list[Outcome]:
    return [map_progress_row(row, departments, now) for row in rows]
