"""Dossier events in: faust delivers them in batches, the state layer does the rest.

Each batch goes to `PartitionKeeper.deliver` (service/state/worker_state.py): it waits for
partitions still catching up from the log, skips what the store already holds, applies the
rest through the domain core, sends dead letters, saves the batch atomically with the
offsets it reached, then announces status changes. The batch is acknowledged only after
that, so committed offsets never pass what the store holds (at-least-once).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from service import app as worker
from service.state.log_reader import Incoming
from service.state.store import StoreError

# Up to this many events per batch, or what arrived within BATCH_WITHIN seconds: at 500
# events/s a batch waits at most 50 ms; when catching up it fills at once.
BATCH_MAX = 1000
BATCH_WITHIN = 0.05


@worker.app.agent(worker.events_topic, concurrency=1)
async def track_dossiers(stream: faust.StreamT[bytes]) -> None:
    async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
        started = time.perf_counter()
        messages = [_incoming(event.message) for event in events]
        assert worker.keeper is not None, "the worker opens its state before agents start"
        try:
            await worker.keeper.deliver(messages)
        except StoreError as exc:
            worker.stop_worker(str(exc))
        except Exception as exc:
            # A batch half applied in memory and not saved: the store still holds the last
            # saved prefix, so a restart is exact where carrying on might not be.
            logging.getLogger(__name__).exception("batch failed")
            worker.stop_worker(f"a batch failed ({type(exc).__name__}): restarting from the store")
        if worker.pipeline.batch_seconds is not None:
            worker.pipeline.batch_seconds.observe(time.perf_counter() - started)


def _incoming(message: Any) -> Incoming:
    return Incoming(
        message.partition,
        message.offset,
        message.key,
        message.value,
        message.timestamp,
        message.headers,
    )
