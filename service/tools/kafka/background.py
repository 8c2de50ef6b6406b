"""`motcua broker start|stop|status`: a local Kafka that outlives the command, a single node
or a cluster, found again through the pid and state files in its data directory."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from service.tools.kafka.cluster import LocalCluster, distinct_free_ports
from service.tools.kafka.errors import BrokerError
from service.tools.kafka.host import is_kafka_process, port_in_use
from service.tools.kafka.node import LocalBroker
from service.tools.kafka.probe import reachable
from service.tools.processes import Process, stop

_PID_FILE = "broker.pid"
_STATE_FILE = "broker.json"
_CLUSTER_FILE = "cluster.json"
CLUSTER_STOP_GRACE_S = 10.0


def default_data_dir() -> Path:
    """Where `motcua` keeps its data: MOTCUA_DATA_DIR, else ./var."""
    return Path(os.environ.get("MOTCUA_DATA_DIR") or "var").expanduser().resolve()


def _kafka_dir(data: Path | None, name: str = "kafka") -> Path:
    return (data.expanduser().resolve() if data is not None else default_data_dir()) / name


def _cluster_dir(data: Path | None) -> Path:
    return _kafka_dir(data, "kafka-cluster")


@dataclass(frozen=True)
class _Recorded:
    """A broker that start_background wrote down."""

    pid: int
    bootstrap: str
    version: str


def _read_state_file(kafka_dir: Path, name: str = _STATE_FILE) -> dict[str, object]:
    try:
        state = json.loads((kafka_dir / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _read_state(kafka_dir: Path) -> _Recorded | None:
    state = _read_state_file(kafka_dir)
    try:
        pid = int((kafka_dir / _PID_FILE).read_text(encoding="utf-8").strip())
        return _Recorded(
            pid=pid,
            bootstrap=str(state["bootstrap"]),
            version=str(state["version"]),
        )
    except (OSError, ValueError, KeyError):
        return None


def _running_state(kafka_dir: Path) -> _Recorded | None:
    """The recorded broker if its process is alive; a stale pid file is removed."""
    state = _read_state(kafka_dir)
    if state is None:
        return None
    if is_kafka_process(state.pid, kafka_dir):
        return state
    (kafka_dir / _PID_FILE).unlink(missing_ok=True)
    return None


def start_background(port: int, data_dir: Path, timeout: float = 90) -> LocalBroker:
    """Start a broker that outlives this process and record it in `<data_dir>/broker.pid`.

    Data is kept between runs, so topics survive `motcua broker stop` / `start`.
    """
    data_dir = data_dir.expanduser().resolve()
    # The pid file may be gone (stopped), but broker.json still says where the controller was.
    previous = _read_state_file(data_dir)
    controller_port = previous.get("controller_port")
    if not isinstance(controller_port, int) or port_in_use(controller_port):
        controller_port = None
    broker = LocalBroker(port=port, data_dir=data_dir, controller_port=controller_port)
    broker.start(timeout=timeout, keep_data=True, detach=True)
    assert broker.process is not None
    state = {
        "port": broker.port,
        "controller_port": broker.controller_port,
        "bootstrap": broker.bootstrap,
        "version": broker.version,
        "data_dir": str(data_dir),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (data_dir / _STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    (data_dir / _PID_FILE).write_text(f"{broker.process.pid}\n", encoding="utf-8")
    return broker


# --- a cluster in the background ---------------------------------------------------------------


@dataclass(frozen=True)
class _RecordedCluster:
    """A cluster that start_cluster_background wrote down, and which of its nodes still run."""

    nodes: int
    bootstrap: str
    version: str
    alive: dict[int, int]  # node id -> pid of the nodes whose process is a live Kafka

    @property
    def complete(self) -> bool:
        return len(self.alive) == self.nodes

    def pids(self) -> str:
        return ", ".join(str(pid) for _, pid in sorted(self.alive.items()))


def _node_dir(cluster_dir: Path, node: int) -> Path:
    return cluster_dir / f"node-{node}"


def _read_cluster(cluster_dir: Path) -> _RecordedCluster | None:
    """The recorded cluster; stale pid files of nodes that no longer run are removed."""
    state = _read_state_file(cluster_dir, _CLUSTER_FILE)
    try:
        nodes, bootstrap, version = int(str(state["nodes"])), state["bootstrap"], state["version"]
    except (KeyError, ValueError):
        return None
    alive: dict[int, int] = {}
    for node in range(1, nodes + 1):
        pid_file = _node_dir(cluster_dir, node) / _PID_FILE
        try:
            pid = int(pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            continue
        # The node's config path, not its directory: node-1 is a prefix of node-10.
        config = _node_dir(cluster_dir, node) / "server.properties"
        if is_kafka_process(pid, config):
            alive[node] = pid
        else:
            pid_file.unlink(missing_ok=True)
    return _RecordedCluster(nodes, str(bootstrap), str(version), alive)


def _int_list(value: object, length: int) -> list[int] | None:
    if isinstance(value, list) and len(value) == length and all(isinstance(v, int) for v in value):
        return value
    return None


def start_cluster_background(
    port: int, nodes: int, data_dir: Path, timeout: float = 180
) -> LocalCluster:
    """Start a cluster of `nodes` that outlives this process; node 1 listens on `port`.

    Data, ports and the cluster id are kept between runs (`<data_dir>/cluster.json`), so
    topics survive `motcua broker stop` / `start`. Nodes already running are left alone.
    """
    data_dir = data_dir.expanduser().resolve()
    previous = _read_state_file(data_dir, _CLUSTER_FILE)
    formatted = any(data_dir.glob("node-*/log/meta.properties"))
    if formatted and previous.get("nodes") != nodes:
        raise BrokerError(
            BrokerError.START_FAILED,
            f"{data_dir} holds a cluster of {previous.get('nodes', 'unknown')} nodes: start it "
            f"with that --nodes, or remove the directory for a new cluster of {nodes}",
        )
    recorded = _read_cluster(data_dir)
    alive = recorded.alive if recorded is not None else {}
    ports = _int_list(previous.get("ports"), nodes)
    controller_ports = _int_list(previous.get("controller_ports"), nodes)
    if not alive:  # nothing runs: ports may be chosen again (the quorum is in the config)
        if ports is None or ports[0] != port or any(port_in_use(p) for p in ports[1:]):
            ports = [port, *distinct_free_ports(nodes - 1, taken=[port])]
        if controller_ports is None or any(p in ports or port_in_use(p) for p in controller_ports):
            controller_ports = distinct_free_ports(nodes, taken=ports)
    elif ports is None or controller_ports is None:
        raise BrokerError(
            BrokerError.START_FAILED,
            f"{data_dir / _CLUSTER_FILE} is unreadable while nodes {sorted(alive)} run: "
            "stop them first",
        )
    cluster_id = previous.get("cluster_id")
    cluster = LocalCluster(
        nodes,
        data_dir,
        ports=ports,
        controller_ports=controller_ports,
        cluster_id=cluster_id if isinstance(cluster_id, str) else None,
    )
    # Written first: a start that fails half-way leaves formatted nodes of this cluster id.
    data_dir.mkdir(parents=True, exist_ok=True)
    state = {
        "nodes": nodes,
        "ports": [broker.port for broker in cluster.brokers.values()],
        "controller_ports": [broker.controller_port for broker in cluster.brokers.values()],
        "cluster_id": cluster.cluster_id,
        "bootstrap": cluster.bootstrap,
        "version": cluster.version,
        "data_dir": str(data_dir),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (data_dir / _CLUSTER_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    missing = [node for node in cluster.brokers if node not in alive]
    if len(missing) == nodes:
        cluster.start(timeout=timeout, keep_data=True, detach=True)
    else:  # the others run: a quorum is there for the restarted ones to join
        for node in missing:
            cluster.node(node).start(timeout=timeout, keep_data=True, detach=True)
    for node in missing:
        process = cluster.node(node).process
        assert process is not None
        (_node_dir(data_dir, node) / _PID_FILE).write_text(f"{process.pid}\n", encoding="utf-8")
    return cluster


def _terminate(pids: list[int], timeout: float) -> list[int]:
    """SIGTERM every pid at once, SIGKILL those alive after `timeout` s; returns those."""
    found = [process for pid in pids if (process := Process.of(pid)) is not None]
    return [process.pid for process in stop(found, timeout)]


# --- the commands -------------------------------------------------------------------------------


def _start_single(port: int, data: Path | None) -> str:
    kafka_dir = _kafka_dir(data)
    running = _running_state(kafka_dir)
    if running is not None:
        return f"Kafka already running at {running.bootstrap} (pid {running.pid}, {kafka_dir})"
    broker = start_background(port, kafka_dir)
    assert broker.process is not None
    return (
        f"Kafka {broker.version} running at {broker.bootstrap} "
        f"(pid {broker.process.pid}, data {kafka_dir})"
    )


def _stop_single(data: Path | None, timeout: float) -> str | None:
    kafka_dir = _kafka_dir(data)
    running = _running_state(kafka_dir)
    if running is None:
        return None
    pid = running.pid
    how = f"killed after {timeout:.0f} s" if _terminate([pid], timeout) else "stopped"
    (kafka_dir / _PID_FILE).unlink(missing_ok=True)
    return f"Kafka at {running.bootstrap} {how} (pid {pid})"


def _status_single(data: Path | None) -> tuple[bool, str] | None:
    kafka_dir = _kafka_dir(data)
    running = _running_state(kafka_dir)
    if running is None:
        return None
    if not reachable(running.bootstrap):
        return (
            False,
            f"Kafka process {running.pid} is alive but {running.bootstrap} does not answer",
        )
    return True, f"Kafka {running.version} running at {running.bootstrap} (pid {running.pid})"


def _start_cluster(port: int, nodes: int, data: Path | None) -> str:
    cluster_dir = _cluster_dir(data)
    recorded = _read_cluster(cluster_dir)
    if recorded is not None and recorded.complete and recorded.nodes == nodes:
        return (
            f"Kafka cluster already running at {recorded.bootstrap} "
            f"(pids {recorded.pids()}, {cluster_dir})"
        )
    cluster = start_cluster_background(port, nodes, cluster_dir)
    started = {node: b.process.pid for node, b in cluster.brokers.items() if b.process}
    pids = ", ".join(str(pid) for pid in started.values())
    if recorded is not None and recorded.alive:
        again = ", ".join(map(str, started))
        return f"Kafka cluster at {cluster.bootstrap}: node {again} started again (pid {pids})"
    return (
        f"Kafka {cluster.version} cluster of {nodes} nodes running at {cluster.bootstrap} "
        f"(pids {pids}, data {cluster_dir})"
    )


def _stop_cluster(data: Path | None, timeout: float) -> str | None:
    cluster_dir = _cluster_dir(data)
    recorded = _read_cluster(cluster_dir)
    if recorded is None or not recorded.alive:
        return None
    # The last nodes of a quorum that is going away cannot finish a controlled shutdown
    # (it needs a controller majority): they are killed after a short grace.
    grace = min(timeout, CLUSTER_STOP_GRACE_S)
    killed = _terminate(list(recorded.alive.values()), grace)
    nodes = [str(node) for node, pid in sorted(recorded.alive.items()) if pid in killed]
    how = f"stopped (node {', '.join(nodes)} killed after {grace:.0f} s)" if nodes else "stopped"
    for node in recorded.alive:
        (_node_dir(cluster_dir, node) / _PID_FILE).unlink(missing_ok=True)
    return f"Kafka cluster at {recorded.bootstrap} {how} (pids {recorded.pids()})"


def _status_cluster(data: Path | None) -> tuple[bool, str] | None:
    recorded = _read_cluster(_cluster_dir(data))
    if recorded is None or not recorded.alive:
        return None
    where = f"Kafka {recorded.version} cluster at {recorded.bootstrap}"
    down = [str(node) for node in range(1, recorded.nodes + 1) if node not in recorded.alive]
    if down:
        return False, f"{where}: node {', '.join(down)} of {recorded.nodes} not running"
    silent = [s for s in recorded.bootstrap.split(",") if not reachable(s)]
    if silent:
        return False, f"{where}: {', '.join(silent)} does not answer"
    return True, f"{where}: {recorded.nodes} nodes running (pids {recorded.pids()})"


def cli_start(port: int, data: Path | None, nodes: int = 1) -> str:
    """`motcua broker start [--nodes N]`: start in the background unless already running; a
    cluster's nodes that died are started again."""
    if nodes == 1:
        return _start_single(port, data)
    return _start_cluster(port, nodes, data)


def cli_stop(data: Path | None, timeout: float = 30) -> str:
    """`motcua broker stop`: SIGTERM the recorded broker or cluster (both, if both run),
    SIGKILL after `timeout` seconds."""
    stopped = [m for m in (_stop_single(data, timeout), _stop_cluster(data, timeout)) if m]
    return "; ".join(stopped) or f"no Kafka running for {_kafka_dir(data)}"


def cli_status(data: Path | None) -> tuple[bool, str]:
    """`motcua broker status`: (True, where) only if every recorded process is alive and
    answers."""
    found = [s for s in (_status_single(data), _status_cluster(data)) if s is not None]
    if not found:
        return False, f"no Kafka running for {_kafka_dir(data)}"
    return all(running for running, _ in found), "; ".join(message for _, message in found)
