"""Figures read from a worker's /metrics text, line by line."""

from __future__ import annotations

from collections.abc import Iterable

_PROCESSED = (
    "motcua_events_total",
    "motcua_events_duplicate_total",
    "motcua_events_rejected_total",
)


def sample_sum(text: str, names: Iterable[str], label: str = "") -> float:
    """Sum of the samples named `names` (and whose labels contain `label`), read line by line:
    cheap enough to scrape twenty times a second."""
    wanted = tuple(names)
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(wanted) or line.startswith("#"):
            continue
        name_end = min(i for i in (line.find("{"), line.find(" ")) if i >= 0)
        if line[:name_end] in wanted and label in line[name_end : line.rfind(" ")]:
            total += float(line.rsplit(" ", 1)[1])
    return total


def processed(text: str) -> int:
    """Events the worker has accounted for: accepted + duplicates + rejected."""
    return int(sample_sum(text, _PROCESSED))


def open_overdue(text: str) -> int:
    return int(sample_sum(text, ("motcua_dossiers_open",), 'state="overdue"'))


def open_dossiers(text: str) -> int:
    return int(sample_sum(text, ("motcua_dossiers_open",)))
