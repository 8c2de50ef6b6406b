"""The `./run` script on a fresh Debian: its python3 makes no venv without python3-venv."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_a_python_without_ensurepip_gets_python3_venv_installed_first(tmp_path: Path) -> None:
    # A copy of the script in a folder with no .venv, a python3 like Debian's without
    # python3-venv (no ensurepip; its venv fails), and apt-get and id that note their calls.
    shutil.copy(ROOT / "run", tmp_path / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    _script(
        bin_dir / "python3",
        f'echo "python3 $*" >> {calls}\n'
        '[[ "$*" == "-c import ensurepip" && -f ' + str(tmp_path / "venv-installed") + " ]] "
        "&& exit 0\n"
        "exit 1\n",
    )
    _script(
        bin_dir / "apt-get",
        f'echo "apt-get $*" >> {calls}\n'
        f'[[ "$1" == install ]] && touch {tmp_path / "venv-installed"}\n'
        "exit 0\n",
    )
    _script(bin_dir / "id", "echo 0\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": "python3"}
    done = subprocess.run(
        ["bash", str(tmp_path / "run"), "calendar"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = calls.read_text().splitlines()
    installs = [line for line in lines if line.startswith("apt-get install")]
    assert installs and installs[0].split()[-1] == "python3-venv", lines
    # The venv is made only after the package is in: the first venv call follows it.
    venv = next(i for i, line in enumerate(lines) if line == "python3 -m venv .venv")
    assert venv > lines.index(installs[0])
    assert "installing Debian packages: python3-venv" in done.stderr
    assert done.returncode != 0  # the fake python3 makes no venv: the script stops there
