"""The events the bench publishes: a simulated center's history, and open dossiers with a
chosen due."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from service.domain.calendar import LOCAL_TZ
from service.tools.bench.base import BenchError, Message
from service.tools.simulate import SimulationConfig, catalog, generate

# Agencies in the scale test: the simulator's 22 and 8 district desks (invented codes).
EXTRA_AGENCIES = tuple(f"UBND-H{n:02d}" for n in range(1, 9))


def encoded(events: Iterable[dict[str, Any]]) -> Iterator[Message]:
    for event in events:
        yield event["dossier_id"].encode(), orjson.dumps(event)


def simulated(events: int, seed: int, now: datetime | None = None) -> list[Message]:
    """The first `events` events of a simulated center's history (2% re-sent)."""
    config = SimulationConfig(
        dossiers=max(events // 2, 1), seed=seed, now=now, duplicate_ratio=0.02
    )
    out = list(itertools.islice(encoded(generate(config)), events))
    if len(out) < events:
        raise BenchError(f"the simulator gave {len(out):,} events, fewer than {events:,}")
    return out


def _local(instant: datetime) -> str:
    return instant.astimezone(LOCAL_TZ).isoformat(timespec="seconds")


def open_receipts(count: int, first: int, due: datetime, tag: str) -> Iterator[Message]:
    """`received` events of `count` dossiers with an explicit due (the printed appointment),
    spread over 30 agencies and their procedures."""
    procedures: dict[str, list[str]] = {}
    for procedure in catalog():
        procedures.setdefault(procedure.agency, []).append(procedure.code)
    for n, agency in enumerate(EXTRA_AGENCIES):
        procedures[agency] = [f"2.{n:02d}{k:04d}" for k in range(40)]
    desks = [(agency, codes) for agency, codes in procedures.items()]
    received = _local(datetime.now(UTC) - timedelta(hours=1))
    due_at = _local(due)
    channels = ("direct", "online", "postal")
    for n in range(first, first + count):
        agency, codes = desks[n % len(desks)]
        dossier_id = f"{tag}-{n:08d}"
        event = {
            "schema_version": 1,
            "event_id": f"{dossier_id}-1",
            "dossier_id": dossier_id,
            "type": "received",
            "occurred_at": received,
            "agency": agency,
            "procedure": codes[(n // len(desks)) % len(codes)],
            "channel": channels[n % 7 % 3],
            "due_at": due_at,
        }
        yield dossier_id.encode(), orjson.dumps(event)
