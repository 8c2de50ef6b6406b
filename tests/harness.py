"""Real worker processes and helpers for tests against the real local broker.

A worker runs as `python -m service worker` in its own process, so tests can kill -9 it
and restart it exactly as an operator's machine would.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from schemas import event_from_dict
from service.domain import DEFAULT_CALENDAR, fold
from service.domain.dossier import contribution
from service.ingest.gateway import app as gateway_app
from service.ingest.gateway.limits import RateLimiter
from service.ingest.gateway.procedures import ProceduresFile
from service.ingest.gateway.producer import KafkaSink
from service.ingest.gateway.sources import SourcesFile
from service.ingest.gateway.tokens import TokenBook, token_hash
from service.ingest.gateway.units import UnitsFile
from service.kafka_security import KafkaSecurity
from service.tools.simulate import sample_units_csv

ROOT = Path(__file__).resolve().parents[1]
_names = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}-{int(time.time() * 1000) % 100000}"


@dataclass
class WorkerProcess:
    """One `motcua worker` with its own data dir and web port."""

    bootstrap: str
    app_id: str
    topic: str
    data_dir: Path
    partitions: int = 8
    web_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.web_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host_port}/metrics"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            MOTCUA_BROKER=self.bootstrap,
            MOTCUA_APP_ID=self.app_id,
            MOTCUA_TOPIC=self.topic,
            MOTCUA_PARTITIONS=str(self.partitions),
            MOTCUA_DATA_DIR=str(self.data_dir),
            MOTCUA_WEB_PORT=str(self.web_port),
            PYTHONUNBUFFERED="1",
        )
        # The simulated center's units file, so its departments get their own labels.
        units = self.data_dir.with_name(self.data_dir.name + "-units.csv")
        if not units.exists():
            units.write_text(sample_units_csv(), encoding="utf-8")
        env["MOTCUA_UNITS_FILE"] = str(units)
        env.update(self.extra_env)
        return env

    def start(self, wait_ready: bool = True, timeout: float = 90.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"worker-{self.web_port}.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", "worker"],
            cwd=self.data_dir,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if wait_ready:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}: {self.tail()}")
            status, _ = self.get("/readyz")
            if status == 200:
                return
            time.sleep(0.3)
        raise TimeoutError(f"worker not ready after {timeout}s: {self.tail()}")

    def kill(self) -> None:
        """kill -9: no shutdown, no final commit."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://{self.host_port}{path}", timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics as {(name, sorted labels): value}; {} if unreachable."""
        status, body = self.get("/metrics")
        if status != 200:
            return {}
        return parse_metrics(body.decode())


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


# Families whose value is the sum over dossiers, and how a domain-core key maps onto them.
DOSSIER_FAMILIES = {
    "received": ("motcua_dossiers_received_total", ("agency", "channel")),
    "completed": ("motcua_dossiers_completed_total", ("agency", "outcome")),
    "completed_without_due": ("motcua_dossiers_completed_without_due_total", ("agency",)),
    "withdrawn": ("motcua_dossiers_withdrawn_total", ("agency",)),
    "became_overdue": ("motcua_dossiers_became_overdue_total", ("agency",)),
    "open": ("motcua_dossiers_open", ("agency", "state")),
    "overdue_without_apology": ("motcua_overdue_without_apology", ("agency",)),
    # Who holds it (R12–R17): the simulated departments are all in the workers' units file.
    "steps_open": ("motcua_steps_open", ("agency", "department", "state")),
    "steps_completed": ("motcua_steps_completed_total", ("agency", "department", "outcome")),
    "overdue_held": ("motcua_dossiers_overdue_held", ("agency", "department")),
}


def dossier_counts(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> Counter[Any]:
    """The per-dossier families of one or more /metrics, nonzero only, summed."""
    names = {name for name, _ in DOSSIER_FAMILIES.values()}
    out: Counter[Any] = Counter()
    for (name, labels), value in samples.items():
        if name in names and value:
            out[(name, labels)] += value
    return out


def expected_counts(events: Iterable[dict[str, Any]], now: datetime | None = None) -> Counter[Any]:
    """What the domain core says the per-dossier families must be, from the raw events."""
    now = now or datetime.now(UTC)
    by_dossier: dict[str, list[Any]] = {}
    for raw in events:
        event = event_from_dict(raw, now=now)
        by_dossier.setdefault(event.dossier_id, []).append(event)
    out: Counter[Any] = Counter()
    for dossier_id, evs in by_dossier.items():
        dossier = fold(dossier_id, evs, DEFAULT_CALENDAR)
        for key in contribution(dossier, now, DEFAULT_CALENDAR):
            if key[0] not in DOSSIER_FAMILIES:
                continue
            name, label_names = DOSSIER_FAMILIES[key[0]]
            labels = tuple(sorted(zip(label_names, key[1:], strict=True)))
            out[(name, labels)] += 1
    return out


def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes]],
) -> int:
    """Send raw (key, value) messages and wait for every acknowledgement."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futures = [producer.send(topic, key=key, value=value) for key, value in messages]
    producer.flush(60)
    for future in futures:
        future.get(30)
    producer.close()
    return len(futures)


