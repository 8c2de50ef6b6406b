"""A local single-node Apache Kafka (KRaft, broker + controller) on 127.0.0.1 for demo and tests.

Kafka comes from Maven Central through `mvn` (no Docker, no tarball download) and runs on `java`.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ENV_FILE = Path(__file__).resolve().parents[2] / ".env"
# Used only when neither .env nor MOTCUA_KAFKA_VERSION names a version.
FALLBACK_KAFKA_VERSION = "3.9.1"
HOST = "127.0.0.1"

# Logging backends per Kafka major version: kafka_2.13 ships none at runtime scope, and without
# one the broker is silent or dies in kafka.utils.Log4jController.
_LOG4J2 = "2.24.3"
_LOGGING_DEPS = {
    3: [("org.slf4j", "slf4j-reload4j", "1.7.36"), ("ch.qos.reload4j", "reload4j", "1.2.25")],
    # Kafka 4.x still uses slf4j-api 1.7.x, so the slf4j 1.x binding of log4j2 is the right one.
    4: [
        ("org.apache.logging.log4j", "log4j-slf4j-impl", _LOG4J2),
        ("org.apache.logging.log4j", "log4j-core", _LOG4J2),
    ],
}
_DEPENDENCY_PLUGIN = "3.8.1"
_STAMP = ".complete"

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


class BrokerError(RuntimeError):
    """A failure of the local broker: `reason` is a code; str(e) starts with one line for a person.

    Only a broker that died while starting adds lines after that one: the end of its log.
    """

    MISSING_TOOL = "missing_tool"
    BAD_VERSION = "bad_version"
    FETCH_FAILED = "fetch_failed"
    TLS_FAILED = "tls_failed"
    PORT_IN_USE = "port_in_use"
    START_FAILED = "start_failed"
    NOT_READY = "not_ready"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# --- version and tools ------------------------------------------------------------------------


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


def _major(version: str) -> int:
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) not in _LOGGING_DEPS:
        raise BrokerError(
            BrokerError.BAD_VERSION, f"Kafka version {version!r} not supported: use a 3.x or 4.x"
        )
    return int(major)


_INSTALL_HINTS = {
    "java": "install a JDK 17 (Debian: apt-get install openjdk-17-jre-headless)",
    "keytool": "install a JDK 17 (Debian: apt-get install openjdk-17-jre-headless)",
    "mvn": "install Maven (Debian: apt-get install maven)",
}


def require_tool(name: str) -> str:
    """Path of an executable on PATH, or a one-line BrokerError saying what to install."""
    path = shutil.which(name)
    if path is None:
        hint = _INSTALL_HINTS.get(name, f"install {name}")
        raise BrokerError(BrokerError.MISSING_TOOL, f"{name} not found: {hint}")
    return path


def cache_dir() -> Path:
    """Root of motcua's download cache: MOTCUA_CACHE_DIR, else $XDG_CACHE_HOME/motcua."""
    override = os.environ.get("MOTCUA_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "motcua"


# --- fetching Kafka from Maven Central ----------------------------------------------------------


def _pom(version: str) -> str:
    deps = [("org.apache.kafka", "kafka_2.13", version), *_LOGGING_DEPS[_major(version)]]
    dep_xml = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by motcua (service/tools/broker.py) to fetch Kafka's runtime classpath. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>motcua.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{dep_xml}
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>{_DEPENDENCY_PLUGIN}</version>
      </plugin>
    </plugins>
  </build>
</project>
"""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two test sessions (or a test and `motcua demo`) may fetch at once; one waits for the other.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _first_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("[ERROR]")]
    return (errors or lines or ["no output"])[0]


def ensure_kafka(version: str | None = None) -> Path:
    """Kafka's runtime jars for `version`, fetched once with mvn; returns the libs directory."""
    version = version or kafka_version()
    home = cache_dir() / f"kafka-{version}"
    libs = home / "libs"
    stamp = home / _STAMP
    if stamp.is_file():
        return libs
    mvn = require_tool("mvn")
    with _locked(home / ".lock"):
        if stamp.is_file():  # another process finished the fetch while we waited
            return libs
        # No stamp means a previous fetch was interrupted: start the classpath over.
        shutil.rmtree(libs, ignore_errors=True)
        (home / "pom.xml").write_text(_pom(version), encoding="utf-8")
        result = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                "dependency:copy-dependencies",
                "-DoutputDirectory=libs",
                "-DincludeScope=runtime",
            ],
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
            detail = _first_error(result.stdout + result.stderr)
            raise BrokerError(
                BrokerError.FETCH_FAILED,
                f"mvn could not fetch Kafka {version} from Maven Central: {detail}",
            )
        stamp.write_text(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n", encoding="utf-8")
    return libs


# --- ports and processes ----------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_in_use(port: int) -> bool:
    return _accepts(f"{HOST}:{port}")


def _accepts(server: str) -> bool:
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or HOST, int(port)), timeout=0.5):
            return True
    except (OSError, ValueError):
        return False


