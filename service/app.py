"""The Faust app: settings, topics, and the worker's dossier state.

At-least-once processing with agent concurrency 1: faust's exactly_once and concurrency > 1
have open data-loss bugs (#517, #606). Exactness comes from the state instead: the local
store is the fold of a prefix of `dossier-events` with the offset it reached, and counters
are sums of per-dossier contributions (service/state/). faust delivers events and assigns
partitions; it keeps no table, so no changelog, standby or recovery is involved.
"""

from __future__ import annotations

import logging
import os

import faust
from prometheus_client import CollectorRegistry

from service import faust_fixes
from service.domain import DEFAULT_CALENDAR, WorkingCalendar
from service.outputs.pipeline_metrics import PipelineCounters
from service.settings import Settings
from service.state.keeper import PartitionKeeper, Sender
from service.state.ledger import Ledger
from service.state.log_reader import LogReader
from service.state.store import DossierStore
from service.state.worker_state import WorkerState
from service.tools.topics import DLQ_MAX_BYTES

log = logging.getLogger(__name__)
settings = Settings.from_env()
calendar: WorkingCalendar = (
    WorkingCalendar.from_file(settings.calendar_file)
    if settings.calendar_file
    else DEFAULT_CALENDAR
)


# The dead-letter topic's max.message.bytes as found at start (service/worker.py).
dead_letter_limit = DLQ_MAX_BYTES

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
    # partition, and then stalls on its own buffers: 1,000 costs 13-22% less CPU per event
    # when catching up (docs/benchmarks.md) and never binds at live rates.
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
faust_fixes.bound_fetch_wait()
faust_fixes.drop_monitor()
faust_fixes.keep_flow_waiters()

events_topic = app.topic(
    settings.topic,
    partitions=settings.partitions,
    key_serializer="raw",
    value_serializer="raw",
)
dead_letter_topic = app.topic(
    settings.dlq_topic,
    partitions=1,
    key_serializer="raw",
    value_serializer="raw",
)
status_topic = app.topic(
    settings.status_topic,
    partitions=settings.partitions,
    key_serializer="raw",
    value_serializer="raw",
)

ledger = Ledger(calendar)
registry = CollectorRegistry(auto_describe=True)
pipeline = PipelineCounters()

# Seconds between checks of the group's committed offsets against the store (readiness
# lapses after a few missed ones: service/state/keeper.py).
COMMITTED_CHECK_S = 2.0

# Set by `open_state` when the worker starts (opening the store at import would lock it for
# every process that merely imports the app).
keeper: PartitionKeeper | None = None


def stop_worker(why: str) -> None:
    """The local store failed: stop rather than serve numbers a restart cannot give back.
    A supervisor restarts the worker, which reads its partitions from the log again."""
    ledger.wait(-1, why)  # not ready from this instant
    log.critical("stopping: %s", why)
    logging.shutdown()
    os._exit(70)


def open_state(send_dead_letters: Sender, announce: Sender) -> PartitionKeeper:
    """Open the local store and wire the state layer to the outputs."""
    global keeper
    store = DossierStore(settings.store_path, settings.topic)
    reader = LogReader(
        settings.bootstrap,
        settings.topic,
        settings.app_id,
        **settings.security.aiokafka_kwargs(),
    )
    keeper = PartitionKeeper(
        WorkerState(store, ledger, calendar),
        reader,
        send_dead_letters,
        announce,
        stop_worker,
        accept_truncated_log=settings.accept_truncated_log,
        check_every=COMMITTED_CHECK_S,
    )
    return keeper
