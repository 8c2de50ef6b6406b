"""The national portal's progress rows (CapNhatTienDoHoSoMC) through the gateway: step events
with deterministic ids, the department kept, the person never (against an in-memory sink).

Rows are shaped as the two open senders build them: the .NET system posts a bare array of
`QuaTrinhXuLyDongBoDVC` (MaHoSo, ChucDanh, NgayBatDau, NgayKetThucTheoQuyDinh, NguoiXuLy,
NoiDungXuLy, PhongBanXuLy, ThoiDiemXuLy, TrangThai); OpenCPS posts the envelope
{"service": "CapNhatTienDoHoSoMC", "data": [row]} with PhongBanXuLy, NgayBatDau and
NgayKetThucTheoQuyDinh left "" (createSyncDossierStatusBodyRequest).
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas import parse_event
from service.ingest.gateway.app import GATEWAY_KEY, Gateway, GatewayLimits, build_app
from service.ingest.gateway.intake import Accepted
from service.ingest.gateway.limits import RateLimiter
from service.ingest.gateway.producer import Record
from service.ingest.gateway.units import UnitsFile
from service.ingest.national_progress import map_progress_row
from service.reference import Departments
from service.tools.simulate import (
    SimulationConfig,
    generate,
    national_sync_progress,
    sample_units_csv,
)

NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
UNITS = (
    "unit,agency,department\n"
    "Sở Xây dựng,SXD,\n"
    "Phòng Quản lý xây dựng,SXD,SXD.QLXD\n"
    "Phòng Đất đai,STNMT,STNMT.DD\n"
)
DOSSIER = "000.00.07.H19-261120-0001"
SENTINELS = ("Nguyễn Sentinel Xử Lý", "Trưởng phòng SENTINEL-TITLE", "Ghi chú SENTINEL-NOTE")


class MemorySink:
    """Kafka's stand-in: the records the gateway would produce."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    async def send(self, records: Sequence[Record]) -> None:
        self.records.extend(records)

    async def ready(self) -> bool:
        return True


def row(**fields: Any) -> dict[str, Any]:
    """A .NET-style progress row for the SXD department, with sentinels in personal fields."""
    return {
        "MaHoSo": DOSSIER,
        "NguoiXuLy": SENTINELS[0],
        "ChucDanh": SENTINELS[1],
        "ThoiDiemXuLy": "20261124153000",
        "PhongBanXuLy": "Phòng Quản lý xây dựng",
        "NoiDungXuLy": SENTINELS[2],
        "TrangThai": "4",
        "NgayBatDau": "20261120100000",
        "NgayKetThucTheoQuyDinh": "20261123170000",
        **fields,
    }


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    path = tmp_path / "units.csv"
    path.write_text(UNITS, encoding="utf-8")
    units = UnitsFile(path)
    units.load()
    gateway = Gateway(
        sink=MemorySink(),
        tokens=None,
        units=units,
        limits=GatewayLimits(64 * 1024, 100),
        limiter=RateLimiter(0, 1000),
        clock=lambda: NOW,
    )
    async with TestClient(TestServer(build_app(gateway))) as client:
        yield client


def sink_of(client: TestClient) -> MemorySink:
    return client.app[GATEWAY_KEY].sink  # type: ignore[return-value]


async def test_a_row_is_a_step_started_and_completed_with_its_department(
    client: TestClient,
) -> None:
    response = await client.post("/v1/national-sync/progress", json=[row()])
    assert response.status == 200
    started = f"{DOSSIER}:step_started:20261120100000:"
    body = await response.json()
    (result,) = body["results"]
    assert result["dossier_id"] == DOSSIER
    assert [i.rsplit(":", 1)[0] + ":" for i in result["event_ids"]] == [
        started,
        f"{DOSSIER}:step_completed:20261124153000:",
    ]
    records = sink_of(client).records
    assert [r.key for r in records] == [DOSSIER.encode()] * 2
    assert dict(records[0].headers)["motcua-via"] == b"gateway-national-progress"
    first, second = (orjson.loads(r.value) for r in records)
    assert first == {
        "schema_version": 1,
        "event_id": result["event_ids"][0],
        "dossier_id": DOSSIER,
        "type": "step_started",
        "occurred_at": "2026-11-20T10:00:00+07:00",
        "agency": "SXD",
        "step": "SXD.QLXD@20261120100000",
        "department": "SXD.QLXD",
        "step_due_at": "2026-11-23T17:00:00+07:00",
    }
    assert second == {
        "schema_version": 1,
        "event_id": result["event_ids"][1],
        "dossier_id": DOSSIER,
        "type": "step_completed",
        "occurred_at": "2026-11-24T15:30:00+07:00",
        "step": "SXD.QLXD@20261120100000",
    }
    for record in records:  # the worker's own validator takes them
        parse_event(record.value, now=NOW, key=record.key)


async def test_a_re_sent_row_gives_the_same_event_ids(client: TestClient) -> None:
    first = await (await client.post("/v1/national-sync/progress", json=[row()])).json()
    again = await (await client.post("/v1/national-sync/progress", json=[row()])).json()
    assert first["results"][0]["event_ids"] == again["results"][0]["event_ids"]


async def test_another_agency_s_department_holds_the_liên_thông_step(client: TestClient) -> None:
    # Still acting on it: no ThoiDiemXuLy after the start, so the step stays open.
    open_row = row(PhongBanXuLy="Phòng Đất đai", ThoiDiemXuLy="20261120100000")
    body = await (await client.post("/v1/national-sync/progress", json=open_row)).json()
    assert len(body["results"][0]["event_ids"]) == 1
    (record,) = sink_of(client).records
    event = orjson.loads(record.value)
    assert (event["agency"], event["department"]) == ("STNMT", "STNMT.DD")


