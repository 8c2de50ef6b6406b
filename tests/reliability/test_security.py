"""Security basics: Kafka over TLS and SASL_SSL from env, the web port on localhost,
no payloads or dossier ids in INFO logs, bad query parameters refused with 400."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import ROOT, WorkerProcess, consume_all, free_port, produce, unique, wait_for
from reliability_tools import SASL_USER, SecuredBroker, as_message, scenario, wait_settled_exact

from service.ingest.publisher import DossierPublisher, PublishError
from service.kafka_security import KafkaSecurity

pytestmark = pytest.mark.reliability


def security_env(
    broker: SecuredBroker, protocol: str, password: str | None = None
) -> dict[str, str]:
    env = {
        "MOTCUA_KAFKA_SECURITY_PROTOCOL": protocol,
        "MOTCUA_KAFKA_SSL_CAFILE": broker.cafile,
    }
    if protocol == "SASL_SSL":
        env.update(
            MOTCUA_KAFKA_SASL_MECHANISM="PLAIN",
            MOTCUA_KAFKA_SASL_USERNAME=SASL_USER[0],
            MOTCUA_KAFKA_SASL_PASSWORD=password if password is not None else SASL_USER[1],
        )
    return env


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_worker_and_publish_over_a_secured_listener(
    secured_broker: SecuredBroker, start_worker: Any, tmp_path: Path, protocol: str
) -> None:
    broker = secured_broker
    bootstrap = broker.ssl_bootstrap if protocol == "SSL" else broker.sasl_bootstrap
    env = security_env(broker, protocol)
    # The worker reads every setting from env: faust (aiokafka) and kafka-python both use them.
    worker: WorkerProcess = start_worker(bootstrap, extra_env=env)
    events = scenario(150, seed=67)
    lines = tmp_path / "events.jsonl"
    lines.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    # `motcua publish` takes the same env.
    result = subprocess.run(
        [sys.executable, "-m", "service", "publish", str(lines)],
        cwd=ROOT,
        env={**os.environ, **env, "MOTCUA_BROKER": bootstrap, "MOTCUA_TOPIC": worker.topic},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "all acknowledged" in result.stdout
    wait_settled_exact([worker], events, timeout=180)

    assert SASL_USER[1] not in worker.log_text() + result.stdout + result.stderr
    # A plaintext client cannot talk to the TLS port.
    with (
        pytest.raises(PublishError),
        DossierPublisher(
            bootstrap, worker.topic, delivery_timeout=5, security=KafkaSecurity()
        ) as plaintext,
    ):
        plaintext.publish(events[0])


def test_wrong_sasl_password_is_refused_and_not_echoed(secured_broker: SecuredBroker) -> None:
    broker = secured_broker
    wrong = f"wrong-{uuid.uuid4().hex}"
    security = KafkaSecurity.from_env(security_env(broker, "SASL_SSL", password=wrong))
    assert wrong not in repr(security)
    with (
        pytest.raises(PublishError) as caught,
        DossierPublisher(
            broker.sasl_bootstrap, unique("sasl"), delivery_timeout=8, security=security
        ) as publisher,
    ):
        publisher.publish(scenario(1, seed=1, duplicate_ratio=0.0)[0])
    assert wrong not in str(caught.value)


# -- the web port -------------------------------------------------------------------------


def listening(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on `port` (from /proc/net/tcp{,6})."""
    out: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                out.add(_address(address))
    return out


def _address(hex_address: str) -> str:
    if len(hex_address) == 8:
        return ".".join(str(b) for b in reversed(bytes.fromhex(hex_address)))
    words = [bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, 32, 8)]
    raw = b"".join(words)
    if raw[:12] == b"\x00" * 10 + b"\xff\xff":
        return ".".join(str(b) for b in raw[12:])
    return "::" if raw == bytes(16) else raw.hex()


