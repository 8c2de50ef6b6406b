"""What the local machine provides: tools on PATH, the download cache, free loopback ports,
and whether a process is still a live Kafka."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from service.tools.kafka.errors import BrokerError
from service.tools.processes import Process

HOST = "127.0.0.1"
# Written last into a directory whose one-time setup (a fetch, TLS files) has finished.
STAMP = ".complete"

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    return accepts(f"{HOST}:{port}")


def accepts(server: str) -> bool:
    """True if a TCP connection to host:port succeeds within half a second."""
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or HOST, int(port)), timeout=0.5):
            return True
    except (OSError, ValueError):
        return False


def is_kafka_process(pid: int, data_dir: Path) -> bool:
    """A live Kafka of `data_dir` runs as `pid`: guards against a stale pid file whose pid
    has gone (no process; a zombie's command line is empty) or now belongs to another."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no procfs: trust the pid
        return Process.of(pid) is not None
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in args and str(data_dir).encode() in b" ".join(args)
