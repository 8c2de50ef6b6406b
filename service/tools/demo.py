"""`motcua demo`: a local broker, a worker and simulated center traffic, on one laptop.

Uses the broker MOTCUA_BROKER names if one answers there, else starts a local one.
Ctrl-C (or --duration) stops what it started, in reverse order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from service.ingest.publisher import PublishError
from service.settings import Settings
from service.tools import broker as local_broker
from service.tools.simulate import SimulationError, run_simulation


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


def run_demo(dossiers: int, rate: float, port: int, duration: float = 0.0) -> int:
    settings = Settings.from_env()
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    started_broker: local_broker.LocalBroker | None = None
    worker: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
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
            started_broker.start()
        print(f"broker ready at {bootstrap}")

        env = dict(os.environ, MOTCUA_WEB_PORT=str(port), MOTCUA_DATA_DIR=str(data / "demo-worker"))
        log_path = data / "demo-worker.log"
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "service", "worker", "--loglevel", "warning"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not _wait_ready(port, worker, timeout=120):
            print(f"motcua demo: the worker did not become ready; see {log_path}", file=sys.stderr)
            return 1
        host = settings.web_host
        print(f"worker ready — metrics: http://{host}:{port}/metrics")
        print(f"  overdue by procedure: http://{host}:{port}/api/procedures?state=overdue")
        print(f"  readiness:            http://{host}:{port}/readyz   (log: {log_path})")

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
                )
                print(f"simulation finished: {summary}")
            except (SimulationError, PublishError, OSError) as exc:
                print(f"simulation stopped: {exc}", file=sys.stderr)

        threading.Thread(target=simulate, daemon=True, name="simulator").start()
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
        print("stopping …")
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if started_broker is not None:
            started_broker.stop()
        print("stopped.")
