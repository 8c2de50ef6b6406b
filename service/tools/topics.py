"""`motcua dlq-limit`: raise the dead-letter topic's max.message.bytes, the fix the worker
names when it refuses to start on a dead-letter topic too small for a dead letter."""

from __future__ import annotations

from service.outputs.dead_letter import DLQ_MAX_BYTES
from service.settings import Settings


class TopicError(RuntimeError):
    """The broker refused or could not be reached: one line for the operator."""


def raise_dead_letter_limit(settings: Settings, limit: int = DLQ_MAX_BYTES) -> str:
    """Set max.message.bytes of `<topic>-dlq` to `limit` (only that setting; the topic's other
    settings are kept). Returns what was done, in one line."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
    from kafka.errors import KafkaError

    topic = settings.dlq_topic
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.bootstrap.split(","),
            client_id="motcua-dlq-limit",
            # An operator at a prompt: say so soon when the broker does not answer.
            request_timeout_ms=10_000,
            bootstrap_timeout_ms=10_000,
            **settings.security.kafka_python_kwargs(),
        )
    except KafkaError as exc:
        raise TopicError(f"cannot reach the broker at {settings.bootstrap}: {exc}") from None
    try:
        if topic not in set(admin.list_topics()):
            raise TopicError(f"topic {topic} does not exist at {settings.bootstrap}")
        resource = ConfigResource(
            ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(limit)}
        )
        answer = admin.alter_configs([resource])
        problem = _refusal(answer)
        if problem:
            raise TopicError(f"the broker refused max.message.bytes={limit} on {topic}: {problem}")
    except KafkaError as exc:
        raise TopicError(f"{topic}: {type(exc).__name__}: {exc}") from None
    finally:
        admin.close()
    return f"topic {topic}: max.message.bytes={limit}"


def _refusal(answer: object) -> str | None:
    """The first error in kafka-python's alter_configs answer, if any."""
    if isinstance(answer, dict):
        for by_name in answer.values():
            for result in (by_name or {}).values() if isinstance(by_name, dict) else ():
                if isinstance(result, BaseException):
                    return f"{type(result).__name__}: {result}"
    return None
