"""One Kafka process on 127.0.0.1, broker and KRaft controller at once: its configuration, its
storage format, its start, readiness, stop and kill. A single node alone, or one of a cluster."""

from __future__ import annotations

import atexit
import base64
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from service.tools.kafka.errors import BrokerError, first_error
from service.tools.kafka.host import HOST, free_port, port_in_use, require_tool
from service.tools.kafka.maven import ensure_kafka
from service.tools.kafka.probe import reachable
from service.tools.kafka.tls import SslListener
from service.tools.kafka.version import kafka_version, major

# Sized for tests on a 2-core machine; G1 settings are those of Kafka's own start scripts.
_JVM_OPTS = [
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]

# Brokers started in the foreground go when the Python process that started them ends, even
# on an exception before stop(); detached ones (the CLI's) are meant to outlive it.
_foreground: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _stop_foreground() -> None:
    for proc in list(_foreground):
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def new_cluster_id() -> str:
    """Kafka's Uuid.randomUuid() text form: URL-safe base64 of 16 bytes, no padding, and no
    leading '-' (the storage tool would read it as an option)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tail(path: Path, since: int = 0, lines: int = 12) -> str:
    """The last lines written to `path` after byte offset `since` (logs are appended to)."""
    try:
        with path.open("rb") as handle:
            handle.seek(since)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(f"  {line}" for line in text.splitlines()[-lines:])


class LocalBroker:
    """One Kafka process, broker and KRaft controller at once, listening on 127.0.0.1 only.

    Alone by default (node 1, a quorum of itself). A cluster passes `node_id`, the whole
    controller `quorum` ({node id: controller port}), a shared `cluster_id` and the
    `replication` of Kafka's internal topics.

    Layout of `data_dir`: server.properties, the log4j config, `log/` (Kafka's log.dirs),
    `server.log` (WARN and above), `broker.out` (JVM stdout/stderr), `tls/` when ssl is given.
    """

    def __init__(
        self,
        port: int = 9092,
        data_dir: Path | None = None,
        controller_port: int | None = None,
        ssl: SslListener | None = None,
        version: str | None = None,
        *,
        node_id: int = 1,
        quorum: dict[int, int] | None = None,
        cluster_id: str | None = None,
        replication: int = 1,
    ) -> None:
        self.port = port
        # A temporary directory is the caller's to remove: it must outlive stop() for keep_data.
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="motcua-kafka-")).resolve()
        if quorum is not None and controller_port is None:
            controller_port = quorum[node_id]
        # Chosen once so that a restart with keep_data finds the controller where it was.
        self.controller_port = controller_port or free_port()
        while self.controller_port == port:
            self.controller_port = free_port()
        self.ssl = ssl
        self.version = version or kafka_version()
        self.node_id = node_id
        self.quorum = quorum or {node_id: self.controller_port}
        self.cluster_id = cluster_id
        self.replication = replication
        self.process: subprocess.Popen[bytes] | None = None
        self._log_marks: dict[Path, int] = {}

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{HOST}:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def server_log(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def stdout_log(self) -> Path:
        return self.data_dir / "broker.out"

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(
        self,
        timeout: float = 90,
        keep_data: bool = False,
        detach: bool = False,
        own_group: bool = False,
    ) -> None:
        """Start and wait until clients can use the broker.

        Formats a fresh log dir unless keep_data is True and one was formatted before.
        detach=True puts the JVM in its own session so it outlives this Python process.
        own_group=True puts it in a process group of its own: a signal to this process's
        group (a terminal's Ctrl-C) does not reach it, so the caller stops it when it chooses.
        """
        self.launch(keep_data=keep_data, detach=detach, own_group=own_group)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def launch(
        self, keep_data: bool = False, detach: bool = False, own_group: bool = False
    ) -> None:
        """Start the JVM without waiting for it: a node of a cluster cannot be ready before
        a majority of the controller quorum runs."""
        if self.is_running():
            raise BrokerError(
                BrokerError.PORT_IN_USE, f"broker already running at {self.bootstrap}"
            )
        java = require_tool("java")
        libs = ensure_kafka(self.version)
        for port in self._ports():
            if port_in_use(port):
                raise BrokerError(
                    BrokerError.PORT_IN_USE,
                    f"port {port} on {HOST} is already in use (another Kafka?)",
                )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.ssl is not None:
            self.ssl.ensure_files(self.data_dir / "tls")
        config = self._write_config()
        classpath = f"{libs}/*"
        if not (keep_data and (self.log_dir / "meta.properties").is_file()):
            self._format(java, classpath, config)
        # Both logs are appended to across restarts; an error report shows this start's lines only.
        self._log_marks = {log: _size(log) for log in (self.server_log, self.stdout_log)}
        command = [java, *_JVM_OPTS, *self._logging_opts(), "-cp", classpath, "kafka.Kafka"]
        with self.stdout_log.open("ab") as out:
            self.process = subprocess.Popen(
                [*command, str(config)],
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=detach,
                process_group=0 if own_group and not detach else None,
            )
        if not detach:
            _foreground.add(self.process)

    def stop(self, timeout: float = 30) -> None:
        """Shut down cleanly (SIGTERM), or SIGKILL after `timeout` seconds."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        _foreground.discard(proc)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()
        _foreground.discard(proc)

    def _ports(self) -> list[int]:
        ports = [self.port, self.controller_port]
        if self.ssl is not None:
            ports.append(self.ssl.port)
        return ports

    def _properties(self) -> dict[str, str]:
        listeners = [
            f"PLAINTEXT://{HOST}:{self.port}",
            f"CONTROLLER://{HOST}:{self.controller_port}",
        ]
        advertised = [f"PLAINTEXT://{HOST}:{self.port}"]
        protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        if self.ssl is not None:
            listeners.append(f"SSL://{HOST}:{self.ssl.port}")
            advertised.append(f"SSL://{HOST}:{self.ssl.port}")
            protocols.append("SSL:SSL")
        voters = ",".join(f"{node}@{HOST}:{port}" for node, port in sorted(self.quorum.items()))
        replicas = str(self.replication)
        # A replicated internal topic takes writes with one replica down, as production does.
        min_isr = str(min(self.replication, 2))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "default.replication.factor": replicas,
            "offsets.topic.replication.factor": replicas,
            # Few offsets partitions: creating __consumer_offsets dominates the first group join.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            # Tests start consumers one after another; waiting for more members only slows them.
            "group.initial.rebalance.delay.ms": "0",
            # After a SIGKILL the restarted broker cannot register until its old session
            # expires: 4 s instead of the default 9 s halves a crash test's restart. One
            # heartbeat a second still leaves four to miss before a busy broker is fenced.
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "1000",
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        if self.ssl is not None:
            props.update(self.ssl.server_properties())
        return props

    def _write_config(self) -> Path:
        path = self.data_dir / "server.properties"
        body = "".join(f"{key}={value}\n" for key, value in self._properties().items())
        path.write_text("# Written by motcua (service/tools/kafka/node.py) at each start.\n" + body)
        if self.ssl is not None:  # holds the keystore password
            path.chmod(0o600)
        self._write_log_config()
        return path

    def _log_config_path(self) -> Path:
        name = "log4j2.properties" if major(self.version) >= 4 else "log4j.properties"
        return self.data_dir / name

    def _write_log_config(self) -> None:
        log = self.server_log
        if major(self.version) >= 4:
            text = f"""status = error
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
"""
        else:
            text = f"""log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
"""
        self._log_config_path().write_text(text, encoding="utf-8")

    def _logging_opts(self) -> list[str]:
        config = self._log_config_path()
        if major(self.version) >= 4:
            return [f"-Dlog4j2.configurationFile={config}"]
        return [f"-Dlog4j.configuration=file:{config}"]

    def _format(self, java: str, classpath: str, config: Path) -> None:
        shutil.rmtree(self.log_dir, ignore_errors=True)
        tool = [java, "-Xmx256m", *self._logging_opts(), "-cp", classpath]
        cluster_id = self.cluster_id or new_cluster_id()
        result = subprocess.run(
            [*tool, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)],
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            detail = first_error(result.stdout + result.stderr)
            raise BrokerError(
                BrokerError.START_FAILED, f"formatting {self.log_dir} failed: {detail}"
            )

    def wait_ready(self, timeout: float) -> None:
        """Wait until a metadata request to this node succeeds; a BrokerError if the JVM exits
        (with the end of its logs) or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                # The summary stays on the first line; the log lines follow for whoever reads on.
                tails = [
                    f"{log}:\n{text}"
                    for log, start in self._log_marks.items()
                    if (text := _tail(log, start))
                ]
                raise BrokerError(
                    BrokerError.START_FAILED,
                    f"Kafka exited with code {code} while starting on {self.bootstrap}"
                    + ("; last lines of " + "\n".join(tails) if tails else "; it logged nothing"),
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(
                    BrokerError.NOT_READY,
                    f"Kafka did not become ready on {self.bootstrap} within {timeout:.0f} s "
                    f"(log: {self.server_log})",
                )
            # Only probe with a client once the port accepts, so the client logs no errors.
            if port_in_use(self.port) and reachable(self.bootstrap, min(5.0, remaining)):
                return
            time.sleep(0.25)
