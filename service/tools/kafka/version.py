"""Which Kafka runs: MOTCUA_KAFKA_VERSION, else KAFKA_VERSION pinned in .env; and the logging
backend its major version needs."""

from __future__ import annotations

import os
from pathlib import Path

from service.tools.kafka.errors import BrokerError

ENV_FILE = Path(__file__).resolve().parents[3] / ".env"
# Used only when neither .env nor MOTCUA_KAFKA_VERSION names a version.
FALLBACK_KAFKA_VERSION = "3.9.1"

# Logging backends per Kafka major version: kafka_2.13 ships none at runtime scope, and without
# one the broker is silent or dies in kafka.utils.Log4jController.
_LOG4J2 = "2.24.3"
LOGGING_DEPS = {
    3: [("org.slf4j", "slf4j-reload4j", "1.7.36"), ("ch.qos.reload4j", "reload4j", "1.2.25")],
    # Kafka 4.x still uses slf4j-api 1.7.x, so the slf4j 1.x binding of log4j2 is the right one.
    4: [
        ("org.apache.logging.log4j", "log4j-slf4j-impl", _LOG4J2),
        ("org.apache.logging.log4j", "log4j-core", _LOG4J2),
    ],
}


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """Parse simple KEY=VALUE lines (comments and blank lines ignored, quotes stripped)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        values[key] = value.strip().strip("'\"")
    return values


def kafka_version() -> str:
    """The Kafka version to run: MOTCUA_KAFKA_VERSION, else KAFKA_VERSION from .env."""
    return (
        os.environ.get("MOTCUA_KAFKA_VERSION")
        or read_env_file().get("KAFKA_VERSION")
        or FALLBACK_KAFKA_VERSION
    )


def major(version: str) -> int:
    """3 or 4, else a BrokerError: the logging setup differs between them."""
    head = version.split(".", 1)[0]
    if not head.isdigit() or int(head) not in LOGGING_DEPS:
        raise BrokerError(
            BrokerError.BAD_VERSION, f"Kafka version {version!r} not supported: use a 3.x or 4.x"
        )
    return int(head)
