"""service/tools/processes.py: a pid named with its start time, and the stop both the demo
and `motcua broker stop` use (SIGTERM, a grace, then SIGKILL for those still running)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.tools import processes
from service.tools.processes import Process, stop

IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print('up', flush=True); time.sleep(60)"
)
STOPS_ON_TERM = "import time; print('up', flush=True); time.sleep(60)"

Spawn = Callable[[str], "subprocess.Popen[bytes]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    started: list[subprocess.Popen[bytes]] = []

    def start(code: str) -> subprocess.Popen[bytes]:
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.readline() == b"up\n"
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()
        child.wait()


def test_stop_asks_first_and_kills_only_what_ignores_it(spawn: Spawn) -> None:
    polite, stubborn = spawn(STOPS_ON_TERM), spawn(IGNORES_TERM)
    found = [p for p in (Process.of(polite.pid), Process.of(stubborn.pid)) if p is not None]
    assert len(found) == 2
    began = time.monotonic()
    killed = stop(found, grace=1.0)
    assert killed == [found[1]]
    assert time.monotonic() - began >= 1.0  # the stubborn one was given its grace
    assert polite.wait(5) == -15 and stubborn.wait(5) == -9
    assert not any(p.alive() for p in found)


def test_stop_never_signals_a_pid_given_to_another_process(spawn: Spawn) -> None:
    child = spawn(STOPS_ON_TERM)
    found = Process.of(child.pid)
    assert found is not None
    earlier = Process(found.pid, found.started - 1)  # the pid as an earlier process had it
    assert stop([earlier], grace=0.5) == []
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(1)  # not signalled: still running a second later


def test_without_proc_a_live_pid_is_all_there_is(
    monkeypatch: pytest.MonkeyPatch, spawn: Spawn
) -> None:
    monkeypatch.setattr(processes, "_PROC", Path("/nonexistent-proc"))
    child = spawn(STOPS_ON_TERM)
    found = Process.of(child.pid)
    assert found == Process(child.pid, 0) and found.alive()
    # It ends at once on SIGTERM, and is reaped (it is our child): not killed, gone.
    assert stop([found], grace=5.0) == []
    assert Process.of(child.pid) is None
    assert child.poll() is not None  # reaped: Popen knows, and the fixture signals nothing
