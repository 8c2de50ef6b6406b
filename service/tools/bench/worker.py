"""One `python -m service worker` process under measurement: start, restart after a crash,
read its endpoints, its RSS and its CPU time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from service.tools.bench.base import PARTITIONS, ROOT, BenchError, progress
from service.tools.bench.scrape import processed


@dataclass(frozen=True)
class Counted:
    """How a worker got through a known number of events (monotonic seconds, CPU seconds)."""

    first: float  # counting first seen under way
    done: float  # every event accounted for
    head: int  # events already counted at `first`
    cpu_first: float
    cpu_done: float

    def rate(self, target: int) -> float:
        return (target - self.head) / (self.done - self.first)

    def cpu_us_per_event(self, target: int) -> float:
        return 1e6 * (self.cpu_done - self.cpu_first) / (target - self.head)


@dataclass
class BenchWorker:
    """One `python -m service worker` with its own consumer group, topic and data dir.

    Like a process supervisor, it starts the worker again if it dies on its own (at most
    MAX_CRASHES times) and keeps the log tail of each crash for the report.
    """

    MAX_CRASHES = 2

    bootstrap: str
    app_id: str
    topic: str
    data_dir: Path
    web_port: int
    # What runs: the worker, or e.g. the no-op agent (service/tools/bench/noop_agent.py).
    command: tuple[str, ...] = ("-m", "service", "worker")
    # Settings beside the bench's own (MOTCUA_* variables).
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    crashes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "worker.log"

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._spawn()

    def _spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            MOTCUA_BROKER=self.bootstrap,
            MOTCUA_APP_ID=self.app_id,
            MOTCUA_TOPIC=self.topic,
            MOTCUA_PARTITIONS=str(PARTITIONS),
            MOTCUA_DATA_DIR=str(self.data_dir),
            MOTCUA_WEB_PORT=str(self.web_port),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)
        with self.log_path.open("ab") as log:
            # The default log level, as in production: faust's --loglevel warning turns on
            # a progress spinner that makes every library debug() call build a LogRecord.
            self.process = subprocess.Popen(
                [sys.executable, *self.command],
                cwd=self.data_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, timeout: float = 60.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def check_alive(self) -> None:
        """Restart a worker that died by itself, or give up after MAX_CRASHES."""
        if self.process is None or self.process.poll() is None:
            return
        tail = self.log_tail()
        self.crashes.append(tail)
        if len(self.crashes) > self.MAX_CRASHES:
            raise BenchError(f"worker {self.app_id} keeps exiting; last log line: {tail}")
        progress(f"  worker exited with {self.process.returncode} ({tail}); starting it again")
        self._spawn()

    def log_tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return lines[-1][:200] if lines else "no log"

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def metrics_text(self) -> str:
        status, body = self.get("/metrics")
        return body.decode() if status == 200 else ""

    def wait_ready(self, timeout: float) -> float:
        """Seconds from process start until /readyz says the sums are rebuilt."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.get("/readyz", timeout=2)[0] == 200:
                return time.monotonic() - self.started_at
            time.sleep(0.1)
        raise BenchError(f"worker {self.app_id} not ready after {timeout:.0f} s")

    def wait_processed(self, target: int, timeout: float, every: float = 0.5) -> Counted:
        """Poll /metrics every `every` seconds until the counters account for `target`."""
        first: tuple[float, int, float] | None = None
        deadline = time.monotonic() + timeout
        count, shown = 0, 0.0
        while time.monotonic() < deadline:
            self.check_alive()
            count = processed(self.metrics_text())
            now, cpu = time.monotonic(), self.cpu_seconds()
            if count > 0 and first is None:
                first = (now, count, cpu)
            if count >= target:
                assert first is not None
                return Counted(first[0], now, first[1], first[2], cpu)
            if now >= shown + (1.0 if sys.stderr.isatty() else 15.0):
                progress(f"  {count:,}/{target:,} events counted", end="\r")
                shown = now
            time.sleep(every)
        raise BenchError(f"worker counted {count:,} of {target:,} events in {timeout:.0f} s")

    def _proc(self, name: str) -> str:
        assert self.process is not None
        try:
            return Path(f"/proc/{self.process.pid}/{name}").read_text()
        except OSError:
            raise BenchError(f"cannot read /proc/{self.process.pid}/{name} (Linux only)") from None

    def rss_mib(self) -> float:
        for line in self._proc("status").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise BenchError("no VmRSS in /proc/<pid>/status")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker process so far, with that of the children
        it has waited for (its catch-up helpers)."""
        fields = self._proc("stat").rsplit(")", 1)[1].split()
        ticks = sum(int(fields[n]) for n in (11, 12, 13, 14))
        return ticks / os.sysconf("SC_CLK_TCK")
