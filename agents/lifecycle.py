"""Dossier events in, dossier state and live sums out.

decode → validate → merge into the dossier's stored events → replay (domain core) →
write the table → update the sums. Bad messages go to the dead-letter topic untouched,
with the reason in headers; they never stop the agent.

Events come in batches (`stream.take_events`): a batch is merged with no await at all, and a
dossier touched several times in one batch is written to the table once, so its changelog
gets one record instead of several; status changes and rejects are sent after the batch.
The batch is acknowledged only after all of that, so offsets still follow the table
(at-least-once). Benchmarks: docs/benchmarks.md.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime

import faust
from faust.streams import _current_event

from agents.status import publish_status
from schemas import InvalidEvent
from service.app import app, calendar, dead_letter_topic, dossiers, events_topic, ledger
from service.state.intake import merge, parse
from service.state.ledger import StatusChange
from service.state.records import encode

log = logging.getLogger(__name__)

# Up to this many events per batch, or what arrived within BATCH_WITHIN seconds: at 500
# events/s a batch waits at most 50 ms; when catching up it fills at once.
BATCH_MAX = 1000
BATCH_WITHIN = 0.05


@dataclass
class Batch:
    """What one batch leaves to do once it is merged: table writes, messages to send."""

    writes: dict[bytes, tuple[bytes, faust.EventT]] = field(default_factory=dict)
    changes: list[StatusChange] = field(default_factory=list)
    rejected: list[tuple[faust.EventT, InvalidEvent]] = field(default_factory=list)


@app.agent(events_topic, concurrency=1)
async def track_dossiers(stream: faust.StreamT[bytes]) -> None:
    async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
        batch = Batch()
        try:
            for event in events:
                track(event, batch)
        finally:
            # Even if one event broke the agent, what the ledger already counts is stored.
            for key, (value, event) in batch.writes.items():
                _acting_for(event)
                dossiers[key] = value
            _acting_for(None)
        for change in batch.changes:
            await publish_status(change)
        for event, error in batch.rejected:
            await send_to_dead_letter(event, error)


def track(event: faust.EventT, batch: Batch) -> None:
    """Merge one event into its dossier; the table write waits in `batch.writes`."""
    message = event.message
    now = datetime.now(UTC)
    _acting_for(event)
    try:
        dossier_event = parse(event.value, event.key, now)
        key = dossier_event.dossier_id.encode()
        pending = batch.writes.get(key)
        stored = pending[0] if pending is not None else dossiers.get(key)
        merged = merge(dossier_event, stored, message.partition, calendar)
    except InvalidEvent as exc:
        batch.rejected.append((event, exc))
        return
    batch.writes[key] = (encode(merged.record), event)
    if merged.duplicate:
        ledger.duplicate(message.partition)
    else:
        change = ledger.accept(
            message.partition, merged.dossier, dossier_event.type.value, now, merged.facts
        )
        if change is not None:
            batch.changes.append(change)
    ledger.last_event_timestamp = message.timestamp


def _acting_for(event: faust.EventT | None) -> None:
    # The table picks the store and changelog partition from faust's "current event". Inside
    # take_events the stream is drained by another task, so the agent's task has none: set
    # it to the event at hand (faust's own Stream._set_current_event does the same).
    _current_event.set(weakref.ref(event) if event is not None else None)


async def send_to_dead_letter(event: faust.EventT, error: InvalidEvent) -> None:
    message = event.message
    ledger.reject(error.reason.value)
    # Offsets, not payloads, in logs: a message may carry what it should not.
    log.info(
        "rejected %s/%s@%s: %s",
        message.topic,
        message.partition,
        message.offset,
        error.reason.value,
    )
    try:
        await dead_letter_topic.send(
            key=event.key,
            value=event.value if event.value is not None else b"",
            headers=[
                ("motcua-reason", error.reason.value.encode()),
                ("motcua-detail", error.detail[:300].encode("utf-8", "replace")),
                ("motcua-source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
            ],
        )
    except Exception as exc:  # a bad message must never stop the agent
        log.error(
            "dead letter for %s/%s@%s not sent (%s): %s",
            message.topic,
            message.partition,
            message.offset,
            error.reason.value,
            type(exc).__name__,
        )
