"""The state layer's own faults: a catch-up cut short by kill -9, a store lost or corrupt, a log
whose beginning was deleted, and an input topic that is not what the worker expects.

The local store is only a cache of `dossier-events`: whatever happens to it, a worker either
rebuilds it from the log and counts exactly (dossier families from the domain core, events by
type, duplicates and rejections from the messages themselves), or says why it cannot and is
not ready. It never serves a partial sum as a total.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import orjson
import pytest
from harness import WorkerProcess, produce, wait_for
from kafka import KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from reliability_tools import (
    BAD_KEY,
    as_message,
    bad_message,
    check_dead_letters,
    committed_offsets,
    dead_letter_copies,
    distinct,
    publish_counted_history,
    read_topic,
    scenario,
    store_path,
    wait_committed_to_the_end,
    wait_settled_exact,
    with_bad_messages,
)

pytestmark = pytest.mark.reliability

PARTITIONS = 8


def readyz(worker: WorkerProcess) -> dict[str, Any]:
    status, body = worker.get("/readyz")
    return orjson.loads(body) if status and body else {}


def catching_up(body: dict[str, Any]) -> list[str]:
    return [p for p, why in (body.get("waiting") or {}).items() if "catching up" in why]


def test_kill_nine_during_a_catch_up_loses_nothing(kafka_broker: Any, worker_factory: Any) -> None:
    """A worker with a long history and a wiped store is killed twice while /readyz shows
    partitions catching up from the log; restarted, it counts exactly. Each chunk of a
    catch-up is saved with its offset, so a restart goes on from there."""
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    worker: WorkerProcess = worker_factory()
    events, rejected = publish_counted_history(worker, 6000, seed)
    worker.stop()
    shutil.rmtree(store_path(worker))
    dead_before = dead_letter_copies(kafka_broker.bootstrap, worker.topic)

    seen: list[dict[str, Any]] = []
    for round_ in range(2):
        worker.start(wait_ready=False)
        body = readyz(worker)
        # The first round kills as soon as partitions are seen catching up; the second goes
        # on from what the first saved, and is killed later in it (or just after it, on a
        # fast machine).
        while not catching_up(body) and not (round_ and body.get("ready")):
            assert body.get("ready") is not True, f"ready without catching up: {body}"
            assert worker.alive(), worker.tail(30)
            time.sleep(0.02)
            body = readyz(worker)
        if round_:
            time.sleep(rng.uniform(0.0, 0.5))
            body = readyz(worker)
        worker.kill()
        seen.append(body)
    assert catching_up(seen[0]), f"seed {seed}: killed when {seen[0]}"

    worker.start(wait_ready=True, timeout=180)
    group = wait_settled_exact([worker], events, PARTITIONS, rejected=rejected)
    assert group.accepted() == distinct(events)
    assert group.duplicates() == len(events) - distinct(events)
    # History read by a catch-up announces nothing: no dead letter was sent again.
    assert dead_letter_copies(kafka_broker.bootstrap, worker.topic) == dead_before
    print(
        f"catch-up kills (seed {seed}): killed with {[len(catching_up(b)) for b in seen]} "
        f"partitions catching up; {len(events)} events, exact after restart"
    )


def test_a_worker_replaced_by_one_with_an_empty_disk(
    kafka_broker: Any, worker_factory: Any
) -> None:
    """One of two workers dies with its disk; a new one with an empty store takes its place
    and rebuilds the partitions from the log: every counter as before, rejections and
    duplicates included, and no dead letter sent again."""
    first: WorkerProcess = worker_factory()
    second: WorkerProcess = worker_factory(like=first)
    events = scenario(1500, seed=71)
    messages, rejected = with_bad_messages([as_message(e) for e in events], 12, seed=71)
    produce(kafka_broker.bootstrap, first.topic, messages)
    before = wait_settled_exact([first, second], events, PARTITIONS, rejected=rejected)
    assert all(before.active), f"both workers should hold partitions: {before.active}"
    # Killed once the group has committed what it stored: the new worker then reads it all as
    # history. (Killed before the commit, the uncommitted tail of its partitions is handled
    # again by whoever takes them: dead letters and status messages sent again, counters
    # still exact: docs/reliability.md.)
    wait_committed_to_the_end(first)
    dead_before = dead_letter_copies(kafka_broker.bootstrap, first.topic)

    second.kill()
    shutil.rmtree(second.data_dir)
    third: WorkerProcess = worker_factory(like=first, wait=False)
    group = wait_settled_exact([first, second, third], events, PARTITIONS, rejected=rejected)
    operational = (group.by_type(), group.duplicates_by_source(), group.rejected())
    assert operational == (before.by_type(), before.duplicates_by_source(), before.rejected())
    assert dead_letter_copies(kafka_broker.bootstrap, first.topic) == dead_before

    later, more = with_bad_messages([as_message(e) for e in events[:300]], 4, 72, first=12)
    produce(kafka_broker.bootstrap, first.topic, later)
    everything = events + events[:300]
    group = wait_settled_exact([first, third], everything, PARTITIONS, rejected=rejected + more)
    assert group.duplicates() == len(everything) - distinct(everything)
    check_dead_letters(kafka_broker.bootstrap, first.topic, rejected + more)


def corrupt_current(store: Any) -> str:
    (store / "CURRENT").write_bytes(b"")
    return "CURRENT truncated"


def garbage_everywhere(store: Any) -> str:
    names = [p.name for p in store.iterdir() if p.is_file() and p.name != "LOCK"]
    for name in names:
        size = max((store / name).stat().st_size, 64)
        (store / name).write_bytes(os.urandom(size))
    return f"garbage written over {len(names)} files"


def test_a_corrupt_local_store_is_set_aside_and_rebuilt_from_the_log(
    kafka_broker: Any, worker_factory: Any
) -> None:
    """CURRENT truncated, then every file of the store overwritten with garbage: each time the
    worker says so in its log, moves the store aside (kept for a post-mortem) and rebuilds
    from the log: exact, and the DLQ as it was."""
    worker: WorkerProcess = worker_factory()
    events, rejected = publish_counted_history(worker, 800, seed=83)
    dead_before = dead_letter_copies(kafka_broker.bootstrap, worker.topic)
    store = store_path(worker)
    for damage in (corrupt_current, garbage_everywhere):
        worker.stop()
        what = damage(store)
        said = worker.log_text().count("cannot be opened")
        worker.start(wait_ready=True, timeout=180)
        assert worker.log_text().count("cannot be opened") == said + 1, f"{what}: {worker.tail()}"
        wait_settled_exact([worker], events, PARTITIONS, rejected=rejected)
        assert dead_letter_copies(kafka_broker.bootstrap, worker.topic) == dead_before, what
    aside = sorted(p.name for p in store.parent.iterdir() if ".unreadable-" in p.name)
    assert aside, f"the unreadable stores were not kept: {sorted(store.parent.iterdir())}"


def create_topic(bootstrap: str, topic: str, partitions: int, **configs: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-setup")
    try:
        admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
    finally:
        admin.close()


def describe_topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    """The topic's settings as the broker describes them, defaults included."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-describe")
    try:
        answer = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
        )
    finally:
        admin.close()
    (by_name,) = answer.values()
    return {name: str(entry["value"]) for name, entry in by_name[topic].items()}