def reachable(bootstrap: str, timeout: float = 3.0) -> bool:
    """True if a Kafka metadata request to `bootstrap` succeeds within about `timeout` seconds."""
    from kafka import KafkaAdminClient  # heavy import, needed only here

    servers = [item.strip() for item in bootstrap.split("://", 1)[-1].split(",") if item.strip()]
    # A plain TCP check first: kafka-python logs every refused connection as an error, which
    # would litter `motcua demo` and `status` output whenever nothing is listening.
    if not any(_accepts(server) for server in servers):
        return False
    ms = max(int(timeout * 1000), 100)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=servers,
            client_id="motcua-broker-probe",
            request_timeout_ms=ms,
            bootstrap_timeout_ms=ms,
            reconnect_backoff_ms=100,
            reconnect_backoff_max_ms=500,
        )
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


def _pid_alive(pid: int) -> bool:
    # A broker we started ourselves and that died is a zombie until reaped: reap it first.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _is_kafka_process(pid: int, data_dir: Path) -> bool:
    # Guards against a stale pid file whose pid now belongs to an unrelated process.
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no procfs: trust the pid
        return _pid_alive(pid)
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in args and str(data_dir).encode() in b" ".join(args)


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


def _cluster_id() -> str:
    # Kafka's Uuid.randomUuid() text form: URL-safe base64 of 16 bytes, no padding, no leading '-'.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


# --- TLS ----------------------------------------------------------------------------------------


