"""Fixtures that run real `motcua worker` processes against the session's broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Gateway, WorkerProcess, produce_events, unique


@pytest.fixture
def worker_factory(kafka_broker: Any, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers on a fresh topic and consumer group; all are stopped at the end.

    Calling it again with `like=` gives another worker of the same group (same topic),
    so partitions split between them.
    """
    started: list[WorkerProcess] = []

    def start(like: WorkerProcess | None = None, wait: bool = True, **kwargs: Any) -> WorkerProcess:
        name = unique("t")
        worker = WorkerProcess(
            bootstrap=kafka_broker.bootstrap,
            app_id=like.app_id if like else f"app-{name}",
            topic=like.topic if like else f"events-{name}",
            data_dir=tmp_path / f"worker-{len(started)}",
            **kwargs,
        )
        started.append(worker)
        worker.start(wait_ready=wait)
        return worker

    yield start
    for worker in started:
        worker.kill()


class LiveWorker:
    """What the end-to-end tests need: a scrape target and a way to send events."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.metrics_url = worker.metrics_url
        self.host_port = worker.host_port

    def publish(self, events: list[dict[str, Any]]) -> None:
        produce_events(self.worker.bootstrap, self.worker.topic, events)


@pytest.fixture
def motcua_worker(worker_factory: Callable[..., WorkerProcess]) -> LiveWorker:
    return LiveWorker(worker_factory())


@pytest.fixture
def gateway_factory(kafka_broker: Any, tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def start(topic: str | None = None, bootstrap: str | None = None, **env: str) -> Gateway:
        gateway = Gateway(
            bootstrap=bootstrap or kafka_broker.bootstrap,
            topic=topic or unique("gw"),
            workdir=tmp_path,
            env=env,
        )
        started.append(gateway)
        gateway.start(wait="/readyz" if bootstrap is None else "/healthz")
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
