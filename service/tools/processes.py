"""Processes the tools start and stop again by pid: which process a pid is now, and a stop
that asks first (SIGTERM) and kills (SIGKILL) only after a grace period.

A process is named by its pid and its start time (Linux's /proc), so a pid the system has
given to another process since is never signalled, and a process that has exited but waits
to be reaped (a zombie) counts as gone. Without /proc (not Linux) a pid is all there is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class Process:
    """A process as the system knows it now: its pid, and when it started (clock ticks since
    boot; 0 without /proc); None if there is no such process, or it has exited and waits to
    be reaped."""

    pid: int
    started: int

    @classmethod
    def of(cls, pid: int) -> Process | None:
        if not (_PROC / "self").exists():
            # One of ours that ended is a zombie until reaped: reap it (it has exited).
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return None
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return None
            except PermissionError:
                pass  # someone else's: it exists
            return cls(pid, 0)
        try:
            stat = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
        # The command name, in parentheses, may hold spaces and parentheses: read past it.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) < 20 or fields[0] in ("Z", "X"):  # a zombie has finished
            return None
        return cls(pid, int(fields[19]))

    def alive(self) -> bool:
        """Still running, and still the same process (its pid not given to another since)."""
        return Process.of(self.pid) == self


def stop(processes: Sequence[Process], grace: float) -> list[Process]:
    """SIGTERM each at once, wait up to `grace` seconds for all to end, then SIGKILL those
    still running (and wait up to 10 s more for them); the ones that had to be killed."""
    for process in processes:
        if process.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(p.alive() for p in processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    lingering = [p for p in processes if p.alive()]
    for process in lingering:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
    while any(p.alive() for p in lingering) and time.monotonic() < deadline + 10:
        time.sleep(0.1)
    return lingering