def test_demo_serves_on_localhost_by_default_on_the_port_asked_for(
    kafka_broker: Any, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env.update(
        MOTCUA_BROKER=kafka_broker.bootstrap,
        MOTCUA_TOPIC=unique("demo"),
        MOTCUA_APP_ID=unique("demo-app"),
        MOTCUA_DATA_DIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
    )
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service",
            "demo",
            "--port",
            str(port),
            "--dossiers",
            "30",
            "--rate",
            "0",
            "--duration",
            "5",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        said = []
        for line in demo.stdout:
            said.append(line)
            if "worker ready" in line:
                break
        assert any(f"http://127.0.0.1:{port}/metrics" in line for line in said), said
        assert listening(port) == {"127.0.0.1"}
        said.extend(demo.stdout)
        assert demo.wait(120) == 0, "".join(said)
    finally:
        if demo.poll() is None:
            demo.terminate()
            demo.wait(60)


def test_web_host_is_configurable(worker_factory: Any) -> None:
    worker: WorkerProcess = worker_factory(extra_env={"MOTCUA_WEB_HOST": "0.0.0.0"})
    assert listening(worker.web_port) == {"0.0.0.0"}


# -- logs ---------------------------------------------------------------------------------


def test_info_logs_hold_no_payload_and_no_dossier_id(
    kafka_broker: Any, worker_factory: Any
) -> None:
    worker: WorkerProcess = worker_factory()  # --loglevel info, the default
    marker = f"PAYLOAD-{uuid.uuid4().hex}"
    events = [{**e, "note": marker} for e in scenario(120, seed=71)]
    crowded = "LOGCHECK-CROWDED"
    too_many = [
        {
            "event_id": f"{crowded}-{n}",
            "dossier_id": crowded,
            "type": "appraised",
            "occurred_at": "2026-01-05T09:00:00+07:00",
        }
        for n in range(205)
    ]
    bad: list[tuple[bytes | None, bytes]] = [
        (b"LOGCHECK-K1", f'{{"event_id": "LOGCHECK-E1", "note": "{marker}"'.encode()),
        (b"LOGCHECK-K2", f'["{marker}"]'.encode()),
        (
            b"LOGCHECK-OTHER",
            orjson.dumps({**events[0], "event_id": "LOGCHECK-E3", "dossier_id": "LOGCHECK-D3"}),
        ),
        (
            b"LOGCHECK-D4",
            orjson.dumps(
                {
                    **events[0],
                    "event_id": "LOGCHECK-E4",
                    "dossier_id": "LOGCHECK-D4",
                    "occurred_at": marker,
                }
            ),
        ),
        (b"LOGCHECK-D5", ("\xff" + marker).encode("latin-1")),
        (b"LOGCHECK-D6", marker.encode() * 3000),
    ]
    produce(
        kafka_broker.bootstrap,
        worker.topic,
        [*(as_message(e) for e in events), *bad, *(as_message(e) for e in too_many)],
    )
    wait_settled_exact([worker], events, timeout=180)
    # Every reject was logged (a re-read message may be rejected twice: at-least-once input).
    dead = consume_all(kafka_broker.bootstrap, f"{worker.topic}-dlq", len(bad) + 5)
    assert {m.value for m in dead} >= {value for _, value in bad}
    worker.stop()  # flush the log

    log = worker.log_text()
    assert "rejected" in log and "[INFO]" in log, "the worker did not log at INFO"
    secrets = {marker, crowded, "LOGCHECK"}
    secrets |= {e["dossier_id"] for e in events} | {e["event_id"] for e in events}
    leaked = sorted(s for s in secrets if s in log)
    assert leaked == [], f"in the INFO log: {leaked[:5]}"


# -- JSON endpoints -----------------------------------------------------------------------

BAD_QUERIES = [
    "/api/procedures?state=nonsense",
    "/api/procedures?state=" + "overdue" * 20,
    "/api/procedures?agency=" + "A" * 65,
    "/api/procedures?agency=" + "A" * 5000,
    "/api/procedures?agency=%00",
    "/api/procedures?agency=SXD%0A",
    "/api/procedures?agency=%1b%5b31m",
    "/api/procedures?limit=0",
    "/api/procedures?limit=-1",
    "/api/procedures?limit=501",
    "/api/procedures?limit=99999999999999999999999999",
    "/api/procedures?limit=abc",
    "/api/procedures?limit=5.0",
    "/api/procedures?limit=0x10",
    "/api/procedures?limit=%205",
    "/api/procedures?limit=" + urllib.parse.quote("²"),
    "/api/procedures?limit=" + urllib.parse.quote("٣"),
    "/api/report?from=2026-01-01",
    "/api/report?to=2026-01-01",
    "/api/report?from=2026-02-30&to=2026-03-01",
    "/api/report?from=yesterday&to=2026-03-01",
    "/api/report?from=2026-03-01&to=2026-01-01",
    "/api/report?from=2000-01-01&to=2099-12-31",
    "/api/report?from=" + "2026-01-01" * 10 + "&to=2026-03-01",
    "/api/report?from=2026-01-01%00&to=2026-03-01",
    "/api/report?from=2026-01-01&to=2026-03-01&agency=" + "B" * 100,
]


def test_json_endpoints_refuse_bad_query_parameters(worker_factory: Any) -> None:
    worker: WorkerProcess = worker_factory()
    answers = {}
    for path in BAD_QUERIES:
        status, body = worker.get(path)
        answers[path[:60]] = status
        if status == 400:
            assert "error" in json.loads(body), path
    wrong = {path: status for path, status in answers.items() if status != 400}
    assert wrong == {}, f"answered with other than 400: {wrong}"
    # An oversized request line is refused by the web server itself.
    status, _ = worker.get("/api/procedures?agency=" + "A" * 20_000)
    assert status == 400
    assert worker.get("/api/procedures?state=overdue&limit=5")[0] == 200
    assert worker.get("/api/report?from=2026-01-01&to=2026-03-01")[0] == 200
    assert worker.alive()
    assert wait_for(lambda: worker.get("/healthz")[0] == 200, 10)