async def test_names_in_decomposed_unicode_and_other_case_match_on_both_sync_routes(
    client: TestClient,
) -> None:
    # A department typed in NFD and upper case: the same department (it was unknown_unit).
    nfd = unicodedata.normalize("NFD", "PHÒNG QUẢN LÝ XÂY DỰNG")
    assert nfd != "PHÒNG QUẢN LÝ XÂY DỰNG"
    body = await (
        await client.post("/v1/national-sync/progress", json=[row(PhongBanXuLy=nfd)])
    ).json()
    assert body["accepted"] == 1, body
    assert orjson.loads(sink_of(client).records[0].value)["department"] == "SXD.QLXD"
    # A unit name in NFD and mixed case on the dossier route: the same agency.
    snapshot = {
        "MaHoSo": DOSSIER,
        "MaTTHC": "1.000948",
        "KenhThucHien": "1",
        "TrangThaiHoSo": "2",
        "NgayTiepNhan": "20261120091500",
        "NgayHenTra": "20261127170000",
        "DonViXuLy": unicodedata.normalize("NFD", "sở XÂY dựng"),
    }
    body = await (await client.post("/v1/national-sync/dossiers", json=[snapshot])).json()
    assert body["accepted"] == 1, body
    events = [orjson.loads(r.value) for r in sink_of(client).records]
    assert [e["agency"] for e in events if e["type"] == "received"] == ["SXD"]


async def test_opencps_envelope_and_per_row_reasons(client: TestClient) -> None:
    opencps = {  # as createSyncDossierStatusBodyRequest fills it: no department, no dates
        "MaHoSo": DOSSIER,
        "NguoiXuLy": SENTINELS[0],
        "ChucDanh": "",
        "ThoiDiemXuLy": "20261124153000",
        "PhongBanXuLy": "",
        "NoiDungXuLy": SENTINELS[2],
        "TrangThai": "4",
        "NgayBatDau": "",
        "NgayKetThucTheoQuyDinh": "",
    }
    rows = [
        opencps,
        row(PhongBanXuLy="Phòng Tài vụ"),
        row(NgayBatDau=""),
        row(NgayKetThucTheoQuyDinh=""),
        row(NgayBatDau="2026-13-01"),
        row(MaHoSo=""),
        "not a row",
        row(),
    ]
    envelope = {"service": "CapNhatTienDoHoSoMC", "data": rows}
    response = await client.post("/v1/national-sync/progress", json=envelope)
    assert response.status == 207
    body = await response.json()
    assert [r.get("reason") for r in body["results"]] == [
        "no_department",
        "unknown_unit",
        "missing_date",
        "missing_step_due",
        "bad_date",
        "bad_dossier_id",
        "not_object",
        None,
    ]
    assert all(r["sentence"] for r in body["results"][:-1])
    assert (body["accepted"], body["rejected"]) == (1, 7)
    wrong = {"service": "DongBoHoSoMC", "data": rows}
    response = await client.post("/v1/national-sync/progress", json=wrong)
    assert response.status == 422
    assert (await response.json())["error"] == "unsupported_service"


async def test_no_person_reaches_kafka_the_answers_the_metrics_or_the_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[bytes] = []
    rows = [row(), row(PhongBanXuLy="Phòng Tài vụ"), row(PhongBanXuLy=""), row(NgayBatDau="x")]
    for body in (rows, {"service": "CapNhatTienDoHoSoMC", "data": rows}, row()):
        response = await client.post("/v1/national-sync/progress", json=body)
        seen.append(await response.read())
    metrics = await client.get("/metrics")
    seen.append(await metrics.read())
    for record in sink_of(client).records:
        seen.append(record.key + record.value + b"".join(v for _, v in record.headers))
    seen.append(caplog.text.encode())
    blob = b"\n".join(seen)
    assert b"step_started" in blob and b"SXD.QLXD" in blob  # the department stays
    for sentinel in SENTINELS:
        for part in (sentinel, sentinel.split()[-1]):
            assert part.encode() not in blob, part


def test_the_simulated_progress_rows_give_back_the_simulated_steps(tmp_path: Path) -> None:
    now = datetime(2026, 3, 18, 3, 0, tzinfo=UTC)
    events = list(generate(SimulationConfig(dossiers=300, seed=5, now=now)))
    receiving = {e["dossier_id"]: e["agency"] for e in events if e["type"] == "received"}
    rows = list(national_sync_progress(events))
    path = tmp_path / "units.csv"
    path.write_text(sample_units_csv(), encoding="utf-8")
    departments = Departments.load(path)
    started = [e for e in events if e["type"] == "step_started"]
    assert len(rows) == len(started) > 300
    for row_, simulated in zip(rows, started, strict=True):
        assert set(row_) == {
            "MaHoSo", "NguoiXuLy", "ChucDanh", "ThoiDiemXuLy", "PhongBanXuLy",
            "NoiDungXuLy", "TrangThai", "NgayBatDau", "NgayKetThucTheoQuyDinh",
        }  # fmt: skip
        outcome = map_progress_row(row_, departments, now)
        assert isinstance(outcome, Accepted), outcome
        step = outcome.events[0]
        assert step.occurred_at == datetime.fromisoformat(simulated["occurred_at"])
        assert step.department == simulated["department"]
        assert step.agency == simulated.get("agency", receiving[simulated["dossier_id"]])
