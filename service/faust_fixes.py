"""Work-arounds for faust-streaming behaviour that settings cannot reach (docs/benchmarks.md).

Kept here, apart from the app's settings, so they are easy to find and to drop when faust
offers a way. Each one names what it works around and how it was measured.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

# faust gives the worker's consumer fetch_max_wait_ms=1500 and no setting to change it.
# aiokafka keeps one fetch in flight per broker and leaves out of it every partition whose
# records are fetched but not yet taken by faust. When the event loop is busy for longer than
# aiokafka's 0.1 s prefetch backoff (a batch of a few hundred events, a GC pause), every busy
# partition is in that state and the fetch goes out for idle partitions only (partitions
# without traffic, faust's leader topic): the broker holds it 1.5 s while no busy partition
# can be fetched, the next batch is 1.5 s of events, which again takes over 0.1 s, and reads
# settle into bursts ~1.7 s apart, every event 1.5-1.9 s late. A short wait bounds that, for
# up to 10 empty fetch requests a second on a quiet topic.
FETCH_MAX_WAIT_MS = 100

_create_worker_consumer = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer


def _worker_consumer(thread: Any, transport: Any) -> Any:
    consumer = _create_worker_consumer(thread, transport)
    consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
    return consumer


def bound_fetch_wait() -> None:
    """Make workers' consumers wait at most FETCH_MAX_WAIT_MS for a fetch to fill."""
    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = _worker_consumer  # type: ignore[method-assign]


# faust adds its Monitor sensor to every app (App.on_init_dependencies). The delegate then
# calls it four times per message (message in/out, stream event in/out), keeping per-topic
# and per-partition dicts that nothing here reads: the worker's /metrics computes what
# operators use (consumer lag, messages read, rebalances) from its own state at scrape time.
# Measured on the no-op agent: docs/benchmarks.md. The Monitor object stays (the consumer
# still hands it end offsets and commits, which cost nothing per message).
_on_init_dependencies = faust.App.on_init_dependencies


def _without_monitor(app: Any) -> Any:
    dependencies = _on_init_dependencies(app)
    app.sensors.remove(app.monitor)
    return dependencies


def drop_monitor() -> None:
    """Keep faust's Monitor out of the per-message sensor calls."""
    faust.App.on_init_dependencies = _without_monitor  # type: ignore[method-assign]


def keep_monitor() -> None:
    """Undo `drop_monitor` (the bench measures faust with and without it)."""
    faust.App.on_init_dependencies = _on_init_dependencies  # type: ignore[method-assign]
