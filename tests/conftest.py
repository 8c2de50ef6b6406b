"""Fixtures shared by every test directory, and the --long switch.

The real local Kafka broker (service/tools/broker.py) is started once per session, on a free port
with fresh data; tests that stop or kill a broker start their own instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.tools.broker import BrokerError, LocalBroker, LocalCluster, free_port

# Worker processes (worker_factory, motcua_worker) for integration and end-to-end tests.
pytest_plugins = ["worker_fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long", action="store_true", default=False, help="also run tests marked long"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Long variants are deselected (not skipped) unless asked for: the default run
    # reports only tests that ran.
    if config.getoption("--long"):
        return
    long_items = [item for item in items if item.get_closest_marker("long") is not None]
    if long_items:
        config.hook.pytest_deselected(items=long_items)
        items[:] = [item for item in items if item.get_closest_marker("long") is None]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A running single-node Kafka for the whole session; do not stop it in a test."""
    broker = LocalBroker(port=free_port(), data_dir=tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
    except BrokerError as exc:
        failure = str(exc)
    else:
        failure = None
    if failure is not None:
        # A missing java or mvn is a broken setup, not a reason to pass quietly: fail, don't skip.
        pytest.fail(f"local Kafka broker: {failure}", pytrace=False)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A running three-node Kafka cluster (one KRaft quorum) for the session, started on first
    use. A test that kills or stops a node starts it again before it ends (cluster.restart)."""
    cluster = LocalCluster(nodes=3, data_dir=tmp_path_factory.mktemp("kafka-cluster"))
    try:
        cluster.start()
    except BrokerError as exc:
        failure = str(exc)
    else:
        failure = None
    if failure is not None:
        pytest.fail(f"local Kafka cluster: {failure}", pytrace=False)
    yield cluster
    cluster.stop()
