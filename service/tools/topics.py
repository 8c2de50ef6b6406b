"""Topic fixes the worker names when it finds a topic it cannot work with:

- `motcua dlq-limit` raises the dead-letter topic's max.message.bytes (the worker refuses to
  start on one too small for a dead letter);
- `motcua keep-events` sets the input topic's retention to forever (a worker reports a
  finite one: the record would lose its oldest events).

Each changes only the settings it names (an incremental alter); the topic's others are kept.
"""

from __future__ import annotations

from service.ingest.input_topic import KEEP_FOREVER
from service.outputs.dead_letter import DLQ_MAX_BYTES
from service.settings import Settings


class TopicError(RuntimeError):
    """The broker refused or could not be reached: one line for the operator."""


def raise_dead_letter_limit(settings: Settings, limit: int = DLQ_MAX_BYTES) -> str:
    """Set max.message.bytes of `<topic>-dlq` to `limit`. Returns what was done, in one line."""
    topic = settings.dlq_topic
    _alter(settings, topic, {"max.message.bytes": str(limit)}, "motcua-dlq-limit")
    return f"topic {topic}: max.message.bytes={limit}"


def keep_events_forever(settings: Settings) -> str:
    """Set retention.ms and retention.bytes of the input topic to -1 (nothing deleted).
    Returns what was done, in one line."""
    topic = settings.topic
    _alter(settings, topic, dict(KEEP_FOREVER), "motcua-keep-events")
    settings_done = ", ".join(f"{name}={value}" for name, value in KEEP_FOREVER.items())
    return f"topic {topic}: {settings_done} (its events are kept forever)"


def _alter(settings: Settings, topic: str, configs: dict[str, str], client_id: str) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType
    from kafka.errors import KafkaError

    try:
        # An operator at a prompt: say so soon when the broker does not answer.
        admin = settings.admin_client(client_id, timeout_ms=10_000)
    except KafkaError as exc:
        raise TopicError(f"cannot reach the broker at {settings.bootstrap}: {exc}") from None
    try:
        if topic not in set(admin.list_topics()):
            raise TopicError(f"topic {topic} does not exist at {settings.bootstrap}")
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)
        problem = _refusal(admin.alter_configs([resource]))
        if problem:
            wanted = ", ".join(f"{name}={value}" for name, value in configs.items())
            raise TopicError(f"the broker refused {wanted} on {topic}: {problem}")
    except KafkaError as exc:
        raise TopicError(f"{topic}: {type(exc).__name__}: {exc}") from None
    finally:
        admin.close()


def _refusal(answer: object) -> str | None:
    """The first error in kafka-python's alter_configs answer, if any."""
    if isinstance(answer, dict):
        for by_name in answer.values():
            for result in (by_name or {}).values() if isinstance(by_name, dict) else ():
                if isinstance(result, BaseException):
                    return f"{type(result).__name__}: {result}"
    return None
