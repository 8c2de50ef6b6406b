"""The gateway's HTTP layer against an in-memory sink: status codes, results, headers, metrics.

The real broker is in tests/integration/test_gateway.py; here only the translation is tested.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas import Reason, event_from_dict
from service.ingest.gateway.app import GATEWAY_KEY, Gateway, GatewayLimits, build_app
from service.ingest.gateway.limits import RateLimiter
from service.ingest.gateway.procedures import ProceduresFile
from service.ingest.gateway.producer import BrokerUnavailable, Record
from service.ingest.gateway.sources import SourcesFile
from service.ingest.gateway.tokens import TokenBook, token_hash
from service.ingest.gateway.units import UnitsFile

NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)


class MemorySink:
    def __init__(self) -> None:
        self.records: list[Record] = []
        self.down = False

    async def send(self, records: Sequence[Record]) -> None:
        if self.down:
            raise BrokerUnavailable("down")
        self.records.extend(records)

    async def ready(self) -> bool:
        return not self.down


def event(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"HS-{n}-1",
        "dossier_id": f"HS-{n}",
        "type": "received",
        "occurred_at": "2026-11-20T09:15:00+07:00",
        "agency": "SXD",
        "procedure": "1.000948",
        "channel": "online",
        "processing_days": 5,
        **fields,
    }


def dossier(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "MaHoSo": f"000.00.07.H19-261120-{n:04d}",
        "MaTTHC": "1.000948",
        "KenhThucHien": "1",
        "TrangThaiHoSo": "2",
        "NgayTiepNhan": "20261120091500",
        "NgayHenTra": "20261127170000",
        "DonViXuLy": "Sở Xây dựng",
        "ChuHoSo": "Nguyễn Văn An",
        "SoDienThoai": "0912345678",
        **fields,
    }


@pytest.fixture
def units(tmp_path: Path) -> UnitsFile:
    path = tmp_path / "units.csv"
    path.write_text("unit,agency\nSở Xây dựng,SXD\n")
    units = UnitsFile(path)
    units.load()
    return units


def make_gateway(
    units: UnitsFile,
    tokens: TokenBook | None = None,
    rate: float = 0,
    burst: float = 1000,
    max_items: int = 100,
    max_body: int = 64 * 1024,
    sources: SourcesFile | None = None,
    procedures: ProceduresFile | None = None,
) -> Gateway:
    return Gateway(
        sink=MemorySink(),
        tokens=tokens,
        units=units,
        limits=GatewayLimits(max_body, max_items),
        limiter=RateLimiter(rate, burst),
        clock=lambda: NOW,
        sources=sources,
        procedures=procedures,
    )


@pytest.fixture
async def client(units: UnitsFile) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(make_gateway(units)))) as client:
        yield client


def sink_of(client: TestClient) -> MemorySink:
    return client.app[GATEWAY_KEY].sink  # type: ignore[return-value]


async def test_all_accepted_is_200_and_records_carry_key_and_headers(client: TestClient) -> None:
    response = await client.post("/v1/events", json=[event(1), event(2)])
    assert response.status == 200
    body = await response.json()
    assert body == {
        "accepted": 2,
        "rejected": 0,
        "results": [
            {"index": 0, "status": "accepted", "event_id": "HS-1-1"},
            {"index": 1, "status": "accepted", "event_id": "HS-2-1"},
        ],
    }
    records = sink_of(client).records
    assert [r.key for r in records] == [b"HS-1", b"HS-2"]
    assert dict(records[0].headers) == {
        "motcua-source": b"anonymous",
        "motcua-via": b"gateway-events",
    }
    # What goes to Kafka is the contract form of the same event.
    assert orjson.loads(records[0].value) == event_from_dict(event(1), NOW).to_dict()


async def test_single_object_and_ndjson(client: TestClient) -> None:
    response = await client.post("/v1/events", json=event(1))
    assert response.status == 200
    lines = b"\n".join(orjson.dumps(event(n)) for n in range(3)) + b"\n\n"
    response = await client.post(
        "/v1/events", data=lines, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status == 200
    assert (await response.json())["accepted"] == 3


async def test_some_rejected_is_207_in_order_and_nothing_personal_echoed(
    client: TestClient,
) -> None:
    items = [
        event(1),
        event(2, occurred_at="2026-11-20T09:15:00"),
        event(3, type="Nguyễn Văn An"),
        event(4, ChuHoSo="Nguyễn Văn An"),  # unknown fields are dropped, not refused
    ]
    response = await client.post("/v1/events", json=items)
    assert response.status == 207
    body = await response.json()
    assert [r["status"] for r in body["results"]] == [
        "accepted",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert body["results"][1]["reason"] == Reason.NAIVE_TIMESTAMP
    assert body["results"][2]["reason"] == Reason.UNKNOWN_TYPE
    assert "Nguyễn" not in await response.text()
    assert b"Nguy" not in b"".join(r.value for r in sink_of(client).records)


async def test_every_item_rejected_is_422_and_nothing_sent(client: TestClient) -> None:
    lines = b'{"event_id": "x"}\nnot json\n\xff\xfe\n'
    response = await client.post(
        "/v1/events", data=lines, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status == 422
    reasons = [r["reason"] for r in (await response.json())["results"]]
    assert reasons == [Reason.BAD_DOSSIER_ID, Reason.NOT_JSON, Reason.NOT_UTF8]
    assert sink_of(client).records == []


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "not_json"),
        (b"\xff", "application/json", 400, "not_utf8"),
        (b"42", "application/json", 400, "not_object_or_array"),
        (b"{}", "text/csv", 415, "unsupported_media_type"),
    ],
)
async def test_unreadable_bodies(
    client: TestClient, data: bytes, content_type: str, status: int, code: str
) -> None:
    response = await client.post("/v1/events", data=data, headers={"Content-Type": content_type})
    assert response.status == status
    assert (await response.json())["error"] == code


async def test_limits_413(units: UnitsFile) -> None:
    gateway = make_gateway(units, max_items=2, max_body=2048)
    async with TestClient(TestServer(build_app(gateway))) as client:
        response = await client.post("/v1/events", json=[event(n) for n in range(3)])
        assert response.status == 413
        assert (await response.json())["error"] == "too_many_items"
        response = await client.post(
            "/v1/events",
            data=b"[" + b" " * 4096 + b"]",
            headers={"Content-Type": "application/json"},
        )
        assert response.status == 413
        assert (await response.json())["error"] == "body_too_large"


async def test_auth_401_and_source_header(units: UnitsFile, tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"opencps-bg {token_hash('good-token')}\n")
    tokens = TokenBook(path)
    tokens.load()
    gateway = make_gateway(units, tokens=tokens)
    async with TestClient(TestServer(build_app(gateway))) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            response = await client.post("/v1/events", json=event(1), headers=headers)
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        response = await client.post(
            "/v1/national-sync/dossiers",
            json=[dossier(1)],
            headers={"Authorization": "Bearer good-token"},
        )
        assert response.status == 200
        records = gateway.sink.records  # type: ignore[attr-defined]
        assert len(records) == 3  # received, the running snapshot's resume and appointment
        for record in records:
            assert dict(record.headers) == {
                "motcua-source": b"opencps-bg",
                "motcua-via": b"gateway-national-sync",
            }


async def test_rate_limit_429_with_retry_after(units: UnitsFile) -> None:
    gateway = make_gateway(units, rate=1, burst=3)
    async with TestClient(TestServer(build_app(gateway))) as client:
        assert (await client.post("/v1/events", json=[event(1), event(2)])).status == 200
        response = await client.post("/v1/events", json=[event(3), event(4)])
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["retry_after"] == int(response.headers["Retry-After"])
        response = await client.post("/v1/events", json=[event(n) for n in range(4)])
        assert response.status == 413


async def test_broker_down_503_claims_nothing(client: TestClient) -> None:
    sink_of(client).down = True
    response = await client.post("/v1/events", json=[event(1), event(2, type="bad")])
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    body = await response.json()
    assert body["error"] == "broker_unavailable" and "results" not in body
    assert (await client.get("/readyz")).status == 503
    sink_of(client).down = False
    assert (await client.get("/readyz")).status == 200


async def test_the_ready_gauge_is_the_brokers_answer_at_the_scrape(client: TestClient) -> None:
    # Nothing calls /readyz here: the gauge must not keep what an earlier probe saw.
    def ready_gauge(text: str) -> float:
        (line,) = [x for x in text.splitlines() if x.startswith("motcua_gateway_ready ")]
        return float(line.split()[1])

    assert ready_gauge(await (await client.get("/metrics")).text()) == 1
    sink_of(client).down = True
    assert ready_gauge(await (await client.get("/metrics")).text()) == 0
    sink_of(client).down = False
    assert ready_gauge(await (await client.get("/metrics")).text()) == 1


async def test_national_sync_results_and_envelope(client: TestClient) -> None:
    body = {
        "service": "DongBoHoSoMC",
        "isUpdating": "False",
        "data": [
            dossier(1),
            dossier(2, DonViXuLy="Ủy ban không có"),
            dossier(3, TrangThaiHoSo="1"),
        ],
    }
    response = await client.post("/v1/national-sync/dossiers", json=body)
    assert response.status == 207
    results = (await response.json())["results"]
    # NOW is 2026-12-01 12:00 local: a running snapshot resumes and states its appointment.
    assert results[0]["event_ids"] == [
        "000.00.07.H19-261120-0001:received:20261120091500",
        "000.00.07.H19-261120-0001:supplement_received:day-20261201",
        "000.00.07.H19-261120-0001:supplement_received:due-20261127170000",
    ]
    assert results[1]["reason"] == "unknown_unit"
    assert results[2] == {
        "index": 2,
        "status": "accepted",
        "dossier_id": "000.00.07.H19-261120-0003",
        "event_ids": [],
    }
    response = await client.post(
        "/v1/national-sync/dossiers", json={"service": "CapNhatTienDoHoSoMC", "data": []}
    )
    assert response.status == 422
    assert (await response.json())["error"] == "unsupported_service"
    assert "Nguy" not in (await response.text())


async def test_metrics_count_requests_items_and_reasons_without_ids(client: TestClient) -> None:
    await client.post("/v1/events", json=[event(1), event(2, channel="fax")])
    await client.post("/v1/national-sync/dossiers", json=[dossier(1)])
    await client.get("/nowhere")
    text = await (await client.get("/metrics")).text()
    assert 'motcua_gateway_requests_total{route="events",status="207"} 1.0' in text
    assert 'motcua_gateway_requests_total{route="other",status="404"} 1.0' in text
    assert (
        'motcua_gateway_items_rejected_total{reason="bad_channel",route="events",'
        'source="anonymous"} 1.0' in text
    )
    assert (
        'motcua_gateway_items_accepted_total{route="national_sync",source="anonymous"} 1.0' in text
    )
    assert "motcua_gateway_produce_seconds_count 2.0" in text
    assert "HS-1" not in text and "H19" not in text


async def test_openapi_document_is_served(client: TestClient) -> None:
    document = await (await client.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    routes = {"/v1/events", "/v1/national-sync/dossiers", "/v1/national-sync/progress"}
    assert routes <= set(document["paths"])
    reasons = document["components"]["schemas"]["ItemResult"]["properties"]["reason"]["enum"]
    assert {r.value for r in Reason} | {"no_department", "unknown_unit"} <= set(reasons)
    row = document["components"]["schemas"]["ProgressRow"]["properties"]
    # The person is never read: the document does not even name a field for it.
    assert "PhongBanXuLy" in row and not {"NguoiXuLy", "ChucDanh", "NoiDungXuLy"} & set(row)


def _profiles(tmp_path: Path, text: str) -> SourcesFile:
    path = tmp_path / "sources.toml"
    path.write_text(text)
    sources = SourcesFile(path)
    sources.load()
    return sources


def _tokens(tmp_path: Path, *lines: str) -> TokenBook:
    path = tmp_path / "tokens"
    path.write_text("".join(f"{line}\n" for line in lines))
    tokens = TokenBook(path)
    tokens.load()
    return tokens


async def test_opencps_session_and_dstcode_authenticate_a_session_source(
    units: UnitsFile, tmp_path: Path
) -> None:
    tokens = _tokens(
        tmp_path, f"opencps-bg {token_hash('session-secret')}", f"dotnet {token_hash('other')}"
    )
    sources = _profiles(
        tmp_path,
        "[sources.opencps-bg]\n"
        'auth = "opencps_session"\n'
        f'dstcode_sha256 = "{token_hash("VNPT-DST")}"\n'
        'answer = "portal"\n'
        'default_channel = "direct"\n',
    )
    gateway = make_gateway(units, tokens=tokens, sources=sources)
    # OpenCPS's envelope: session, madonvi, isUpdating, data, service; no KenhThucHien.
    item = dossier(1, KenhThucHien=None)
    del item["KenhThucHien"]

    def envelope(session: str) -> dict[str, Any]:
        return {
            "session": session,
            "madonvi": "000.00.00.H19",
            "isUpdating": "False",
            "data": [item],
            "service": "DongBoHoSoMC",
        }

    async with TestClient(TestServer(build_app(gateway))) as client:
        path = "/v1/national-sync/dossiers"
        refused = [
            (envelope("session-secret"), {}),  # no dstcode
            (envelope("session-secret"), {"dstcode": "WRONG"}),
            (envelope("nope"), {"dstcode": "VNPT-DST"}),
            (envelope("other"), {"dstcode": "VNPT-DST"}),  # a bearer-only source
        ]
        for body, headers in refused:
            response = await client.post(path, json=body, headers=headers)
            assert response.status == 401
        assert gateway.sink.records == []  # type: ignore[attr-defined]
        response = await client.post(
            path, json=envelope("session-secret"), headers={"dstcode": "VNPT-DST"}
        )
        assert response.status == 200
        answer = await response.json()
        assert answer["error_code"] == "0"
        assert "thành công" in answer["message"]
        assert answer["motcua"]["accepted"] == 1
        received = event_from_dict(orjson.loads(gateway.sink.records[0].value))  # type: ignore[attr-defined]
        assert received.channel is not None and received.channel.value == "direct"
        assert dict(gateway.sink.records[0].headers)["motcua-source"] == b"opencps-bg"  # type: ignore[attr-defined]
        # The same source may still use a bearer header.
        response = await client.post(
            path, json=[item], headers={"Authorization": "Bearer session-secret"}
        )
        assert (await response.json())["error_code"] == "0"


async def test_portal_answer_fails_the_request_when_any_dossier_is_refused(
    units: UnitsFile, tmp_path: Path
) -> None:
    sources = _profiles(tmp_path, '[sources.anonymous]\nanswer = "portal"\n')
    gateway = make_gateway(units, sources=sources)
    async with TestClient(TestServer(build_app(gateway))) as client:
        path = "/v1/national-sync/dossiers"
        response = await client.post(path, json=[dossier(1), dossier(2, DonViXuLy="Không có")])
        assert response.status == 207
        answer = await response.json()
        assert answer["error_code"] == "-1"
        assert "thành công" not in answer["message"]
        assert answer["motcua"]["results"][1]["reason"] == "unknown_unit"
        response = await client.post(path, data=b"{", headers={"Content-Type": "application/json"})
        assert response.status == 400
        answer = await response.json()
        assert answer["error_code"] == "-1" and answer["motcua"]["error"] == "not_json"
        # /v1/events keeps motcua's own answer whatever the profile.
        response = await client.post("/v1/events", json=[event(1)])
        assert "error_code" not in await response.json()


async def test_procedures_file_gives_a_dossier_without_appointment_its_time_limit(
    units: UnitsFile, tmp_path: Path
) -> None:
    path = tmp_path / "procedures.csv"
    path.write_text("procedure,working_days\n1.000948,15\n")
    procedures = ProceduresFile(path)
    procedures.load()
    gateway = make_gateway(units, procedures=procedures)
    async with TestClient(TestServer(build_app(gateway))) as client:
        response = await client.post(
            "/v1/national-sync/dossiers",
            json=[dossier(1, NgayHenTra=None), dossier(2, NgayHenTra="", MaTTHC="9.999999")],
        )
        assert response.status == 200
    received = [
        event_from_dict(orjson.loads(r.value))
        for r in gateway.sink.records  # type: ignore[attr-defined]
        if b'"received"' in r.value
    ]
    assert [(e.dossier_id[-4:], e.due_at, e.processing_days) for e in received] == [
        ("0001", None, 15),
        ("0002", None, None),  # not in the catalogue: no due (rule R11)
    ]
