"""A Kafka cluster on loopback: several KRaft nodes, each broker and controller, forming one
controller quorum, for tests of replication and fail-over (kill a node, restart it)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.tools.kafka.errors import BrokerError
from service.tools.kafka.host import free_port
from service.tools.kafka.node import LocalBroker, new_cluster_id
from service.tools.kafka.version import kafka_version


@dataclass(frozen=True)
class PartitionState:
    """Where one partition lives: its leader (-1 while it has none), replicas, in-sync ones."""

    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def distinct_free_ports(count: int, taken: Iterable[int] = ()) -> list[int]:
    """`count` free loopback ports, none repeated and none in `taken`."""
    ports: list[int] = []
    avoid = set(taken)
    while len(ports) < count:
        port = free_port()
        if port not in avoid:
            ports.append(port)
            avoid.add(port)
    return ports


class LocalCluster:
    """`nodes` Kafka processes on 127.0.0.1 (node ids 1..n), every one both broker and voter.

    Internal topics are replicated min(nodes, 3) times with min ISR 2, so the cluster keeps
    taking acks=all writes with one node down. Layout of `data_dir`: `node-<id>/`, each that
    node's LocalBroker directory.
    """

    def __init__(
        self,
        nodes: int = 3,
        data_dir: Path | None = None,
        ports: list[int] | None = None,
        controller_ports: list[int] | None = None,
        version: str | None = None,
        cluster_id: str | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster has at least one node")
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="motcua-kafka-cluster-")).resolve()
        ports = ports or distinct_free_ports(nodes)
        controller_ports = controller_ports or distinct_free_ports(nodes, taken=ports)
        if len(ports) != nodes or len(controller_ports) != nodes:
            raise ValueError(f"{nodes} nodes need {nodes} ports and {nodes} controller ports")
        self.version = version or kafka_version()
        # One id for every node: the storage of each is formatted as part of the same cluster.
        self.cluster_id = cluster_id or new_cluster_id()
        quorum = {node: controller_ports[node - 1] for node in range(1, nodes + 1)}
        self.brokers: dict[int, LocalBroker] = {
            node: LocalBroker(
                port=ports[node - 1],
                data_dir=self.data_dir / f"node-{node}",
                version=self.version,
                node_id=node,
                quorum=quorum,
                cluster_id=self.cluster_id,
                replication=min(nodes, 3),
            )
            for node in quorum
        }

    @property
    def bootstrap(self) -> str:
        """Every node's address, comma-separated, as clients take it."""
        return ",".join(broker.bootstrap for broker in self.brokers.values())

    def node(self, node_id: int) -> LocalBroker:
        try:
            return self.brokers[node_id]
        except KeyError:
            raise ValueError(f"no node {node_id} in a cluster of {len(self.brokers)}") from None

    def running(self) -> list[int]:
        return [node for node, broker in self.brokers.items() if broker.is_running()]

    def is_running(self) -> bool:
        return bool(self.running())

    def start(self, timeout: float = 180, keep_data: bool = False, detach: bool = False) -> None:
        """Start every node and wait until each answers and all are registered brokers.

        The JVMs are launched together: none can be ready before a majority of the quorum
        runs. On any failure every node is killed.
        """
        deadline = time.monotonic() + timeout
        try:
            for broker in self.brokers.values():
                broker.launch(keep_data=keep_data, detach=detach)
            for broker in self.brokers.values():
                broker.wait_ready(max(deadline - time.monotonic(), 1.0))
            self.wait_registered(len(self.brokers), max(deadline - time.monotonic(), 1.0))
        except BaseException:
            for broker in self.brokers.values():
                broker.kill()
            raise

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM every node at once, SIGKILL what still runs after `timeout` seconds.

        The last nodes of a quorum that is going away cannot finish a controlled shutdown (it
        needs a controller majority) and wait for one forever: hence the short timeout.
        """
        for broker in self.brokers.values():
            if broker.is_running():
                assert broker.process is not None
                broker.process.terminate()
        deadline = time.monotonic() + timeout
        for broker in self.brokers.values():
            broker.stop(max(deadline - time.monotonic(), 1.0))

    def kill(self, node_id: int) -> None:
        """SIGKILL one node, as a crash would."""
        self.node(node_id).kill()

    def restart(self, node_id: int, timeout: float = 120) -> None:
        """Start a stopped or killed node again on its kept data and wait until it answers."""
        self.node(node_id).start(timeout=timeout, keep_data=True)

    def metadata(self, topics: list[str] | None, timeout: float = 15) -> dict[str, Any]:
        """Registered brokers, and the description of `topics` (none if None).

        Retried for up to `timeout` seconds: right after a node dies the metadata still lists
        it, and the client may pick it for the request.
        """
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + timeout
        live = [self.node(n).bootstrap for n in self.running()]
        admin = KafkaAdminClient(
            bootstrap_servers=live or self.bootstrap.split(","),
            client_id="motcua-cluster-probe",
            request_timeout_ms=5000,
            reconnect_backoff_ms=100,
            reconnect_backoff_max_ms=1000,
        )
        try:
            while True:
                try:
                    cluster = admin.describe_cluster()
                    described = admin.describe_topics(topics) if topics is not None else []
                    return {"brokers": cluster["brokers"], "topics": described}
                except Exception:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.2)
        finally:
            admin.close()

    def brokers_registered(self) -> list[int]:
        """Node ids of the brokers the cluster's metadata lists (live, unfenced)."""
        return sorted(int(b["broker_id"]) for b in self.metadata(None)["brokers"])

    def partitions(self, topic: str) -> dict[int, PartitionState]:
        """Leader, replicas and ISR of every partition of `topic`."""
        (described,) = self.metadata([topic])["topics"]
        if described.get("error_code"):
            raise BrokerError(
                BrokerError.NOT_READY, f"topic {topic}: error {described['error_code']}"
            )
        return {
            int(p["partition_index"]): PartitionState(
                leader=int(p["leader_id"]),
                replicas=tuple(int(r) for r in p["replica_nodes"]),
                isr=tuple(int(r) for r in p["isr_nodes"]),
            )
            for p in described["partitions"]
        }

    def leader_of(self, topic: str, partition: int) -> int:
        """The node id leading `partition` of `topic` now, -1 while none does."""
        return self.partitions(topic)[partition].leader

    def wait_registered(self, count: int, timeout: float = 60) -> None:
        """Wait until `count` brokers are registered and unfenced."""
        deadline = time.monotonic() + timeout
        seen: list[int] = []
        while time.monotonic() < deadline:
            try:
                seen = self.brokers_registered()
            except Exception:  # a node between leaders answers nothing useful for a moment
                seen = []
            if len(seen) >= count:
                return
            time.sleep(0.5)
        raise BrokerError(
            BrokerError.NOT_READY,
            f"{len(seen)} of {count} Kafka brokers registered after {timeout:.0f} s ({seen})",
        )

    def wait_in_sync(self, topic: str, timeout: float = 120) -> None:
        """Wait until every replica of every partition of `topic` is in sync and led."""
        deadline = time.monotonic() + timeout
        lagging: list[int] = []
        while time.monotonic() < deadline:
            try:
                states = self.partitions(topic)
            except Exception:
                states = {}
            lagging = [
                p for p, s in states.items() if s.leader < 0 or set(s.isr) != set(s.replicas)
            ]
            if states and not lagging:
                return
            time.sleep(0.5)
        raise BrokerError(
            BrokerError.NOT_READY,
            f"partitions {lagging} of {topic} not fully in sync after {timeout:.0f} s",
        )
