"""The input topic's settings, checked again while the worker runs: a retention someone sets
on `dossier-events` after the worker started deletes the record as surely as one it found
(service/ingest/input_topic.py)."""

from __future__ import annotations

import asyncio
import logging

from service.app import Worker
from service.ingest.input_topic import read_input_topic

log = logging.getLogger(__name__)


def register(worker: Worker) -> None:
    """The timer that checks the input topic every MOTCUA_TOPIC_CHECK_SECONDS."""
    settings = worker.settings

    async def check_input_topic() -> None:
        try:
            # kafka-python's admin client blocks: off the event loop.
            checked = await asyncio.to_thread(read_input_topic, settings)
        except Exception as exc:  # the broker away: the last check stands, said once a round
            log.warning("could not check topic %s: %s", settings.topic, exc)
            return
        before = worker.input_topic
        worker.input_topic = checked
        said = before.warnings(settings) if before is not None else []
        for warning in checked.warnings(settings):
            if warning not in said:  # said at start or at an earlier check already
                log.error("%s", warning)
        if before is not None and before.finite and not checked.finite:
            log.info("topic %s keeps its events forever again", settings.topic)

    worker.app.timer(interval=settings.topic_check_s, name="agents.input_topic.check")(
        check_input_topic
    )
