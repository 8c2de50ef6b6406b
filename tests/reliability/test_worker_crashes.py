"""Workers killed with -9, a group losing and regaining a member, local state wiped.

Each test streams simulated center traffic into a real worker process and compares the
counters it exposes with the domain core's answer for the same events.
"""

from __future__ import annotations

import random
import shutil
import time
from typing import Any

import pytest
from harness import WorkerProcess, produce
from reliability_tools import (
    ChunkStream,
    GroupScrape,
    as_message,
    diagnose,
    group_offsets,
    scenario,
    wait_settled_exact,
    watch,
)

pytestmark = pytest.mark.reliability

PARTITIONS = 8


def distinct(events: list[dict[str, Any]]) -> int:
    return len({e["event_id"] for e in events})


@pytest.mark.parametrize(
    ("kills", "dossiers"),
    [
        pytest.param(6, 1500, id="6-kills"),
        pytest.param(25, 8000, id="25-kills", marks=pytest.mark.long),
    ],
)
def test_kill_nine_at_random_points_while_streaming(
    kafka_broker: Any, worker_factory: Any, kills: int, dossiers: int
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    worker: WorkerProcess = worker_factory()
    events = scenario(dossiers, seed=seed)
    # The center keeps publishing through every crash and restart.
    stream = ChunkStream(
        kafka_broker.bootstrap,
        worker.topic,
        [as_message(e) for e in events],
        pieces=kills * 6,
        pause=1.0,
    )
    stream.start()
    where: list[str] = []
    for n in range(kills):
        if n:
            worker.start(wait_ready=False)
        if n % 3 == 2:
            # Somewhere in start-up: joining the group, recovering the table, rebuilding sums.
            time.sleep(rng.uniform(0.5, 8.0))
        else:
            worker.wait_ready(180)
            time.sleep(rng.uniform(0.2, 4.0))
        where.append("ready" if worker.get("/readyz")[0] == 200 else "starting")
        worker.kill()
    worker.start(wait_ready=True, timeout=180)
    sent = stream.finish()
    assert sent == len(events)

    group = wait_settled_exact([worker], events, PARTITIONS, timeout=300)
    detail = f"seed {seed}, kills at {where}"
    assert len(where) == kills >= 5, detail
    assert "ready" in where, detail
    # At-least-once input, exact state: every distinct event counted once; re-read events
    # after a crash are recognised as duplicates, never counted twice.
    assert group.accepted() == distinct(events), f"{detail}\n{diagnose([worker], events)}"
    assert group.duplicates() == len(events) - distinct(events), detail
    assert worker.alive()
    print(f"kill -9: {kills} kills ({detail}), {distinct(events)} distinct events, lost 0")


@pytest.mark.parametrize(
    "dossiers",
    [pytest.param(1200, id="1200-dossiers"), pytest.param(6000, id="6000", marks=pytest.mark.long)],
)
def test_survivor_takes_all_partitions_then_they_split_again(
    kafka_broker: Any, worker_factory: Any, dossiers: int
) -> None:
    first: WorkerProcess = worker_factory()
    second: WorkerProcess = worker_factory(like=first)
    workers = [first, second]
    split = wait_for_split(workers)
    assert all(split.active), f"both workers should hold partitions: {split.active}"

    events = scenario(dossiers, seed=23)
    before, after = events[: len(events) * 2 // 3], events[len(events) * 2 // 3 :]
    stream = ChunkStream(
        kafka_broker.bootstrap, first.topic, [as_message(e) for e in before], pieces=12, pause=0.5
    )
    stream.start()
    while stream.acknowledged < len(before) // 3 and stream.is_alive():
        time.sleep(0.1)
    second.kill()  # mid-stream: its uncommitted events are re-read by the survivor
    at_kill = f"at the kill, {stream.acknowledged} sent; offsets {group_offsets(first)}"
    stream.finish()

    # The survivor alone holds all partitions and its sums are exact …
    try:
        group = wait_settled_exact(workers, before, PARTITIONS, timeout=180)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{at_kill}") from None
    assert [s.partitions for s in group.scrapes] == [PARTITIONS]
    assert group.accepted() == distinct(before), f"{diagnose(workers, before)}\n{at_kill}"
    # … at every scrape after recovery, not only once.
    alone = watch(workers, before, seconds=6)
    assert alone.settled >= 5 and not alone.wrong, alone.wrong[:2]

    # Bring it back: every settled scrape during and after the rebalance stays exact, and the
    # survivor no longer reports the partitions it gave away (else the sum would be over).
    second.start(wait_ready=False)
    rejoin = watch(
        workers,
        before,
        seconds=180,
        until=lambda: is_split(GroupScrape.of(workers, PARTITIONS)),
    )
    assert is_split(GroupScrape.of(workers, PARTITIONS)), "partitions did not split again"
    watch(workers, before, seconds=6, log=rejoin)
    assert rejoin.settled >= 5 and not rejoin.wrong, rejoin.wrong[:2]

    print(
        f"failover: {alone.settled} settled scrapes alone, {rejoin.settled} during and after "
        f"the rejoin ({rejoin.overlapping} racing scrapes claimed more than {PARTITIONS} "
        "partitions and were not summed)"
    )
    produce(kafka_broker.bootstrap, first.topic, [as_message(e) for e in after])
    group = wait_settled_exact(workers, events, PARTITIONS, timeout=180)
    assert all(group.active) and sum(group.active) == PARTITIONS
    assert group.accepted() == distinct(events), f"{diagnose(workers, events)}\n{at_kill}"


def is_split(group: GroupScrape) -> bool:
    return group.settled and len(group.scrapes) == 2 and all(group.active)


def wait_for_split(workers: list[WorkerProcess], timeout: float = 180.0) -> GroupScrape:
    deadline = time.monotonic() + timeout
    group = GroupScrape.of(workers, PARTITIONS)
    while not is_split(group) and time.monotonic() < deadline:
        time.sleep(0.5)
        group = GroupScrape.of(workers, PARTITIONS)
    return group


def test_wiped_local_state_is_rebuilt_from_the_changelog(
    kafka_broker: Any, worker_factory: Any
) -> None:
    worker: WorkerProcess = worker_factory()
    events = scenario(800, seed=31)
    cut = len(events) * 2 // 3
    produce(kafka_broker.bootstrap, worker.topic, [as_message(e) for e in events[:cut]])
    before = wait_settled_exact([worker], events[:cut], PARTITIONS)

    # A clean stop commits every input offset: what comes back after the wipe can only
    # come from the table's changelog, not from re-reading the input.
    worker.stop()
    state = worker.data_dir / "worker"
    assert any(state.rglob("*.db")), f"no RocksDB files under {state}"
    shutil.rmtree(state)

    worker.start(wait_ready=True, timeout=180)
    group = wait_settled_exact([worker], events[:cut], PARTITIONS)
    assert any(state.rglob("*.db")), "the worker did not rebuild its RocksDB state"
    # Everything, duplicates included, is read back from the stored dossiers: nothing was
    # re-read from the input.
    assert group.accepted() == before.accepted() == distinct(events[:cut])
    assert group.duplicates() == before.duplicates() >= cut - distinct(events[:cut])

    produce(kafka_broker.bootstrap, worker.topic, [as_message(e) for e in events[cut:]])
    group = wait_settled_exact([worker], events, PARTITIONS)
    assert group.accepted() == distinct(events)
