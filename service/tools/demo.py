"""`motcua demo`: a local broker, a worker and simulated center traffic, on one laptop.

Uses the broker MOTCUA_BROKER names if one answers there, else starts a local one.
Ctrl-C (or --duration) stops what it started, in reverse order. What a demo killed outright
left running, the next demo on the same data directory stops first (demo_parts.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import TextIO

from service.domain.calendar import LOCAL_TZ
from service.ingest.publisher import PublishError
from service.settings import Settings
from service.tools import broker as local_broker
from service.tools.demo_parts import STOP_ORDER, DemoParts, DemoRunning, stop_left_over
from service.tools.simulate import SimulationError, run_simulation


def _say(line: str, stream: TextIO | None = None) -> None:
    """Print while stopping: after a closed terminal (SIGHUP) there is nowhere to print, and
    that must not keep the demo from stopping what it started."""
    with contextlib.suppress(OSError):
        print(line, file=stream or sys.stdout, flush=True)


def _stop(name: str, part: subprocess.Popen[bytes] | None, seconds: float) -> None:
    """Ask a part the demo started to stop (SIGTERM), and kill it, saying so, if it has not
    within `seconds`."""
    if part is None or part.poll() is not None:
        return
    part.send_signal(signal.SIGTERM)
    try:
        part.wait(seconds)
    except subprocess.TimeoutExpired:
        _say(f"motcua demo: the {name} did not stop within {seconds:g} s; killed", sys.stderr)
        part.kill()


def _wait_ready(port: int, worker: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def _start_gateway(
    settings: Settings, data: Path, parts: DemoParts
) -> subprocess.Popen[bytes] | None:
    """`motcua gateway` beside the worker, open on loopback (no tokens file), with the
    simulated center's units; prints its URL and a curl example. None if it did not start."""
    units = _units_file(data)
    port = settings.gateway_port
    env = dict(os.environ, MOTCUA_WEB_HOST="127.0.0.1", MOTCUA_UNITS_FILE=str(units))
    env.pop("MOTCUA_GATEWAY_TOKENS_FILE", None)
    log_path = data / "demo-gateway.log"
    with log_path.open("ab") as log:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "service", "gateway", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,  # see run_demo
        )
    parts.started("gateway", gateway.pid)
    if not _wait_ready(port, gateway, timeout=60):
        print(f"motcua demo: the gateway did not start; see {log_path}", file=sys.stderr)
        _stop("gateway", gateway, 15)
        return None
    url = f"http://127.0.0.1:{port}"
    print(f"gateway ready — {url} (OPEN on loopback: no tokens file; log: {log_path})")
    print(
        f"  curl -sS {url}/v1/events -H 'Content-Type: application/json' -d '{{\"event_id\":"
        f' "DEMO-1-1", "dossier_id": "DEMO-1", "type": "received", "occurred_at":'
        f' "{datetime.now(LOCAL_TZ).replace(microsecond=0).isoformat()}", "agency": "SXD",'
        f' "procedure": "1.000948", "channel": "online", "processing_days": 5}}\''
    )
    print(f"  national sync: POST {url}/v1/national-sync/dossiers (docs/gateway.md)")
    print(f"  progress rows: POST {url}/v1/national-sync/progress (docs/gateway.md)")
    return gateway


def _units_file(data: Path) -> Path:
    """The simulated center's units file (agencies and their departments) in `data`."""
    from service.tools.simulate import sample_units_csv

    units = data / "demo-units.csv"
    units.write_text(sample_units_csv(), encoding="utf-8")
    return units


