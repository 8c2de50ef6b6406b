"""docker-compose.yml and deploy/Dockerfile: valid, pinned, and consistent with the
configs they mount (validated with Debian's docker-compose v1; no engine needed)."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml
from deploy_tools import (
    COMPOSE,
    DEPLOY,
    PROMETHEUS_CONFIG,
    ROOT,
    explain,
    load_yaml,
    run,
    tool,
)

from service.tools.simulate import sample_units_csv

WORKERS = ("worker-1", "worker-2")


def env_file() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (ROOT / ".env").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.fixture(scope="module")
def resolved(docker_compose: str) -> dict:
    """The compose file as docker-compose resolves it (.env read, anchors merged)."""
    result = run(docker_compose, "-f", str(COMPOSE), "--profile", "simulate", "config")
    assert result.returncode == 0, explain(result)
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize("profile", [[], ["--profile", "simulate"]], ids=["default", "simulate"])
def test_compose_file_is_valid(docker_compose: str, profile: list[str]) -> None:
    result = run(docker_compose, "-f", str(COMPOSE), *profile, "config", "-q")
    assert result.returncode == 0, explain(result)


def test_images_are_pinned() -> None:
    for name, service in load_yaml(COMPOSE)["services"].items():
        image = service.get("image", "")
        if "build" in service:
            continue  # our own image, built from this checkout
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: image {image!r} is not pinned"


def test_kafka_version_is_pinned_only_in_env() -> None:
    version = env_file()["KAFKA_VERSION"]
    kafka = load_yaml(COMPOSE)["services"]["kafka"]
    assert kafka["image"] == "apache/kafka:${KAFKA_VERSION}"
    for path in [COMPOSE, *DEPLOY.rglob("*")]:
        if path.is_file() and path.suffix in {".yml", ".yaml", ".json", ".py", ""}:
            text = path.read_text(encoding="utf-8", errors="replace")
            assert not re.search(rf"kafka\S*{re.escape(version)}", text), (
                f"{path.relative_to(ROOT)} repeats KAFKA_VERSION {version}"
            )


def test_kafka_tag_comes_from_env(resolved: dict) -> None:
    for node in ("kafka", "kafka-2", "kafka-3"):
        assert resolved["services"][node]["image"] == f"apache/kafka:{env_file()['KAFKA_VERSION']}"


def test_kafka_is_a_three_node_quorum_with_durable_defaults(resolved: dict) -> None:
    nodes = [resolved["services"][name] for name in ("kafka", "kafka-2", "kafka-3")]
    assert sorted(n["environment"]["KAFKA_NODE_ID"] for n in nodes) == ["1", "2", "3"]
    for node in nodes:
        env = node["environment"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
            "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
        )
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
    assert len({n["environment"]["CLUSTER_ID"] for n in nodes}) == 1


def test_tested_tool_versions_are_the_deployed_ones(resolved: dict) -> None:
    """promtool/amtool validate the configs; compose must run those same versions, and
    Grafana the build the dashboards are generated for."""
    images = {name: s.get("image", "") for name, s in resolved["services"].items()}
    for service, binary in [("prometheus", "promtool"), ("alertmanager", "amtool")]:
        found = re.search(r"version (\d+\.\d+)", run(tool(binary), "--version").stdout)
        assert found, f"no version from {binary} --version"
        assert images[service].split(":v")[1].startswith(found.group(1) + "."), (
            f"{service} runs {images[service]} but the tests use {binary} {found.group(1)}"
        )
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    sdk = next(
        d
        for d in pyproject["project"]["optional-dependencies"]["test"]
        if d.startswith("grafana-foundation-sdk")
    )
    sdk_grafana = sdk.rsplit("!", 1)[1]  # e.g. 11.6.0
    grafana_tag = images["grafana"].split(":")[1]
    assert grafana_tag.split(".")[:2] == sdk_grafana.split(".")[:2], (grafana_tag, sdk)


def test_workers_and_simulator(resolved: dict) -> None:
    services = resolved["services"]
    for name in WORKERS:
        worker = services[name]
        assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
        assert worker["command"] == ["motcua", "worker"]
        assert worker["environment"] == {
            "MOTCUA_BROKER": "kafka:9092,kafka-2:9092,kafka-3:9092",
            "MOTCUA_WEB_HOST": "0.0.0.0",
            "MOTCUA_WEB_PORT": "6066",
            "MOTCUA_DATA_DIR": "/data",
            "MOTCUA_REPLICATION_FACTOR": "3",
            "MOTCUA_MIN_INSYNC_REPLICAS": "2",
            "MOTCUA_UNITS_FILE": "/etc/motcua/units.csv",
        }
        # Each worker keeps its own state volume (RocksDB locks its directory), and reads
        # the units file: without it every department the simulator sends is "other".
        assert worker["volumes"] == [
            f"{name}-data:/data:rw",
            f"{ROOT / 'deploy' / 'units.csv'}:/etc/motcua/units.csv:ro",
        ]
    # The units file is the simulated center's own, departments included.
    assert (ROOT / "deploy" / "units.csv").read_text(encoding="utf-8") == sample_units_csv()
    simulator = services["simulator"]
    assert simulator["profiles"] == ["simulate"]
    assert simulator["command"] == ["motcua", "simulate", "--dossiers", "5000", "--rate", "50"]


def test_prometheus_scrapes_every_worker_service() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "motcua")
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    assert targets == {f"{name}:6066" for name in WORKERS}


def test_mounted_config_paths_exist(resolved: dict) -> None:
    for name, service in resolved["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("/"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_grafana_mounts_match_provisioning(resolved: dict) -> None:
    mounts = {
        target: source
        for source, target, *_ in (v.split(":") for v in resolved["services"]["grafana"]["volumes"])
    }
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "motcua.yaml")
    path = provider["providers"][0]["options"]["path"]
    assert mounts[path].endswith("deploy/grafana/dashboards")
    assert mounts["/etc/grafana/provisioning"].endswith("deploy/grafana/provisioning")


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    assert "pip install ." in text
    assert 'CMD ["motcua", "worker"]' in text
    # pip install . needs the readme pyproject.toml names.
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "readme"
    ]
    assert re.search(rf"^COPY .*\b{re.escape(readme)}\b", text, re.MULTILINE)
    found = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]["packages"]["find"]["include"]
    for top in {p.rstrip("*").split(".")[0] for p in found}:
        assert re.search(rf"^COPY {top} ", text, re.MULTILINE), f"Dockerfile does not copy {top}/"
