"""Bad input answered with a clear error and nothing lost, never a 500: a reference file that
turns bad while running, a time with no local equivalent, bytes that are not UTF-8 where a
credential is read, a body whose Content-Encoding is corrupt, a body too large to find its
session in; and every 403 the gateway gives is in its OpenAPI document."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_gateway_app import NOW, MemorySink, dossier

from service.ingest.gateway.app import Gateway, GatewayLimits, build_app
from service.ingest.gateway.credentials import hash_password, secret_hash
from service.ingest.gateway.limits import RateLimiter
from service.ingest.gateway.openapi import openapi_document
from service.ingest.gateway.sources import SourcesFile
from service.ingest.gateway.tokens import TokenBook, token_hash
from service.ingest.gateway.units import UnitsFile

TOKEN, SESSION_TOKEN = "t0ken-bad-input", "session-t0ken"
DSTCODE = "VNPT-DST"
SECRET = "path-secret-of-the-dotnet-sender"
USER, PASSWORD = "opencps-user", "mật khẩu"
MAX_BODY = 4096
SYNC, PROGRESS, EVENTS = "/v1/national-sync/dossiers", "/v1/national-sync/progress", "/v1/events"


def _sources(answer: str = "motcua", networks: str = "") -> str:
    return (
        f'[sources.center-a]\nanswer = "{answer}"\n{networks}\n'
        "[sources.opencps-token]\n"
        'auth = "opencps_session"\n'
        f'dstcode_sha256 = "{token_hash(DSTCODE)}"\n'
        'answer = "portal"\n'
        'default_channel = "direct"\n\n'
        "[sources.dvc-dotnet]\n"
        'auth = "path_secret"\n'
        f'path_secret_sha256 = "{secret_hash(SECRET)}"\n'
        'answer = "portal"\n\n'
        "[sources.opencps-bg]\n"
        'auth = "opencps_login"\n'
        f'login_user = "{USER}"\n'
        f'login_password = "{hash_password(PASSWORD)}"\n'
        f'dstcode_sha256 = "{token_hash(DSTCODE)}"\n'
        'answer = "portal"\n'
    )


def _gateway(tmp_path: Path, sources_text: str | None = None) -> Gateway:
    (tmp_path / "units.csv").write_text(
        "unit,agency,department\nSở Xây dựng,SXD,\nPhòng Quản lý xây dựng,SXD,SXD.QLXD\n",
        encoding="utf-8",
    )
    (tmp_path / "tokens").write_text(
        f"center-a {token_hash(TOKEN)}\nopencps-token {token_hash(SESSION_TOKEN)}\n"
    )
    (tmp_path / "sources.toml").write_text(sources_text or _sources(), encoding="utf-8")
    units = UnitsFile(tmp_path / "units.csv")
    tokens = TokenBook(tmp_path / "tokens")
    sources = SourcesFile(tmp_path / "sources.toml")
    for reference in (units, tokens, sources):
        reference.load()
    return Gateway(
        sink=MemorySink(),
        tokens=tokens,
        units=units,
        limits=GatewayLimits(MAX_BODY, 100),
        limiter=RateLimiter(0, 1000),
        clock=lambda: NOW,
        sources=sources,
    )


def _row(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "MaHoSo": f"000.00.07.H19-261120-{n:04d}",
        "PhongBanXuLy": "Phòng Quản lý xây dựng",
        "NgayBatDau": "20261120100000",
        "NgayKetThucTheoQuyDinh": "20261123170000",
        **fields,
    }


def _event() -> dict[str, Any]:
    return {
        "event_id": "HS-1-1",
        "dossier_id": "HS-1",
        "type": "received",
        "occurred_at": "2026-11-20T09:15:00+07:00",
        "agency": "SXD",
        "procedure": "1.000948",
        "channel": "online",
        "processing_days": 5,
    }


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _touch(path: Path, text: str, stamp: int) -> None:
    """Rewrite a reference file with a modification time of its own (re-read for sure)."""
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(1, stamp))


async def _raw(client: TestClient, request: bytes) -> tuple[bytes, bytes]:
    """A request sent as bytes (a header no HTTP client would encode so): status line, body."""
    port = client.server.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


# -- reference files that turn bad while running ---------------------------------------------


async def test_a_reference_file_that_turns_bad_while_running_keeps_every_route_answering(
    tmp_path: Path,
) -> None:
    gateway = _gateway(tmp_path)
    async with TestClient(TestServer(build_app(gateway))) as client:
        for path, body in [(SYNC, [dossier(1)]), (PROGRESS, [_row(1)])]:
            response = await client.post(path, json=body, headers=BEARER)
            assert response.status == 200
        # A units row with a field the csv module refuses; a channel written as a list.
        huge = 'unit,agency,department\n"' + "x" * 200_000 + '",SXD,\nSở Xây dựng,SXD,\n'
        _touch(tmp_path / "units.csv", huge, 2_000_000_000_000_000_000)
        bad = _sources() + 'default_channel = ["direct"]\n'
        _touch(tmp_path / "sources.toml", bad, 2_000_000_000_000_000_000)
        for path, body in [(SYNC, [dossier(2)]), (PROGRESS, [_row(2)]), (EVENTS, _event())]:
            response = await client.post(path, json=body, headers=BEARER)
            assert response.status == 200, (path, await response.text())
        login = {"username": USER, "password": PASSWORD}
        response = await client.post("/v1/opencps/auth", json=login, headers={"dstcode": DSTCODE})
        assert response.status == 200
    assert gateway.units.last_error and gateway.sources.last_error
    assert "default_channel" in gateway.sources.last_error


# -- times with no local equivalent ------------------------------------------------------------


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:00:00Z"])
async def test_a_time_out_of_range_is_its_item_s_reason_and_the_others_proceed(
    tmp_path: Path, value: str
) -> None:
    gateway = _gateway(tmp_path)
    async with TestClient(TestServer(build_app(gateway))) as client:
        for path, bad, good in [
            (SYNC, dossier(1, NgayTiepNhan=value), dossier(2)),
            (PROGRESS, _row(1, NgayBatDau=value), _row(2)),
            (PROGRESS, _row(3, ThoiDiemXuLy=value), _row(4)),
        ]:
            response = await client.post(path, json=[bad, good], headers=BEARER)
            answer = await response.json()
            assert response.status == 207, answer
            first, second = answer["results"]
            assert first["status"] == "rejected" and first["reason"] == "bad_date", first
            assert value not in first["sentence"]
            assert second["status"] == "accepted"
    assert gateway.sink.records  # type: ignore[attr-defined]


# -- credentials that are not UTF-8 ---------------------------------------------------------


async def test_a_bearer_token_that_is_not_utf8_is_unauthorized(tmp_path: Path) -> None:
    async with TestClient(TestServer(build_app(_gateway(tmp_path)))) as client:
        status, body = await _raw(
            client,
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer \xff\xfe\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]",
        )
        assert status.endswith(b" 401 Unauthorized"), (status, body)
        assert orjson.loads(body)["error"] == "unauthorized"
        # OpenCPS's login with a dstcode header that is not UTF-8: a refused login.
        login = orjson.dumps({"username": USER, "password": PASSWORD})
        status, body = await _raw(
            client,
            b"POST /v1/opencps/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"dstcode: \xff\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % len(login)
            + login,
        )
        assert status.endswith(b" 401 Unauthorized"), (status, body)
        assert orjson.loads(body)["motcua"]["error"] == "login_failed"


async def test_a_signed_session_whose_mac_is_not_ascii_is_unauthorized(tmp_path: Path) -> None:
    source = base64.urlsafe_b64encode(b"opencps-bg").decode().rstrip("=")
    async with TestClient(TestServer(build_app(_gateway(tmp_path)))) as client:
        for mac in ("\u00e9\u00e9", "abc\u0111"):
            session = f"m1.{source}.99999999999.nonce.{mac}"
            envelope = {"session": session, "service": "DongBoHoSoMC", "data": [dossier(1)]}
            response = await client.post(
                "/v1/opencps/dvcqg", json=envelope, headers={"dstcode": DSTCODE}
            )
            assert response.status == 401
            assert (await response.json())["error"] == "unauthorized"


# -- bodies that cannot be read --------------------------------------------------------------


def _shape(body: dict[str, Any], portal: bool) -> dict[str, Any]:
    if portal:
        assert body["error_code"] == "-1", body
        return body["motcua"]  # type: ignore[no-any-return]
    assert "error_code" not in body, body
    return body


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("answer", ["motcua", "portal"])
async def test_a_corrupt_content_encoding_is_400_in_the_route_s_shape(
    tmp_path: Path, encoding: str, answer: str, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = _gateway(tmp_path, _sources(answer))
    corrupt = {"Content-Type": "application/json", "Content-Encoding": encoding}
    async with TestClient(TestServer(build_app(gateway))) as client:
        cases = [
            (EVENTS, BEARER, False),
            (SYNC, BEARER, answer == "portal"),
            (PROGRESS, BEARER, answer == "portal"),
            (SYNC, {}, False),  # no Authorization: the body is read first, nobody known yet
            (f"/v1/in/{SECRET}/api/v1/ThemMoi", {}, True),
            ("/v1/opencps/dvcqg", {}, True),
        ]
        for path, headers, portal in cases:
            response = await client.post(path, data=b"not compressed", headers=corrupt | headers)
            body = await response.json()
            assert response.status == 400, (path, body)
            own = _shape(body, portal)
            assert own["error"] == "bad_content_encoding" and own["sentence"], (path, own)
    assert gateway.sink.records == []  # type: ignore[attr-defined]
    # A sender's mistake, answered: no traceback in the gateway's log.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_session_source_s_body_over_the_limit_is_413_not_401(tmp_path: Path) -> None:
    gateway = _gateway(tmp_path)
    envelope = {
        "session": SESSION_TOKEN,
        "service": "DongBoHoSoMC",
        "data": [dossier(n) for n in range(30)],
    }
    assert len(orjson.dumps(envelope)) > MAX_BODY
    async with TestClient(TestServer(build_app(gateway))) as client:
        response = await client.post(SYNC, json=envelope, headers={"dstcode": DSTCODE})
        body = await response.json()
        assert response.status == 413, body
        assert body["error"] == "body_too_large"
        # Within the limit the same source is known by its session.
        envelope["data"] = [dossier(1)]
        response = await client.post(SYNC, json=envelope, headers={"dstcode": DSTCODE})
        assert response.status == 200


# -- 403 is documented where it is answered ----------------------------------------------------


@pytest.mark.parametrize("answer", ["motcua", "portal"])
async def test_every_route_that_answers_403_documents_it(tmp_path: Path, answer: str) -> None:
    networks = 'networks = ["10.20.0.0/16"]\n'
    gateway = _gateway(tmp_path, _sources(answer, networks))
    document = openapi_document()
    async with TestClient(TestServer(build_app(gateway))) as client:
        for path, body, portal in [
            (EVENTS, _event(), False),
            (SYNC, [dossier(1)], answer == "portal"),
            (PROGRESS, [_row(1)], answer == "portal"),
        ]:
            response = await client.post(path, json=body, headers=BEARER)
            assert response.status == 403
            assert _shape(await response.json(), portal)["error"] == "forbidden_network"
            documented = document["paths"][path]["post"]["responses"]["403"]
            schemas = orjson.dumps(documented["content"]).decode()
            assert "forbidden_network" in documented["description"]
            # The national-sync routes answer in either shape, by the source's profile.
            assert ("PortalAnswer" in schemas) is (path != EVENTS) and "Error" in schemas, path
