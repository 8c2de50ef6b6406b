"""Start a worker: agents, timers, web endpoints and /metrics on faust's web server."""

from __future__ import annotations

import contextlib
import logging

from faust.sensors.prometheus import setup_prometheus_sensors

import agents.deadlines
import agents.lifecycle
import agents.recovery
import service.outputs.web
from service.app import DLQ_MAX_BYTES, app, ledger, registry, settings
from service.outputs.metrics import LedgerCollector

# Imported for their decorators (agents, timers, pages); named so linters keep them.
REGISTERED = (agents.deadlines, agents.lifecycle, agents.recovery, service.outputs.web)


def ensure_topics() -> None:
    """Create the input, dead-letter and status topics before the group forms: a topic
    that appears after the first assignment is only picked up at the next rebalance."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap.split(","),
        client_id="motcua-setup",
        **settings.security.kafka_python_kwargs(),
    )
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(settings.topic, settings.partitions, 1),
            # Room for a copy of the largest message the broker accepts, plus headers.
            NewTopic(
                settings.dlq_topic, 1, 1, topic_configs={"max.message.bytes": str(DLQ_MAX_BYTES)}
            ),
            NewTopic(settings.status_topic, settings.partitions, 1),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                admin.create_topics(missing)
    finally:
        admin.close()


def run(loglevel: str = "info") -> None:
    from faust.worker import Worker

    ensure_topics()
    registry.register(LedgerCollector(ledger))
    setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="motcua_faust")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("faust").setLevel(logging.WARNING)
    worker = Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
