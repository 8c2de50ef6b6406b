"""Every whole-request error, on every ingestion route, for a source answered in each shape.

The gateway has one pipeline: a route only reads and maps. So 401, 413 (bytes and items),
415, 400, 429 (with `retry_after` in the body and `Retry-After` as a header) and 503 must look
the same on every route: motcua's {"error", "sentence"} for a motcua source and on the
contract-events route, the portal's {"error_code": "-1", "message", "motcua": {...}} for a
portal source on the national-sync routes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_gateway_app import NOW, MemorySink, dossier, event

from service.ingest.gateway.app import Gateway, GatewayLimits, build_app
from service.ingest.gateway.limits import RateLimiter
from service.ingest.gateway.sources import SourcesFile
from service.ingest.gateway.tokens import TokenBook, token_hash
from service.ingest.gateway.units import UnitsFile

TOKEN = "t0ken-errors"
MAX_BODY = 4096
MAX_ITEMS = 3


def _row(n: int) -> dict[str, Any]:
    return {
        "MaHoSo": f"000.00.07.H19-261120-{n:04d}",
        "PhongBanXuLy": "Phòng Quản lý xây dựng",
        "NgayBatDau": "20261120100000",
        "NgayKetThucTheoQuyDinh": "20261123170000",
    }


# path, one good item, whether a portal profile changes the answer's shape
ROUTES = [
    ("/v1/events", event, False),
    ("/v1/national-sync/dossiers", dossier, True),
    ("/v1/national-sync/progress", _row, True),
]


def _gateway(tmp_path: Path, answer: str, clock: list[float]) -> Gateway:
    units_path = tmp_path / "units.csv"
    units_path.write_text(
        "unit,agency,department\nSở Xây dựng,SXD,\nPhòng Quản lý xây dựng,SXD,SXD.QLXD\n"
    )
    tokens_path = tmp_path / "tokens"
    tokens_path.write_text(f"center-a {token_hash(TOKEN)}\n")
    sources_path = tmp_path / "sources.toml"
    sources_path.write_text(f'[sources.center-a]\nanswer = "{answer}"\n')
    units, tokens, sources = (
        UnitsFile(units_path),
        TokenBook(tokens_path),
        SourcesFile(sources_path),
    )
    for reference in (units, tokens, sources):
        reference.load()
    return Gateway(
        sink=MemorySink(),
        tokens=tokens,
        units=units,
        limits=GatewayLimits(MAX_BODY, MAX_ITEMS),
        limiter=RateLimiter(rate=1, burst=3, clock=lambda: clock[0]),
        clock=lambda: NOW,
        sources=sources,
    )


def _check(body: dict[str, Any], code: str, portal: bool) -> dict[str, Any]:
    """The error's own part ({"error", "sentence", ...}) after checking the shape."""
    if portal:
        assert body["error_code"] == "-1", body
        assert "thất bại" in body["message"] and code in body["message"], body
        body = body["motcua"]
    else:
        assert "error_code" not in body, body
    assert body["error"] == code and body["sentence"], body
    return body


@pytest.mark.parametrize("answer", ["motcua", "portal"])
@pytest.mark.parametrize(("path", "item", "profiled"), ROUTES)
async def test_every_error_has_the_source_s_shape_on_every_route(
    tmp_path: Path, answer: str, path: str, item: Any, profiled: bool
) -> None:
    clock = [0.0]
    gateway = _gateway(tmp_path, answer, clock)
    portal = profiled and answer == "portal"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with TestClient(TestServer(build_app(gateway))) as client:

        async def post(
            data: bytes,
            headers: dict[str, str] | None = None,
            content_type: str = "application/json",
        ) -> tuple[int, dict[str, str], dict[str, Any]]:
            sent = {"Content-Type": content_type, **(auth if headers is None else headers)}
            response = await client.post(path, data=data, headers=sent)
            return response.status, dict(response.headers), orjson.loads(await response.read())

        one = orjson.dumps([item(1)])
        # 401: nobody is known yet, so motcua's shape whatever the profile.
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            status, got_headers, body = await post(one, headers)
            assert status == 401 and got_headers["WWW-Authenticate"].startswith("Bearer")
            _check(body, "unauthorized", portal=False)
        # 413: too many bytes, too many items.
        status, _, body = await post(b"[" + b" " * MAX_BODY + b"]")
        assert status == 413
        _check(body, "body_too_large", portal)
        status, _, body = await post(orjson.dumps([item(n) for n in range(MAX_ITEMS + 1)]))
        assert status == 413
        _check(body, "too_many_items", portal)
        # 415 and 400: bodies that cannot be read at all.
        status, _, body = await post(one, content_type="text/plain")
        assert status == 415
        _check(body, "unsupported_media_type", portal)
        status, _, body = await post(b"{nope")
        assert status == 400
        _check(body, "not_json", portal)
        status, _, body = await post(b'["\xff"]')
        assert status == 400
        _check(body, "not_utf8", portal)
        status, _, body = await post(b"42")
        assert status == 400
        _check(body, "not_object_or_array", portal)
        # 429: a burst of three items, one a second; two taken, then two more wanted.
        status, _, _ = await post(orjson.dumps([item(1), item(2)]))
        assert status == 200
        status, headers, body = await post(orjson.dumps([item(3), item(4)]))
        assert status == 429
        # One token left, two needed at one a second: one second to wait.
        assert _check(body, "rate_limited", portal)["retry_after"] == 1
        assert headers["Retry-After"] == "1"
        # 503: the broker does not acknowledge; nothing is claimed.
        clock[0] = 100.0
        gateway.sink.down = True  # type: ignore[attr-defined]
        status, headers, body = await post(one)
        assert status == 503 and headers["Retry-After"] == "5"
        own = _check(body, "broker_unavailable", portal)
        assert own["retry_after"] == 5 and "accepted" not in own
