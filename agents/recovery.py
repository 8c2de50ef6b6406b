"""Rebalances: drop the sums of lost partitions, rebuild them from the table when recovered."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from service.app import app, calendar, dossiers, ledger, settings
from service.domain import Dossier
from service.domain.report import DossierFacts, fold_with_facts
from service.state.records import decode

log = logging.getLogger(__name__)


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
    # Partitions without a committed offset are read from their beginning before the stream
    # resumes (service/faust_fixes.py): the sums are complete for what the table holds.
    ledger.ready = True
    log.info(
        "sums rebuilt for partitions %s in %.2fs (%d running dossiers)",
        sorted(partitions),
        time.monotonic() - started,
        ledger.running_count(),
    )


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
