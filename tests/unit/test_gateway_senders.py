"""The two open senders as they are deployed: the .NET system with no credential (a path
secret in its base URL), OpenCPS with its own login, each direct or relaying to a stand-in
portal on loopback (against an in-memory sink; tests/integration/test_gateway_senders.py
runs them through real Kafka and a worker)."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sync_senders import (
    DOTNET,
    OPENCPS,
    OPENCPS_DSTCODE,
    PII_STRINGS,
    dotnet_body,
    opencps_body,
)
from test_gateway_app import NOW, MemorySink

from service.ingest.gateway.app import Gateway, GatewayLimits, build_app
from service.ingest.gateway.credentials import (
    client_address,
    hash_password,
    parse_networks,
    password_matches,
    secret_hash,
)
from service.ingest.gateway.limits import RateLimiter
from service.ingest.gateway.sessions import MAX_FAILURES
from service.ingest.gateway.sources import SourcesFile, SourcesFileError, parse_sources
from service.ingest.gateway.tokens import token_hash
from service.ingest.gateway.units import UnitsFile

SECRET = "Zq3-path-secret-of-the-dotnet-sender"
OLD_SECRET = "the-secret-before-rotation"
USER, PASSWORD = "bacgiang-dvcqg", "mật-khẩu OpenCPS 42"
PASSWORD_LINE = hash_password(PASSWORD)
PROGRESS_TAIL = "/api/v1/DongBoTienTrinh"


def dotnet_post(n: int = 0) -> Any:
    """The .NET sender's first post of its n-th lifecycle (tests/sync_senders.py)."""
    life = DOTNET[n]
    _, state = life.posts[0]
    return dotnet_body(life.number, state, life.unit, life.online, life.procedure)


def opencps_envelope(session: str, n: int = 0) -> dict[str, Any]:
    """OpenCPS's first sync envelope of its n-th lifecycle, carrying `session`."""
    life = OPENCPS[n]
    _, state = life.posts[0]
    body = opencps_body(life.number, state, life.unit, life.online, life.procedure)
    return {**body, "session": session}


def sources_toml(upstream: str | None = None, networks: str = "") -> str:
    relay = f'upstream = "{upstream}"\nupstream_timeout = 1\n' if upstream else ""
    return (
        "[sources.dvc-dotnet]\n"
        'auth = "path_secret"\n'
        f'path_secret_sha256 = ["{secret_hash(SECRET)}", "{secret_hash(OLD_SECRET)}"]\n'
        f'progress_path = "{PROGRESS_TAIL}"\n'
        'answer = "portal"\n'
        'finished_without_date = "paused"\n'
        f"{networks}{relay}\n"
        "[sources.opencps-bg]\n"
        'auth = "opencps_login"\n'
        f'login_user = "{USER}"\n'
        f'login_password = "{PASSWORD_LINE}"\n'
        f'dstcode_sha256 = "{token_hash(OPENCPS_DSTCODE)}"\n'
        'answer = "portal"\n'
        'default_channel = "direct"\n'
        "online_if_applicant_account = true\n"
        f"{relay}"
    )


def make(
    tmp_path: Path,
    text: str,
    trusted_proxies: tuple[str, ...] = (),
    session_key: bytes | None = None,
) -> Gateway:
    (tmp_path / "units.csv").write_text(
        "unit,agency,department\nSở Xây dựng,SXD,\nSở Tư pháp,STP,\n"
        "Phòng Quản lý xây dựng,SXD,SXD.QLXD\n",
        encoding="utf-8",
    )
    (tmp_path / "sources.toml").write_text(text, encoding="utf-8")
    units, sources = UnitsFile(tmp_path / "units.csv"), SourcesFile(tmp_path / "sources.toml")
    units.load()
    sources.load()
    return Gateway(
        sink=MemorySink(),
        tokens=None,
        units=units,
        limits=GatewayLimits(1 << 20, 100),
        limiter=RateLimiter(0, 1000),
        clock=lambda: NOW,
        sources=sources,
        trusted_proxies=parse_networks(trusted_proxies),
        session_key=session_key,
    )


# -- a stand-in national portal on loopback --------------------------------------------------


