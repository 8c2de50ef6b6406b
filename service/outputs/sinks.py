"""Where a batch's side effects go: dead letters with their reason, and status changes for
notification systems (became due soon or overdue, result ready, closed).

Each sink has one method, `write(batch)`, in the manner of Quix Streams' sinks: it hands what
the batch produced to the broker and returns once the broker acknowledged all of it, within
the send timeout. Anything less raises `SideEffectFailed`, and the batch is not saved (it is
read again from the log), so a side effect is never claimed that did not happen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

import orjson

from schemas import SOURCE_HEADER
from service.outputs.dead_letter import DLQ_MAX_BYTES, fit_dead_letter
from service.outputs.pipeline_metrics import PipelineCounters
from service.state.ledger import StatusChange
from service.state.log_applier import SideEffectFailed
from service.state.transaction import Transaction, source_of

log = logging.getLogger(__name__)


class Topic(Protocol):
    """faust's topic, as far as the sinks use it."""

    async def send(
        self, *, key: bytes | None, value: bytes, headers: Any = None
    ) -> Awaitable[Any]: ...


class Sink(Protocol):
    async def write(self, batch: Transaction) -> None:
        """Send the batch's part, acknowledged by the broker, or raise SideEffectFailed (the
        commit order calls it only when the batch has something for it)."""


class DeadLetterSink:
    """Every rejected message of a batch, cut to fit `limit` if it must, reason in headers."""

    def __init__(self, topic: Topic, input_topic: str, send_timeout: float) -> None:
        self.topic = topic
        self.input_topic = input_topic
        self.send_timeout = send_timeout
        # The dead-letter topic's max.message.bytes, as found at start (service/worker.py).
        self.limit = DLQ_MAX_BYTES

    async def write(self, batch: Transaction) -> None:
        sends = []
        for message, error in batch.rejected:
            where = f"{self.input_topic}/{message.partition}/{message.offset}"
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
                self.limit,
            )
            sends.append(
                self.topic.send(key=letter.key, value=letter.value, headers=letter.headers)
            )
        await acknowledged("dead letters", sends, self.send_timeout)


class StatusSink:
    """Status changes on the status topic, keyed by dossier."""

    def __init__(self, topic: Topic, send_timeout: float, counters: PipelineCounters) -> None:
        self.topic = topic
        self.send_timeout = send_timeout
        self.counters = counters

    async def write(self, batch: Transaction) -> None:
        await self.publish(batch.changes)

    async def publish(self, changes: list[StatusChange]) -> None:
        """Hand all changes to the producer, then wait for their acknowledgements together
        (the clock's own changes come here directly: agents/deadlines.py)."""
        sends = [
            self.topic.send(key=change.dossier_id.encode(), value=status_value(change))
            for change in changes
        ]
        self.counters.status_sent += await acknowledged("status messages", sends, self.send_timeout)


def status_value(change: StatusChange) -> bytes:
    return orjson.dumps(
        {
            "dossier_id": change.dossier_id,
            "agency": change.agency,
            "status": change.status,
            "at": change.at.isoformat(),
            "due_at": change.due.isoformat() if change.due else None,
        }
    )


async def acknowledged(
    what: str, sends: Sequence[Awaitable[Awaitable[Any]]], timeout: float
) -> int:
    """Wait for every send's acknowledgement (`timeout` seconds at most: MOTCUA_SEND_TIMEOUT);
    raise SideEffectFailed if any was refused or did not come in time."""
    try:
        return await asyncio.wait_for(_all_acknowledged(what, sends), timeout)
    except TimeoutError:
        raise SideEffectFailed(
            f"{what} not acknowledged within {timeout:g} s (MOTCUA_SEND_TIMEOUT)"
        ) from None


async def _all_acknowledged(what: str, sends: Sequence[Awaitable[Awaitable[Any]]]) -> int:
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
