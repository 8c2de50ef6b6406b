"""The input topic as the record: its settings checked against what counting needs.

`dossier-events` is the record every figure is recomputed from: a worker taking a partition
over with an empty store, a rebuild and a period report read it from the beginning. A finite
retention (Kafka's default is seven days) deletes the oldest events, and then those figures
can no longer be given (a worker refuses such a partition unless MOTCUA_ACCEPT_TRUNCATED_LOG).
Workers check the topic when they start and every MOTCUA_TOPIC_CHECK_SECONDS, export what
they found (`motcua_input_topic_retention_finite`, alert MotcuaInputTopicDeletesEvents) and
name the fix, `motcua keep-events`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from service.settings import Settings

# Nothing in the input topic may expire (period reports and rebuilds read it from the
# beginning, and an official record is kept anyway).
KEEP_FOREVER: Mapping[str, str] = MappingProxyType({"retention.ms": "-1", "retention.bytes": "-1"})


@dataclass(frozen=True)
class InputTopicCheck:
    """What a check of the input topic found."""

    topic: str
    partitions: int  # the topic's; 0 if it does not exist
    wanted_partitions: int  # MOTCUA_PARTITIONS
    # Each of KEEP_FOREVER's settings as the broker gave it (None: not given).
    retention: dict[str, str | None]

    @property
    def finite(self) -> dict[str, str]:
        """The retention settings that delete events: name → value."""
        return {
            name: value
            for name, value in self.retention.items()
            if value is not None and value != KEEP_FOREVER[name]
        }

    def warnings(self, settings: Settings) -> list[str]:
        """One line per problem, each saying what it costs and, for retention, the fix."""
        out: list[str] = []
        topic = self.topic
        if self.partitions < self.wanted_partitions:
            out.append(
                f"topic {topic} has {self.partitions} partitions, fewer than MOTCUA_PARTITIONS="
                f"{self.wanted_partitions}: the workers can spread over {self.partitions} at most"
            )
        for name, value in self.finite.items():
            out.append(
                f"topic {topic} has {name}={value}: events older than that are deleted, and a "
                "worker that must read a partition again cannot count it; keep them forever "
                f"with `{keep_events_command(settings)}`"
            )
        return out


def keep_events_command(settings: Settings) -> str:
    """The command line that sets the input topic's retention to forever."""
    return f"MOTCUA_BROKER={settings.bootstrap} MOTCUA_TOPIC={settings.topic} motcua keep-events"


def check_input_topic(admin: Any, settings: Settings) -> InputTopicCheck:
    """Check the input topic through a kafka-python admin client (blocking)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    topic = settings.topic
    described = admin.describe_topics([topic])
    partitions = len(described[0]["partitions"]) if described else 0
    configs = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
    )
    values = config_values(configs, topic)
    return InputTopicCheck(
        topic, partitions, settings.partitions, {name: values.get(name) for name in KEEP_FOREVER}
    )


def read_input_topic(settings: Settings) -> InputTopicCheck:
    """`check_input_topic` with an admin client of its own (a worker's periodic check)."""
    admin = settings.admin_client("motcua-topic-check", timeout_ms=15_000)
    try:
        return check_input_topic(admin, settings)
    finally:
        admin.close()


def config_values(configs: Any, topic: str) -> dict[str, str]:
    """Config name → value from kafka-python's describe_configs answer."""
    for by_name in (configs or {}).values() if isinstance(configs, dict) else ():
        entries = by_name.get(topic, {})
        return {
            name: str(data.get("value") if isinstance(data, dict) else data)
            for name, data in entries.items()
        }
    return {}
