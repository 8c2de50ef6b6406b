"""Start a worker: topics checked, the local state opened, agents, timers and web endpoints."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import agents.assignment
import agents.deadlines
import agents.lifecycle
import service.outputs.web
from agents.status import announce, send_dead_letters
from schemas import MAX_MESSAGE_BYTES
from service import app as worker_app
from service.app import DLQ_MAX_BYTES, app, ledger, open_state, pipeline, registry, settings
from service.outputs.metrics import LedgerCollector
from service.outputs.pipeline_metrics import PipelineCollector
from service.reference import Departments
from service.state.store import StoreError

# Imported for their decorators (agents, timers, pages); named so linters keep them.
REGISTERED = (agents.assignment, agents.deadlines, agents.lifecycle, service.outputs.web)

log = logging.getLogger(__name__)

# The input topic is the record: nothing in it may expire (period reports and rebuilds read
# it from the beginning, and an official record is kept anyway).
KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}


def ensure_topics() -> list[str]:
    """Create the input, dead-letter and status topics before the group forms (a topic that
    appears after the first assignment is only picked up at the next rebalance), then check
    the input topic. Returns the warnings about it (also logged)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap.split(","),
        client_id="motcua-setup",
        **settings.security.kafka_python_kwargs(),
    )
    replicas = settings.replication_factor
    durable = {"min.insync.replicas": str(settings.min_insync_replicas)}
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                settings.topic, settings.partitions, replicas, topic_configs=KEEP_FOREVER | durable
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
        problem = check_dead_letter_topic(admin)
        if problem is not None:
            log.error("%s", problem)
            raise SystemExit(f"motcua worker: {problem}")
        return check_input_topic(admin)
    finally:
        admin.close()


def check_input_topic(admin: Any) -> list[str]:
    """Say clearly when the input topic is not what the worker expects."""
    from kafka.admin import ConfigResource, ConfigResourceType

    warnings: list[str] = []
    topic = settings.topic
    described = admin.describe_topics([topic])
    partitions = len(described[0]["partitions"]) if described else 0
    if partitions < settings.partitions:
        warnings.append(
            f"topic {topic} has {partitions} partitions, fewer than MOTCUA_PARTITIONS="
            f"{settings.partitions}: the workers can spread over {partitions} at most"
        )
    configs = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
    )
    values = _config_values(configs, topic)
    for name in ("retention.ms", "retention.bytes"):
        value = values.get(name)
        if value is not None and value != "-1":
            warnings.append(
                f"topic {topic} has {name}={value}: events older than that are deleted, and a "
                "worker that must read a partition again cannot count it (set it to -1)"
            )
    for warning in warnings:
        log.error("%s", warning)
    return warnings


# A dead letter of an event within the contract's 64 KiB, plus our headers and Kafka's record
# overhead (a larger message is cut when the topic's limit is below it: agents/status.py).
DEAD_LETTER_NEEDS = MAX_MESSAGE_BYTES + 4 * 1024


def check_dead_letter_topic(admin: Any) -> str | None:
    """Why an existing dead-letter topic cannot take every dead letter, or None. A dead
    letter the broker refuses fails its batch, so the worker would stall on it."""
    from kafka.admin import ConfigResource, ConfigResourceType

    topic = settings.dlq_topic
    configs = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
    )
    value = _config_values(configs, topic).get("max.message.bytes")
    if value is None or not value.isdigit():
        return None
    worker_app.dead_letter_limit = int(value)
    if int(value) >= DEAD_LETTER_NEEDS:
        return None
    return (
        f"topic {topic} has max.message.bytes={value}, below the {DEAD_LETTER_NEEDS} bytes a "
        "dead letter may need (a 64 KiB event plus headers): raise it with "
        f"`MOTCUA_BROKER={settings.bootstrap} MOTCUA_TOPIC={settings.topic} motcua dlq-limit "
        f"--bytes {DLQ_MAX_BYTES}`"
    )


def _config_values(configs: Any, topic: str) -> dict[str, str]:
    """Config name → value from kafka-python's describe_configs answer."""
    for by_name in (configs or {}).values() if isinstance(configs, dict) else ():
        entries = by_name.get(topic, {})
        return {
            name: str(data.get("value") if isinstance(data, dict) else data)
            for name, data in entries.items()
        }
    return {}


def _end_offset(partition: int) -> int | None:
    from faust.types import TP

    try:
        return app.consumer.highwater(TP(settings.topic, partition))
    except Exception:  # no consumer yet, or the partition not fetched yet
        return None


def run(loglevel: str = "info") -> None:
    from faust.worker import Worker

    # Before faust sets up its logging: what the topic checks and the store say at start
    # must be ERROR lines with a time, like the rest of the log.
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python's admin client
    ensure_topics()
    try:
        open_state(send_dead_letters, announce)
    except StoreError as exc:
        # Before joining the group: a worker that cannot use its store takes no partition.
        log.critical("stopping: %s", exc)
        logging.shutdown()
        raise SystemExit(70) from None
    registry.register(LedgerCollector(ledger, Departments.load(settings.units_file)))
    # Consumer lag and the few pipeline figures operators use, computed at scrape time:
    # faust's Prometheus sensor cost 27 µs on every event (docs/benchmarks.md).
    pipeline.register(registry)
    registry.register(
        PipelineCollector(settings.topic, ledger, pipeline, _end_offset, settings.store_path)
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("faust").setLevel(logging.WARNING)
    worker = Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
