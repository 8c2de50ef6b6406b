"""Outputs of a batch: dead letters with their reason, and status changes for notification
systems (became due soon or overdue, result ready, closed). Both are side effects of a
transaction: each must be acknowledged by the broker before the batch is saved, so a send
that fails raises `SideEffectFailed` and the batch is not saved (it is read again)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import orjson

from service import app as worker
from service.app import dead_letter_topic, pipeline, settings, status_topic
from service.outputs.dead_letter import fit_dead_letter
from service.state.keeper import SideEffectFailed
from service.state.ledger import StatusChange
from service.state.worker_state import SOURCE_HEADER, Batch, source_of

log = logging.getLogger(__name__)


def _status_value(change: StatusChange) -> bytes:
    return orjson.dumps(
        {
            "dossier_id": change.dossier_id,
            "agency": change.agency,
            "status": change.status,
            "at": change.at.isoformat(),
            "due_at": change.due.isoformat() if change.due else None,
        }
    )


async def _acknowledged(what: str, sends: list[Awaitable[Any]]) -> int:
    """Wait for every send's acknowledgement (MOTCUA_SEND_TIMEOUT at most); raise
    SideEffectFailed if any was refused or did not come in time."""
    try:
        return await asyncio.wait_for(_all_acknowledged(what, sends), settings.send_timeout)
    except TimeoutError:
        raise SideEffectFailed(
            f"{what} not acknowledged within {settings.send_timeout} s (MOTCUA_SEND_TIMEOUT)"
        ) from None


async def _all_acknowledged(what: str, sends: list[Awaitable[Any]]) -> int:
    pending = []
    try:
        for send in sends:
            pending.append(await send)
    except Exception as exc:
        raise SideEffectFailed(f"{what} not sent: {type(exc).__name__}: {exc}") from exc
    results = await asyncio.gather(*pending, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        first = failed[0]
        raise SideEffectFailed(
            f"{len(failed)} of {len(results)} {what} not acknowledged: "
            f"{type(first).__name__}: {first}"
        )
    return len(results)


async def publish_status(changes: list[StatusChange]) -> None:
    """Hand all changes to the producer, then wait for their acknowledgements together."""
    sends = [
        status_topic.send(key=change.dossier_id.encode(), value=_status_value(change))
        for change in changes
    ]
    pipeline.status_sent += await _acknowledged("status messages", sends)


async def announce(batch: Batch) -> None:
    await publish_status(batch.changes)


async def send_dead_letters(batch: Batch) -> None:
    """Every rejected message with its reason in headers, acknowledged by the broker."""
    sends = []
    for message, error in batch.rejected:
        where = f"{settings.topic}/{message.partition}/{message.offset}"
        # Offsets, not payloads, in logs: a message may carry what it should not.
        log.info("rejected %s: %s", where, error.reason.value)
        letter = fit_dead_letter(
            message.key,
            message.value,
            [
                ("motcua-reason", error.reason.value.encode()),
                ("motcua-detail", error.detail[:300].encode("utf-8", "replace")),
                ("motcua-offset", where.encode()),
                # The center system that sent it (gateway token name), if known.
                (SOURCE_HEADER, source_of(message.headers).encode()),
            ],
            worker.dead_letter_limit,
        )
        sends.append(
            dead_letter_topic.send(key=letter.key, value=letter.value, headers=letter.headers)
        )
    await _acknowledged("dead letters", sends)