@dataclass
class SslListener:
    """An extra SSL://127.0.0.1:<port> listener with a self-made CA, for security tests.

    The files are created by `LocalBroker.start()` under `<data_dir>/tls`; `cafile` is the PEM
    that Python clients pass as ssl_cafile / cafile.
    """

    port: int
    directory: Path | None = None

    @property
    def cafile(self) -> Path:
        return self._dir / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self._dir / "broker.p12"

    @property
    def truststore(self) -> Path:
        return self._dir / "truststore.p12"

    @property
    def password(self) -> str:
        return (self._dir / "password").read_text(encoding="utf-8").strip()

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def _dir(self) -> Path:
        if self.directory is None:
            raise BrokerError(
                BrokerError.TLS_FAILED, "the TLS files do not exist until the broker has started"
            )
        return self.directory

    def ensure_files(self, directory: Path) -> None:
        """Create CA, broker key pair and truststore with keytool unless they already exist."""
        self.directory = directory
        if (directory / _STAMP).is_file():
            return
        keytool = require_tool("keytool")
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        password = secrets.token_urlsafe(18)
        (directory / "password").write_text(password + "\n", encoding="utf-8")
        (directory / "password").chmod(0o600)
        ca_store = directory / "ca.p12"
        common = ["-storetype", "PKCS12", "-storepass", password, "-noprompt"]

        def run(store: Path, *args: str, stdin: str | None = None) -> str:
            command = [keytool, *args, "-keystore", str(store), *common]
            result = subprocess.run(command, input=stdin, capture_output=True, text=True)
            if result.returncode != 0:
                detail = _first_error(result.stdout + result.stderr)
                raise BrokerError(BrokerError.TLS_FAILED, f"keytool {args[0]} failed: {detail}")
            return result.stdout

        # A CA that signs the broker's certificate (with an IP SAN), as in a real deployment:
        # Python 3.13's default context verifies strictly (VERIFY_X509_STRICT) and is picky
        # about CA extensions, which a lone self-signed certificate may lack.
        key = ["-keyalg", "RSA", "-keysize", "2048", "-validity", "3650"]
        ca_ext = ["-ext", "bc:c=ca:true", "-ext", "ku:c=keyCertSign,cRLSign"]
        san = "san=ip:127.0.0.1,dns:localhost"
        leaf_ext = ["-validity", "3650", "-ext", san, "-ext", "eku=serverAuth"]
        run(ca_store, "-genkeypair", "-alias", "ca", "-dname", "CN=motcua test CA", *key, *ca_ext)
        run(ca_store, "-exportcert", "-rfc", "-alias", "ca", "-file", str(self.cafile))
        run(self.keystore, "-genkeypair", "-alias", "broker", "-dname", "CN=localhost", *key)
        request = run(self.keystore, "-certreq", "-alias", "broker")
        signed = run(ca_store, "-gencert", "-rfc", "-alias", "ca", *leaf_ext, stdin=request)
        for store in (self.keystore, self.truststore):
            run(store, "-importcert", "-alias", "ca", "-file", str(self.cafile))
        run(self.keystore, "-importcert", "-alias", "broker", stdin=signed)
        (directory / _STAMP).write_text("ok\n", encoding="utf-8")

    def server_properties(self) -> dict[str, str]:
        password = self.password
        return {
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.keystore),
            "ssl.keystore.password": password,
            "ssl.key.password": password,
            "ssl.truststore.type": "PKCS12",
            "ssl.truststore.location": str(self.truststore),
            "ssl.truststore.password": password,
        }


# --- the broker ---------------------------------------------------------------------------------


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


