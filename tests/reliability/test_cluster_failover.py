"""The "outgrow one machine" path: workers against a three-broker cluster, the input topic
replicated three times with min ISR 2, and the broker leading some of its partitions killed
with -9 mid-stream, then restarted.

motcua's publisher sends with acks=all and idempotence, so an acknowledged event is on two
brokers at least and a retried send is not written twice. The workers must count every
acknowledged event exactly once: the summed counters equal the domain core's answer, and the
operational counters the messages themselves.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from harness import WorkerProcess, unique
from kafka.admin import KafkaAdminClient, NewTopic
from reliability_tools import (
    BAD_KEY,
    ChunkStream,
    PublisherStream,
    check_dead_letters,
    distinct,
    read_topic,
    scenario,
    wait_settled_exact,
    with_bad_messages,
)

from service.tools.broker import LocalCluster

pytestmark = pytest.mark.reliability

PARTITIONS = 8
BAD = 6  # bad messages beside the stream (one of each kind)
REPLICATED = {"MOTCUA_REPLICATION_FACTOR": "3", "MOTCUA_MIN_INSYNC_REPLICAS": "2"}


def create_input_topic(cluster: LocalCluster, topic: str) -> None:
    """The input topic as production has it: RF 3, min ISR 2, kept for ever. Made before the
    workers start, so they keep it as it is."""
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, client_id="motcua-test")
    try:
        configs = {"min.insync.replicas": "2", "retention.ms": "-1", "retention.bytes": "-1"}
        admin.create_topics([NewTopic(topic, PARTITIONS, 3, topic_configs=configs)])
    finally:
        admin.close()


@pytest.fixture
def cluster_workers(
    kafka_cluster: LocalCluster, tmp_path: Path
) -> Iterator[tuple[LocalCluster, list[WorkerProcess]]]:
    """The session cluster and a list the test fills with its workers; at the end the workers
    are killed and every node of the cluster runs again, for the next test."""
    workers: list[WorkerProcess] = []
    yield kafka_cluster, workers
    for worker in workers:
        worker.kill()
    for node in kafka_cluster.brokers:
        if node not in kafka_cluster.running():
            kafka_cluster.restart(node)


def leaders(cluster: LocalCluster, topic: str) -> dict[int, list[int]]:
    """node id → the partitions of `topic` it leads now."""
    out: dict[int, list[int]] = {}
    for partition, state in sorted(cluster.partitions(topic).items()):
        out.setdefault(state.leader, []).append(partition)
    return out


@pytest.mark.parametrize(
    ("dossiers", "kills", "rate"),
    [
        pytest.param(1200, 1, 150.0, id="one-leader-kill"),
        pytest.param(6000, 3, 200.0, id="three-leader-kills", marks=pytest.mark.long),
    ],
)
def test_leader_killed_mid_stream_loses_nothing_and_counts_once(
    cluster_workers: tuple[LocalCluster, list[WorkerProcess]],
    tmp_path: Path,
    dossiers: int,
    kills: int,
    rate: float,
) -> None:
    cluster, workers = cluster_workers
    seed = random.randrange(1_000_000)
    name = unique("c")
    topic = f"events-{name}"
    create_input_topic(cluster, topic)
    for n in range(2):
        workers.append(
            WorkerProcess(
                bootstrap=cluster.bootstrap,
                app_id=f"app-{name}",
                topic=topic,
                data_dir=tmp_path / f"worker-{n}",
                extra_env=dict(REPLICATED),
            )
        )
        workers[-1].start(wait_ready=True, timeout=180)

    events = scenario(dossiers, seed=seed)
    # Bad messages go through a plain producer (the publisher refuses them), acks=all too.
    bad, rejected = with_bad_messages([], BAD, seed)
    publishing = PublisherStream(cluster.bootstrap, topic, events, rate=rate)
    misbehaving = ChunkStream(cluster.bootstrap, topic, bad, pieces=BAD, pause=2.0)
    publishing.start()
    misbehaving.start()

    killed: list[str] = []
    for k in range(kills):
        # Mid-stream: a share of the events sent before each kill, more after the last.
        while publishing.sent < len(events) * (k + 1) // (kills + 2) and publishing.is_alive():
            time.sleep(0.1)
        led = leaders(cluster, topic)
        victim = max((node for node in led if node > 0), key=lambda node: len(led[node]))
        cluster.kill(victim)
        killed.append(f"node {victim} (leader of {led[victim]}) at {publishing.sent} sent")
        # Writes go on with two brokers in sync; the victim comes back while they do.
        time.sleep(3.0)
        cluster.restart(victim)
        cluster.wait_in_sync(topic)

    report = publishing.finish()
    misbehaving.finish()
    detail = f"seed {seed}; killed {killed}"
    assert report.ok and report.acknowledged == len(events), f"{report.summary()}; {detail}"

    # The log holds each acknowledged message once: idempotence dropped the retried sends.
    records = read_topic(cluster.bootstrap, topic)
    logged = Counter(
        orjson.loads(r.value)["event_id"] for r in records if not (r.key or b"").startswith(BAD_KEY)
    )
    assert logged == Counter(e["event_id"] for e in events), detail

    try:
        group = wait_settled_exact(workers, events, PARTITIONS, 240, rejected)
    except AssertionError as exc:
        raise AssertionError(f"{detail}\n{exc}") from None
    assert group.accepted() == distinct(events), detail
    assert group.duplicates() == len(events) - distinct(events), detail
    assert group.rejected() == rejected, detail
    copies = check_dead_letters(cluster.bootstrap, topic, rejected)
    states = cluster.partitions(topic)
    assert all(set(s.isr) == {1, 2, 3} for s in states.values()), states
    print(
        f"cluster fail-over: {detail}; {distinct(events)} distinct events, "
        f"{len(events) - distinct(events)} re-sent, {BAD} bad: lost 0, counted twice 0; "
        f"DLQ copies beyond the first: {sum(copies.values())}"
    )


def test_dead_letters_refused_while_their_broker_is_down_are_sent_when_it_returns(
    cluster_workers: tuple[LocalCluster, list[WorkerProcess]], tmp_path: Path
) -> None:
    """The dead-letter topic's only replica is on one broker; it is stopped while bad messages
    arrive (the input topic, on three, carries on). The batches holding them fail, nothing of
    them is saved or acknowledged, and they are read again until the broker is back: then
    every bad offset is in the dead-letter topic and the counts are exact."""
    cluster, workers = cluster_workers
    seed = random.randrange(1_000_000)
    name = unique("d")
    topic = f"events-{name}"
    create_input_topic(cluster, topic)
    victim = 3
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, client_id="motcua-test")
    try:
        admin.create_topics(
            [
                NewTopic(
                    f"{topic}-dlq",
                    replica_assignments={0: [victim]},
                    topic_configs={"max.message.bytes": str(2 * 1024 * 1024)},
                )
            ]
        )
    finally:
        admin.close()
    worker = WorkerProcess(
        bootstrap=cluster.bootstrap,
        app_id=f"app-{name}",
        topic=topic,
        data_dir=tmp_path / "worker",
        extra_env={**REPLICATED, "MOTCUA_SEND_TIMEOUT": "3"},
    )
    workers.append(worker)
    worker.start(wait_ready=True, timeout=180)

    cluster.kill(victim)
    events = scenario(300, seed=seed)
    bad, rejected = with_bad_messages([], 12, seed)
    publishing = PublisherStream(cluster.bootstrap, topic, events, rate=100.0)
    misbehaving = ChunkStream(cluster.bootstrap, topic, bad, pieces=4, pause=1.0)
    publishing.start()
    misbehaving.start()
    report = publishing.finish()
    misbehaving.finish()
    assert report.ok and report.acknowledged == len(events), report.summary()
    time.sleep(8.0)  # the batches with bad messages fail (3 s each) and are retried
    assert "batch not applied" in worker.log_text() or "re-reading a batch failed" in (
        worker.log_text()
    ), "the dead-letter path never failed: the test did not test it"
    cluster.restart(victim)

    group = wait_settled_exact(workers, events, PARTITIONS, 240, rejected)
    assert group.rejected() == rejected
    copies = check_dead_letters(cluster.bootstrap, topic, rejected)
    print(
        f"dead letters through a broker outage: seed {seed}; {sum(rejected.values())} bad, "
        f"all in the DLQ; copies beyond the first: {sum(copies.values())}"
    )
