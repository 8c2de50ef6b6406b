"""Fixtures of the reliability suite: brokers a test may stop, kill or secure, and workers
started against any broker.

The session broker (tests/conftest.py) is shared and must stay up; a test that restarts a
broker, or needs TLS or SASL listeners, gets its own here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import WorkerProcess, unique
from reliability_tools import SecuredBroker

from service.tools.broker import BrokerError, LocalBroker, free_port


def start_broker(broker: LocalBroker) -> LocalBroker:
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"local Kafka broker: {exc}", pytrace=False)
    return broker


@pytest.fixture(scope="module")
def restartable_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of this module's own: its tests stop, kill and restart it (keep_data)."""
    broker = start_broker(
        LocalBroker(port=free_port(), data_dir=tmp_path_factory.mktemp("restartable-kafka"))
    )
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    """PLAINTEXT, SSL and SASL_SSL listeners, with a CA made for the test."""
    broker = start_broker(SecuredBroker(tmp_path_factory.mktemp("secured-kafka")))
    assert isinstance(broker, SecuredBroker)
    yield broker
    broker.stop()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """`start_worker(bootstrap)`: a `motcua worker` on a fresh topic and group of any broker.

    `like=w` gives another member of w's group; `data_dir=` reuses a worker's local state;
    other keywords go to WorkerProcess. Every worker is killed at the end.
    """
    started: list[WorkerProcess] = []

    def start(
        bootstrap: str,
        like: WorkerProcess | None = None,
        wait: bool = True,
        **kwargs: Any,
    ) -> WorkerProcess:
        name = unique("r")
        kwargs.setdefault("data_dir", tmp_path / f"worker-{len(started)}")
        worker = WorkerProcess(
            bootstrap=bootstrap,
            app_id=like.app_id if like else f"app-{name}",
            topic=like.topic if like else f"events-{name}",
            **kwargs,
        )
        started.append(worker)
        worker.start(wait_ready=wait, timeout=180)
        return worker

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture
def idle_worker(kafka_broker: LocalBroker, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker on a fresh topic and group of the session broker, not started: the test
    prepares the topic first (partitions, configs, deleted records). Killed at the end."""
    name = unique("i")
    worker = WorkerProcess(
        bootstrap=kafka_broker.bootstrap,
        app_id=f"app-{name}",
        topic=f"events-{name}",
        data_dir=tmp_path / "idle-worker",
    )
    yield worker
    worker.kill()
