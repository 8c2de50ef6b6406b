"""One bench run: where it talks to, what it has started, what it found."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.tools.bench.plan import Plan
from service.tools.bench.topics import create_topic
from service.tools.bench.worker import BenchWorker


@dataclass
class Run:
    """One bench run: where it talks to, what it has started, what it found.

    `results` becomes the final JSON line; `topics` maps a step's name to the topic it made,
    so a later step can read the same events (e.g. run.topics["throughput"]).
    """

    plan: Plan
    bootstrap: str
    work_dir: Path
    stamp: str = field(default_factory=lambda: f"bench-{os.getpid()}-{int(time.time())}")
    workers: list[BenchWorker] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)

    def worker(
        self,
        name: str,
        topic: str,
        command: tuple[str, ...] | None = None,
        group: str | None = None,
        env: dict[str, str] | None = None,
    ) -> BenchWorker:
        """A worker process (or `command`) with its own data dir; its own consumer group
        unless `group` names another worker's."""
        from service.tools.broker import free_port

        worker = BenchWorker(
            self.bootstrap,
            f"{self.stamp}-{group or name}",
            topic,
            self.work_dir / name,
            free_port(),
            env=dict(env or {}),
        )
        if command is not None:
            worker.command = command
        self.workers.append(worker)
        return worker

    def topic(self, name: str) -> str:
        topic = f"{self.stamp}-{name}"
        create_topic(self.bootstrap, topic)
        self.topics[name] = topic
        return topic

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