def metric_samples(worker: WorkerProcess, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(labels), value)
        for (found, labels), value in worker.metrics().items()
        if found == name
    ]


def delete_records(bootstrap: str, topic: str, before: dict[int, int]) -> None:
    """What retention does: the records of each partition below an offset are gone."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-retention")
    try:
        admin.delete_records({TopicPartition(topic, p): o for p, o in before.items()})
    finally:
        admin.close()


def partition_ready(worker: WorkerProcess) -> dict[str, float]:
    return {
        dict(labels)["partition"]: value
        for (name, labels), value in worker.metrics().items()
        if name == "motcua_partition_ready"
    }


def test_a_log_whose_beginning_was_deleted_is_not_counted_until_accepted(
    kafka_broker: Any, idle_worker: WorkerProcess
) -> None:
    """Retention deleted the first records of two partitions: a worker with an empty store
    cannot rebuild them, so it is not ready, says which partitions and which offsets are
    missing (/readyz, motcua_partition_ready, an ERROR line), and counts the others; with
    MOTCUA_ACCEPT_TRUNCATED_LOG=1 it counts what is left of the log, exactly."""
    bootstrap = kafka_broker.bootstrap
    worker = idle_worker
    create_topic(bootstrap, worker.topic, PARTITIONS, **{"retention.ms": "-1"})
    events = scenario(400, seed=97)
    messages, _ = with_bad_messages([as_message(e) for e in events], 12, seed=97)
    produce(bootstrap, worker.topic, messages)
    # Bad messages in what is left of the truncated partitions too: counted once accepted.
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for n, partition in ((12, 1), (13, 5)):
        key, value, _ = bad_message(n)
        producer.send(worker.topic, key=key, value=value, partition=partition).get(30)
    producer.close()
    records = read_topic(bootstrap, worker.topic)
    ends = Counter(r.partition for r in records)  # no transaction markers: end = count
    cut = {1: ends[1] // 2, 5: ends[5] // 2}
    delete_records(bootstrap, worker.topic, cut)

    worker.start(wait_ready=False)

    def refused() -> bool:
        waiting = readyz(worker).get("waiting") or {}
        return set(waiting) == {"1", "5"} and all("deleted" in w for w in waiting.values())

    assert wait_for(refused, 120, 0.3), f"{readyz(worker)}\n{worker.tail(30)}"
    body = readyz(worker)
    for partition, first_kept in cut.items():
        assert (
            f"offsets 0..{first_kept - 1} of partition {partition}"
            in (body["waiting"][str(partition)])
        ), body
        errors = [
            line
            for line in worker.log_text().splitlines()
            if "ERROR" in line and f"partition {partition} not counted" in line
        ]
        assert errors, worker.tail(30)
    assert worker.get("/readyz")[0] == 503
    samples = worker.metrics()
    assert samples[("motcua_ready", ())] == 0.0
    assert partition_ready(worker) == {str(p): 0.0 if p in cut else 1.0 for p in range(PARTITIONS)}
    assert not [name for name, _ in samples if name.startswith("motcua_dossiers_")]

    # The other partitions are counted and committed meanwhile; then the operator accepts a
    # fresh start: what is left of the log is the truth.
    healthy = [p for p in range(PARTITIONS) if p not in cut]

    def healthy_committed() -> bool:
        found = committed_offsets(worker)
        return all(found[p] == ends[p] for p in healthy)

    assert wait_for(healthy_committed, 120, 0.5), committed_offsets(worker)
    worker.kill()
    worker.extra_env["MOTCUA_ACCEPT_TRUNCATED_LOG"] = "1"
    worker.start(wait_ready=True, timeout=180)
    left = read_topic(bootstrap, worker.topic)
    kept = [orjson.loads(r.value) for r in left if not (r.key or b"").startswith(BAD_KEY)]
    bad_left = Counter(
        bad_message(int(r.key[len(BAD_KEY) :]))[2]
        for r in left
        if (r.key or b"").startswith(BAD_KEY)
    )
    assert len(left) == len(records) - sum(cut.values())
    group = wait_settled_exact([worker], kept, PARTITIONS, rejected=bad_left)
    assert group.accepted() == distinct(kept)
    assert "counting from" in worker.log_text()


def test_an_input_topic_that_is_not_what_the_worker_expects_is_said_clearly(
    kafka_broker: Any, idle_worker: WorkerProcess
) -> None:
    """An existing topic with fewer partitions than MOTCUA_PARTITIONS and a finite retention:
    the worker logs an ERROR for each, naming the topic, the numbers and the setting, with
    the fix for the retention; it exports the retention as a gauge, checks the topic again as
    it runs, and sees the fix."""
    worker = idle_worker
    worker.extra_env["MOTCUA_TOPIC_CHECK_SECONDS"] = "1"
    create_topic(
        kafka_broker.bootstrap,
        worker.topic,
        4,
        **{"retention.ms": str(7 * 24 * 3600 * 1000), "max.message.bytes": "500000"},
    )
    worker.start(wait_ready=False)

    def said() -> str:
        return worker.log_text()

    partitions = f"topic {worker.topic} has 4 partitions, fewer than MOTCUA_PARTITIONS=8"
    retention = (
        f"topic {worker.topic} has retention.ms=604800000: events older than that are deleted,"
        " and a worker that must read a partition again cannot count it; keep them forever"
        f" with `MOTCUA_BROKER={kafka_broker.bootstrap} MOTCUA_TOPIC={worker.topic}"
        " motcua keep-events`"
    )
    assert wait_for(lambda: partitions in said() and retention in said(), 120, 0.3), worker.tail(30)
    worker.wait_ready()

    def retention_finite() -> dict[str, float]:
        return {
            labels["setting"]: value
            for labels, value in metric_samples(worker, "motcua_input_topic_retention_finite")
            if labels["topic"] == worker.topic
        }

    assert retention_finite() == {"retention.ms": 1.0, "retention.bytes": 0.0}

    # The fix it names, as an operator runs it: only the retention changes.
    fixed = subprocess.run(
        [sys.executable, "-m", "service", "keep-events"],
        env=worker.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip() == (
        f"topic {worker.topic}: retention.ms=-1, retention.bytes=-1 (its events are kept forever)"
    )
    topic_configs = describe_topic_configs(kafka_broker.bootstrap, worker.topic)
    assert topic_configs["retention.ms"] == "-1" and topic_configs["retention.bytes"] == "-1"
    assert topic_configs["max.message.bytes"] == "500000"  # the topic's other settings kept
    assert wait_for(
        lambda: retention_finite() == {"retention.ms": 0.0, "retention.bytes": 0.0}, 60, 0.3
    ), worker.tail(30)
    assert wait_for(lambda: "keeps its events forever again" in said(), 30, 0.3)
    assert said().count(partitions) == 1  # a problem that stays is said once, not every check
    worker.kill()
