"""Rebalances: drop the sums of lost partitions, rebuild them from the table when recovered."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from faust.types import TP

from service.app import app, calendar, dossiers, ledger, settings
from service.domain import Dossier
from service.domain.report import DossierFacts, fold_with_facts
from service.records import decode

log = logging.getLogger(__name__)
_background: set[asyncio.Future[None]] = set()


def assigned_partitions() -> set[int]:
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == settings.topic}


@app.on_partitions_revoked.connect
async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
    ledger.ready = False


@app.on_partitions_assigned.connect
async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
    ledger.ready = False


@dossiers.on_recover
async def on_recovered() -> None:
    started = time.monotonic()
    partitions = assigned_partitions()
    # A rebuild creates millions of objects that all stay: the cyclic collector would scan
    # them again and again for nothing (none form cycles). Off while rebuilding; afterwards
    # they are moved out of its sight, so later collections do not pause on them.
    gc.disable()
    try:
        ledger.rebuild(_stored_dossiers(), partitions, datetime.now(UTC))
    finally:
        gc.enable()
    gc.freeze()
    # Ready once the rewind below is done: faust seeks after this callback returns.
    task = asyncio.ensure_future(rewind_then_ready(partitions))
    _background.add(task)
    task.add_done_callback(_background.discard)
    log.info(
        "sums rebuilt for partitions %s in %.2fs (%d running dossiers)",
        sorted(partitions),
        time.monotonic() - started,
        ledger.running_count(),
    )


async def rewind_then_ready(partitions: set[int]) -> None:
    try:
        await rewind_uncommitted(partitions)
    except Exception:  # the worker still works; it may only re-read what it has
        log.exception("rewinding partitions without a committed offset failed")
    finally:
        ledger.ready = True


async def rewind_uncommitted(partitions: set[int]) -> None:
    """Seek input partitions with no committed offset back to their beginning.

    aiokafka's seek_to_committed skips a committed offset of 0 or none, so a worker that
    restarts after its group crashed before the first commit kept the fetch position of
    records fetched and dropped during recovery and consumed nothing until new events came
    (reproduced in tests/integration/test_worker.py). It runs once recovery has completed
    and faust has done its own seek; re-reading is safe: events are idempotent.
    """
    tps = {TP(settings.topic, p) for p in partitions}
    if not tps:
        return
    await app.tables.recovery.completed.wait()
    committed = await app.consumer.seek_to_committed()
    uncommitted = {tp for tp in tps if not committed.get(tp)}
    if not uncommitted:
        return
    earliest = await app.consumer.earliest_offsets(*uncommitted)
    # seek_wait runs in the consumer's own thread; a plain seek from this loop raced the
    # fetcher there and crashed it (KeyError in aiokafka's fetched_records).
    await app.consumer.seek_wait({tp: earliest.get(tp) or 0 for tp in uncommitted})


def _stored_dossiers() -> Iterator[tuple[Dossier, list[str], int, int, DossierFacts | None]]:
    for key, raw in dossiers.items():
        dossier_id = key.decode()
        record = decode(dossier_id, raw)
        dossier, facts = fold_with_facts(dossier_id, record.events, calendar)
        yield (
            dossier,
            [e.type.value for e in record.events],
            record.duplicates,
            record.partition,
            facts,
        )
