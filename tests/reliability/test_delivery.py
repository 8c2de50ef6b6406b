"""Hostile delivery: every event twice, shuffled, and each dossier's later events before its
receipt. Counters are a function of each dossier's set of events (docs/rules.md), so they
must come out the same as for one clean, ordered delivery: the domain core's answer."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import pytest
from harness import WorkerProcess, dossier_counts, produce
from reliability_tools import as_message, scenario, wait_settled_exact

pytestmark = pytest.mark.reliability


@pytest.mark.parametrize(
    "dossiers",
    [pytest.param(700, id="700-dossiers"), pytest.param(5000, id="5000", marks=pytest.mark.long)],
)
def test_twice_shuffled_orphans_first_gives_the_same_counters(
    kafka_broker: Any, worker_factory: Any, dossiers: int
) -> None:
    worker: WorkerProcess = worker_factory()
    events = scenario(dossiers, seed=41, duplicate_ratio=0.0)
    rng = random.Random(41)
    orphans = [e for e in events if e["type"] != "received"]
    twice = events + events
    rng.shuffle(twice)
    delivery = orphans + twice
    assert len({e["event_id"] for e in events}) == len(events)

    # Orphans first (R8): stored, counted as events, but no dossier counts anywhere yet.
    produce(worker.bootstrap, worker.topic, [as_message(e) for e in orphans])
    accepted = wait_accepted(worker, len(orphans))
    assert accepted == len(orphans), (
        f"{accepted} of {len(orphans)} orphans accepted; ready={worker.get('/readyz')}\n"
        + worker.tail(40)
    )
    assert dossier_counts(worker.metrics()) == Counter()

    produce(worker.bootstrap, worker.topic, [as_message(e) for e in twice])
    # Exact, the operational counters too: every event once by type, and every copy after
    # the first (at another offset) one duplicate.
    group = wait_settled_exact([worker], delivery, rejected=Counter())
    assert group.accepted() == len(events)
    assert group.duplicates() == len(delivery) - len(events)
    assert group.by_type() == Counter(e["type"] for e in events)


def wait_accepted(worker: WorkerProcess, count: int, timeout: float = 120.0) -> float:
    """motcua_events_total (all types) once it reaches `count`, or its last value."""
    deadline = time.monotonic() + timeout
    accepted = 0.0
    while time.monotonic() < deadline:
        samples = worker.metrics()
        accepted = sum(v for (n, _), v in samples.items() if n == "motcua_events_total")
        if accepted >= count:
            break
        time.sleep(0.3)
    return accepted
