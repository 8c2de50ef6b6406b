"""A faust agent that only counts, on the worker's own app settings: the floor of faust's
per-message path, measured beside the worker on the same topic.

    python -m service.tools.bench.noop_agent [--sensors none|monitor|prometheus]

`none` runs with the worker's sensors (service/faust_fixes.py trims faust's Monitor);
`monitor` puts faust's default Monitor back; `prometheus` adds faust's Prometheus sensor as
the worker used to (`setup_prometheus_sensors`). /metrics says how many events were taken,
in the worker's own counter name, so the bench waits for both the same way.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator

import faust
from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily

from agents.lifecycle import BATCH_MAX, BATCH_WITHIN
from service import faust_fixes
from service.app import worker_parts
from service.settings import Settings


class _Taken:
    def __init__(self) -> None:
        self.taken = 0

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("motcua_events", "Events taken", labels=["type"])
        family.add_metric(["noop"], float(self.taken))
        yield family


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sensors", choices=("none", "monitor", "prometheus"), default="none")
    parser.add_argument(
        "--faust-wait-first",
        action="store_true",
        help="faust's own per-message wait_first (four tasks a message) instead of the fix",
    )
    args = parser.parse_args()
    settings = Settings.from_env()
    faust_fixes.apply()
    worker = worker_parts(settings)  # the worker's own app and topic settings
    app = worker.app
    counter = _Taken()
    registry = CollectorRegistry()
    registry.register(counter)

    @app.agent(worker.events_topic, concurrency=1)
    async def count_only(stream: faust.StreamT[bytes]) -> None:
        # faust's StreamT stub lacks take_events (faust-streaming's Stream has it)
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):  # type: ignore[attr-defined]
            counter.taken += len(events)

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            return self.json({"ready": True})

    if args.faust_wait_first:
        faust_fixes.new_waiters_per_message()
    if args.sensors == "monitor":
        faust_fixes.keep_monitor()
    if args.sensors == "prometheus":
        from faust.sensors.prometheus import setup_prometheus_sensors

        faust_fixes.keep_monitor()
        extra = CollectorRegistry()
        setup_prometheus_sensors(app, pattern="/faust-metrics", registry=extra)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(registry), content_type="text/plain")

    from faust.worker import Worker

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("faust").setLevel(logging.WARNING)
    sys.argv = [sys.argv[0], "worker"]
    Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
