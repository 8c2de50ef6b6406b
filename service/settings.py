"""Settings, read from the environment once, with defaults that work on a laptop."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from service.kafka_security import KafkaSecurity, KafkaSecurityError

if TYPE_CHECKING:
    from kafka.admin import KafkaAdminClient


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


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SettingsError(f"{name} must be 1 or 0, got {raw!r}")


def broker_addresses(broker: str) -> list[str]:
    """host:port entries from "kafka://host:port", "host:port,host:port" or faust's ";"
    lists; SettingsError names the first entry that is not one."""
    servers: list[str] = []
    for item in broker.replace(";", ",").split(","):
        entry = item.strip()
        if entry.startswith("kafka://"):
            entry = entry[len("kafka://") :]
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        if not sep or not host or "/" in entry or not port.isdecimal() or not 0 < int(port) < 65536:
            raise SettingsError(f"not a broker address (host:port): {item.strip()!r}")
        servers.append(f"{host}:{int(port)}")
    if not servers:
        raise SettingsError(f"no broker address in {broker!r}")
    return servers


def broker_url(raw: str) -> str:
    """`raw` as faust wants it, kafka://host:port[;host:port] (plain host:port lists are
    accepted too), each address checked: a bad one is a SettingsError, not a traceback
    from deep in a client library."""
    raw = raw.strip()
    broker_addresses(raw)
    if "://" in raw:
        return raw
    return "kafka://" + raw.replace(",", ";")


def _broker_env(raw: str) -> str:
    try:
        return broker_url(raw)
    except SettingsError as exc:
        raise SettingsError(f"MOTCUA_BROKER: {exc}") from None


def _path(name: str) -> Path | None:
    raw = os.environ.get(name)
    return Path(raw) if raw else None


def _networks(name: str) -> tuple[str, ...]:
    """A comma-separated list of CIDR blocks (an address alone is its /32 or /128)."""
    raw = os.environ.get(name, "")
    blocks = tuple(part.strip() for part in raw.split(",") if part.strip())
    for block in blocks:
        try:
            ipaddress.ip_network(block, strict=False)
        except ValueError:
            raise SettingsError(f"{name}: {block!r} is not a CIDR block") from None
    return blocks


def _security() -> KafkaSecurity:
    try:
        return KafkaSecurity.from_env()
    except KafkaSecurityError as exc:
        raise SettingsError(str(exc)) from None


@dataclass(frozen=True)
class Settings:
    # The consumer group.
    app_id: str = "motcua"
    broker: str = "kafka://127.0.0.1:9092"
    topic: str = "dossier-events"
    partitions: int = 8
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    board_port: int = 6080  # the board's, in `motcua demo`
    data_dir: Path = Path("var")
    calendar_file: Path | None = None
    # Copies of every topic the worker creates, and how many must have a write before it
    # is acknowledged: 1/1 for the local broker; 3/2 in production (docs/operations.md).
    replication_factor: int = 1
    min_insync_replicas: int = 1
    # Count a partition whose log lost its beginning to retention from what is left.
    accept_truncated_log: bool = False
    # Seconds the worker waits for the broker to acknowledge a batch's dead letters and status
    # messages; past it the batch fails and is read again from the log (never carried on).
    send_timeout: int = 30
    # Dossiers kept decoded after their transaction (service/state/recent.py); 0: none.
    recent_dossiers: int = 20_000
    # Helper processes that catch up partitions whose local store is empty, beside the
    # worker's own (service/state/catch_up_helper.py); 0: the worker catches up alone. The
    # default is one when the machine has a second core.
    catch_up_helpers: int | None = None
    # A helper is started only for a range of at least this many events: a process start
    # costs about as much as catching up this many in the worker.
    catch_up_helper_min_events: int = 50_000
    # Seconds between a worker's checks of the input topic's settings (retention, partitions).
    topic_check_s: int = 600
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    # `motcua gateway` (docs/gateway.md): reference data, access and limits.
    units_file: Path | None = None
    gateway_port: int = 6070
    gateway_tokens_file: Path | None = None
    gateway_sources_file: Path | None = None  # per-source profiles (docs/gateway.md)
    # The key OpenCPS's sessions are signed with, shared by every gateway (docs/senders.md);
    # none: a random key per process, so a restart ends the sessions.
    gateway_session_key_file: Path | None = None
    procedures_file: Path | None = None  # procedures' time limits, for a missing due
    gateway_tls_cert: Path | None = None
    gateway_tls_key: Path | None = None
    gateway_max_body_bytes: int = 8 * 1024 * 1024
    gateway_max_items: int = 2000
    gateway_rate: int = 2000  # items a second per calling system; 0 = no limit
    gateway_burst: int = 10_000
    gateway_send_timeout: int = 10  # seconds to wait for the broker's acknowledgement
    # Reverse proxies whose X-Forwarded-For is believed (CIDR blocks); none: never.
    gateway_trusted_proxies: tuple[str, ...] = ()

    @property
    def store_path(self) -> Path:
        """The worker's local dossier store (RocksDB)."""
        return self.data_dir / "worker" / "dossiers"

    @property
    def catch_up_helper_count(self) -> int:
        """Catch-up helper processes: as set, else one if the machine has a second core."""
        if self.catch_up_helpers is not None:
            return self.catch_up_helpers
        return 1 if (os.cpu_count() or 1) > 1 else 0

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

    def admin_client(self, client_id: str, timeout_ms: int | None = None) -> KafkaAdminClient:
        """A kafka-python admin client for the configured broker and its security settings
        (the one place they meet); `timeout_ms` bounds the connection and each request."""
        from kafka.admin import KafkaAdminClient

        timeouts = (
            {"request_timeout_ms": timeout_ms, "bootstrap_timeout_ms": timeout_ms}
            if timeout_ms is not None
            else {}
        )
        return KafkaAdminClient(
            bootstrap_servers=self.bootstrap.split(","),
            client_id=client_id,
            **timeouts,
            **self.security.kafka_python_kwargs(),
        )

    @classmethod
    def from_env(cls) -> Settings:
        """The settings of the environment's MOTCUA_* variables (SettingsError names a bad
        one)."""
        env = os.environ
        calendar = env.get("MOTCUA_CALENDAR_FILE")
        replication = _int("MOTCUA_REPLICATION_FACTOR", cls.replication_factor, 1, 16)
        return cls(
            app_id=env.get("MOTCUA_APP_ID", cls.app_id) or cls.app_id,
            broker=_broker_env(env.get("MOTCUA_BROKER", cls.broker)),
            topic=env.get("MOTCUA_TOPIC", cls.topic) or cls.topic,
            partitions=_int("MOTCUA_PARTITIONS", cls.partitions, 1, 1024),
            web_host=env.get("MOTCUA_WEB_HOST", cls.web_host) or cls.web_host,
            web_port=_int("MOTCUA_WEB_PORT", cls.web_port, 1, 65535),
            board_port=_int("MOTCUA_BOARD_PORT", cls.board_port, 1, 65535),
            data_dir=Path(env.get("MOTCUA_DATA_DIR") or cls.data_dir),
            calendar_file=Path(calendar) if calendar else None,
            replication_factor=replication,
            min_insync_replicas=_int(
                "MOTCUA_MIN_INSYNC_REPLICAS", min(2, replication), 1, replication
            ),
            accept_truncated_log=_flag("MOTCUA_ACCEPT_TRUNCATED_LOG"),
            send_timeout=_int("MOTCUA_SEND_TIMEOUT", cls.send_timeout, 1, 3600),
            recent_dossiers=_int("MOTCUA_RECENT_DOSSIERS", cls.recent_dossiers, 0, 10_000_000),
            catch_up_helpers=_int("MOTCUA_CATCH_UP_HELPERS", -1, 0, 64)
            if os.environ.get("MOTCUA_CATCH_UP_HELPERS")
            else None,
            catch_up_helper_min_events=_int(
                "MOTCUA_CATCH_UP_HELPER_MIN_EVENTS", cls.catch_up_helper_min_events, 1, 10**12
            ),
            topic_check_s=_int("MOTCUA_TOPIC_CHECK_SECONDS", cls.topic_check_s, 1, 86_400),
            security=_security(),
            units_file=_path("MOTCUA_UNITS_FILE"),
            gateway_port=_int("MOTCUA_GATEWAY_PORT", cls.gateway_port, 1, 65535),
            gateway_tokens_file=_path("MOTCUA_GATEWAY_TOKENS_FILE"),
            gateway_sources_file=_path("MOTCUA_GATEWAY_SOURCES_FILE"),
            gateway_session_key_file=_path("MOTCUA_GATEWAY_SESSION_KEY_FILE"),
            procedures_file=_path("MOTCUA_PROCEDURES_FILE"),
            gateway_tls_cert=_path("MOTCUA_GATEWAY_TLS_CERT"),
            gateway_tls_key=_path("MOTCUA_GATEWAY_TLS_KEY"),
            gateway_max_body_bytes=_int(
                "MOTCUA_GATEWAY_MAX_BODY_BYTES", cls.gateway_max_body_bytes, 1024, 256 * 1024 * 1024
            ),
            gateway_max_items=_int("MOTCUA_GATEWAY_MAX_ITEMS", cls.gateway_max_items, 1, 100_000),
            gateway_rate=_int("MOTCUA_GATEWAY_RATE", cls.gateway_rate, 0, 10_000_000),
            gateway_burst=_int("MOTCUA_GATEWAY_BURST", cls.gateway_burst, 1, 100_000_000),
            gateway_send_timeout=_int(
                "MOTCUA_GATEWAY_SEND_TIMEOUT", cls.gateway_send_timeout, 1, 600
            ),
            gateway_trusted_proxies=_networks("MOTCUA_GATEWAY_TRUSTED_PROXIES"),
        )
