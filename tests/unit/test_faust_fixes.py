"""The work-arounds in service/faust_fixes.py reach the consumer a worker really builds."""

from __future__ import annotations

from typing import Any

from service import faust_fixes
from service.faust_fixes import FETCH_MAX_WAIT_MS
from service.settings import Settings
from service.worker import build_worker

faust_fixes.apply()  # as `motcua worker` does when it starts
app = build_worker(Settings()).app


async def test_the_worker_consumer_waits_briefly_for_fetches() -> None:
    # faust hard-codes 1,500 ms; with it, reads fell into bursts 1.7 s apart.
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS <= 100
    finally:
        await consumer.stop()


def test_no_leader_topic_is_consumed() -> None:
    assert app.conf.topic_disable_leader is True


async def test_the_monitor_is_kept_out_of_the_per_message_sensor_calls() -> None:
    from service import faust_fixes

    app.on_init_dependencies()
    assert app.monitor not in set(app.sensors)
    # What the work-around undoes must still be faust's behaviour: if an upgrade stops adding
    # the Monitor (or adds it elsewhere), this fails and the work-around can go.
    faust_fixes.keep_monitor()
    try:
        app.on_init_dependencies()
        assert app.monitor in set(app.sensors)
    finally:
        faust_fixes.drop_monitor()
        app.sensors.remove(app.monitor)


def test_faust_still_waits_per_message_the_way_the_fix_expects() -> None:
    import inspect

    from faust.transport.consumer import Consumer

    # If faust changes this call, the fix no longer applies: look at it again.
    assert "self.wait_first(callback(message),self.suspend_flow.wait())" in "".join(
        inspect.getsource(Consumer._drain_messages).split()
    )


async def test_kept_waiters_behave_like_faust_wait_first() -> None:
    import asyncio

    from mode import Service

    from service.faust_fixes import _wait_first_keeping_waiters

    class Flow(Service):
        def __init__(self) -> None:
            super().__init__()
            self.suspend_flow = asyncio.Event()

    consumer = Flow()

    async def quick() -> int:
        return 7

    results = await _wait_first_keeping_waiters(consumer, quick(), consumer.suspend_flow.wait())
    assert results.results == [7] and not results.stopped
    kept = consumer._motcua_waiters
    await _wait_first_keeping_waiters(consumer, quick(), consumer.suspend_flow.wait())
    assert consumer._motcua_waiters is kept  # no new waiter tasks per message

    # A rebalance suspends the flow: a callback blocked on a full buffer is cancelled.
    cancelled = asyncio.Event()

    async def blocked() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    waiting = asyncio.ensure_future(
        _wait_first_keeping_waiters(consumer, blocked(), consumer.suspend_flow.wait())
    )
    await asyncio.sleep(0.01)
    consumer.suspend_flow.set()
    results = await waiting
    await asyncio.sleep(0)
    assert results.results == [None] and not results.stopped and cancelled.is_set()

    # Stopping the service ends the wait too, and says so.
    consumer.suspend_flow.clear()
    waiting = asyncio.ensure_future(
        _wait_first_keeping_waiters(consumer, blocked(), consumer.suspend_flow.wait())
    )
    await asyncio.sleep(0.01)
    consumer._stopped.set()
    assert (await waiting).stopped


def test_a_withheld_batch_is_not_acknowledged_until_released() -> None:
    """take_events acknowledges a batch in a `finally` even when the agent failed on it;
    withheld messages must not reach the consumer's acked offsets until released."""
    from types import SimpleNamespace

    from faust.types.tuples import ConsumerMessage

    from service.faust_fixes import release_acks, withhold_acks

    class Consumer:
        """faust's Consumer.ack bookkeeping, reduced to what is checked here."""

        def __init__(self) -> None:
            self.acked: list[int] = []
            self._unacked_messages: set[Any] = set()

        def ack(self, message: Any) -> bool:
            if message.acked:
                return False
            message.acked = True
            self._unacked_messages.discard(message)
            self.acked.append(message.offset)
            return True

    consumer = Consumer()
    messages = [ConsumerMessage("t", 0, n, 0.0, 0, None, None, b"x", None) for n in range(3)]
    consumer._unacked_messages.update(messages)
    events = [SimpleNamespace(message=m) for m in messages]
    withhold_acks(events, consumer)
    for event in events:  # what take_events' `finally` does with the failed batch
        event.message.ack(consumer)
    assert consumer.acked == [] and not consumer._unacked_messages
    release_acks(events, consumer)
    assert consumer.acked == [0, 1, 2]


class _Tables(dict[str, Any]):
    """A stand-in table manager that records what its start does, in order."""

    should_stop = False

    def __init__(self, tables: int) -> None:
        super().__init__({f"table-{n}": object() for n in range(tables)})
        self.calls: list[str] = []
        self.recovery = self

    async def sleep(self, seconds: float) -> None:
        self.calls.append(f"sleep {seconds}")

    async def _update_channels(self) -> None:
        self.calls.append("register tables")

    async def start(self) -> None:
        self.calls.append("start recovery")


async def test_an_app_without_tables_registers_them_without_the_pause() -> None:
    from faust.tables.manager import TableManager

    from service.faust_fixes import _start_tables_at_once

    assert TableManager.on_start is _start_tables_at_once
    assert len(app.tables) == 0  # the worker's state is not faust tables
    none = _Tables(0)
    await _start_tables_at_once(none)
    assert none.calls == ["register tables", "start recovery"]
    # An app with tables starts as faust starts it, pause included: this also fails if an
    # upgrade changes what faust's start does, and the work-around must be looked at again.
    some = _Tables(1)
    await _start_tables_at_once(some)
    assert some.calls == ["sleep 1.0", "register tables", "start recovery"]
