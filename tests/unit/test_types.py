"""The type hints hold: mypy finds nothing in the project's packages.

Run with the configuration in pyproject.toml ([tool.mypy]), from the project root, by the
interpreter running the tests (the test extras install mypy).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "schemas", "agents")


def test_mypy_finds_no_errors() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", *PACKAGES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"mypy found errors:\n{done.stdout}{done.stderr}"
