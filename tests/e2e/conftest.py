"""Real Prometheus and Alertmanager (Debian's binaries) for the end-to-end alerting tests.

Each test gets its own processes on free 127.0.0.1 ports with state in tmp_path, and a
webhook receiver (http.server) that records what Alertmanager sends. The configs are
derived from deploy/, changed only where a test cannot wait:

- Prometheus scrapes and evaluates every second and every alert's `for:` becomes 2s.
  Expressions and windows are the deployed ones, so numbers trail the raw counters by
  up to a minute (the handover smoothing in the rules).
- Alertmanager keeps the deployed routes and inhibitions; every webhook points at the
  test's receiver and the group timers are a second.

The worker under test comes from the `motcua_worker` fixture (tests/conftest.py).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "motcua.rules.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
ALERT_FOR = "2s"
START_TIMEOUT = 30.0


def binary(*names: str) -> str:
    """Path of the first installed name; fail (not skip) when none is."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        f"{' / '.join(names)} not found on PATH: install Debian's "
        "prometheus and prometheus-alertmanager packages (./run test does)",
        pytrace=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str, body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = response.read()
    return json.loads(payload) if payload else None


class Process:
    """A child process with its output in a log file; stopped at teardown."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.popen = subprocess.Popen(argv, stdout=self._log_file, stderr=subprocess.STDOUT)

    def wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                pytest.fail(f"{self.popen.args[0]} exited early:\n{self.tail()}", pytrace=False)
            try:
                with urllib.request.urlopen(url, timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"{url} not ready after {START_TIMEOUT}s:\n{self.tail()}", pytrace=False)

    def tail(self, lines: int = 30) -> str:
        self._log_file.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log_file.close()


# --- webhook receiver ------------------------------------------------------------------


@dataclass
class AlertWebhook:
    """Collects Alertmanager webhook payloads (one per notification)."""

    url: str = ""
    payloads: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, payload: dict) -> None:
        with self._lock:
            self.payloads.append(payload)

    def alerts(self) -> list[tuple[str, dict]]:
        """(receiver, alert) for every alert of every notification so far."""
        with self._lock:
            return [(p["receiver"], alert) for p in self.payloads for alert in p["alerts"]]

    def firing(self, alertname: str, **labels: str) -> list[tuple[str, dict]]:
        return [
            (receiver, alert)
            for receiver, alert in self.alerts()
            if alert["status"] == "firing"
            and alert["labels"].get("alertname") == alertname
            and all(alert["labels"].get(k) == v for k, v in labels.items())
        ]

    def wait_for(self, alertname: str, timeout: float, **labels: str) -> tuple[str, dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.firing(alertname, **labels)
            if found:
                return found[0]
            time.sleep(0.5)
        seen = sorted({alert["labels"].get("alertname", "?") for _, alert in self.alerts()})
        pytest.fail(
            f"no firing {alertname} {labels} reached the webhook in {timeout:.0f}s; "
            f"alerts seen: {seen or 'none'}",
            pytrace=False,
        )


@pytest.fixture
def alert_webhook() -> Iterator[AlertWebhook]:
    webhook = AlertWebhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            webhook.received(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    webhook.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield webhook
    server.shutdown()
    server.server_close()


# --- Alertmanager ----------------------------------------------------------------------


@dataclass(frozen=True)
class Alertmanager:
    url: str

    def post_alerts(self, alerts: list[dict]) -> None:
        http_json(f"{self.url}/api/v2/alerts", alerts)

    def alerts(self) -> list[dict]:
        return http_json(f"{self.url}/api/v2/alerts")


def alertmanager_config(webhook_url: str) -> dict:
    """The deployed config with the test's webhook and one-second group timers."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        route.update(group_wait="1s", group_interval="1s", repeat_interval="1m")
        routes.extend(route.get("routes", []))
    return config


@pytest.fixture
def alertmanager(alert_webhook: AlertWebhook, tmp_path: Path) -> Iterator[Alertmanager]:
    executable = binary("alertmanager", "prometheus-alertmanager")
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alertmanager_config(alert_webhook.url)))
    port = free_port()
    process = Process(
        [
            executable,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip: a single instance
            "--log.level=warn",
        ],
        tmp_path / "alertmanager.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        process.wait_ready(f"{url}/-/ready")
        yield Alertmanager(url)
    finally:
        process.stop()


# --- Prometheus ------------------------------------------------------------------------


@dataclass(frozen=True)
class Prometheus:
    url: str

    def query(self, expr: str) -> list[dict]:
        """Instant query; the result vector (empty when nothing matches)."""
        answer = http_json(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        return answer["data"]["result"]


def e2e_rules() -> dict:
    """The deployed rules with every `for:` shortened."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = ALERT_FOR
    return rules


@pytest.fixture
def prometheus_factory(alertmanager: Alertmanager, tmp_path: Path) -> Iterator[Any]:
    """start(targets) -> Prometheus scraping `targets` (host:port) as job "motcua"."""
    executable = binary("prometheus")
    started: list[Process] = []

    def start(targets: list[str]) -> Prometheus:
        directory = tmp_path / f"prometheus-{len(started)}"
        directory.mkdir()
        (directory / "motcua.rules.yml").write_text(yaml.safe_dump(e2e_rules()))
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": ["motcua.rules.yml"],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [alertmanager.url.removeprefix("http://")]}]}
                ]
            },
            "scrape_configs": [{"job_name": "motcua", "static_configs": [{"targets": targets}]}],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        process = Process(
            [
                executable,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            directory / "prometheus.log",
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        process.wait_ready(f"{url}/-/ready")
        return Prometheus(url)

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def prometheus(prometheus_factory: Any, motcua_worker: Any) -> Prometheus:
    """Prometheus scraping the worker under test, alerting to `alertmanager`."""
    return prometheus_factory([motcua_worker.host_port])
