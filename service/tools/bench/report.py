"""How results read: the machine they came from, the table for people, the Markdown for
docs/benchmarks.md. Each step renders its own rows (see steps.py)."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Row = tuple[str, str, str]  # (measure, value, target or note)
RowsOf = Callable[[dict[str, Any]], list[Row]]


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0.0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) / 1024 / 1024
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor() or platform.machine(),
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:,.3f}".rstrip("0").rstrip(".") if value < 100 else f"{value:,.0f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def rows(results: dict[str, Any], renderers: Iterable[RowsOf]) -> list[Row]:
    """(measure, value, target) lines of the report: each renderer's rows in order, then the
    worker crashes if any."""
    out = [row for render in renderers for row in render(results)]
    if results.get("worker_crashes"):
        out.append(("worker crashes (restarted by the bench)", fmt(results["worker_crashes"]), ""))
    return out


def table(lines: list[Row]) -> str:
    width = max(len(m) for m, _, _ in lines)
    value_width = max(len(v) for _, v, _ in lines)
    head = f"{'measure':<{width}}  {'value':>{value_width}}  target"
    body = [f"{m:<{width}}  {v:>{value_width}}  {t}".rstrip() for m, v, t in lines]
    return "\n".join([head, "-" * len(head), *body])


def to_markdown(results: dict[str, Any], host: dict[str, Any], lines: list[Row]) -> str:
    mode = results["mode"]
    command = "motcua bench" + (" --quick" if mode == "quick" else "")
    text = [
        f"### `{command}` — {results['finished_at']}",
        "",
        f"Machine: {host['cpus']} CPUs ({host['cpu_model']}), {host['memory_gib']} GiB memory,"
        f" {host['os']}, Python {host['python']}; broker: {results['broker']}."
        f" Run took {results['duration_s']:.0f} s.",
        "",
        "| measure | value | target / note |",
        "|---|---:|---|",
        *(f"| {m} | {v} | {t} |" for m, v, t in lines),
        "",
    ]
    return "\n".join(text)
