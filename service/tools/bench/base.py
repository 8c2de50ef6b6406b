"""What every bench module shares: the error a measurement raises, progress lines on stderr,
and the shape of the topics it uses."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PARTITIONS = 8
SCRAPE_INTERVAL = 0.1  # seconds between /metrics reads while timing latency and lag

Message = tuple[bytes, bytes]


class BenchError(RuntimeError):
    """A measurement could not finish; str(e) is one line for the report."""


def progress(text: str, end: str = "\n") -> None:
    """A line on stderr; `end="\\r"` lines overwrite each other on a terminal only."""
    if end == "\r" and not sys.stderr.isatty():
        end = "\n"
    print(f"{text:<70}", end=end, file=sys.stderr, flush=True)
