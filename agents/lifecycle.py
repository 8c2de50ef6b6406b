"""Dossier events in, dossier state and live sums out.

decode → validate → merge into the dossier's stored events → replay (domain core) →
write the table → update the sums. Bad messages go to the dead-letter topic untouched,
with the reason in headers; they never stop the agent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import faust

from agents.status import publish_status
from schemas import InvalidEvent
from service.app import app, calendar, dead_letter_topic, dossiers, events_topic, ledger
from service.intake import merge, parse
from service.records import encode

log = logging.getLogger(__name__)


@app.agent(events_topic, concurrency=1)
async def track_dossiers(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        message = event.message
        now = datetime.now(UTC)
        try:
            dossier_event = parse(event.value, event.key, now)
            key = dossier_event.dossier_id.encode()
            merged = merge(dossier_event, dossiers.get(key), message.partition, calendar)
        except InvalidEvent as exc:
            await send_to_dead_letter(event, exc)
            continue
        dossiers[key] = encode(merged.record)
        if merged.duplicate:
            ledger.duplicate(message.partition)
        else:
            change = ledger.accept(
                message.partition, merged.dossier, dossier_event.type.value, now, merged.facts
            )
            if change is not None:
                await publish_status(change)
        ledger.last_event_timestamp = message.timestamp


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
    await dead_letter_topic.send(
        key=event.key,
        value=event.value if event.value is not None else b"",
        headers=[
            ("motcua-reason", error.reason.value.encode()),
            ("motcua-detail", error.detail[:300].encode("utf-8", "replace")),
            ("motcua-source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
        ],
    )
