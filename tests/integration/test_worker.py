"""The worker on the real local broker: events in, exact counters out."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from harness import (
    WorkerProcess,
    consume_all,
    produce,
    produce_events,
    wait_exact,
    wait_for,
)

from service.tools.simulate import SimulationConfig, generate

pytestmark = pytest.mark.integration

# (key, value, expected reason): one of each kind of bad input the contract rejects.
BAD_MESSAGES: list[tuple[bytes | None, bytes, str]] = [
    (b"X1", b"\xff\xfe not utf-8", "not_utf8"),
    (b"X2", b'{"event_id": "e", "dossier_id"', "not_json"),
    (b"X3", b"[1, 2, 3]", "not_object"),
    (
        b"X4",
        b'{"schema_version": 2, "event_id": "e", "dossier_id": "X4", "type": "approved",'
        b' "occurred_at": "2026-01-05T09:00:00+07:00"}',
        "bad_schema_version",
    ),
    (
        b"X5",
        b'{"event_id": "e", "dossier_id": "X5", "type": "approved",'
        b' "occurred_at": "2026-01-05T09:00:00"}',
        "naive_timestamp",
    ),
    (
        b"X6",
        b'{"event_id": "e", "dossier_id": "X6", "type": "teleported",'
        b' "occurred_at": "2026-01-05T09:00:00+07:00"}',
        "unknown_type",
    ),
    (
        b"X7",
        b'{"event_id": "e", "dossier_id": "X7", "type": "received",'
        b' "occurred_at": "2026-01-05T09:00:00+07:00", "agency": "A", "procedure": "1.1",'
        b' "channel": "fax", "processing_days": 3}',
        "bad_channel",
    ),
    (
        b"OTHER",
        b'{"event_id": "e", "dossier_id": "X8", "type": "approved",'
        b' "occurred_at": "2026-01-05T09:00:00+07:00"}',
        "key_mismatch",
    ),
    (None, b"", "not_json"),
    (b"X9", b"x" * 70_000, "too_large"),
]


def scenario(dossiers: int, seed: int) -> list[dict[str, Any]]:
    """Simulated center traffic with re-sent events and out-of-order delivery."""
    config = SimulationConfig(
        dossiers=dossiers,
        seed=seed,
        now=datetime.now(UTC) - timedelta(seconds=5),
        duplicate_ratio=0.05,
        shuffle_window=40,
    )
    return list(generate(config))


def interleave(
    events: list[dict[str, Any]], bad: list[tuple[bytes | None, bytes, str]], seed: int
) -> list[tuple[bytes | None, bytes]]:
    messages: list[tuple[bytes | None, bytes]] = [
        (e["dossier_id"].encode(), orjson.dumps(e)) for e in events
    ]
    rng = random.Random(seed)
    for key, value, _ in bad:
        messages.insert(rng.randrange(len(messages) + 1), (key, value))
    return messages


def test_counters_equal_the_domain_core(kafka_broker: Any, worker_factory: Any) -> None:
    worker: WorkerProcess = worker_factory()
    events = scenario(400, seed=7)
    ids = [e["event_id"] for e in events]
    resent = len(ids) - len(set(ids))
    assert resent > 0, "the scenario must carry duplicates to test R7"
    produce(kafka_broker.bootstrap, worker.topic, interleave(events, BAD_MESSAGES, seed=7))

    got, want = wait_exact([worker], events, timeout=120)
    assert got == want
    samples = worker.metrics()
    # A duplicate is an event_id the dossier held from another offset: exactly the re-sent
    # events, whatever the consumer re-read (R7). Produced directly, so the source is "direct".
    assert samples[("motcua_events_duplicate_total", (("source", "direct"),))] == resent
    accepted = sum(v for (n, _), v in samples.items() if n == "motcua_events_total")
    assert accepted == len(set(ids))

    dead = consume_all(kafka_broker.bootstrap, f"{worker.topic}-dlq", len(BAD_MESSAGES))
    assert len(dead) == len(BAD_MESSAGES)
    reasons = Counter(dict(m.headers)["motcua-reason"].decode() for m in dead)
    assert reasons == Counter(reason for _, _, reason in BAD_MESSAGES)
    # The original bytes are kept untouched for replay after a fix.
    assert {m.value for m in dead} == {value for _, value, _ in BAD_MESSAGES}

    def rejected() -> dict[str, float]:
        return {
            dict(labels)["reason"]: v
            for (n, labels), v in worker.metrics().items()
            if n == "motcua_events_rejected_total" and v
        }

    # Rejections are counted as their dead letters are sent, after the batch they came in.
    assert wait_for(lambda: rejected() == dict(reasons), 30), rejected()


def test_dossier_turns_overdue_with_no_further_event(
    kafka_broker: Any, worker_factory: Any
) -> None:
    worker: WorkerProcess = worker_factory()
    now = datetime.now(UTC)
    due = now + timedelta(seconds=4)
    event = {
        "event_id": "due-soon-1",
        "dossier_id": "OVERDUE-1",
        "type": "received",
        "occurred_at": (now - timedelta(hours=2)).isoformat(),
        "agency": "H10.14",
        "procedure": "1.000948",
        "channel": "online",
        "due_at": due.isoformat(),
    }
    produce_events(kafka_broker.bootstrap, worker.topic, [event])
    open_key = ("motcua_dossiers_open", (("agency", "H10.14"), ("state", "overdue")))
    soon_key = ("motcua_dossiers_open", (("agency", "H10.14"), ("state", "due_soon")))
    assert wait_for(lambda: worker.metrics().get(soon_key) == 1, 30)
    assert wait_for(lambda: worker.metrics().get(open_key) == 1, 30)
    samples = worker.metrics()
    assert samples[soon_key] == 0
    assert samples[("motcua_dossiers_became_overdue_total", (("agency", "H10.14"),))] == 1
    assert samples[("motcua_overdue_without_apology", (("agency", "H10.14"),))] == 1

    statuses = consume_all(kafka_broker.bootstrap, "dossier-status", 1, timeout=30)
    mine = [json.loads(m.value) for m in statuses if m.key == b"OVERDUE-1"]
    assert [s["status"] for s in mine][-1] == "overdue"
    assert datetime.fromisoformat(mine[-1]["at"]) == due


def test_kill_nine_mid_stream_then_restart_is_exact(kafka_broker: Any, worker_factory: Any) -> None:
    worker: WorkerProcess = worker_factory()
    events = scenario(600, seed=11)
    half = len(events) // 2
    produce_events(kafka_broker.bootstrap, worker.topic, events[:half])
    # Kill while the first half is still being consumed.
    wait_for(
        lambda: worker.metrics().get(("motcua_events_total", (("type", "received"),))), 30, 0.1
    )
    worker.kill()
    produce_events(kafka_broker.bootstrap, worker.topic, events[half:])
    worker.start()
    got, want = wait_exact([worker], events, timeout=120)
    assert got == want


def test_json_endpoints(kafka_broker: Any, worker_factory: Any) -> None:
    worker: WorkerProcess = worker_factory()
    assert worker.get("/healthz")[0] == 200
    status, body = worker.get("/readyz")
    assert status == 200 and json.loads(body)["ready"] is True
    bad = ("state=nonsense", "limit=0", "limit=abc", "limit=%C2%B2", "agency=" + "A" * 200)
    for query in bad:
        status, body = worker.get(f"/api/procedures?{query}")
        assert status == 400, query
        assert "error" in json.loads(body)
    status, body = worker.get("/api/procedures?state=in_time&limit=5")
    assert status == 200
    report = json.loads(body)
    assert report["truncated"] is False and report["procedures"] == []
