"""Progress rows (CapNhatTienDoHoSoMC) through a running gateway onto the real broker: both
senders' bodies become step events, and no person's name, title or note gets anywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from harness import Gateway, consume_all

from schemas import parse_event
from service.tools.simulate import department_name

pytestmark = pytest.mark.integration

# Sentinels in every personal field of a progress row.
PERSON = "Lê Sentinel Hoàng"
TITLE = "Phó Trưởng phòng SENTINEL-CD"
NOTE = "Đã gọi cho bà SENTINEL-ND số 0911222333"
SENTINELS = [PERSON, "Sentinel Hoàng", TITLE, "SENTINEL-CD", NOTE, "SENTINEL-ND", "0911222333"]
DEPARTMENT = department_name("SXD", "CM")  # in the simulated units file the gateway reads


def _row(n: int, **fields: Any) -> dict[str, Any]:
    row = {
        "MaHoSo": f"000.00.07.H19-261120-{n:04d}",
        "NguoiXuLy": PERSON,
        "ChucDanh": TITLE,
        "ThoiDiemXuLy": "20261124153000",
        "PhongBanXuLy": DEPARTMENT,
        "NoiDungXuLy": NOTE,
        "TrangThai": "4",
        "NgayBatDau": "20261120100000",
        "NgayKetThucTheoQuyDinh": "20261123170000",
    }
    row.update(fields)
    return row


def test_both_senders_bodies_become_step_events_and_nothing_personal_passes(
    gateway_factory: Callable[..., Gateway],
) -> None:
    gateway = gateway_factory()
    answers: list[bytes] = []
    dotnet = [_row(1), _row(2, ThoiDiemXuLy="20261120100000"), _row(3, PhongBanXuLy=NOTE)]
    opencps = {
        "service": "CapNhatTienDoHoSoMC",
        "data": [_row(4), _row(5, PhongBanXuLy="", NgayBatDau="", NgayKetThucTheoQuyDinh="")],
    }
    for body in (dotnet, opencps):
        status, _, answer = gateway.request(
            "POST", "/v1/national-sync/progress", orjson.dumps(body)
        )
        assert status == 207
        answers.append(answer)
    first, second = (orjson.loads(a) for a in answers)
    assert [r.get("reason") for r in first["results"]] == [None, None, "unknown_unit"]
    assert [r.get("reason") for r in second["results"]] == [None, "no_department"]
    # Rows 1 and 4 started and ended their step; row 2's department is still at it.
    produced = consume_all(gateway.bootstrap, gateway.topic, expected=5, timeout=30)
    events = [parse_event(m.value, key=m.key) for m in produced]
    assert sorted((e.dossier_id[-4:], e.type.value) for e in events) == [
        ("0001", "step_completed"),
        ("0001", "step_started"),
        ("0002", "step_started"),
        ("0004", "step_completed"),
        ("0004", "step_started"),
    ]
    assert {e.department for e in events if e.department} == {"SXD.CM"}
    kafka_text = b"\n".join(
        (m.key or b"") + m.value + b"".join(k.encode() + v for k, v in m.headers) for m in produced
    ).decode("utf-8", "replace")
    places = {
        "kafka": kafka_text,
        "responses": b"\n".join(answers).decode(),
        "metrics": gateway.get("/metrics")[1].decode(),
        "log": gateway.log_path.read_text(encoding="utf-8", errors="replace"),
    }
    for where, text in places.items():
        for value in SENTINELS:
            assert value not in text, f"{value!r} reached the {where}"
