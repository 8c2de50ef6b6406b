"""The fetch wait the worker's consumer really sends to the broker (service/faust_fixes.py).

The patch sets an attribute on aiokafka's consumer; what matters is the max_wait_time of the
FetchRequests its fetcher sends, so this reads them on the way out to a real broker.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.consumer import fetcher as aiokafka_fetcher

from service import faust_fixes
from service.faust_fixes import FETCH_MAX_WAIT_MS
from service.settings import Settings
from service.tools.broker import LocalBroker
from service.worker import build_worker


async def test_the_worker_consumer_asks_the_broker_to_wait_briefly(
    kafka_broker: LocalBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[int] = []
    real_request = aiokafka_fetcher.FetchRequest

    def recording_request(max_wait_time: int, *args: Any, **kwargs: Any) -> Any:
        waits.append(max_wait_time)
        return real_request(max_wait_time, *args, **kwargs)

    monkeypatch.setattr(aiokafka_fetcher, "FetchRequest", recording_request)
    faust_fixes.apply()  # as `motcua worker` does when it starts
    app = build_worker(Settings()).app
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    consumer._client._bootstrap_servers = kafka_broker.bootstrap  # the test's broker
    await consumer.start()
    try:
        tp = TopicPartition("fetch-wait-probe", 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        for _ in range(20):
            await consumer.getmany(timeout_ms=200)
            if waits:
                break
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()
    assert waits, "the fetcher sent no FetchRequest"
    # faust hard-codes 1,500 ms; with it, reads fell into bursts 1.7 s apart.
    assert set(waits) == {FETCH_MAX_WAIT_MS}