class LocalBroker:
    """One Kafka process, broker and KRaft controller at once, listening on 127.0.0.1 only.

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
    ) -> None:
        self.port = port
        # A temporary directory is the caller's to remove: it must outlive stop() for keep_data.
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="motcua-kafka-")).resolve()
        # Chosen once so that a restart with keep_data finds the controller where it was.
        self.controller_port = controller_port or free_port()
        while self.controller_port == port:
            self.controller_port = free_port()
        self.ssl = ssl
        self.version = version or kafka_version()
        self.process: subprocess.Popen[bytes] | None = None

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

    def start(self, timeout: float = 90, keep_data: bool = False, detach: bool = False) -> None:
        """Start and wait until clients can use the broker.

        Formats a fresh log dir unless keep_data is True and one was formatted before.
        detach=True puts the JVM in its own session so it outlives this Python process.
        """
        if self.is_running():
            raise BrokerError(
                BrokerError.PORT_IN_USE, f"broker already running at {self.bootstrap}"
            )
        java = require_tool("java")
        libs = ensure_kafka(self.version)
        for port in self._ports():
            if _port_in_use(port):
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
        since = {log: _size(log) for log in (self.server_log, self.stdout_log)}
        command = [java, *_JVM_OPTS, *self._logging_opts(), "-cp", classpath, "kafka.Kafka"]
        with self.stdout_log.open("ab") as out:
            self.process = subprocess.Popen(
                [*command, str(config)],
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=detach,
            )
        if not detach:
            _foreground.add(self.process)
        try:
            self._wait_ready(timeout, since)
        except BaseException:
            self.kill()
            raise

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
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            # Few offsets partitions: creating __consumer_offsets dominates the first group join.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
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
        path.write_text("# Written by motcua (service/tools/broker.py) at each start.\n" + body)
        if self.ssl is not None:  # holds the keystore password
            path.chmod(0o600)
        self._write_log_config()
        return path

    def _log_config_path(self) -> Path:
        name = "log4j2.properties" if _major(self.version) >= 4 else "log4j.properties"
        return self.data_dir / name

    def _write_log_config(self) -> None:
        log = self.server_log
        if _major(self.version) >= 4:
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
        if _major(self.version) >= 4:
            return [f"-Dlog4j2.configurationFile={config}"]
        return [f"-Dlog4j.configuration=file:{config}"]

    def _format(self, java: str, classpath: str, config: Path) -> None:
        shutil.rmtree(self.log_dir, ignore_errors=True)
        tool = [java, "-Xmx256m", *self._logging_opts(), "-cp", classpath]
        result = subprocess.run(
            [*tool, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(config)],
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            detail = _first_error(result.stdout + result.stderr)
            raise BrokerError(
                BrokerError.START_FAILED, f"formatting {self.log_dir} failed: {detail}"
            )

    def _wait_ready(self, timeout: float, since: dict[Path, int]) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                # The summary stays on the first line; the log lines follow for whoever reads on.
                tails = [
                    f"{log}:\n{text}" for log, start in since.items() if (text := _tail(log, start))
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
            if _port_in_use(self.port) and reachable(self.bootstrap, min(5.0, remaining)):
                return
            time.sleep(0.25)


# --- background broker for the CLI -------------------------------------------------------------

_PID_FILE = "broker.pid"
_STATE_FILE = "broker.json"


def default_data_dir() -> Path:
    """Where `motcua` keeps its data: MOTCUA_DATA_DIR, else ./var."""
    return Path(os.environ.get("MOTCUA_DATA_DIR") or "var").expanduser().resolve()


def _kafka_dir(data: Path | None) -> Path:
    return (data.expanduser().resolve() if data is not None else default_data_dir()) / "kafka"


@dataclass(frozen=True)
class _Recorded:
    """A broker that start_background wrote down."""

    pid: int
    bootstrap: str
    version: str


def _read_state_file(kafka_dir: Path) -> dict[str, object]:
    try:
        state = json.loads((kafka_dir / _STATE_FILE).read_text(encoding="utf-8"))
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
    if _pid_alive(state.pid) and _is_kafka_process(state.pid, kafka_dir):
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
    if not isinstance(controller_port, int) or _port_in_use(controller_port):
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


def cli_start(port: int, data: Path | None) -> str:
    """`motcua broker start`: start in the background unless already running."""
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


def cli_stop(data: Path | None, timeout: float = 30) -> str:
    """`motcua broker stop`: SIGTERM the recorded broker, SIGKILL after `timeout` seconds."""
    kafka_dir = _kafka_dir(data)
    running = _running_state(kafka_dir)
    if running is None:
        return f"no Kafka running for {kafka_dir}"
    pid = running.pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    how = "stopped"
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        how = f"killed after {timeout:.0f} s"
        while _pid_alive(pid):
            time.sleep(0.1)
    (kafka_dir / _PID_FILE).unlink(missing_ok=True)
    return f"Kafka at {running.bootstrap} {how} (pid {pid})"


def cli_status(data: Path | None) -> tuple[bool, str]:
    """`motcua broker status`: (True, where) only if the process is alive and answers."""
    kafka_dir = _kafka_dir(data)
    running = _running_state(kafka_dir)
    if running is None:
        return False, f"no Kafka running for {kafka_dir}"
    if not reachable(running.bootstrap):
        return (
            False,
            f"Kafka process {running.pid} is alive but {running.bootstrap} does not answer",
        )
    return True, f"Kafka {running.version} running at {running.bootstrap} (pid {running.pid})"
