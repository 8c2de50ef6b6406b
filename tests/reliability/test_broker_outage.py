"""The broker goes away mid-stream: the worker recovers by itself, and the publishers (the
DossierPublisher class and `motcua publish`) retry, or else say exactly what was not sent.

These tests stop and kill their own broker (restartable_broker), never the session's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import ROOT, WorkerProcess, unique, wait_for
from reliability_tools import (
    PublisherStream,
    end_offsets,
    scenario,
    stored_event_ids,
    wait_settled_exact,
)

from service.ingest.publisher import DossierPublisher, PublishError, PublishReport, run_publish
from service.tools.broker import LocalBroker

pytestmark = pytest.mark.reliability


@pytest.fixture(autouse=True)
def broker_running(restartable_broker: LocalBroker) -> None:
    """A test that failed with the broker down does not take the next one with it."""
    if not restartable_broker.is_running():
        restartable_broker.start(keep_data=True)


def restart(broker: LocalBroker, how: str, down_for: float) -> None:
    """Stop (SIGTERM) or kill (-9) the broker, leave it down, start it again on its data."""
    if how == "kill":
        broker.kill()
    else:
        broker.stop()
    time.sleep(down_for)
    broker.start(keep_data=True)


@pytest.mark.parametrize(
    "outages",
    [
        pytest.param(["kill"], id="kill"),
        pytest.param(["stop", "kill", "kill"], id="stop-kill-kill", marks=pytest.mark.long),
    ],
)
def test_broker_restart_mid_stream_loses_nothing(
    restartable_broker: LocalBroker, start_worker: Any, outages: list[str]
) -> None:
    broker = restartable_broker
    worker: WorkerProcess = start_worker(broker.bootstrap)
    events = scenario(600 * len(outages), seed=53)
    stream = PublisherStream(broker.bootstrap, worker.topic, events, rate=200)
    stream.start()
    for n, how in enumerate(outages, 1):
        # Down while the center publishes and the worker consumes.
        threshold = len(events) * n // (len(outages) + 1)
        assert wait_for(lambda t=threshold: stream.sent >= t, 120, 0.1)
        restart(broker, how, down_for=3.0)
    report = stream.finish(timeout=300)
    assert report.ok and report.acknowledged == len(events), report.summary()

    group = wait_settled_exact([worker], events, timeout=300, rejected=Counter())
    assert worker.alive(), "the worker died with the broker: it must recover by itself"
    assert group.accepted() == len({e["event_id"] for e in events})
    assert group.duplicates() == len(events) - len({e["event_id"] for e in events})
    # Nothing lost on the way in either: every acknowledged event is in the topic.
    assert stored_event_ids(broker.bootstrap, worker.topic) == Counter(
        e["event_id"] for e in events
    )


# -- publishers ---------------------------------------------------------------------------


class Gate:
    """Lets a publisher send `before` events, then holds the rest until the broker is down."""

    def __init__(self, before: int) -> None:
        self.before = before
        self.open = threading.Event()

    def events(self, events: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for position, event in enumerate(events):
            if position == self.before:
                self.open.wait(120)
            yield event

    def lines(self, events: list[dict[str, Any]], sink: Any) -> None:
        """Write JSON Lines to a pipe or FIFO, holding after `before` lines."""
        try:
            for position, event in enumerate(events):
                if position == self.before:
                    sink.flush()
                    self.open.wait(120)
                sink.write(orjson.dumps(event) + b"\n")
        finally:
            sink.close()


class InThread(threading.Thread):
    """Runs a call in a thread and keeps its result or exception."""

    def __init__(self, call: Any) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.result: Any = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.call()
        except BaseException as exc:
            self.error = exc

    def get(self, timeout: float = 300.0) -> Any:
        self.join(timeout)
        assert not self.is_alive(), "still running"
        if self.error is not None:
            raise self.error
        return self.result


def publish_cli(bootstrap: str, topic: str, output: Path) -> subprocess.Popen[bytes]:
    """`motcua publish -` reading JSON Lines from a pipe; stdout and stderr to `output`."""
    with output.open("wb") as sink:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "publish",
                "-",
                "--broker",
                bootstrap,
                "--topic",
                topic,
            ],
            cwd=ROOT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            stdin=subprocess.PIPE,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def wait_stored(bootstrap: str, topics: list[str], count: int) -> None:
    assert wait_for(lambda: all(end_offsets(bootstrap, t) >= count for t in topics), 60, 0.2), (
        f"the first {count} events did not reach {topics}"
    )


def test_publishers_retry_through_a_broker_outage(
    restartable_broker: LocalBroker, tmp_path: Path
) -> None:
    broker = restartable_broker
    cls_topic, cli_topic = unique("pub-class"), unique("pub-cli")
    events = scenario(300, seed=59)
    gate = Gate(before=len(events) // 3)

    def publish_class() -> PublishReport:
        with DossierPublisher(broker.bootstrap, cls_topic, delivery_timeout=120) as publisher:
            return publisher.publish_many(gate.events(events))

    by_class = InThread(publish_class)
    output = tmp_path / "publish.out"
    cli = publish_cli(broker.bootstrap, cli_topic, output)
    writer = InThread(lambda: gate.lines(events, cli.stdin))
    wait_stored(broker.bootstrap, [cls_topic, cli_topic], gate.before)

    broker.stop()  # in the middle of both publishes
    gate.open.set()  # the rest is sent while the broker is down
    time.sleep(3)
    broker.start(keep_data=True)

    report = by_class.get()
    writer.get()
    cli.wait(300)
    said = output.read_text(errors="replace")
    assert report.ok and report.acknowledged == len(events), report.summary()
    assert cli.returncode == 0, said
    assert f"published {len(events)} events" in said and "all acknowledged" in said, said
    sent = Counter(e["event_id"] for e in events)
    # Retries neither lose nor duplicate: the idempotent producer stores each send once.
    assert stored_event_ids(broker.bootstrap, cls_topic) == sent
    assert stored_event_ids(broker.bootstrap, cli_topic) == sent


def test_publishers_never_report_an_unacknowledged_send(
    restartable_broker: LocalBroker, tmp_path: Path
) -> None:
    """The broker stops mid-publish and stays down past the delivery timeout."""
    broker = restartable_broker
    cls_topic, cli_topic = unique("lost-class"), unique("lost-cli")
    events = scenario(300, seed=61)
    gate = Gate(before=len(events) // 3)
    timeout = 6.0
    publisher = DossierPublisher(broker.bootstrap, cls_topic, delivery_timeout=timeout)
    first = events[0]
    publisher.publish(first)  # returns only once acknowledged

    def publish_class() -> tuple[PublishReport, str]:
        report = publisher.publish_many(gate.events(events[1:]))
        try:
            publisher.publish({**first, "event_id": first["event_id"] + "-after"})
        except PublishError as exc:
            return report, exc.reason
        return report, "reported as sent"

    fifo = tmp_path / "events.jsonl"
    os.mkfifo(fifo)
    by_class = InThread(publish_class)
    by_cli = InThread(
        lambda: run_publish(str(fifo), broker.bootstrap, cli_topic, delivery_timeout=timeout)
    )
    writer = InThread(lambda: gate.lines(events, fifo.open("wb")))
    wait_stored(broker.bootstrap, [cls_topic, cli_topic], gate.before - 1)

    broker.stop()
    gate.open.set()
    report, single = by_class.get()
    code, message = by_cli.get()
    writer.get()
    publisher.close()
    broker.start(keep_data=True)  # to read what was really stored

    cls_stored = stored_event_ids(broker.bootstrap, cls_topic)
    cli_stored = stored_event_ids(broker.bootstrap, cli_topic)
    assert cls_stored[first["event_id"]] >= 1
    assert single == PublishError.NOT_ACKNOWLEDGED
    assert report.acknowledged + report.failed == len(events) - 1 and report.failed > 0
    # Never reported as sent unless stored (a lost acknowledgement may undercount: safe side).
    assert report.acknowledged <= sum(cls_stored.values()) - 1, report.summary()

    assert code == 1, message
    match = re.search(r"(\d+) events acknowledged, (\d+) NOT acknowledged", message)
    assert match, message
    acknowledged, failed = int(match[1]), int(match[2])
    assert acknowledged + failed == len(events) and failed > 0
    assert acknowledged <= sum(cli_stored.values()), message
