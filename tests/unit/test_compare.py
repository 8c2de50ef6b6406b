"""`motcua report --compare FILE` (service/outputs/compare.py): the typed score sheet, its
errors, and the comparison with the H44.03 month of the qd766 fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_index_portal import SEPTEMBER, h44_03_september

from service.cli import main
from service.domain.index import IndexFigures
from service.domain.report import index_report
from service.outputs.compare import (
    CENTER,
    SheetError,
    compare,
    load_score_sheet,
    read_score_sheet,
    render_comparison,
)
from service.outputs.report import index_total

# What the director types from the portal's pages for H44.03 (the published scores of
# ChippedTopaz/qd766 tests/fixtures/*/month-all.json), with 4.1's denominator mistyped as
# it would be if the centre's system had not sent 12 dossiers to motcua.
SHEET = """agency,indicator,points,numerator,denominator
# Ban quản lý các khu công nghiệp, Phú Thọ
H44.03,2.1,16.53,486,588
H44.03,5.4,5.51
H44.03,3.6,6,7,7
H44.03,4.1,3.85,385,600
H44.03,digitised,2.12
H44.03,4.3,0
H44.03,4.4,0.00
H44.03,4.5b,2
TOTAL,4.2,2.13
"""


@pytest.fixture(scope="module")
def index() -> dict[str, IndexFigures]:
    return index_report(h44_03_september(), *SEPTEMBER)


def test_the_sheet_is_read_by_code_or_number(index: dict[str, IndexFigures]) -> None:
    sheet = read_score_sheet(SHEET)
    assert [(s.line, s.agency, s.indicator.code) for s in sheet][:3] == [
        (3, "H44.03", "timeliness_portal"),
        (4, "H44.03", "dossier_satisfaction"),
        (5, "H44.03", "online_payment"),
    ]
    assert (sheet[0].points, sheet[0].numerator, sheet[0].denominator) == (16.53, 486, 588)
    assert (sheet[1].numerator, sheet[1].denominator) == (None, None)


def test_the_comparison_names_what_differs(index: dict[str, IndexFigures]) -> None:
    found = compare(read_score_sheet(SHEET), index, index_total(index.values()))
    verdicts = {(c.published.agency, c.published.indicator.code): c.differs for c in found}
    # 4.1: 385/600 published scores 3.85, here 3.93 (385/588): both differ.
    assert verdicts.pop(("H44.03", "e_result")) == ("points", "denominator")
    # The center's 4.2 here is 2.12 (4 × 312/588 = 2.122); 2.13 is one hundredth off.
    assert verdicts.pop((CENTER, "digitised")) == ("points",)
    assert all(differs == () for differs in verdicts.values()), verdicts
    e_result = next(c for c in found if c.published.indicator.code == "e_result")
    assert (e_result.motcua.numerator, e_result.motcua.denominator) == (385, 446)

    table = render_comparison(found, "portal-2026-09.csv")
    assert "differ (2 of 9): H44.03 4.1 e_result; TOTAL 4.2 digitised" in table
    assert "3.93 (385/588)" in table and "5.18 (385/446)" in table


def test_an_agency_without_dossiers_here_scores_zero_on_the_portals_rule(
    index: dict[str, IndexFigures],
) -> None:
    found = compare(read_score_sheet("H44.01,4.1,0\nH44.01,2.1,5\n"), index, IndexFigures())
    assert [c.differs for c in found] == [(), ("points",)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("H44.03,4.9,1\n", "line 1: unknown indicator '4.9'"),
        ("agency,indicator,points\nH44.03,4.1,3,93\n", "line 2: give both numerator and"),
        ("H44.03,4.1,3;93\n", "line 1: points must be a number like 16.53"),
        ("H44.03,4.1,7\n", "line 1: 7 points is more than 4.1's maximum 6"),
        ("H44.03,4.1,,5,4\n", "line 1: the numerator is larger than the denominator"),
        ("H44.03,4.1,,-1,4\n", "line 1: numerator must be a whole number"),
        # Digits int() cannot read (a superscript, another script's) are not whole numbers.
        ("H44.03,4.1,,\u00b2,3\n", "line 1: numerator must be a whole number"),
        ("H44.03,4.1,,2,\u0663\n", "line 1: denominator must be a whole number"),
        ("H44.03,4.1\n", "line 1: no points and no numerator/denominator"),
        ("H44.03\n", "line 1: expected agency,indicator,points"),
        (",4.1,3\n", "line 1: the agency is empty"),
        ("H44.03,4.1,3\n\nH44.03,e_result,3\n", "line 3: H44.03 4.1 is already on line 1"),
        ("# nothing\n", "line 1: the sheet has no scores"),
    ],
)
def test_a_malformed_sheet_names_the_line_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(SheetError) as raised:
        read_score_sheet(text)
    assert str(raised.value).startswith(message)


def test_the_cli_refuses_a_malformed_sheet_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "scores.csv"
    sheet.write_text("agency,indicator,points\nH44.03,4.1,lots\n", encoding="utf-8")
    # Read before any worker is asked: the unreachable --url is never reached.
    argv = ["report", "--from", "2026-09-01", "--to", "2026-09-30", "--url", "http://127.0.0.1:9"]
    assert main([*argv, "--compare", str(sheet)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert f"--compare {sheet}: line 2: points must be a number" in err

    assert main([*argv, "--compare", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be read" in err


def test_a_sheet_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    sheet = tmp_path / "scores.csv"
    sheet.write_bytes("H44.03,4.1,3\nS\xd4 X\xc2Y D\xf0NG,4.1,3\n".encode("cp1252"))
    with pytest.raises(SheetError, match="line 2: not UTF-8 text"):
        load_score_sheet(sheet)
    sheet.write_bytes("\ufeffagency,indicator,points\nH44.03,4.1,3\n".encode())
    assert [s.agency for s in load_score_sheet(sheet)] == ["H44.03"]
