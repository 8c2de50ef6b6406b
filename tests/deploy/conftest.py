"""Checks of deploy/ (Prometheus, Alertmanager, compose, Grafana) that need no broker.

The Debian tools (promtool, amtool, docker-compose) are required: a missing one fails
the test with the package to install, it never skips.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
from deploy_tools import DEPLOY, tool


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return tool("amtool")


@pytest.fixture(scope="session")
def docker_compose() -> str:
    return tool("docker-compose")


@pytest.fixture(scope="session")
def dashboards() -> ModuleType:
    """deploy/grafana/generate.py, imported from its path (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "motcua_dashboards", DEPLOY / "grafana" / "generate.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
