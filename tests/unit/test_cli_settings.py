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


@pytest.mark.parametrize("argv", COMMANDS, ids=[argv[0] for argv in COMMANDS])
def test_a_broker_address_that_is_not_host_port_is_one_line_and_exit_2(
    argv: list[str], capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("MOTCUA_BROKER", "kafka:abc")
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"motcua {argv[0]}: MOTCUA_BROKER: not a broker address (host:port): 'kafka:abc'\n"
    )
    assert captured.out == ""


def test_a_bad_board_port_stops_the_demo_in_one_line(capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("MOTCUA_BOARD_PORT", "abc")
    assert main(["demo"]) == 2
    assert capsys.readouterr().err == (
        "motcua demo: MOTCUA_BOARD_PORT must be an integer, got 'abc'\n"
    )


# Each a typo at a prompt: a usage error (exit 2) or a worker not reached (exit 1).
TYPOS = [
    (["keep-events", "--broker", "host:abc"], 2, "not a broker address (host:port): 'host:abc'"),
    (["dlq-limit", "--broker", "b1:0"], 2, "not a broker address (host:port): 'b1:0'"),
    (["publish", "--broker", "b1", "/dev/null"], 2, "not a broker address (host:port): 'b1'"),
    (
        ["report", "--from", "2026-01-01", "--to", "2026-01-31", "--url", "http://[::1"],
        1,
        "http://[::1: not an http(s)://host:port address (Invalid IPv6 URL)",
    ),
    (
        ["report", "--from", "2026-01-01", "--to", "2026-01-31", "--url", "http://h:abc"],
        1,
        "http://h:abc: not an http(s)://host:port address",
    ),
    (
        ["board", "--workers", "http://[::1"],
        2,
        "--workers: 'http://[::1': not an http(s)://host:port address",
    ),
]


@pytest.mark.parametrize(("argv", "code", "said"), TYPOS, ids=[" ".join(t[0]) for t in TYPOS])
def test_an_address_typo_is_one_line_not_a_traceback(
    argv: list[str], code: int, said: str, capsys: Any
) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1 and "Traceback" not in err, err
