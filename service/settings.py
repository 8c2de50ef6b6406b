"""Settings, read from the environment once, with defaults that work on a laptop."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from service.kafka_security import KafkaSecurity, KafkaSecurityError


class SettingsError(ValueError):
    """An environment variable has a value the service cannot use."""


def _int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _broker_url(raw: str) -> str:
    # faust wants kafka://host:port[;host:port]; accept plain host:port lists too.
    raw = raw.strip()
    if "://" in raw:
        return raw
    return "kafka://" + raw.replace(",", ";")


def _security() -> KafkaSecurity:
    try:
        return KafkaSecurity.from_env()
    except KafkaSecurityError as exc:
        raise SettingsError(str(exc)) from None


@dataclass(frozen=True)
class Settings:
    # The consumer group and the prefix of the table's changelog topic.
    app_id: str = "motcua"
    broker: str = "kafka://127.0.0.1:9092"
    topic: str = "dossier-events"
    partitions: int = 8
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: Path = Path("var")
    calendar_file: Path | None = None
    standby_replicas: int = 1
    security: KafkaSecurity = field(default_factory=KafkaSecurity)

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}-dlq"

    @property
    def status_topic(self) -> str:
        return "dossier-status"

    @property
    def bootstrap(self) -> str:
        """host:port,host:port for kafka-python and aiokafka."""
        return self.broker.split("://", 1)[-1].replace(";", ",")

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        calendar = env.get("MOTCUA_CALENDAR_FILE")
        return cls(
            app_id=env.get("MOTCUA_APP_ID", cls.app_id) or cls.app_id,
            broker=_broker_url(env.get("MOTCUA_BROKER", cls.broker)),
            topic=env.get("MOTCUA_TOPIC", cls.topic) or cls.topic,
            partitions=_int("MOTCUA_PARTITIONS", cls.partitions, 1, 1024),
            web_host=env.get("MOTCUA_WEB_HOST", cls.web_host) or cls.web_host,
            web_port=_int("MOTCUA_WEB_PORT", cls.web_port, 1, 65535),
            data_dir=Path(env.get("MOTCUA_DATA_DIR") or cls.data_dir),
            calendar_file=Path(calendar) if calendar else None,
            standby_replicas=_int("MOTCUA_STANDBY_REPLICAS", cls.standby_replicas, 0, 8),
            security=_security(),
        )
