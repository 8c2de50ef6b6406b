"""The Faust app: settings, topics, the dossier table and the live ledger.

At-least-once processing with agent concurrency 1: faust's exactly_once and concurrency > 1
have open data-loss bugs (#517, #606). Exactness comes from the state instead: the table
keeps each dossier's events, and counters are sums of per-dossier contributions.
"""

from __future__ import annotations

import faust
from prometheus_client import CollectorRegistry

from service import faust_fixes
from service.domain import DEFAULT_CALENDAR, WorkingCalendar
from service.settings import Settings
from service.state.ledger import Ledger

settings = Settings.from_env()
calendar: WorkingCalendar = (
    WorkingCalendar.from_file(settings.calendar_file)
    if settings.calendar_file
    else DEFAULT_CALENDAR
)


# A dead letter is the rejected message untouched plus headers: it must fit even when the
# message was as large as the broker allows (1 MiB by default).
DLQ_MAX_BYTES = 2 * 1024 * 1024

app = faust.App(
    settings.app_id,
    broker=settings.broker,
    broker_credentials=settings.security.faust_credentials(),
    store="rocksdb://",
    datadir=str(settings.data_dir / "worker"),
    web_host=settings.web_host,
    web_port=settings.web_port,
    web_bind=settings.web_host,
    processing_guarantee="at_least_once",
    topic_partitions=settings.partitions,
    table_standby_replicas=settings.standby_replicas,
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
faust_fixes.rewind_uncommitted_on_seek({settings.topic})

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

# dossier_id -> encoded DossierRecord (service/state/records.py), co-partitioned with the input.
dossiers = app.Table(
    "dossiers",
    partitions=settings.partitions,
    key_type=bytes,
    value_type=bytes,
)

ledger = Ledger(calendar)
registry = CollectorRegistry(auto_describe=True)
