"""Both open senders deployed as they are, through a real gateway, real Kafka and a worker:
the .NET system posting with no header to its secret URL, OpenCPS logging in first and
syncing with its session; each direct and relaying to a stand-in portal on loopback. The
worker's counts are the hand-worked ones of tests/sync_senders.py, dossier by dossier, and
no personal datum or secret reaches Kafka, the logs, the metrics or the answers."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from harness import (
    DOSSIER_FAMILIES,
    WorkerProcess,
    consume_all,
    dossier_counts,
    gateway_in_process,
    wait_for,
)
from sync_senders import (
    DOTNET,
    OPENCPS,
    OPENCPS_DSTCODE,
    PII_STRINGS,
    PROCEDURES_CSV,
    UNITS_CSV,
    at,
    dotnet_body,
    opencps_body,
)

from service.ingest.gateway import app as gateway_app
from service.ingest.gateway.credentials import hash_password, secret_hash
from service.ingest.gateway.tokens import token_hash

pytestmark = pytest.mark.integration

SECRET = "x7-dotnet-base-url-secret-Jk2"
USER, PASSWORD = "opencps-dvcqg", "OpenCPS-mật-khẩu-9"


def _sources(upstream: str | None) -> str:
    relay = f'upstream = "{upstream}"\n' if upstream else ""
    return (
        "[sources.dotnet-test]\n"
        'auth = "path_secret"\n'
        f'path_secret_sha256 = "{secret_hash(SECRET)}"\n'
        'answer = "portal"\n'
        'finished_without_date = "paused"\n'
        f"{relay}\n"
        "[sources.opencps-test]\n"
        'auth = "opencps_login"\n'
        f'login_user = "{USER}"\n'
        f'login_password = "{hash_password(PASSWORD)}"\n'
        f'dstcode_sha256 = "{token_hash(OPENCPS_DSTCODE)}"\n'
        'answer = "portal"\n'
        'default_channel = "direct"\n'
        "online_if_applicant_account = true\n"
        f"{relay}"
    )


class Portal:
    """Answers as the portal does: a session at login, error_code "0" and "thành công"."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.bodies.append(body)
        if request.path.endswith("/auth"):
            return web.json_response({"error_code": 0, "session": "PORTAL-S-1"})
        return web.json_response({"error_code": "0", "message": "Thêm mới thành công"})


@pytest.mark.parametrize("mode", ["direct", "relay"])
def test_both_senders_as_deployed_count_as_worked_out_by_hand(
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    worker = worker_factory()
    clock = [datetime.now(UTC)]
    answers: list[bytes] = []
    portal = Portal()
    metrics: list[str] = []

    async def run() -> None:
        portal_app = web.Application()
        portal_app.router.add_post("/{tail:.*}", portal.handle)
        async with TestServer(portal_app, host="127.0.0.1") as portal_server:
            upstream = str(portal_server.make_url("/dvcqg")) if mode == "relay" else None
            for name, text in (
                ("units.csv", UNITS_CSV),
                ("procedures.csv", PROCEDURES_CSV),
                ("sources.toml", _sources(upstream)),
            ):
                (tmp_path / name).write_text(text, encoding="utf-8")
            gateway = gateway_in_process(
                worker.bootstrap,
                worker.topic,
                clock,
                tmp_path / "units.csv",
                tmp_path / "procedures.csv",
                tmp_path / "sources.toml",
            )
            await gateway.sink.start()
            try:
                assert await _ready(gateway)
                async with TestClient(TestServer(gateway_app.build_app(gateway))) as client:
                    await _post_everything(client, clock, answers)
                    metrics.append((await (await client.get("/metrics")).read()).decode())
            finally:
                await gateway.sink.stop()

    asyncio.run(run())
    parsed = [orjson.loads(a) for a in answers]
    # Both senders read the portal's answer: every post was a success to them.
    assert [a.get("error_code") for a in parsed] == ["0"] * len(parsed), parsed
    want: Counter[Any] = Counter()
    for lifecycle in (*DOTNET, *OPENCPS):
        for key in lifecycle.expected:
            name, label_names = DOSSIER_FAMILIES[key[0]]
            want[(name, tuple(sorted(zip(label_names, key[1:], strict=True))))] += 1
    assert wait_for(lambda: dossier_counts(worker.metrics()) == want, 120), (
        dossier_counts(worker.metrics()),
        want,
        worker.tail(),
    )
    posts = sum(len(life.posts) for life in (*DOTNET, *OPENCPS))
    if mode == "relay":
        # Every body reached the portal unchanged (plus OpenCPS's one login).
        assert len(portal.bodies) == posts + 1
    else:
        assert portal.bodies == []
    stored = consume_all(worker.bootstrap, worker.topic, expected=1, timeout=60)
    places = {
        "kafka": b"".join(m.value + (m.key or b"") for m in stored).decode(),
        "answers": b"\n".join(answers).decode(),
        "metrics": metrics[0],
        "log": "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access"),
    }
    for where, text in places.items():
        for value in (*PII_STRINGS, SECRET, PASSWORD):
            assert value not in text, f"{value!r} reached the {where}"


async def _ready(gateway: Any) -> bool:
    for _ in range(120):
        if await gateway.sink.ready():
            return True
        await asyncio.sleep(0.5)
    return False


async def _post_everything(client: TestClient, clock: list[datetime], answers: list[bytes]) -> None:
    # The .NET sender: RequestHandler posts Base + suffix with Accept and a JSON body only.
    for life in DOTNET:
        for when, state in life.posts:
            clock[0] = at(when)
            body = dotnet_body(life.number, state, life.unit, life.online, life.procedure)
            response = await client.post(
                f"/v1/in/{SECRET}/api/DongBoHoSo",
                data=orjson.dumps(body),
                headers={
                    "Accept": "application/json",
                    "Content-Type": "application/json; charset=utf-8",
                },
            )
            answers.append(await response.read())
    # OpenCPS: getAccessToken first (adapter_url + auth_endpoint), then syncData with the
    # session it got (adapter_url + integration_endpoint), dstcode on both.
    headers = {"Accept": "application/json", "Charset": "utf-8", "dstcode": OPENCPS_DSTCODE}
    response = await client.post(
        "/v1/opencps/auth", json={"username": USER, "password": PASSWORD}, headers=headers
    )
    login = orjson.loads(await response.read())
    assert login["error_code"] == 0, login
    for life in OPENCPS:
        for when, state in life.posts:
            clock[0] = at(when)
            body = opencps_body(life.number, state, life.unit, life.online, life.procedure)
            body["session"] = login["session"]
            response = await client.post("/v1/opencps/dvcqg", json=body, headers=headers)
            answers.append(await response.read())
