"""The work-arounds in service/faust_fixes.py reach the consumer a worker really builds."""

from __future__ import annotations

from service.app import app
from service.faust_fixes import FETCH_MAX_WAIT_MS


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
