"""Outputs of a batch: dead letters with their reason, and status changes for notification
systems (became due soon or overdue, result ready, closed)."""

from __future__ import annotations

import asyncio
import logging

import orjson

from service.app import dead_letter_topic, pipeline, settings, status_topic
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


async def publish_status(changes: list[StatusChange]) -> None:
    """Hand all changes to the producer, then wait for them together (not one by one)."""
    pending = [
        await status_topic.send(key=change.dossier_id.encode(), value=_status_value(change))
        for change in changes
    ]
    pipeline.status_sent += len(pending)
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


async def announce(batch: Batch) -> None:
    await publish_status(batch.changes)


async def send_dead_letters(batch: Batch) -> None:
    """Every rejected message, untouched, with its reason in headers; acknowledged by the
    broker before the batch is saved."""
    pending = []
    for message, error in batch.rejected:
        where = f"{settings.topic}/{message.partition}/{message.offset}"
        # Offsets, not payloads, in logs: a message may carry what it should not.
        log.info("rejected %s: %s", where, error.reason.value)
        try:
            pending.append(
                await dead_letter_topic.send(
                    key=message.key,
                    value=message.value if message.value is not None else b"",
                    headers=[
                        ("motcua-reason", error.reason.value.encode()),
                        ("motcua-detail", error.detail[:300].encode("utf-8", "replace")),
                        ("motcua-offset", where.encode()),
                        # The center system that sent it (gateway token name), if known.
                        (SOURCE_HEADER, source_of(message.headers).encode()),
                    ],
                )
            )
        except Exception as exc:  # a bad message must never stop the agent
            log.error("dead letter for %s not sent (%s): %s", where, error.reason.value, exc)
    results = await asyncio.gather(*pending, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            log.error("a dead letter was not acknowledged: %s", type(result).__name__)

