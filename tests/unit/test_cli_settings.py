"""A MOTCUA_* variable out of range is a user's mistake: every command that reads the settings
says so in one line and exits 2, with no traceback."""

from __future__ import annotations

from typing import Any

import pytest

from service.cli import main

COMMANDS = [
    ["worker"],
    ["demo"],
    ["gateway"],
    ["publish", "/dev/null"],
    ["simulate", "--dossiers", "1"],
    ["dlq-limit"],
    ["keep-events"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=[argv[0] for argv in COMMANDS])
def test_a_bad_setting_is_one_line_and_exit_2(
    argv: list[str], capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("MOTCUA_PARTITIONS", "eight")
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"motcua {argv[0]}: MOTCUA_PARTITIONS must be an integer, got 'eight'\n"
    )
    assert captured.out == ""