def _start_board(
    worker_port: int, port: int, data: Path, parts: DemoParts
) -> subprocess.Popen[bytes] | None:
    """`motcua board` over the demo's worker on `port` (MOTCUA_BOARD_PORT, default 6080);
    prints its URL. None if it did not start (the demo goes on without it)."""
    log_path = data / "demo-board.log"
    worker = f"http://127.0.0.1:{worker_port}"
    with log_path.open("ab") as log:
        board = subprocess.Popen(
            [sys.executable, "-m", "service", "board", "--workers", worker, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,  # see run_demo
        )
    parts.started("board", board.pid)
    deadline = time.monotonic() + 30
    while board.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                print(
                    f"board — the center's live page: http://127.0.0.1:{port}/"
                    f"  (wall screen: http://127.0.0.1:{port}/?wall)"
                )
                return board
        except OSError:
            time.sleep(0.3)
    print(f"motcua demo: the board did not start; see {log_path}", file=sys.stderr)
    _stop("board", board, 10)
    return None


def run_demo(dossiers: int, rate: float, port: int, duration: float = 0.0) -> int:
    settings = Settings.from_env()
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    # A demo killed outright (SIGKILL, the OOM killer) could not stop its parts: this one
    # stops them first, or they hold the ports it needs (service/tools/demo_parts.py).
    try:
        stop_left_over(data, lambda line: print(line, file=sys.stderr, flush=True))
    except DemoRunning as exc:
        print(f"motcua demo: {exc}", file=sys.stderr)
        return 1
    parts = DemoParts(data)
    started_broker: local_broker.LocalBroker | None = None
    worker: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    board: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    # The parts below run in process groups of their own, so that a signal to the demo's
    # group (a terminal's Ctrl-C, `timeout`, a service manager's stop) reaches the demo
    # alone and it stops them in order, the broker last: taken by all at once, the broker
    # went first and the worker, leaving its group on a dead broker, hung until killed.
    # A closed terminal (SIGHUP) no longer reaches them either: the demo stops them then too.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: stop.set())
    # The simulation's producer is closed (flushed, acknowledged) while the broker still
    # runs; left to kafka-python's exit hook, it waited on a stopped broker and printed
    # a traceback at every Ctrl-C.
    simulation_stop = threading.Event()
    simulator: threading.Thread | None = None
    try:
        bootstrap = settings.bootstrap
        if not local_broker.reachable(bootstrap):
            host, _, port_text = bootstrap.split(",")[0].rpartition(":")
            if host not in ("127.0.0.1", "localhost"):
                print(f"motcua demo: no Kafka answers at {bootstrap}", file=sys.stderr)
                return 1
            print(f"starting a local Apache Kafka on {bootstrap} (first run downloads it) …")
            started_broker = local_broker.LocalBroker(
                port=int(port_text), data_dir=data / "demo-kafka"
            )
            started_broker.start(own_group=True)
            if started_broker.process is not None:
                parts.started("broker", started_broker.process.pid)
        print(f"broker ready at {bootstrap}")

        env = dict(os.environ, MOTCUA_WEB_PORT=str(port), MOTCUA_DATA_DIR=str(data / "demo-worker"))
        # The simulated center's departments, so the board names who holds late dossiers.
        env.setdefault("MOTCUA_UNITS_FILE", str(_units_file(data)))
        log_path = data / "demo-worker.log"
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "service", "worker", "--loglevel", "warning"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,  # see run_demo
            )
        parts.started("worker", worker.pid)
        if not _wait_ready(port, worker, timeout=120):
            print(f"motcua demo: the worker did not become ready; see {log_path}", file=sys.stderr)
            return 1
        # The board's URL first: it is what the demo is for.
        board = _start_board(port, settings.board_port, data, parts)
        host = settings.web_host
        print(f"worker ready — metrics: http://{host}:{port}/metrics")
        print(f"  overdue by procedure: http://{host}:{port}/api/procedures?state=overdue")
        print(f"  readiness:            http://{host}:{port}/readyz   (log: {log_path})")
        gateway = _start_gateway(settings, data, parts)

        def simulate() -> None:
            try:
                summary = run_simulation(
                    dossiers=dossiers,
                    rate=rate,
                    overdue_ratio=0.03,
                    seed=int(time.time()),
                    out=None,
                    broker=bootstrap,
                    topic=settings.topic,
                    stop=simulation_stop,
                )
                ended = "stopped" if simulation_stop.is_set() else "finished"
                print(f"simulation {ended}: {summary}")
            except (SimulationError, PublishError, OSError) as exc:
                print(f"simulation stopped: {exc}", file=sys.stderr)

        simulator = threading.Thread(target=simulate, daemon=True, name="simulator")
        simulator.start()
        print(f"simulating {dossiers} dossiers at {rate:g} events/s — Ctrl-C stops everything")
        deadline = time.monotonic() + duration if duration > 0 else None
        while not stop.is_set():
            if worker.poll() is not None:
                print(f"motcua demo: the worker exited; see {log_path}", file=sys.stderr)
                return 1
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    except local_broker.BrokerError as exc:
        print(f"motcua demo: {exc}", file=sys.stderr)
        return 1
    finally:
        _say("stopping …")
        simulation_stop.set()
        if simulator is not None:
            simulator.join(20)
        started = {"board": board, "worker": worker, "gateway": gateway}
        for name, seconds in STOP_ORDER:  # the broker last: the worker leaves its group on it
            if name != "broker":
                _stop(name, started[name], seconds)
            elif started_broker is not None:
                started_broker.stop(seconds)
        parts.clear()
        _say("stopped.")