@dataclass
class Portal:
    """Answers as the portal does; `mode` picks a failure."""

    mode: str = "ok"
    seen: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)  # each request's raw query string

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append((request.path, body, dict(request.headers)))
        self.queries.append(request.rel_url.raw_query_string)
        if self.mode == "slow":
            await asyncio.sleep(3)
        if self.mode == "down":
            return web.Response(status=500, text="Internal Server Error")
        if request.path.endswith("/auth"):
            return web.json_response({"error_code": 0, "session": "PORTAL-SESSION-7"})
        if self.mode == "refuse":
            return web.json_response({"error_code": "-1", "message": "Dữ liệu không hợp lệ"})
        if self.mode == "moved":  # end-to-end headers, one named hop-by-hop, a gzip body
            moved = web.json_response(
                {"error_code": "0", "message": "Đã chuyển"},
                status=302,
                headers={"Location": "https://portal.example/v2/", "Connection": "X-Hop"},
            )
            moved.headers.add("Set-Cookie", "a=1")
            moved.headers.add("Set-Cookie", "b=2")
            moved.headers["X-Hop"] = "this connection only"
            moved.headers["X-Portal-Trace"] = "t-42"
            moved.enable_compression(web.ContentCoding.gzip)
            return moved
        return web.json_response({"error_code": "0", "message": "Thêm mới hồ sơ thành công"})


