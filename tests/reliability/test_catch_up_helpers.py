"""Catch-up helper processes (service/state/catch_up_helper.py) against a real broker and real
workers: partitions whose store is empty are read by helpers and taken into the worker's
store; a helper killed, or a worker killed while its helpers run, changes nothing that is
served. Helpers are forced on for every range here (MOTCUA_CATCH_UP_HELPER_MIN_EVENTS=1)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from harness import WorkerProcess
from reliability_tools import (
    dead_letter_copies,
    distinct,
    publish_counted_history,
    read_store,
    store_path,
    wait_committed_to_the_end,
    wait_settled_exact,
)

pytestmark = pytest.mark.reliability

PARTITIONS = 8
HELPED = {"MOTCUA_CATCH_UP_HELPERS": "1", "MOTCUA_CATCH_UP_HELPER_MIN_EVENTS": "1"}
HELPER_MODULE = b"service.state.catch_up_helper"


def helpers_of(worker: WorkerProcess) -> list[int]:
    """Pids of the worker's running catch-up helpers (its children running the module)."""
    assert worker.process is not None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if HELPER_MODULE in cmdline and parent == worker.process.pid:
            found.append(int(entry.name))
    return found


def any_helper_alive(pids: list[int]) -> bool:
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            return True
    return False


def wait_for_helper(worker: WorkerProcess, timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = helpers_of(worker)
        if pids:
            return pids
        assert worker.alive(), worker.tail(30)
        time.sleep(0.01)
    raise AssertionError(f"no catch-up helper started: {worker.tail(30)}")


def with_history(kafka_broker: Any, worker_factory: Any, seed: int) -> tuple[Any, ...]:
    """A worker with counted history (bad messages included), stopped, its store wiped."""
    worker: WorkerProcess = worker_factory(extra_env=HELPED)
    events, rejected = publish_counted_history(worker, 4000, seed, bad=8)
    wait_committed_to_the_end(worker)
    worker.stop()
    shutil.rmtree(store_path(worker))
    return worker, events, rejected, dead_letter_copies(kafka_broker.bootstrap, worker.topic)


def test_helpers_read_empty_partitions_into_the_store_exactly(
    kafka_broker: Any, worker_factory: Any
) -> None:
    """A worker with an empty store has its partitions read by helpers (and by itself, one
    at a time): every counter exact, the store as a worker reading alone would leave it, no
    dead letter sent again, and no helper store left behind."""
    worker, events, rejected, dead_before = with_history(kafka_broker, worker_factory, 81)
    worker.start(wait_ready=True, timeout=180)
    group = wait_settled_exact([worker], events, PARTITIONS, rejected=rejected)
    assert group.accepted() == distinct(events)
    log = worker.log_text()
    helped = log.count("read by a catch-up helper process")
    assert helped >= 1, worker.tail(60)
    assert "catch-up failed" not in log, worker.tail(60)
    assert dead_letter_copies(kafka_broker.bootstrap, worker.topic) == dead_before
    # The helpers' stores were taken in and removed.
    assert not any((worker.data_dir / "worker" / "catch-up").glob("*"))
    stored = read_store(worker)
    assert sorted(stored) == list(range(PARTITIONS))
    assert all(not p.unreadable for p in stored.values())
    assert sum(len(p.event_ids) for p in stored.values()) == distinct(events)


def test_a_killed_helper_changes_nothing_and_the_worker_reads_the_partition_itself(
    kafka_broker: Any, worker_factory: Any
) -> None:
    """kill -9 of a helper while it reads: its partition stays not counted, the worker
    reads it itself, and the counters are exact."""
    worker, events, rejected, _ = with_history(kafka_broker, worker_factory, 82)
    worker.start(wait_ready=False)
    rng = random.Random(82)
    pids = wait_for_helper(worker)
    time.sleep(rng.uniform(0.0, 0.3))
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    worker.wait_ready(timeout=180)
    group = wait_settled_exact([worker], events, PARTITIONS, rejected=rejected)
    assert group.accepted() == distinct(events)
    log = worker.log_text()
    if "the helper exited with status -9" in log:
        assert "catch-up failed, trying again: HelperFailed" in log
    else:  # it had finished, and was being taken in, when killed
        assert "read by a catch-up helper process" in log
    assert not any((worker.data_dir / "worker" / "catch-up").glob("*"))


def test_helpers_go_when_their_worker_is_killed_and_a_restart_clears_their_stores(
    kafka_broker: Any, worker_factory: Any
) -> None:
    """kill -9 of the worker alone (not its process group) while a helper reads: the helper
    exits on its own (its stdin closed), the restarted worker removes what it left, and
    counts exactly."""
    worker, events, rejected, _ = with_history(kafka_broker, worker_factory, 83)
    worker.start(wait_ready=False)
    pids = wait_for_helper(worker)
    assert worker.process is not None
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait(10)
    deadline = time.monotonic() + 20
    while any_helper_alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any_helper_alive(pids), "a helper outlived its worker"
    left = worker.data_dir / "worker" / "catch-up"
    left.mkdir(parents=True, exist_ok=True)
    (left / "0-leftover").mkdir(exist_ok=True)  # as a helper killed mid-write leaves it
    worker.start(wait_ready=True, timeout=180)
    wait_settled_exact([worker], events, PARTITIONS, rejected=rejected)
    assert not (left / "0-leftover").exists()
