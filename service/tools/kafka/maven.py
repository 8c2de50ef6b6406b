"""Kafka's runtime classpath from Maven Central: a tiny POM and `mvn dependency:copy-dependencies`,
fetched once per version into the cache."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from service.tools.kafka.errors import BrokerError, first_error
from service.tools.kafka.host import STAMP, cache_dir, require_tool
from service.tools.kafka.version import LOGGING_DEPS, kafka_version, major

_DEPENDENCY_PLUGIN = "3.8.1"


def _pom(version: str) -> str:
    deps = [("org.apache.kafka", "kafka_2.13", version), *LOGGING_DEPS[major(version)]]
    dep_xml = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by motcua (service/tools/kafka/maven.py) to fetch Kafka's runtime classpath. -->
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


def ensure_kafka(version: str | None = None) -> Path:
    """Kafka's runtime jars for `version`, fetched once with mvn; returns the libs directory."""
    version = version or kafka_version()
    home = cache_dir() / f"kafka-{version}"
    libs = home / "libs"
    stamp = home / STAMP
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
            detail = first_error(result.stdout + result.stderr)
            raise BrokerError(
                BrokerError.FETCH_FAILED,
                f"mvn could not fetch Kafka {version} from Maven Central: {detail}",
            )
        stamp.write_text(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n", encoding="utf-8")
    return libs
