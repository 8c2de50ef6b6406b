"""The worker, built by a function: settings in, a faust app with its topics, state and outputs.

At-least-once processing with agent concurrency 1: faust's exactly_once and concurrency > 1
have open data-loss bugs (#517, #606). Exactness comes from the state instead: the local
store is the fold of a prefix of `dossier-events` with the offset it reached, and counters
are sums of per-dossier contributions (service/state/). faust delivers events and assigns
partitions; it keeps no table, so no changelog, standby or recovery is involved.

Importing this module builds nothing and reads nothing: `worker_parts(settings)` makes the
app, its topics, the sums and the outputs (service/worker.py's `build_worker` registers the
agents, timers and pages on them); `Worker.open_state` opens the store when the worker runs
(opening it earlier would lock it for every process that builds one).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import faust
from prometheus_client import CollectorRegistry

from service.domain import DEFAULT_CALENDAR, WorkingCalendar
from service.ingest.input_topic import InputTopicCheck
from service.outputs.dead_letter import DLQ_MAX_BYTES
from service.outputs.pipeline_metrics import PipelineCounters
from service.outputs.sinks import DeadLetterSink, StatusSink
from service.settings import Settings
from service.state.catch_up_helper import CatchUpHelpers
from service.state.keeper import PartitionKeeper
from service.state.ledger import Ledger
from service.state.log_reader import LogReader
from service.state.recent import RecentDossiers
from service.state.store import DossierStore
from service.state.worker_state import WorkerState

log = logging.getLogger(__name__)

# Seconds between checks of the group's committed offsets against the store (readiness
# lapses after a few missed ones: service/state/keeper.py).
COMMITTED_CHECK_S = 2.0
# The exit status of a worker that stopped because its store failed (sysexits' EX_SOFTWARE):
# a supervisor restarts it.
STORE_FAILED = 70


@dataclass(eq=False)
class Worker:
    """One worker's parts: the faust app and topics, the sums, the outputs, the state."""

    settings: Settings
    calendar: WorkingCalendar
    app: faust.App
    events_topic: faust.TopicT
    dead_letters: DeadLetterSink
    status: StatusSink
    ledger: Ledger
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    pipeline: PipelineCounters = field(default_factory=PipelineCounters)
    # The input topic as last checked (at start, then by agents/input_topic.py).
    input_topic: InputTopicCheck | None = None
    # Set by `open_state` when the worker runs.
    keeper: PartitionKeeper | None = None

    def open_state(self) -> PartitionKeeper:
        """Open the local store and wire the state layer to the outputs (raises StoreError)."""
        settings = self.settings
        store = DossierStore(settings.store_path, settings.topic)
        reader = LogReader(
            settings.bootstrap,
            settings.topic,
            settings.app_id,
            **settings.security.aiokafka_kwargs(),
        )
        helpers = None
        if settings.catch_up_helper_count:
            helpers = CatchUpHelpers(
                settings.bootstrap,
                settings.topic,
                settings.security,
                self.calendar,
                settings.data_dir / "worker",
                helpers=settings.catch_up_helper_count,
                min_events=settings.catch_up_helper_min_events,
                recent_dossiers=settings.recent_dossiers,
            )
            helpers.clear()
        self.keeper = PartitionKeeper(
            WorkerState(
                store, self.ledger, self.calendar, RecentDossiers(settings.recent_dossiers)
            ),
            reader,
            self.dead_letters.write,
            self.status.write,
            self.stop,
            accept_truncated_log=settings.accept_truncated_log,
            check_every=COMMITTED_CHECK_S,
            helpers=helpers,
        )
        return self.keeper

    def stop(self, why: str) -> None:
        """The local store failed: stop rather than serve numbers a restart cannot give back.
        A supervisor restarts the worker, which goes on from its store and the log."""
        self.ledger.wait(-1, why)  # not ready from this instant
        log.critical("stopping: %s", why)
        logging.shutdown()
        os._exit(STORE_FAILED)


def worker_parts(settings: Settings, calendar: WorkingCalendar | None = None) -> Worker:
    """The worker's app, topics, sums and outputs; nothing connects, and the store is not
    opened, until it runs."""
    if calendar is None:
        calendar = (
            WorkingCalendar.from_file(settings.calendar_file)
            if settings.calendar_file
            else DEFAULT_CALENDAR
        )
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=settings.security.faust_credentials(),
        datadir=str(settings.data_dir / "worker"),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        key_serializer="raw",
        value_serializer="raw",
        # Deliver quickly: status changes and the DLQ should not wait for a batch to fill.
        producer_linger_ms=5,
        producer_acks=-1,
        producer_max_request_size=DLQ_MAX_BYTES,
        consumer_auto_offset_reset="earliest",
        # faust's default (no limit) hands the stream everything fetched, up to a MiB per
        # partition, and then stalls on its own buffers; 1,000 costs less CPU per event when
        # catching up (docs/benchmarks.md) and never binds at live rates.
        broker_max_poll_records=1000,
        # A worker killed with -9 holds its partitions until the session times out (faust's
        # default is 60 s): 10 s lets the group move on quickly.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        web_in_thread=False,
        logging_config=None,
        # No task or timer runs on_leader, and the leader topic never receives data: without
        # it the consumer holds one idle partition less (see service/faust_fixes.py).
        topic_disable_leader=True,
    )

    def raw_topic(name: str, partitions: int) -> faust.TopicT:
        return app.topic(name, partitions=partitions, key_serializer="raw", value_serializer="raw")

    pipeline = PipelineCounters()
    worker = Worker(
        settings=settings,
        calendar=calendar,
        app=app,
        events_topic=raw_topic(settings.topic, settings.partitions),
        dead_letters=DeadLetterSink(
            raw_topic(settings.dlq_topic, 1), settings.topic, settings.send_timeout
        ),
        status=StatusSink(
            raw_topic(settings.status_topic, settings.partitions), settings.send_timeout, pipeline
        ),
        ledger=Ledger(calendar),
        pipeline=pipeline,
    )
    return worker
