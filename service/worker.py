"""Start a worker: topics checked, the local state opened, agents, timers and web endpoints.

`build_worker(settings)` assembles one (service/app.py's parts, with the agents, timers and
pages registered on them); `run(settings)` checks the topics, opens the store and runs it.
Importing this module builds nothing and reads nothing."""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any

from agents import assignment, deadlines, input_topic, lifecycle
from schemas import MAX_MESSAGE_BYTES
from service import faust_fixes
from service.app import STORE_FAILED, Worker, worker_parts
from service.domain import WorkingCalendar
from service.ingest.input_topic import (
    KEEP_FOREVER,
    InputTopicCheck,
    check_input_topic,
    config_values,
)
from service.outputs import web
from service.outputs.dead_letter import DLQ_MAX_BYTES
from service.outputs.metrics import LedgerCollector
from service.outputs.pipeline_metrics import PipelineCollector
from service.reference import Departments
from service.settings import Settings
from service.state.store import StoreError
from service.state.worker_state import tune_collector

log = logging.getLogger(__name__)


def build_worker(settings: Settings, calendar: WorkingCalendar | None = None) -> Worker:
    """A worker with its agents, timers and pages registered; nothing connects, and the store
    is not opened, until it runs."""
    worker = worker_parts(settings, calendar)
    lifecycle.register(worker)
    assignment.register(worker)
    deadlines.register(worker)
    input_topic.register(worker)
    web.register(worker.app, worker.ledger, worker.registry, settings.store_path)
    return worker


def ensure_topics(settings: Settings) -> tuple[InputTopicCheck, int]:
    """Create the input, dead-letter and status topics before the group forms (a topic that
    appears after the first assignment is only picked up at the next rebalance), then check
    them. Returns the input topic's check (its warnings logged) and the dead-letter topic's
    max.message.bytes."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = settings.admin_client("motcua-setup")
    replicas = settings.replication_factor
    durable = {"min.insync.replicas": str(settings.min_insync_replicas)}
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                settings.topic,
                settings.partitions,
                replicas,
                topic_configs=dict(KEEP_FOREVER) | durable,
            ),
            # Room for a copy of the largest message the broker accepts, plus headers.
            NewTopic(
                settings.dlq_topic,
                1,
                replicas,
                topic_configs={"max.message.bytes": str(DLQ_MAX_BYTES)} | durable,
            ),
            NewTopic(settings.status_topic, settings.partitions, replicas, topic_configs=durable),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                admin.create_topics(missing)
        limit, problem = check_dead_letter_topic(admin, settings)
        if problem is not None:
            log.error("%s", problem)
            raise SystemExit(f"motcua worker: {problem}")
        checked = check_input_topic(admin, settings)
    finally:
        admin.close()
    for warning in checked.warnings(settings):
        log.error("%s", warning)
    return checked, limit


# A dead letter of an event within the contract's 64 KiB, plus our headers and Kafka's record
# overhead (a larger message is cut when the topic's limit is below it: agents/status.py).
DEAD_LETTER_NEEDS = MAX_MESSAGE_BYTES + 4 * 1024


def check_dead_letter_topic(admin: Any, settings: Settings) -> tuple[int, str | None]:
    """The dead-letter topic's max.message.bytes, and why it cannot take every dead letter
    (or None). Dead letters are cut to fit it (service/outputs/dead_letter.py), but one of a
    valid-sized event must fit whole."""
    from kafka.admin import ConfigResource, ConfigResourceType

    topic = settings.dlq_topic
    configs = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
    )
    value = config_values(configs, topic).get("max.message.bytes")
    if value is None or not value.isdigit():
        return DLQ_MAX_BYTES, None
    if int(value) >= DEAD_LETTER_NEEDS:
        return int(value), None
    return int(value), (
        f"topic {topic} has max.message.bytes={value}, below the {DEAD_LETTER_NEEDS} bytes a "
        "dead letter may need (a 64 KiB event plus headers): raise it with "
        f"`MOTCUA_BROKER={settings.bootstrap} MOTCUA_TOPIC={settings.topic} motcua dlq-limit "
        f"--bytes {DLQ_MAX_BYTES}`"
    )


def dead_letter_limit(worker: Worker, topic_limit: int) -> int:
    """What a dead letter may take: the dead-letter topic's max.message.bytes, but never more
    than the worker's producer sends (its max_request_size, service/app.py). The producer
    refuses a larger record itself, every time: its batch would fail and be read again
    forever."""
    return min(topic_limit, int(worker.app.conf.producer_max_request_size))


def run(settings: Settings, loglevel: str = "info") -> None:
    from faust.worker import Worker as FaustWorker

    # Before faust sets up its logging: what the topic checks and the store say at start
    # must be ERROR lines with a time, like the rest of the log.
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python's admin client
    faust_fixes.apply()
    tune_collector()
    worker = build_worker(settings)
    worker.input_topic, topic_limit = ensure_topics(settings)
    worker.dead_letters.limit = dead_letter_limit(worker, topic_limit)
    try:
        worker.open_state()
    except StoreError as exc:
        # Before joining the group: a worker that cannot use its store takes no partition.
        log.critical("stopping: %s", exc)
        logging.shutdown()
        raise SystemExit(STORE_FAILED) from None
    worker.registry.register(LedgerCollector(worker.ledger, Departments.load(settings.units_file)))
    # Consumer lag and the few pipeline figures operators use, computed at scrape time:
    # faust's Prometheus sensor worked on every event (its cost: docs/benchmarks.md).
    worker.pipeline.register(worker.registry)
    worker.registry.register(
        PipelineCollector(
            settings.topic,
            worker.ledger,
            worker.pipeline,
            functools.partial(_end_offset, worker),
            settings.store_path,
            lambda: worker.input_topic,
        )
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("faust").setLevel(logging.WARNING)
    FaustWorker(worker.app, loglevel=loglevel, quiet=True).execute_from_commandline()


def _end_offset(worker: Worker, partition: int) -> int | None:
    from faust.types import TP

    try:
        return worker.app.consumer.highwater(TP(worker.settings.topic, partition))
    except Exception:  # no consumer yet, or the partition not fetched yet
        return None
