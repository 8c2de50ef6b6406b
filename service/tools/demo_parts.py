"""What a running demo has started, kept in its data directory, so that the next demo can
stop what a demo killed outright (SIGKILL, the OOM killer, a closed laptop lid) left running.

The parts run in process groups of their own (see `service/tools/demo.py`), so nothing stops
them when their demo dies without its `finally`: the broker then holds its port and the
worker its web port, and the next `./run demo` fails on them. A process is named by its pid
and its start time (Linux's /proc), so a pid the system has given to another process since
is never signalled.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import orjson

from service.tools.processes import Process, stop

PARTS_FILE = "demo-parts.json"
# The order the demo stops its parts in, and how long each is given (as in its `finally`).
STOP_ORDER: tuple[tuple[str, float], ...] = (
    ("board", 10.0),
    ("worker", 30.0),
    ("gateway", 15.0),
    ("broker", 30.0),
)

Say = Callable[[str], None]


class DemoParts:
    """The demo's record of itself and of each part it started, rewritten at every start."""

    def __init__(self, data: Path) -> None:
        self.path = data / PARTS_FILE
        self.demo = Process.of(os.getpid())
        self.parts: dict[str, Process] = {}

    def started(self, name: str, pid: int) -> None:
        found = Process.of(pid)
        if found is not None:
            self.parts[name] = found
            self._write()

    def clear(self) -> None:
        """Everything stopped: nothing for the next demo to stop."""
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _write(self) -> None:
        if self.demo is None:
            return  # no /proc (not Linux): nothing can be named safely
        record = {
            "demo": [self.demo.pid, self.demo.started],
            "parts": {name: [p.pid, p.started] for name, p in self.parts.items()},
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(record))
        temporary.replace(self.path)


class DemoRunning(Exception):
    """Another demo runs on the same data directory."""


def stop_left_over(
    data: Path, say: Say, order: tuple[tuple[str, float], ...] = STOP_ORDER
) -> list[str]:
    """Stop, in `order` (name, seconds given before a kill), the parts an earlier demo on
    `data` left running; the names of those stopped. Raises DemoRunning if that demo is
    still running itself."""
    path = data / PARTS_FILE
    try:
        record = orjson.loads(path.read_bytes())
        demo = Process(*record["demo"])
        parts = {name: Process(*pair) for name, pair in record["parts"].items()}
    except FileNotFoundError:
        return []
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        say(f"motcua demo: {path} is unreadable; ignored (stop any earlier demo's parts by hand)")
        return []
    if demo.pid != os.getpid() and demo.alive():
        raise DemoRunning(
            f"another demo (pid {demo.pid}) is running on {data}; stop it first (Ctrl-C in its"
            " terminal), or give this one another MOTCUA_DATA_DIR"
        )
    running = [(name, seconds) for name, seconds in order if _alive(parts.get(name))]
    if running:
        names = ", ".join(name for name, _ in running)
        say(
            f"motcua demo: an earlier demo (pid {demo.pid}) ended without stopping its"
            f" {names}; stopping them first"
        )
    for name, seconds in running:
        if stop([parts[name]], seconds):
            say(f"motcua demo: the earlier {name} did not stop within {seconds:g} s; killed")
    with contextlib.suppress(OSError):
        path.unlink()
    return [name for name, _ in running]


def _alive(process: Process | None) -> bool:
    return process is not None and process.alive()
