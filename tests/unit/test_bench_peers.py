"""`motcua bench --peers`: the option reaches the bench plan, and without Quix Streams the
command says in one line how to install it, before it starts anything."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest

from service import cli
from service.tools.bench import peers, runner
from service.tools.bench.plan import FULL, QUICK
from service.tools.bench.steps import STEPS


def test_peers_is_parsed() -> None:
    assert cli.build_parser().parse_args(["bench", "--quick", "--peers"]).peers is True
    assert cli.build_parser().parse_args(["bench", "--quick"]).peers is False


def test_peers_step_runs_only_with_the_option() -> None:
    step = next(step for step in STEPS if step.name == "peers")
    order = [step.name for step in STEPS]
    assert order.index("peers") == order.index("throughput") + 1
    assert step.runs_in(replace(QUICK, peers=True))
    assert not step.runs_in(QUICK)
    assert not step.runs_in(FULL)
    # Without the option its rows stay out of the table.
    assert step.rows({}) == []


def test_missing_quixstreams_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # None in sys.modules makes `import quixstreams` raise ImportError.
    monkeypatch.setitem(sys.modules, "quixstreams", None)

    def no_broker(*args: object) -> None:
        raise AssertionError("the bench started before checking for quixstreams")

    monkeypatch.setattr(runner, "broker_for_bench", no_broker)
    code = cli.main(["bench", "--quick", "--peers"])
    out, err = capsys.readouterr()
    assert code != 0
    assert out == ""
    assert err.splitlines() == [peers.MISSING]
    assert "pip install -e '.[peers]'" in err
    assert "Traceback" not in err