@pytest.fixture
async def portal() -> AsyncIterator[tuple[Portal, str]]:
    stand_in = Portal()
    app = web.Application()
    app.router.add_post("/{tail:.*}", stand_in.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield stand_in, str(server.make_url("/dvcqg")).rstrip("/")


async def _json(response: Any) -> Any:
    return orjson.loads(await response.read())


def gateway_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the gateway logged. The test server's own access log is left out: `motcua
    gateway` runs aiohttp with access_log=None (server.py run_gateway), so a path's secret
    is never written there."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")


# -- A: the .NET sender, no credential: a path secret ------------------------------------------


async def test_dotnet_posts_with_no_header_to_its_secret_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = make(tmp_path, sources_toml())
    async with TestClient(TestServer(build_app(gateway))) as client:
        # What RequestHandler sends: Accept and a JSON body, nothing else.
        headers = {"Accept": "application/json"}
        for secret in (SECRET, OLD_SECRET):  # both during a rotation
            response = await client.post(
                f"/v1/in/{secret}/api/v1/ThemMoi", json=dotnet_post(), headers=headers
            )
            answer = await _json(response)
            assert response.status == 200 and answer["error_code"] == "0", answer
            assert "thành công" in answer["message"]
        for wrong in ("nope", SECRET[:-1], SECRET + "x"):
            response = await client.post(f"/v1/in/{wrong}/api/v1/ThemMoi", json=dotnet_post())
            assert response.status == 401
        sources = {dict(r.headers)["motcua-source"] for r in gateway.sink.records}  # type: ignore[attr-defined]
        assert sources == {b"dvc-dotnet"}
        # The progress path carries progress rows.
        row = {
            "MaHoSo": DOTNET[0].number,
            "ChucDanh": "Chuyên viên",
            "NgayBatDau": "20261102100000",
            "NgayKetThucTheoQuyDinh": "20261103170000",
            "NguoiXuLy": "Lê Thị Mai",
            "NoiDungXuLy": "",
            "PhongBanXuLy": "Phòng Quản lý xây dựng",
            "ThoiDiemXuLy": "20261103100000",
            "TrangThai": "4",
        }
        response = await client.post(f"/v1/in/{SECRET}{PROGRESS_TAIL}", json=[row])
        answer = await _json(response)
        assert answer["error_code"] == "0", answer
        assert len(answer["motcua"]["results"][0]["event_ids"]) == 2
        metrics = (await (await client.get("/metrics")).read()).decode()
    assert 'route="sender_inbox"' in metrics
    for text in (gateway_log(caplog), metrics):
        assert SECRET not in text and OLD_SECRET not in text
        assert all(pii not in text for pii in PII_STRINGS)


async def test_a_network_allowlist_refuses_other_peers(tmp_path: Path) -> None:
    gateway = make(tmp_path, sources_toml(networks='networks = ["10.20.0.0/16"]\n'))
    async with TestClient(TestServer(build_app(gateway))) as client:
        response = await client.post(f"/v1/in/{SECRET}/api", json=dotnet_post())
        assert response.status == 403
        assert (await _json(response))["motcua"]["error"] == "forbidden_network"
    assert gateway.sink.records == []  # type: ignore[attr-defined]
    gateway = make(tmp_path, sources_toml(networks='networks = ["127.0.0.0/8", "::1/128"]\n'))
    async with TestClient(TestServer(build_app(gateway))) as client:
        response = await client.post(f"/v1/in/{SECRET}/api", json=dotnet_post())
        assert response.status == 200


# -- behind a reverse proxy: X-Forwarded-For only from MOTCUA_GATEWAY_TRUSTED_PROXIES -----------

PROXIES = parse_networks(["10.0.0.0/24", "192.0.2.1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        # No trusted proxies: the header is never read.
        ("10.0.0.5", ["203.0.113.7"], (), "10.0.0.5"),
        # The peer is not a trusted proxy: its header may be forged.
        ("198.51.100.4", ["10.20.1.2"], PROXIES, "198.51.100.4"),
        # From a trusted proxy: the address it saw.
        ("10.0.0.5", ["203.0.113.7"], PROXIES, "203.0.113.7"),
        # Right-most untrusted wins: the caller wrote the left part, each proxy appended.
        ("10.0.0.5", ["10.20.1.2, 203.0.113.7, 192.0.2.1"], PROXIES, "203.0.113.7"),
        ("10.0.0.5", ["10.20.1.2", "203.0.113.7"], PROXIES, "203.0.113.7"),  # two headers
        # Nothing forwarded, or only proxies: the left-most.
        ("10.0.0.5", [], PROXIES, "10.0.0.5"),
        ("10.0.0.5", ["192.0.2.1, 10.0.0.9"], PROXIES, "192.0.2.1"),
        # A malformed entry is the caller's address as written: no allowlist admits it.
        ("10.0.0.5", ["10.20.1.2, not-an-address"], PROXIES, "not-an-address"),
        ("10.0.0.5", ["10.20.1.2, "], PROXIES, ""),
        ("::ffff:10.0.0.5", ["2001:db8::7"], PROXIES, "2001:db8::7"),  # IPv4-mapped peer
    ],
)
def test_the_client_address_believes_only_trusted_proxies(
    peer: str, forwarded: list[str], trusted: tuple[Any, ...], client: str
) -> None:
    assert client_address(peer, forwarded, trusted) == client


async def test_the_network_allowlist_sees_through_a_trusted_proxy_only(tmp_path: Path) -> None:
    networks = 'networks = ["10.20.0.0/16"]\n'
    # The test client's peer is 127.0.0.1, standing in for the reverse proxy.
    gateway = make(tmp_path, sources_toml(networks=networks), trusted_proxies=("127.0.0.0/8",))
    async with TestClient(TestServer(build_app(gateway))) as client:
        for forwarded, status in [
            ("10.20.1.2", 200),
            ("10.20.1.2, 127.0.0.1", 200),  # a second proxy of ours in the chain
            ("10.20.1.2, 198.51.100.9", 403),  # the caller forged the left-most
            ("198.51.100.9", 403),
            ("garbage", 403),
        ]:
            response = await client.post(
                f"/v1/in/{SECRET}/api", json=dotnet_post(), headers={"X-Forwarded-For": forwarded}
            )
            assert response.status == status, forwarded
        response = await client.post(f"/v1/in/{SECRET}/api", json=dotnet_post())
        assert response.status == 403  # no header: the proxy's own address
    # Without trusted proxies the header is never honoured, whoever sends it.
    gateway = make(tmp_path, sources_toml(networks=networks))
    async with TestClient(TestServer(build_app(gateway))) as client:
        response = await client.post(
            f"/v1/in/{SECRET}/api", json=dotnet_post(), headers={"X-Forwarded-For": "10.20.1.2"}
        )
        assert response.status == 403
        assert (await _json(response))["motcua"]["error"] == "forbidden_network"


async def test_failed_logins_are_limited_per_forwarded_address(tmp_path: Path) -> None:
    gateway = make(tmp_path, sources_toml(), trusted_proxies=("127.0.0.0/8",))
    async with TestClient(TestServer(build_app(gateway))) as client:

        async def login(password: str, address: str) -> int:
            headers = {**OPENCPS_HEADERS, "X-Forwarded-For": address}
            response = await client.post(
                "/v1/opencps/auth", json=login_body(password), headers=headers
            )
            return response.status

        statuses = [await login("wrong", "203.0.113.7") for _ in range(MAX_FAILURES + 1)]
        assert statuses == [401] * MAX_FAILURES + [429]
        # Another caller behind the same proxy is not locked out by the first.
        assert await login(PASSWORD, "203.0.113.8") == 200
    # With networks, a login is judged by the forwarded address too.
    networks = 'networks = ["203.0.113.0/24"]\n'
    text = sources_toml().replace("[sources.opencps-bg]\n", f"[sources.opencps-bg]\n{networks}")
    gateway = make(tmp_path, text, trusted_proxies=("127.0.0.0/8",))
    async with TestClient(TestServer(build_app(gateway))) as client:
        for address, status in [("198.51.100.9", 401), ("203.0.113.7", 200)]:
            headers = {**OPENCPS_HEADERS, "X-Forwarded-For": address}
            response = await client.post("/v1/opencps/auth", json=login_body(), headers=headers)
            assert response.status == status, address


@pytest.mark.parametrize(
    "bad",
    [
        '[sources.a]\nauth = "path_secret"\n',  # no hash
        '[sources.a]\nauth = "path_secret"\npath_secret_sha256 = "plain"\n',
        f'[sources.a]\nauth = "opencps_login"\nlogin_user = "u"\nlogin_password = "{PASSWORD}"\n',
        f'[sources.a]\nauth = "opencps_login"\nlogin_password = "{PASSWORD_LINE}"\n',
        f'[sources.a]\nauth = "bearer"\nlogin_user = "u"\nlogin_password = "{PASSWORD_LINE}"\n',
        f'[sources.a]\nauth = "path_secret"\npath_secret_sha256 = "{"a" * 64}"\nnetworks = ["x"]\n',
        '[sources.a]\nupstream = "ftp://portal"\n',
        "[sources.a]\nsession_minutes = 10\n",  # OpenCPS keeps its session 10 minutes
    ],
)
def test_bad_credential_keys_are_refused(bad: str) -> None:
    with pytest.raises(SourcesFileError):
        parse_sources(bad)


def test_password_lines_are_salted_scrypt() -> None:
    assert PASSWORD_LINE.startswith("scrypt$16384$8$1$")
    assert hash_password(PASSWORD) != PASSWORD_LINE  # a new salt each time
    assert password_matches(PASSWORD, PASSWORD_LINE)
    assert not password_matches(PASSWORD + " ", PASSWORD_LINE)
    assert not password_matches(PASSWORD, "scrypt$3$8$1$AA$AA")


# -- B: OpenCPS's own login ----------------------------------------------------------------------


def login_body(password: str = PASSWORD) -> dict[str, str]:
    # getAccessToken: a JSON object of username and password (JSONFactoryUtil), with the
    # headers Accept, Content-Type application/json, Charset utf-8 and dstcode.
    return {"username": USER, "password": password}


OPENCPS_HEADERS = {"Accept": "application/json", "Charset": "utf-8", "dstcode": OPENCPS_DSTCODE}


async def test_opencps_logs_in_then_syncs_with_its_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = make(tmp_path, sources_toml())
    async with TestClient(TestServer(build_app(gateway))) as client:
        response = await client.post("/v1/opencps/auth", json=login_body(), headers=OPENCPS_HEADERS)
        login = await _json(response)
        assert response.status == 200 and login["error_code"] == 0, login
        session = login["session"]
        assert isinstance(session, str) and len(session) >= 32
        # The lookup OpenCPS makes before each sync (hasSyncDossier): nothing kept here.
        lookup = {"session": session, "madonvi": "000.00.00.H19", "service": "TraCuuHoSo"}
        response = await client.post("/v1/opencps/dvcqg", json=lookup, headers=OPENCPS_HEADERS)
        assert (await _json(response))["result"] == []
        response = await client.post(
            "/v1/opencps/dvcqg", json=opencps_envelope(session), headers=OPENCPS_HEADERS
        )
        answer = await _json(response)
        assert response.status == 200 and answer["error_code"] == "0", answer
        # Its progress envelope goes to the same endpoint; OpenCPS leaves PhongBanXuLy "".
        progress = {
            "session": session,
            "madonvi": "000.00.00.H19",
            "service": "CapNhatTienDoHoSoMC",
            "data": [{"MaHoSo": OPENCPS[0].number, "PhongBanXuLy": "", "NgayBatDau": ""}],
        }
        response = await client.post("/v1/opencps/dvcqg", json=progress, headers=OPENCPS_HEADERS)
        assert (await _json(response))["motcua"]["results"][0]["reason"] == "no_department"
        # Without the dstcode header, or with a session never issued: refused.
        response = await client.post("/v1/opencps/dvcqg", json=opencps_envelope(session))
        assert response.status == 401
        response = await client.post(
            "/v1/opencps/dvcqg", json=opencps_envelope("forged"), headers=OPENCPS_HEADERS
        )
        assert response.status == 401
        # The session expires.
        gateway.sessions.clock = lambda: 1e12
        response = await client.post(
            "/v1/opencps/dvcqg", json=opencps_envelope(session), headers=OPENCPS_HEADERS
        )
        assert response.status == 401
        metrics = (await (await client.get("/metrics")).read()).decode()
    assert 'motcua_gateway_logins_total{result="accepted"} 1.0' in metrics
    assert session not in gateway_log(caplog) and PASSWORD not in gateway_log(caplog)


async def test_a_session_holds_across_gateways_and_restarts_sharing_the_key(
    tmp_path: Path,
) -> None:
    # OpenCPS keeps a session ten minutes and never logs in again on a refusal: a gateway
    # restart, or a second gateway behind a load balancer, refused its syncs until then.
    key = b"k" * 32
    first = make(tmp_path, sources_toml(), session_key=key)
    async with TestClient(TestServer(build_app(first))) as client:
        response = await client.post("/v1/opencps/auth", json=login_body(), headers=OPENCPS_HEADERS)
        session = (await _json(response))["session"]
    assert len(session) <= 255  # OpenCPS's opencps_accesstoken.token column
    envelope = opencps_envelope(session)

    async def sync(gateway: Gateway) -> int:
        async with TestClient(TestServer(build_app(gateway))) as client:
            response = await client.post(
                "/v1/opencps/dvcqg", json=envelope, headers=OPENCPS_HEADERS
            )
            return response.status

    # A new gateway (a restart; another replica) with the same key and sources file.
    again = make(tmp_path, sources_toml(), session_key=key)
    assert await sync(again) == 200
    assert len(again.sink.records) > 0  # type: ignore[attr-defined]
    # Another key: not a session this deployment issued.
    assert await sync(make(tmp_path, sources_toml(), session_key=b"x" * 32)) == 401
    # No key configured: each process signs with its own, as sessions were per process.
    assert await sync(make(tmp_path, sources_toml())) == 401
    # The password changed (a new line in the sources file): its sessions end with it.
    rotated = sources_toml().replace(PASSWORD_LINE, hash_password("mat-khau-moi"))
    assert await sync(make(tmp_path, rotated, session_key=key)) == 401
    # The source taken out of the sources file: refused.
    without = sources_toml().split("[sources.opencps-bg]")[0]
    assert await sync(make(tmp_path, without, session_key=key)) == 401


async def test_failed_logins_are_refused_limited_and_logged_without_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = make(tmp_path, sources_toml())
    async with TestClient(TestServer(build_app(gateway))) as client:
        wrong = [login_body("sai-mat-khau-1"), {"username": "ai-do", "password": PASSWORD}]
        for body in wrong:
            response = await client.post("/v1/opencps/auth", json=body, headers=OPENCPS_HEADERS)
            answer = await _json(response)
            assert response.status == 401 and answer["error_code"] == "-1", answer
            assert "session" not in answer
        response = await client.post("/v1/opencps/auth", json=login_body())  # no dstcode
        assert response.status == 401
        for _ in range(MAX_FAILURES - 3):
            await client.post("/v1/opencps/auth", json=login_body("x"), headers=OPENCPS_HEADERS)
        # Locked: even the right password waits now.
        response = await client.post("/v1/opencps/auth", json=login_body(), headers=OPENCPS_HEADERS)
        answer = await _json(response)
        assert response.status == 429 and answer["motcua"]["retry_after"] >= 1, answer
        assert int(response.headers["Retry-After"]) >= 1
    assert "login refused" in gateway_log(caplog)
    for secret in ("sai-mat-khau-1", PASSWORD, "ai-do"):
        assert secret not in gateway_log(caplog)


# -- C: relay mode ------------------------------------------------------------------------------


async def test_dotnet_relayed_the_portal_gets_the_body_unchanged_and_its_answer_comes_back(
    tmp_path: Path, portal: tuple[Portal, str]
) -> None:
    stand_in, base = portal
    gateway = make(tmp_path, sources_toml(upstream=base))
    raw = orjson.dumps(dotnet_post())
    async with TestClient(TestServer(build_app(gateway))) as client:
        url = f"/v1/in/{SECRET}/api/v1/ThemMoi"
        headers = {"Accept": "application/json", "Content-Type": "application/json; charset=utf-8"}
        response = await client.post(url, data=raw, headers=headers)
        assert response.status == 200
        assert await _json(response) == {
            "error_code": "0",
            "message": "Thêm mới hồ sơ thành công",
        }
        path, body, seen_headers = stand_in.seen[-1]
        assert path == "/dvcqg/api/v1/ThemMoi" and body == raw
        assert seen_headers["Accept"] == "application/json"
        assert SECRET not in path
        produced = len(gateway.sink.records)  # type: ignore[attr-defined]
        assert produced > 0
        # The portal refuses: its refusal comes back; our events were produced (a re-send
        # gives the same ids).
        stand_in.mode = "refuse"
        response = await client.post(url, data=raw, headers=headers)
        assert (await _json(response))["error_code"] == "-1"
        ids = [orjson.loads(r.value)["event_id"] for r in gateway.sink.records]  # type: ignore[attr-defined]
        assert ids[produced:] == ids[:produced]
        # The portal fails or is slow: 502-class answers in the portal's shape.
        stand_in.mode = "down"
        response = await client.post(url, data=raw, headers=headers)
        assert response.status == 500
        stand_in.mode = "slow"
        response = await client.post(url, data=raw, headers=headers)
        answer = await _json(response)
        assert response.status == 504 and answer["error_code"] == "-1", answer
        # Kafka does not acknowledge: 503, and the portal is not asked (the sender's
        # re-send carries the body to both).
        stand_in.mode = "ok"
        before = len(stand_in.seen)
        gateway.sink.down = True  # type: ignore[attr-defined]
        response = await client.post(url, data=raw, headers=headers)
        assert response.status == 503 and (await _json(response))["error_code"] == "-1"
        assert len(stand_in.seen) == before
        metrics = (await (await client.get("/metrics")).read()).decode()
    assert 'motcua_gateway_relayed_total{outcome="timeout",source="dvc-dotnet"} 1.0' in metrics


async def test_opencps_relayed_logs_in_at_the_portal_and_its_session_is_accepted(
    tmp_path: Path, portal: tuple[Portal, str]
) -> None:
    stand_in, base = portal
    gateway = make(tmp_path, sources_toml(upstream=base))
    async with TestClient(TestServer(build_app(gateway))) as client:
        response = await client.post("/v1/opencps/auth", json=login_body(), headers=OPENCPS_HEADERS)
        assert await _json(response) == {"error_code": 0, "session": "PORTAL-SESSION-7"}
        path, body, headers = stand_in.seen[-1]
        assert path == "/dvcqg/auth" and orjson.loads(body) == login_body()
        assert headers["dstcode"] == OPENCPS_DSTCODE
        # A wrong password never reaches the portal.
        before = len(stand_in.seen)
        await client.post("/v1/opencps/auth", json=login_body("x"), headers=OPENCPS_HEADERS)
        assert len(stand_in.seen) == before
        envelope = opencps_envelope("PORTAL-SESSION-7")
        response = await client.post("/v1/opencps/dvcqg", json=envelope, headers=OPENCPS_HEADERS)
        assert (await _json(response))["message"] == "Thêm mới hồ sơ thành công"
        assert orjson.loads(stand_in.seen[-1][1]) == envelope
        assert gateway.sink.records  # type: ignore[attr-defined]
        lookup = {"session": "PORTAL-SESSION-7", "service": "TraCuuHoSo", "mahoso": "X"}
        await client.post("/v1/opencps/dvcqg", json=lookup, headers=OPENCPS_HEADERS)
        assert orjson.loads(stand_in.seen[-1][1]) == lookup


async def test_a_relayed_session_ends_when_its_source_is_removed_or_its_password_changes(
    tmp_path: Path, portal: tuple[Portal, str]
) -> None:
    _, base = portal
    gateway = make(tmp_path, sources_toml(upstream=base))
    envelope = opencps_envelope("PORTAL-SESSION-7")
    path = tmp_path / "sources.toml"
    async with TestClient(TestServer(build_app(gateway))) as client:

        async def sync() -> int:
            response = await client.post(
                "/v1/opencps/dvcqg", json=envelope, headers=OPENCPS_HEADERS
            )
            return response.status

        async def login() -> None:
            response = await client.post(
                "/v1/opencps/auth", json=login_body(), headers=OPENCPS_HEADERS
            )
            assert (await _json(response))["session"] == "PORTAL-SESSION-7"

        await login()
        assert await sync() == 200
        # A new password in the sources file: the portal's session is no longer ours.
        rotated = sources_toml(upstream=base).replace(PASSWORD_LINE, hash_password("mật khẩu mới"))
        path.write_text(rotated, encoding="utf-8")
        os.utime(path, ns=(1, 2_000_000_000_000_000_000))
        assert await sync() == 401
        path.write_text(sources_toml(upstream=base), encoding="utf-8")
        os.utime(path, ns=(1, 3_000_000_000_000_000_000))
        await login()
        assert await sync() == 200
        # The source taken out: it would fall back to the default profile (no networks, no
        # upstream); its session ends instead.
        path.write_text(sources_toml(upstream=base).split("[sources.opencps-bg]")[0])
        os.utime(path, ns=(1, 4_000_000_000_000_000_000))
        produced = len(gateway.sink.records)  # type: ignore[attr-defined]
        assert await sync() == 401
        assert len(gateway.sink.records) == produced  # type: ignore[attr-defined]


async def test_relay_forwards_the_query_string_and_the_decoded_body_and_returns_the_headers(
    tmp_path: Path, portal: tuple[Portal, str]
) -> None:
    stand_in, base = portal
    gateway = make(tmp_path, sources_toml(upstream=base))
    raw = orjson.dumps(dotnet_post())
    async with TestClient(TestServer(build_app(gateway))) as client:
        query = "service=DongBoHoSoMC&ma=a+b&x=%2B%20y&k=%C3%A9&e="
        response = await client.post(
            f"/v1/in/{SECRET}/api/v1/ThemMoi?{query}",
            data=gzip.compress(raw),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert response.status == 200, await response.text()
        path, body, headers = stand_in.seen[-1]
        assert path == "/dvcqg/api/v1/ThemMoi" and stand_in.queries[-1] == query
        # The body forwarded is the one decoded: no Content-Encoding claims otherwise.
        assert body == raw and "Content-Encoding" not in headers
        assert gateway.sink.records  # type: ignore[attr-defined]
        # The portal's own headers come back; those of its connection do not.
        stand_in.mode = "moved"
        response = await client.post(
            f"/v1/in/{SECRET}/api/v1/ThemMoi", json=dotnet_post(), allow_redirects=False
        )
        assert response.status == 302
        assert response.headers["Location"] == "https://portal.example/v2/"
        assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
        assert response.headers["X-Portal-Trace"] == "t-42"
        assert "X-Hop" not in response.headers and "Content-Encoding" not in response.headers
        assert response.headers["Content-Type"].startswith("application/json")
        assert (await _json(response))["message"] == "Đã chuyển"
