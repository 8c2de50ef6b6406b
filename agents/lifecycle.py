"""Dossier events in: faust delivers them in batches, the state layer does the rest.

Each batch goes to `PartitionKeeper.deliver` (service/state/keeper.py): it waits for
partitions still catching up from the log, skips what the store already holds, applies the
rest through the domain core as one transaction, sends dead letters and status messages and
waits for the broker's acknowledgements, then saves the batch atomically with the offsets it
reached. The batch is acknowledged to faust only after that, so committed offsets never pass
what the store holds. A batch that fails is withheld from faust's acknowledgement and read
again from the log (`PartitionKeeper.abandon`); only a failing store stops the worker.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import faust

from service import faust_fixes
from service.app import Worker
from service.state.log_applier import LIVE_BATCH_EVENTS
from service.state.log_reader import Incoming
from service.state.store import StoreError

log = logging.getLogger(__name__)

# Up to this many events per batch, or what arrived within BATCH_WITHIN seconds: at 500
# events/s a batch waits at most 50 ms; when catching up it fills at once.
BATCH_MAX = LIVE_BATCH_EVENTS
BATCH_WITHIN = 0.05


def register(worker: Worker) -> None:
    """The agent that hands the worker's input batches to its state layer."""

    async def track_dossiers(stream: faust.StreamT[bytes]) -> None:
        # faust's StreamT stub lacks take_events (faust-streaming's Stream has it)
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):  # type: ignore[attr-defined]
            started = time.perf_counter()
            messages = [_incoming(event.message) for event in events]
            keeper = worker.keeper
            assert keeper is not None, "the worker opens its state before agents start"
            try:
                await keeper.deliver(messages)
            except StoreError as exc:
                worker.stop(str(exc))
            except BaseException as exc:
                # take_events acknowledges a batch even when the body failed on it: hold the
                # acknowledgement back until the batch is read again from the log and saved.
                consumer = worker.app.consumer
                faust_fixes.withhold_acks(events, consumer)
                why = type(exc).__name__ if isinstance(exc, Exception) else "agent stopped"
                release = functools.partial(faust_fixes.release_acks, events, consumer)
                keeper.abandon(messages, why, release=release)
                if not isinstance(exc, Exception):
                    raise  # cancelled: the agent is stopping
                log.error("batch not applied (%s: %s); reading it again from the log", why, exc)
            if worker.pipeline.batch_seconds is not None:
                worker.pipeline.batch_seconds.observe(time.perf_counter() - started)

    worker.app.agent(worker.events_topic, name="agents.lifecycle.track_dossiers", concurrency=1)(
        track_dossiers
    )


def _incoming(message: Any) -> Incoming:
    return Incoming(
        message.partition,
        message.offset,
        message.key,
        message.value,
        message.timestamp,
        message.headers,
    )
