"""`motcua bench --quick` runs end to end and ends with its JSON line. No timing is asserted:
the figures belong in docs/benchmarks.md, not in a pass/fail on a shared machine."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.tools.broker import LocalBroker
from service.tools.processes import Process

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEYS = (
    "throughput_ratio",
    "latency_p99_s",
    "overdue_lag_s",
    "rss_mib_100k",
    "metrics_render_ms",
    "domain_cpu_us_per_event",
    "takeover_events_per_s",
    "history_bytes_per_closed",
)


def test_quick_bench_ends_with_a_json_line_of_figures(
    kafka_broker: LocalBroker, tmp_path: Path
) -> None:
    markdown = tmp_path / "bench.md"
    env = dict(os.environ, MOTCUA_BROKER=kafka_broker.bootstrap)
    result = subprocess.run(
        [sys.executable, "-m", "service", "bench", "--quick", "--markdown", str(markdown)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert len(figures["history_restart_s"]) == len(figures["history_rss_mib"]) == 2
    for key in KEYS:
        value = figures.get(key)
        assert isinstance(value, int | float) and not isinstance(value, bool), (key, value)
        assert value > 0, (key, value)
    assert figures["mode"] == "quick"
    assert "throughput ratio" in result.stdout  # the table came before the JSON
    assert "| measure | value |" in markdown.read_text(encoding="utf-8")


def descendants(pid: int) -> set[int]:
    """The process's children, theirs, and so on (Linux's /proc)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def test_a_bench_stopped_by_sigterm_stops_its_broker_and_workers(tmp_path: Path) -> None:
    # A CI job's timeout or `kill` sends SIGTERM: its local broker and workers run in
    # sessions of their own, so they outlived it and held ports and CPU.
    env = {k: v for k, v in os.environ.items() if k != "MOTCUA_BROKER"}  # its own broker
    bench = subprocess.Popen(
        [sys.executable, "-m", "service", "bench", "--quick", "--only", "throughput"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[int, Process] = {}
    commands: list[str] = []
    work_dirs: set[Path] = set()
    try:
        assert bench.stderr is not None
        for line in bench.stderr:
            if line.startswith("throughput: worker on the same"):
                break
        deadline = time.monotonic() + 120

        # The broker (java) and the worker: each named by pid and start time.
        def both() -> bool:
            broker = any("kafka.Kafka" in c for c in commands)
            return broker and any("service\x00worker" in c for c in commands)

        while not both() and time.monotonic() < deadline and bench.poll() is None:
            for pid in descendants(bench.pid) - set(seen):
                found = Process.of(pid)
                if found is not None:
                    seen[pid] = found
                    with contextlib.suppress(OSError):
                        commands.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode())
                    with contextlib.suppress(OSError):
                        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
                        work_dirs.update(
                            p for p in cwd.parents if p.name.startswith("motcua-bench-")
                        )
            time.sleep(0.5)
        assert both(), commands
        assert bench.poll() is None, bench.stderr.read()[-3000:]  # still measuring
        bench.send_signal(signal.SIGTERM)
        _, said = bench.communicate(timeout=120)
        assert bench.returncode == 130, said[-3000:]
        assert not [p for p in seen.values() if p.alive()], seen
        assert work_dirs and not [d for d in work_dirs if d.exists()], work_dirs
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        for process in seen.values():
            if process.alive():
                os.kill(process.pid, signal.SIGKILL)
