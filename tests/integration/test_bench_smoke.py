"""`motcua bench --quick` runs end to end and ends with its JSON line. No timing is asserted:
the figures belong in docs/benchmarks.md, not in a pass/fail on a shared machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.tools.broker import LocalBroker

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
