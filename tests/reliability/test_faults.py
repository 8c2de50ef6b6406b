"""Exact or absent after a stall, a full disk, a second worker on one store, and a dead letter
larger than its topic (issue 23): the faults of an operator's bad day, on a real broker.

- A worker paused past the session timeout (SIGSTOP: a GC pause, a frozen VM, a cut network)
  while another takes its partitions and counts on: when it wakes, every scrape of every
  worker is, per partition, exact or not ready, and soon the group is exact again.
- A store whose disk fills: the worker stops (exit 70) with one line; a restart on the full
  disk stops the same way and leaves the store as it was; once space is freed the restart
  goes on from the store, not from the beginning of the log.
- A second worker started on a data directory in use: refused; the first counts on.
- A 200 KiB key and 300 KiB of headers against a dead-letter topic of 100 KiB: both
  dead-lettered, the worker counts on.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import WorkerProcess, dossier_counts, expected_counts, produce
from kafka import KafkaProducer
from reliability_tools import (
    as_message,
    read_topic,
    scenario,
    wait_committed_to_the_end,
    wait_settled_exact,
)

from service.settings import Settings
from service.tools.topics import raise_dead_letter_limit

pytestmark = pytest.mark.reliability

PARTITIONS = 8
# The group's session timeout (service/app.py): a pause longer than this fences a member.
SESSION_TIMEOUT_S = 10.0
# The clock moves a dossier (due soon, overdue) at the worker's next deadline tick, every
# second (agents/deadlines.py), later while a woken worker rebuilds partitions: a scrape is
# exact as of an instant this close before it. Sums left from before the stall are off by
# hundreds of events, not by one clock transition.
TICK_LAG = timedelta(seconds=5)


def _ready_partitions(samples: dict[Any, float]) -> list[int]:
    return sorted(
        int(dict(labels)["partition"])
        for (name, labels), value in samples.items()
        if name == "motcua_partition_ready" and value == 1.0
    )


def _applied(samples: dict[Any, float]) -> dict[int, int]:
    return {
        int(dict(labels)["partition"]): int(value)
        for (name, labels), value in samples.items()
        if name == "motcua_partition_offset_applied"
    }


def test_a_worker_stalled_past_the_session_timeout_is_exact_or_not_ready_when_it_wakes(
    kafka_broker: Any, worker_factory: Any
) -> None:
    first: WorkerProcess = worker_factory()
    second: WorkerProcess = worker_factory(like=first)
    events = scenario(1200, seed=2323)
    half = len(events) // 2
    produce(kafka_broker.bootstrap, first.topic, [as_message(e) for e in events[:half]])
    before = wait_settled_exact([first, second], events[:half], PARTITIONS)
    assert all(before.active), f"both workers should hold partitions: {before.active}"
    wait_committed_to_the_end(first)

    assert first.process is not None
    os.killpg(first.process.pid, signal.SIGSTOP)
    try:
        produce(kafka_broker.bootstrap, first.topic, [as_message(e) for e in events[half:]])
        time.sleep(SESSION_TIMEOUT_S)
        # The survivor takes every partition, counts the rest of the stream and commits it.
        wait_settled_exact([second], events, PARTITIONS, timeout=120)
        wait_committed_to_the_end(second)
    finally:
        os.killpg(first.process.pid, signal.SIGCONT)

    # Nothing more is published. Per partition, the truth is the log's events there.
    records = read_topic(kafka_broker.bootstrap, first.topic)
    ends: Counter[int] = Counter()
    by_partition: dict[int, list[dict[str, Any]]] = {p: [] for p in range(PARTITIONS)}
    for record in records:
        by_partition[record.partition].append(orjson.loads(record.value))
        ends[record.partition] = max(ends[record.partition], record.offset + 1)
    assert sum(len(v) for v in by_partition.values()) == len(events)

    wrong: list[str] = []
    ready_scrapes: Counter[str] = Counter()
    scrapes = 0
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        for name, worker in (("woken", first), ("survivor", second)):
            scraped_at = datetime.now(UTC)
            samples = worker.metrics()
            scrapes += 1
            if samples.get(("motcua_ready", ()), 0.0) != 1.0:
                continue
            ready_scrapes[name] += 1
            claimed = _ready_partitions(samples)
            applied = _applied(samples)
            behind = {p: (applied.get(p), ends[p]) for p in claimed if applied.get(p) != ends[p]}
            if behind:
                wrong.append(f"{name} ready with partitions behind the log: {behind}")
            mine = [e for p in claimed for e in by_partition[p]]
            got = dossier_counts(samples)
            # The truth at the scrape, or a tick before it (see TICK_LAG).
            truths = [expected_counts(mine, at) for at in (scraped_at, scraped_at - TICK_LAG)]
            if got not in truths:
                missing = truths[0] - got
                wrong.append(
                    f"{name} ready on {claimed} but not exact: under the truth by "
                    f"{sum(missing.values())}, e.g. {dict(list(missing.items())[:3])}"
                )
        time.sleep(0.2)
    assert not wrong, f"{len(wrong)} wrong scrapes of {scrapes}: {wrong[:5]}\n{first.tail(20)}"
    # Within a bound the two are settled and their sum is a replay of the log.
    wait_settled_exact([first, second], events, PARTITIONS, timeout=120)
    log = first.log_text()
    assert "another member advanced it" in log or "rejoined the group as a new member" in log, (
        first.tail(40)
    )
    print(f"stall: {scrapes} scrapes after waking, ready ones {dict(ready_scrapes)}, wrong 0")


# -- the store's disk ----------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (a real filesystem that fills up). Smaller than
    RocksDB's write-ahead-log preallocation (~70 MiB), so a full disk fails the next write."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"cannot mount a tmpfs for the full-disk test (needs root): {mounted.stderr.strip()}",
            pytrace=False,
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the filesystem is full. The test makes the file before the worker
    starts: once the worker's store has taken the last pages, even creating a file can be
    refused (seen in a clean run)."""
    filler = disk / "filler"
    with filler.open("ab") as out:
        block = b"\0" * (1 << 20)
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError:
            pass
    with contextlib.suppress(OSError), filler.open("ab") as out:
        while True:  # the last bytes, one page at a time
            out.write(b"\0" * 4096)
            out.flush()
    return filler


