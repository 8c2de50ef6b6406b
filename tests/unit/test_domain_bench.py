"""The domain bench's instruction count (`domain_path --instructions`): a real count under
valgrind, and one-line errors when it cannot run."""

from __future__ import annotations

import shutil

import orjson
import pytest

from service.tools.bench import domain_path


def test_instructions_count_the_apply_path(capsys: pytest.CaptureFixture[str]) -> None:
    # A real run under valgrind (the suite installs it): small, so about half a minute.
    code = domain_path.main(
        ["--instructions", "--events", "1500", "--at", "2026-12-02T08:00:00+00:00"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    counted = orjson.loads(out.strip().splitlines()[-1])
    assert counted["events"] == 1500
    assert counted["at"] == "2026-12-02T08:00:00+00:00"
    difference = counted["instructions_with_apply"] - counted["instructions_setup"]
    assert counted["instructions_per_event"] == round(difference / 1500)
    # Parsing, folding and saving an event takes tens of thousands of instructions; a stage
    # that skipped the apply would leave about nothing between the two runs.
    assert counted["instructions_per_event"] > 20_000
    assert "instructions/event" in err


def test_without_valgrind_the_error_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert domain_path.main(["--instructions", "--events", "10"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = [line for line in err.splitlines() if line.startswith("domain_path:")]
    assert lines == ["domain_path: valgrind is not installed (Debian package valgrind)"]


def test_a_time_without_zone_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert domain_path.main(["--instructions", "--at", "2026-12-02T08:00"]) == 2
    assert capsys.readouterr().err.strip() == (
        "domain_path: --at needs a time zone (2026-12-02T08:00+00:00)"
    )
