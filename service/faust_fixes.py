"""Work-arounds for faust-streaming behaviour that settings cannot reach (docs/benchmarks.md).

Kept here, apart from the app's settings, so they are easy to find and to drop when faust
offers a way. Each one names what it works around and how it was measured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import faust
from faust.tables.manager import TableManager
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults

if TYPE_CHECKING:
    from mode import ServiceT
    from mode.utils.times import Seconds

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


# The replacements below are the methods they replace, so their first parameter is `self`.
def _worker_consumer(self: faust_aiokafka.AIOKafkaConsumerThread, transport: Any) -> Any:
    consumer = _create_worker_consumer(self, transport)
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


def _without_monitor(self: faust.App) -> Iterable[ServiceT]:
    dependencies = _on_init_dependencies(self)
    self.sensors.remove(self.monitor)
    return dependencies


def drop_monitor() -> None:
    """Keep faust's Monitor out of the per-message sensor calls."""
    faust.App.on_init_dependencies = _without_monitor  # type: ignore[method-assign]
    # With no sensor left, faust warns at every rebalance that no sensor kept its state.
    logging.getLogger("faust.app.base").addFilter(_not_missing_sensor_state)


def _not_missing_sensor_state(record: logging.LogRecord) -> bool:
    return "Missing sensor state for rebalance" not in str(record.msg)


def keep_monitor() -> None:
    """Undo `drop_monitor` (the bench measures faust with and without it)."""
    faust.App.on_init_dependencies = _on_init_dependencies  # type: ignore[method-assign]


# For every fetched message faust's consumer runs
#     await self.wait_first(callback(message), self.suspend_flow.wait())
# (Consumer._drain_messages) so that a rebalance can interrupt a callback blocked on a full
# stream buffer. mode's Service.wait_first wraps each argument, and the service's stopped and
# crashed events, in a new task: four tasks made and three cancelled per message. Here the
# three event waiters are made once and kept until one of them fires; only the callback gets
# a task of its own. What wins, and what is cancelled, is the same as before.
_service_wait_first = faust_consumer.Consumer.wait_first


async def _wait_first_keeping_waiters(
    self: Any, *coros: Any, timeout: Seconds | None = None
) -> WaitResults:
    if len(coros) != 2 or timeout is not None or not _is_flow_wait(coros[1]):
        return await _service_wait_first(self, *coros, timeout=timeout)
    callback, flow = coros
    flow.close()  # never started: the kept waiter watches the same event
    waiters: tuple[asyncio.Future[Any], ...] | None = self.__dict__.get("_motcua_waiters")
    if waiters is None or any(waiter.done() for waiter in waiters):
        for waiter in waiters or ():
            waiter.cancel()
        waiters = self._motcua_waiters = (
            asyncio.ensure_future(self.suspend_flow.wait()),
            asyncio.ensure_future(self._stopped.wait()),
            asyncio.ensure_future(self._crashed.wait()),
        )
    task = asyncio.ensure_future(callback)
    try:
        await asyncio.wait((task, *waiters), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
    if self._stopped.is_set() or self._crashed.is_set():
        return WaitResults([], [], True)
    if task.done() and not task.cancelled():
        return WaitResults([callback], [task.result()], False)
    return WaitResults([flow], [None], False)


def _is_flow_wait(coro: Any) -> bool:
    return getattr(coro, "__qualname__", "") == "Event.wait"


def keep_flow_waiters() -> None:
    """Make the consumer's per-message wait_first reuse its event waiters."""
    faust_consumer.Consumer.wait_first = _wait_first_keeping_waiters  # type: ignore[method-assign]


def new_waiters_per_message() -> None:
    """Undo `keep_flow_waiters` (for measuring)."""
    faust_consumer.Consumer.wait_first = _service_wait_first  # type: ignore[method-assign]


# Stream.take_events acknowledges a batch in a `finally`, so a batch the agent failed on, or
# was cancelled in, is acknowledged all the same and faust commits past it. Marking its
# messages as already acknowledged makes that `finally` skip them: their offsets stay out of
# the consumer's acked list, and faust commits nothing at or beyond them until
# `release_acks` hands them over once the batch is saved.
def withhold_acks(events: Any, consumer: Any) -> None:
    """Keep a failed batch's offsets from being committed (see above)."""
    for event in events:
        message = event.message
        message.acked = True
        consumer._unacked_messages.discard(message)


def release_acks(events: Any, consumer: Any) -> None:
    """Acknowledge a withheld batch, now saved, to faust."""
    for event in events:
        message = event.message
        message.acked = False
        consumer.ack(message)


# faust's TableManager.on_start sleeps a second before it registers the app's tables, and the
# consumer subscribes to its topics only once they are registered (Conductor._subscriber):
# every worker start, and so every takeover and restart, waited that second before joining
# the group. The pause lets tables defined late join the first subscription; the worker
# defines none (its state is service/state/, not faust tables), so nothing can be late.
_table_manager_on_start = TableManager.on_start


async def _start_tables_at_once(self: TableManager) -> None:
    if len(self):
        await _table_manager_on_start(self)
        return
    if not self.should_stop:
        await self._update_channels()
        await self.recovery.start()


def start_tables_at_once() -> None:
    """Skip the table manager's start-up pause when the app has no table."""
    TableManager.on_start = _start_tables_at_once  # type: ignore[method-assign]


def apply() -> None:
    """The work-arounds the worker runs with (process-wide: call once, when it starts)."""
    bound_fetch_wait()
    drop_monitor()
    keep_flow_waiters()
    start_tables_at_once()


def member_id(app: faust.App) -> str | None:
    """The worker consumer's member id in its group, or None before it has one. faust does
    not pass it to rebalance callbacks; a new one at an assignment means the consumer was
    fenced (expelled after missing the session timeout) and joined again."""
    try:
        consumer = app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
        member = consumer._coordinator.member_id
    except Exception:  # no consumer yet (tools), or faust's internals moved (test_faust_fixes)
        return None
    return member if isinstance(member, str) and member else None
