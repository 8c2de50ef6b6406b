"""The local Kafka's public API in one import: `from service.tools.broker import LocalBroker`.

The code lives in service/tools/kafka/, one module per idea.
"""

from service.tools.kafka.background import (
    cli_start,
    cli_status,
    cli_stop,
    default_data_dir,
    start_background,
)
from service.tools.kafka.cluster import LocalCluster
from service.tools.kafka.errors import BrokerError
from service.tools.kafka.host import HOST, cache_dir, free_port, require_tool
from service.tools.kafka.maven import ensure_kafka
from service.tools.kafka.node import LocalBroker
from service.tools.kafka.probe import reachable
from service.tools.kafka.tls import SslListener
from service.tools.kafka.version import kafka_version, read_env_file

__all__ = [
    "HOST",
    "BrokerError",
    "LocalBroker",
    "LocalCluster",
    "SslListener",
    "cache_dir",
    "cli_start",
    "cli_status",
    "cli_stop",
    "default_data_dir",
    "ensure_kafka",
    "free_port",
    "kafka_version",
    "reachable",
    "read_env_file",
    "require_tool",
    "start_background",
]
