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

from schemas import MAX_MESSAGE_BYTES
from service import app as worker
from service.app import dead_letter_topic, pipeline, settings, status_topic
from service.state.keeper import SideEffectFailed
from service.state.ledger import StatusChange
from service.state.worker_state import SOURCE_HEADER, Batch, source_of

log = logging.getLogger(__name__)

# Headers and Kafka's record overhead beside a dead letter's value.
DEAD_LETTER_OVERHEAD = 4 * 1024


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


def dead_letter_value(value: bytes | None, limit: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The rejected message's bytes untouched when they fit the dead-letter topic's
    max.message.bytes (`limit`, read at start); else cut to the contract's 64 KiB, with the
    original size in a header (the original stays in the input topic, which keeps
    everything: motcua-offset points at it). A dead letter the broker refused would fail
    its batch again and again."""
    raw = value if value is not None else b""
    if len(raw) + DEAD_LETTER_OVERHEAD <= limit or len(raw) <= MAX_MESSAGE_BYTES:
        return raw, []
    return raw[:MAX_MESSAGE_BYTES], [("motcua-truncated", str(len(raw)).encode())]


async def send_dead_letters(batch: Batch) -> None:
    """Every rejected message with its reason in headers, acknowledged by the broker."""
    sends = []
    for message, error in batch.rejected:
        where = f"{settings.topic}/{message.partition}/{message.offset}"
        # Offsets, not payloads, in logs: a message may carry what it should not.
        log.info("rejected %s: %s", where, error.reason.value)
        value, extra = dead_letter_value(message.value, worker.dead_letter_limit)
        sends.append(
            dead_letter_topic.send(
                key=message.key,
                value=value,
                headers=[
                    ("motcua-reason", error.reason.value.encode()),
                    ("motcua-detail", error.detail[:300].encode("utf-8", "replace")),
                    ("motcua-offset", where.encode()),
                    # The center system that sent it (gateway token name), if known.
                    (SOURCE_HEADER, source_of(message.headers).encode()),
                    *extra,
                ],
            )
        )
    await _acknowledged("dead letters", sends)