def wait_exit(worker: WorkerProcess, timeout: float = 90.0) -> int:
    assert worker.process is not None
    try:
        return worker.process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker did not stop: {worker.tail()}") from None


def store_files(store: Path) -> dict[str, str]:
    """The store's data files (not RocksDB's own text LOG) by name, with a digest."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in store.iterdir()
        if p.is_file() and not p.name.startswith("LOG")
    }


def caught_up_from_log(text: str) -> int:
    return sum(int(n) for n in re.findall(r"ready: (\d+) events read from the log", text))


def test_a_full_disk_stops_the_worker_and_leaves_its_store_for_the_restart(
    kafka_broker: Any, worker_factory: Any, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", "32m") as disk:
        (disk / "filler").touch()  # see fill()
        worker: WorkerProcess = worker_factory(extra_env={"MOTCUA_DATA_DIR": str(disk)})
        store = disk / "worker" / "dossiers"
        events = scenario(500, seed=2324)
        produce(kafka_broker.bootstrap, worker.topic, [as_message(e) for e in events])
        wait_settled_exact([worker], events, PARTITIONS)
        wait_committed_to_the_end(worker)

        filler = fill(disk)
        more = scenario(300, seed=2325)
        more = [
            e | {"dossier_id": "F" + e["dossier_id"], "event_id": "F" + e["event_id"]} for e in more
        ]
        produce(kafka_broker.bootstrap, worker.topic, [as_message(e) for e in more])
        assert wait_exit(worker) == 70, worker.tail()
        assert "the disk is full" in worker.tail(5), worker.tail()
        saved = store_files(store)

        said = len(worker.log_text())
        worker.start(wait_ready=False)
        assert wait_exit(worker) == 70, worker.tail()
        restart = worker.log_text()[said:]
        lines = [line for line in restart.splitlines() if "CRITICAL" in line]
        assert len(lines) == 1 and "the disk is full" in lines[0], restart[-2000:]
        assert "left untouched" in lines[0] and "Traceback" not in restart, restart[-2000:]
        assert store_files(store) == saved, "the store changed on a full disk"
        assert not [p for p in store.parent.iterdir() if ".unreadable" in p.name]

        filler.unlink()
        said = len(worker.log_text())
        worker.start(wait_ready=True, timeout=120)
        wait_settled_exact([worker], events + more, PARTITIONS)
        restart = worker.log_text()[said:]
        assert "cannot be opened" not in restart
        # Caught up from the store's offsets: only what it had not saved is read again.
        assert caught_up_from_log(restart) < len(more), restart[-3000:]
        worker.stop()


def test_a_second_worker_on_a_data_directory_in_use_is_refused(
    kafka_broker: Any, worker_factory: Any, tmp_path: Path
) -> None:
    first: WorkerProcess = worker_factory()
    events = scenario(300, seed=2326)
    produce(kafka_broker.bootstrap, first.topic, [as_message(e) for e in events])
    wait_settled_exact([first], events, PARTITIONS)

    second = WorkerProcess(
        bootstrap=first.bootstrap,
        app_id=first.app_id,
        topic=first.topic,
        data_dir=tmp_path / "second",
        extra_env={"MOTCUA_DATA_DIR": str(first.data_dir)},
    )
    second.start(wait_ready=False)
    try:
        assert wait_exit(second, 60) == 70, second.tail()
    finally:
        second.kill()
    assert "in use by another process" in second.tail(5), second.tail()
    store = first.data_dir / "worker" / "dossiers"
    assert store.is_dir()
    assert not [p for p in store.parent.iterdir() if ".unreadable" in p.name]
    assert first.alive()

    more = [
        e | {"dossier_id": "S" + e["dossier_id"], "event_id": "S" + e["event_id"]}
        for e in events[:200]
    ]
    produce(kafka_broker.bootstrap, first.topic, [as_message(e) for e in more])
    wait_settled_exact([first], events + more, PARTITIONS)


def test_dead_letters_larger_than_their_topic_are_cut_to_fit_and_the_worker_counts_on(
    kafka_broker: Any, worker_factory: Any
) -> None:
    worker: WorkerProcess = worker_factory()
    settings = Settings(broker=kafka_broker.bootstrap, topic=worker.topic)
    assert raise_dead_letter_limit(settings, 100 * 1024).endswith("max.message.bytes=102400")
    worker.stop()
    worker.start()  # reads the dead-letter topic's limit at start

    key = b"K" * (200 * 1024)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    producer.send(worker.topic, key=key, value=b'{"event_id"').get(30)
    headers = [(f"x-{n}", b"h" * 1024) for n in range(300)]
    producer.send(worker.topic, key=b"HS-HEADERS", value=b'{"event_id"', headers=headers).get(30)
    producer.close()
    events = scenario(200, seed=2327)
    produce(kafka_broker.bootstrap, worker.topic, [as_message(e) for e in events])
    wait_settled_exact([worker], events, PARTITIONS, rejected=Counter({"not_json": 2}))

    letters = read_topic(kafka_broker.bootstrap, f"{worker.topic}-dlq")
    assert len(letters) == 2, [dict(r.headers).get("motcua-offset") for r in letters]
    by_key = {bytes(r.key): dict(r.headers) for r in letters}
    cut = by_key[key[:1024]]
    assert cut["motcua-key-bytes"] == b"204800"
    assert cut["motcua-key-sha256"] == hashlib.sha256(key).hexdigest().encode()
    assert "motcua-truncated" in cut
    assert by_key[b"HS-HEADERS"]["motcua-reason"] == b"not_json"
    assert worker.alive()
