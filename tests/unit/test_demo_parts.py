"""What a demo killed outright left running is stopped by the next demo, in order, and never
a process that only shares a pid with it (service/tools/demo_parts.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from service.tools.demo_parts import PARTS_FILE, DemoParts, DemoRunning, stop_left_over
from service.tools.processes import Process

FAST = (("board", 5.0), ("worker", 5.0), ("gateway", 5.0), ("broker", 5.0))

# A part that notes in a file that it was asked to stop, then stops (or, with "ignore",
# does not: it has to be killed).
PART = """
import signal, sys, time
name, notes, mode = sys.argv[1:]
def stop(*_):
    with open(notes, "a") as f:
        f.write(name + "\\n")
    if mode != "ignore":
        sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open(notes + "." + name, "w").close()
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts, killed and reaped at its end whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def start_part(
    spawned: list[subprocess.Popen[bytes]], tmp_path: Path, name: str, mode: str = "stop"
) -> subprocess.Popen[bytes]:
    notes = tmp_path / "stopped"
    process = subprocess.Popen([sys.executable, "-c", PART, name, str(notes), mode])
    spawned.append(process)
    deadline = time.monotonic() + 20
    while not Path(f"{notes}.{name}").exists():  # its handler is in place
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
    return process


def ended_process(spawned: list[subprocess.Popen[bytes]]) -> Process:
    """A process that ran and has ended (a demo killed outright)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    spawned.append(process)
    found = Process.of(process.pid)
    assert found is not None
    process.kill()
    process.wait()
    return found


def write_record(data: Path, demo: Process, parts: dict[str, Process]) -> None:
    record = {
        "demo": [demo.pid, demo.started],
        "parts": {name: [p.pid, p.started] for name, p in parts.items()},
    }
    (data / PARTS_FILE).write_bytes(orjson.dumps(record))


def known(process: subprocess.Popen[bytes]) -> Process:
    found = Process.of(process.pid)
    assert found is not None
    return found


def test_a_process_is_named_by_pid_and_start_time(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    me = Process.of(os.getpid())
    assert me is not None and me.alive()
    assert not Process(os.getpid(), me.started + 1).alive()  # the pid, given to another
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    spawned.append(child)
    # Exited and not reaped yet (a zombie: what a part whose parent is gone can be until
    # init reaps it), then reaped (no process at all): neither is alive.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    assert Path(f"/proc/{child.pid}").exists()
    assert Process.of(child.pid) is None
    child.wait()
    assert Process.of(child.pid) is None


def test_no_record_means_nothing_to_stop(tmp_path: Path) -> None:
    said: list[str] = []
    assert stop_left_over(tmp_path, said.append, FAST) == []
    assert said == []


def test_the_parts_left_running_are_stopped_in_the_demos_order(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    # Started in the demo's order (broker first), stopped in its stopping order.
    parts = {
        name: start_part(spawned, tmp_path, name)
        for name in ("broker", "worker", "board", "gateway")
    }
    write_record(tmp_path, ended_process(spawned), {name: known(p) for name, p in parts.items()})
    said: list[str] = []
    stopped = stop_left_over(tmp_path, said.append, FAST)
    assert stopped == ["board", "worker", "gateway", "broker"]
    notes = (tmp_path / "stopped").read_text().split()
    assert notes == ["board", "worker", "gateway", "broker"]
    assert all(p.wait(5) == 0 for p in parts.values())  # each stopped by itself
    assert len(said) == 1
    assert "ended without stopping its board, worker, gateway, broker" in said[0]
    assert not (tmp_path / PARTS_FILE).exists()


def test_a_part_that_does_not_stop_is_killed_and_said(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    worker = start_part(spawned, tmp_path, "worker", mode="ignore")
    write_record(tmp_path, ended_process(spawned), {"worker": known(worker)})
    said: list[str] = []
    order = (("worker", 1.0),)
    assert stop_left_over(tmp_path, said.append, order) == ["worker"]
    assert worker.wait(5) < 0  # killed by a signal
    assert (tmp_path / "stopped").read_text().split() == ["worker"]  # asked first
    assert said[-1] == "motcua demo: the earlier worker did not stop within 1 s; killed"


def test_a_pid_now_held_by_another_process_is_left_alone(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    other = start_part(spawned, tmp_path, "other")
    found = known(other)
    reused = Process(found.pid, found.started - 1)  # the worker's pid, reused since
    write_record(tmp_path, ended_process(spawned), {"worker": reused})
    said: list[str] = []
    assert stop_left_over(tmp_path, said.append, FAST) == []
    assert said == []
    time.sleep(0.3)
    assert other.poll() is None
    assert not (tmp_path / "stopped").exists()


def test_a_demo_still_running_on_the_data_directory_is_not_touched(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    demo = start_part(spawned, tmp_path, "demo")
    worker = start_part(spawned, tmp_path, "worker")
    write_record(tmp_path, known(demo), {"worker": known(worker)})
    with pytest.raises(DemoRunning, match=rf"another demo \(pid {demo.pid}\) is running on"):
        stop_left_over(tmp_path, [].append, FAST)
    time.sleep(0.3)
    assert demo.poll() is None and worker.poll() is None
    assert (tmp_path / PARTS_FILE).exists()


def test_an_unreadable_record_is_said_and_ignored(tmp_path: Path) -> None:
    (tmp_path / PARTS_FILE).write_bytes(b'{"demo": [1, 2], "parts": ')
    said: list[str] = []
    assert stop_left_over(tmp_path, said.append, FAST) == []
    assert len(said) == 1 and "is unreadable; ignored" in said[0]


def test_what_a_demo_records_the_next_one_reads(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    worker = start_part(spawned, tmp_path, "worker")
    parts = DemoParts(tmp_path)
    parts.started("worker", worker.pid)
    record = orjson.loads((tmp_path / PARTS_FILE).read_bytes())
    assert record == {
        "demo": [os.getpid(), known_self().started],
        "parts": {"worker": [worker.pid, known(worker).started]},
    }
    # The record names this process as its demo; a demo reading its own record (a pid
    # reused by the same program) still stops the parts.
    assert stop_left_over(tmp_path, [].append, FAST) == ["worker"]
    parts.clear()
    assert not (tmp_path / PARTS_FILE).exists()


def known_self() -> Process:
    found = Process.of(os.getpid())
    assert found is not None
    return found