def produce_events(bootstrap: str, topic: str, events: Iterable[dict[str, Any]]) -> int:
    return produce(bootstrap, topic, ((e["dossier_id"].encode(), orjson.dumps(e)) for e in events))


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[Any]:
    """Read a topic from the start until `expected` messages arrived (or the timeout)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < expected and time.monotonic() < deadline:
        out.extend(consumer)
    consumer.close()
    return out


def wait_for(predicate: Any, timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def wait_exact(
    workers: list[WorkerProcess], events: list[dict[str, Any]], timeout: float = 120.0
) -> tuple[Counter[Any], Counter[Any]]:
    """Wait until the summed /metrics of `workers` equal the domain core's answer.

    The expected value is computed at each scrape (open states depend on the clock).
    Returns the last (got, expected) pair for the assertion message.
    """
    got: Counter[Any] = Counter()
    want: Counter[Any] = Counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = Counter()
        for worker in workers:
            got.update(dossier_counts(worker.metrics()))
        want = expected_counts(events)
        if got == want:
            return got, want
        time.sleep(0.5)
    return got, want


# -- the HTTP gateway ----------------------------------------------------------------------

TOKEN = "test-token-opencps-7f3a"
SYSTEM = "opencps-test"


@dataclass
class Gateway:
    """One `motcua gateway` process."""

    bootstrap: str
    topic: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"gateway-{self.port}.log"

    def start(self, wait: str = "/readyz", timeout: float = 60) -> None:
        units = self.workdir / "units.csv"
        units.write_text(sample_units_csv(), encoding="utf-8")
        tokens = self.workdir / "tokens"
        tokens.write_text(f"# test systems\n{SYSTEM} {token_hash(TOKEN)}\n")
        env = dict(
            os.environ,
            MOTCUA_BROKER=self.bootstrap,
            MOTCUA_TOPIC=self.topic,
            MOTCUA_UNITS_FILE=str(units),
            MOTCUA_GATEWAY_TOKENS_FILE=str(tokens),
            MOTCUA_GATEWAY_RATE="0",
            MOTCUA_GATEWAY_SEND_TIMEOUT="5",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "gateway", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ok = wait_for(lambda: self.get(wait)[0] == 200 or self.process.poll() is not None, timeout)
        assert ok and self.process.poll() is None, self.log_path.read_text()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        token: str | None = TOKEN,
        extra_headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": content_type, **(extra_headers or {})}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()
        except (urllib.error.URLError, OSError):
            return 0, {}, b""

    def get(self, path: str) -> tuple[int, bytes]:
        status, _, body = self.request("GET", path, token=None)
        return status, body

    def post(self, path: str, payload: Any, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        status, headers, body = self.request("POST", path, data, **kwargs)
        return status, headers, orjson.loads(body) if body else None

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return parse_metrics(self.get("/metrics")[1].decode())


def gateway_in_process(
    bootstrap: str,
    topic: str,
    clock: list[datetime],
    units: Path,
    procedures: Path,
    sources: Path,
    tokens: Path | None = None,
) -> gateway_app.Gateway:
    """A gateway in this process over these reference files, producing to the real broker,
    its clock `clock[0]` (the senders' posting time: what a snapshot only implies)."""
    unit_file, procedure_file = UnitsFile(units), ProceduresFile(procedures)
    source_file = SourcesFile(sources)
    token_book = TokenBook(tokens) if tokens is not None else None
    for reference in (unit_file, procedure_file, source_file, token_book):
        if reference is not None:
            reference.load()
    return gateway_app.Gateway(
        sink=KafkaSink(bootstrap, topic, KafkaSecurity(), 10),
        tokens=token_book,
        units=unit_file,
        limits=gateway_app.GatewayLimits(1 << 20, 100),
        limiter=RateLimiter(0, 1000),
        clock=lambda: clock[0],
        sources=source_file,
        procedures=procedure_file,
    )
