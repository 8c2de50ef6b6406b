"""`motcua broker start|stop|status`: a local Kafka that outlives the command, a single node
or a cluster, found again through the pid and state files in its data directory."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from service.tools.kafka.host import is_kafka_process, pid_alive, port_in_use
from service.tools.kafka.node import LocalBroker
from service.tools.kafka.probe import reachable

_PID_FILE = "broker.pid"
_STATE_FILE = "broker.json"


def default_data_dir() -> Path:
    """Where `motcua` keeps its data: MOTCUA_DATA_DIR, else ./var."""
    return Path(os.environ.get("MOTCUA_DATA_DIR") or "var").expanduser().resolve()


def _kafka_dir(data: Path | None) -> Path:
    return (data.expanduser().resolve() if data is not None else default_data_dir()) / "kafka"


@dataclass(frozen=True)
class _Recorded:
    """A broker that start_background wrote down."""

    pid: int
    bootstrap: str
    version: str


def _read_state_file(kafka_dir: Path) -> dict[str, object]:
    try:
        state = json.loads((kafka_dir / _STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _read_state(kafka_dir: Path) -> _Recorded | None:
    state = _read_state_file(kafka_dir)
    try:
        pid = int((kafka_dir / _PID_FILE).read_text(encoding="utf-8").strip())
        return _Recorded(
            pid=pid,
            bootstrap=str(state["bootstrap"]),
            version=str(state["version"]),
        )
    except (OSError, ValueError, KeyError):
        return None


def _running_state(kafka_dir: Path) -> _Recorded | None:
    """The recorded broker if its process is alive; a stale pid file is removed."""
    state = _read_state(kafka_dir)
    if state is None:
        return None
    if pid_alive(state.pid) and is_kafka_process(state.pid, kafka_dir):
        return state
    (kafka_dir / _PID_FILE).unlink(missing_ok=True)
    return None


def start_background(port: int, data_dir: Path, timeout: float = 90) -> LocalBroker:
    """Start a broker that outlives this process and record it in `<data_dir>/broker.pid`.

    Data is kept between runs, so topics survive `motcua broker stop` / `start`.
    """
    data_dir = data_dir.expanduser().resolve()
    # The pid file may be gone (stopped), but broker.json still says where the controller was.
    previous = _read_state_file(data_dir)
    controller_port = previous.get("controller_port")
    if not isinstance(controller_port, int) or port_in_use(controller_port):
        controller_port = None
    broker = LocalBroker(port=port, data_dir=data_dir, controller_port=controller_port)
    broker.start(timeout=timeout, keep_data=True, detach=True)
    assert broker.process is not None
    state = {
        "port": broker.port,
        "controller_port": broker.controller_port,
        "bootstrap": broker.bootstrap,
        "version": broker.version,
        "data_dir": str(data_dir),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (data_dir / _STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    (data_dir / _PID_FILE).write_text(f"{broker.process.pid}\n", encoding="utf-8")
    return broker


def cli_start(port: int, data: Path | None) -> str:
    """`motcua broker start`: start in the background unless already running."""
    kafka_dir = _kafka_dir(data)
    running = _running_state(kafka_dir)
    if running is not None:
        return f"Kafka already running at {running.bootstrap} (pid {running.pid}, {kafka_dir})"
    broker = start_background(port, kafka_dir)
    assert broker.process is not None
    return (
        f"Kafka {broker.version} running at {broker.bootstrap} "
        f"(pid {broker.process.pid}, data {kafka_dir})"
    )


def cli_stop(data: Path | None, timeout: float = 30) -> str:
    """`motcua broker stop`: SIGTERM the recorded broker, SIGKILL after `timeout` seconds."""
    kafka_dir = _kafka_dir(data)
    running = _running_state(kafka_dir)
    if running is None:
        return f"no Kafka running for {kafka_dir}"
    pid = running.pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    how = "stopped"
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        how = f"killed after {timeout:.0f} s"
        while pid_alive(pid):
            time.sleep(0.1)
    (kafka_dir / _PID_FILE).unlink(missing_ok=True)
    return f"Kafka at {running.bootstrap} {how} (pid {pid})"


def cli_status(data: Path | None) -> tuple[bool, str]:
    """`motcua broker status`: (True, where) only if the process is alive and answers."""
    kafka_dir = _kafka_dir(data)
    running = _running_state(kafka_dir)
    if running is None:
        return False, f"no Kafka running for {kafka_dir}"
    if not reachable(running.bootstrap):
        return (
            False,
            f"Kafka process {running.pid} is alive but {running.bootstrap} does not answer",
        )
    return True, f"Kafka {running.version} running at {running.bootstrap} (pid {running.pid})"
