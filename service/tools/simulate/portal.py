"""The simulated center as the national portal's sync bodies show it: a DongBoHoSoMC snapshot
per dossier, CapNhatTienDoHoSoMC progress rows per step, and the units file that maps their
names to agency codes. Personal fields carry obviously fake values, as a real body carries
real ones, so the gateway's dropping of them is exercised.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from schemas import EventType
from service.domain.calendar import (
    DEFAULT_CALENDAR,
    LOCAL_TZ,
    WorkingCalendar,
)
from service.tools.simulate.center import AGENCIES, DEPARTMENT_NAMES

SYNC_BATCH = 100  # dossiers per DongBoHoSoMC body (one JSON array per output line)
_KENH = {"direct": "1", "online": "2", "postal": "3"}


def _local_compact(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(LOCAL_TZ).strftime("%Y%m%d%H%M%S")


def sample_units_csv() -> str:
    """The units file (MOTCUA_UNITS_FILE) for the simulated center: unit name → agency, and
    each agency's departments (name → agency, department code)."""
    rows = [f'"{agency.name}",{agency.code},' for agency in AGENCIES]
    for agency in AGENCIES:
        for suffix in DEPARTMENT_NAMES:
            rows.append(
                f'"{department_name(agency.code, suffix)}",{agency.code},{agency.code}.{suffix}'
            )
    return "unit,agency,department\n" + "\n".join(rows) + "\n"


def department_name(agency: str, suffix: str) -> str:
    """A simulated department's name as the progress rows write it (PhongBanXuLy)."""
    names = {a.code: a.name for a in AGENCIES}
    return f"{DEPARTMENT_NAMES[suffix]} – {names[agency]}"


def national_sync_snapshots(
    events: Iterable[dict[str, Any]], calendar: WorkingCalendar = DEFAULT_CALENDAR
) -> Iterator[dict[str, Any]]:
    """Each simulated dossier as the national portal's snapshot of its latest state.

    The personal fields are there, as in a real sync body, with obviously fake values, so the
    gateway's dropping of them is exercised. Appraisals and apologies have no national field.
    """
    from service.domain.clock import computed_due

    names = {agency.code: agency.name for agency in AGENCIES}
    dossiers: dict[str, dict[str, Any]] = {}
    for event in events:
        kind = event["type"]
        at = _local_compact(event["occurred_at"])
        snap = dossiers.get(event["dossier_id"])
        if kind == EventType.RECEIVED:
            if "due_at" in event:
                due = event["due_at"]
            else:
                received = datetime.fromisoformat(event["occurred_at"])
                due = computed_due(received, event["processing_days"], calendar).isoformat()
            number = len(dossiers) + 1
            dossiers[event["dossier_id"]] = {
                "MaHoSo": event["dossier_id"],
                "MaTTHC": event["procedure"],
                "KenhThucHien": _KENH[event["channel"]],
                "TrangThaiHoSo": "4",
                "NgayNopHoSo": at,
                "NgayTiepNhan": at,
                "NgayHenTra": _local_compact(due),
                "DonViXuLy": names[event["agency"]],
                "ChuHoSo": f"Người nộp mẫu {number}",
                "SoGiayToChuHoSo": f"{number:012d}",
                "SoDienThoai": "0900000000",
                "Email": f"mau{number}@example.invalid",
                "DanhSachHoSoBoSung": [],
            }
            continue
        if snap is None:
            continue
        cycles = snap["DanhSachHoSoBoSung"]
        if kind == EventType.SUPPLEMENT_REQUESTED:
            cycles.append({"NgayBoSung": at, "NoiDungBoSung": "Bổ sung giấy tờ (mẫu)"})
            snap["TrangThaiHoSo"] = "5"
        elif kind == EventType.SUPPLEMENT_RECEIVED and cycles:
            cycles[-1]["NgayTiepNhanBoSung"] = at
            if "due_at" in event:
                cycles[-1]["NgayHenTraMoi"] = _local_compact(event["due_at"])
            snap["TrangThaiHoSo"] = "4"
        elif kind == EventType.APPROVED:
            snap.update(TrangThaiHoSo="9", NgayKetThucXuLy=at)
        elif kind == EventType.REJECTED:
            snap.update(TrangThaiHoSo="8", NgayTuChoi=at, NgayKetThucXuLy=at)
        elif kind == EventType.RETURNED:
            snap.update(TrangThaiHoSo="10", NgayTra=at)
        elif kind == EventType.WITHDRAWN:
            snap.update(TrangThaiHoSo="7", NgayKetThucXuLy=at)
    yield from dossiers.values()


PROGRESS_SERVICE = "CapNhatTienDoHoSoMC"
_STEP_CLOSERS = frozenset(
    (
        EventType.STEP_STARTED,
        EventType.STEP_COMPLETED,
        EventType.APPROVED,
        EventType.REJECTED,
        EventType.RETURNED,
        EventType.WITHDRAWN,
    )
)


def national_sync_progress(
    events: Iterable[dict[str, Any]], calendar: WorkingCalendar = DEFAULT_CALENDAR
) -> Iterator[dict[str, Any]]:
    """Each simulated step as a CapNhatTienDoHoSoMC progress row: the department by name
    (`PhongBanXuLy`), its start and due, and `ThoiDiemXuLy` when the department acted (the
    step's end; its start while it is still open). The person fields carry obviously fake
    values, as in a real body, so the gateway's dropping of them is exercised."""
    from service.domain.calendar import end_of_local_day, local_date
    from service.domain.steps import step_due_from_hours

    open_rows: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for event in events:
        kind = event["type"]
        if kind not in _STEP_CLOSERS:
            continue
        at = datetime.fromisoformat(event["occurred_at"])
        row = open_rows.pop(event["dossier_id"], None)
        if row is not None and (kind != EventType.STEP_COMPLETED or row["_step"] == event["step"]):
            row["ThoiDiemXuLy"] = _local_compact(event["occurred_at"])
        elif row is not None:
            open_rows[event["dossier_id"]] = row  # another step's completion: still open
        if kind != EventType.STEP_STARTED:
            continue
        if "step_hours" in event:
            due = step_due_from_hours(at, event["step_hours"], calendar)
        else:
            due = end_of_local_day(calendar.add_working_days(local_date(at), event["step_days"]))
        agency, suffix = event["department"].rsplit(".", 1)
        row = {
            "MaHoSo": event["dossier_id"],
            "NguoiXuLy": f"Cán bộ mẫu {len(rows) + 1}",
            "ChucDanh": "Chuyên viên (mẫu)",
            "ThoiDiemXuLy": _local_compact(event["occurred_at"]),
            "PhongBanXuLy": department_name(agency, suffix),
            "NoiDungXuLy": f"Xử lý bước {event['step']} (mẫu)",
            "TrangThai": "4",
            "NgayBatDau": _local_compact(event["occurred_at"]),
            "NgayKetThucTheoQuyDinh": _local_compact(due.isoformat()),
            "_step": event["step"],
        }
        rows.append(row)
        open_rows[event["dossier_id"]] = row
    for row in rows:
        del row["_step"]
        yield row
