"""`motcua report --compare FILE`: a score sheet the director typed in from the portal, lined
up with motcua's figures under the portal's rule, naming the indicators that differ."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.domain.index import INDICATORS, MOTCUA, PORTAL, Figure, IndexFigures, Indicator

CENTER = "TOTAL"  # the sheet's name for the center (all agencies together)
# The portal publishes points with two decimals: a figure that rounds to them agrees.
POINTS_TOLERANCE = 0.005 + 1e-9
MAX_SHEET_BYTES = 1024 * 1024  # a typed sheet is a few hundred lines
COLUMNS = ("agency", "indicator", "points", "numerator", "denominator")

# An indicator by its code or the formula document's number ("3.6" for "3.6 (A)").
_LOOKUP: dict[str, Indicator] = {
    **{i.ref.split()[0]: i for i in INDICATORS},
    **{i.ref: i for i in INDICATORS},
    **{i.code: i for i in INDICATORS},
}


class SheetError(ValueError):
    """The score sheet cannot be read: the message names the line and the problem."""


@dataclass(frozen=True, slots=True)
class PublishedScore:
    """One line of the sheet: what the portal published for an agency's indicator."""

    line: int
    agency: str  # an agency code, or CENTER
    indicator: Indicator
    points: float | None
    numerator: int | None
    denominator: int | None


@dataclass(frozen=True, slots=True)
class Comparison:
    published: PublishedScore
    here: Figure  # motcua's figure under the portal's rule
    motcua: Figure  # motcua's own reading (only dossiers whose reported facts decide it)
    differs: tuple[str, ...]  # which of points, numerator, denominator differ

    def to_dict(self) -> dict[str, Any]:
        p = self.published
        return {
            "line": p.line,
            "agency": p.agency,
            "indicator": p.indicator.code,
            "ref": p.indicator.ref,
            "weight_verified": p.indicator.weight_verified,
            "published": {
                "points": p.points,
                "numerator": p.numerator,
                "denominator": p.denominator,
            },
            PORTAL: self.here.to_dict(),
            MOTCUA: self.motcua.to_dict(),
            "differs": list(self.differs),
        }


def _number(text: str, what: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SheetError(
            f"line {line}: {what} must be a number like 16.53, not {text!r:.30}"
        ) from None
    if not 0 <= value < float("inf"):
        raise SheetError(f"line {line}: {what} must be 0 or more, not {text!r:.30}")
    return value


def _count(text: str, what: str, line: int) -> int | None:
    if not text:
        return None
    # isdecimal, not isdigit: "²" is a digit int() cannot read.
    if not (text.isascii() and text.isdecimal()):
        raise SheetError(f"line {line}: {what} must be a whole number, not {text!r:.30}")
    return int(text)


def read_score_sheet(text: str) -> list[PublishedScore]:
    """Parse a sheet: CSV lines `agency,indicator,points[,numerator,denominator]` (an
    optional header line starting with `agency`; blank lines and lines starting with `#`
    skipped). `indicator` is a code (`e_result`) or the document's number (`4.1`); the
    agency `TOTAL` is the center. Points, or both counts, or all three."""
    scores: list[PublishedScore] = []
    seen: dict[tuple[str, str], int] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not scores and not seen and cells[0].lower() == "agency":
            continue  # the header
        if not 2 <= len(cells) <= len(COLUMNS):
            raise SheetError(
                f"line {number}: expected {','.join(COLUMNS[:3])}[,numerator,denominator], "
                f"got {len(cells)} field(s)"
            )
        cells += [""] * (len(COLUMNS) - len(cells))
        agency, name, points_text, num_text, den_text = cells
        if not agency:
            raise SheetError(f"line {number}: the agency is empty")
        indicator = _LOOKUP.get(name)
        if indicator is None:
            known = ", ".join(i.ref for i in INDICATORS)
            raise SheetError(f"line {number}: unknown indicator {name!r:.30} (one of {known})")
        points = _number(points_text, "points", number) if points_text else None
        if points is not None and points > indicator.maximum:
            raise SheetError(
                f"line {number}: {points:g} points is more than {indicator.ref}'s maximum "
                f"{indicator.maximum:g}"
            )
        numerator = _count(num_text, "numerator", number)
        denominator = _count(den_text, "denominator", number)
        if (numerator is None) != (denominator is None):
            raise SheetError(f"line {number}: give both numerator and denominator, or neither")
        if numerator is not None and denominator is not None and numerator > denominator:
            raise SheetError(f"line {number}: the numerator is larger than the denominator")
        if points is None and numerator is None:
            raise SheetError(f"line {number}: no points and no numerator/denominator")
        key = (agency, indicator.code)
        if key in seen:
            raise SheetError(
                f"line {number}: {agency} {indicator.ref} is already on line {seen[key]}"
            )
        seen[key] = number
        scores.append(PublishedScore(number, agency, indicator, points, numerator, denominator))
    if not scores:
        raise SheetError("line 1: the sheet has no scores")
    return scores


def load_score_sheet(path: Path) -> list[PublishedScore]:
    """Read and parse the sheet at `path` (UTF-8, a byte-order mark allowed)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SHEET_BYTES + 1)
    except OSError as exc:
        raise SheetError(f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_SHEET_BYTES:
        raise SheetError(f"is larger than {MAX_SHEET_BYTES} bytes: not a typed score sheet")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SheetError(f"line {line}: not UTF-8 text") from None
    return read_score_sheet(text)


def compare(
    sheet: Iterable[PublishedScore], index: dict[str, IndexFigures], center: IndexFigures
) -> list[Comparison]:
    """Each published score beside motcua's figures for the same agency (an agency motcua
    has no dossier of scores 0 on the portal's rule) and what differs."""
    out: list[Comparison] = []
    for score in sheet:
        figures = center if score.agency == CENTER else index.get(score.agency, IndexFigures())
        code = score.indicator.code
        here, motcua = figures.figure(code, PORTAL), figures.figure(code, MOTCUA)
        assert here is not None and motcua is not None  # every INDICATORS has both
        differs: list[str] = []
        if score.points is not None:
            assert here.points is not None
            if abs(here.points - score.points) > POINTS_TOLERANCE:
                differs.append("points")
        if score.numerator is not None and score.numerator != here.numerator:
            differs.append("numerator")
        if score.denominator is not None and score.denominator != here.denominator:
            differs.append("denominator")
        out.append(Comparison(score, here, motcua, tuple(differs)))
    return out


def _figure_cell(figure: Figure) -> str:
    if figure.points is None:
        return f"– ({figure.numerator}/{figure.denominator})"
    return f"{figure.points:.2f} ({figure.numerator}/{figure.denominator})"


def _published_cell(score: PublishedScore) -> str:
    points = "" if score.points is None else f"{score.points:.2f}"
    counts = "" if score.numerator is None else f"({score.numerator}/{score.denominator})"
    return " ".join(part for part in (points, counts) if part)


def render_comparison(comparisons: Sequence[Comparison], source: str) -> str:
    """A table: per sheet line, the published score, motcua's under the portal's rule,
    motcua's own reading, and the verdict; then the indicators that differ."""
    headers = [
        "agency",
        "indicator",
        "published",
        "here, portal rule",
        "here, motcua rule",
        "verdict",
    ]
    rows = [headers]
    for c in comparisons:
        label = f"{c.published.indicator.ref} {c.published.indicator.code}"
        if not c.published.indicator.weight_verified:
            label += " (weight unverified)"
        verdict = ("differs: " + ", ".join(c.differs)) if c.differs else "agrees"
        rows.append(
            [
                c.published.agency,
                label,
                _published_cell(c.published),
                _figure_cell(c.here),
                _figure_cell(c.motcua),
                verdict,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers))]
    out = [
        f"So sánh với điểm Cổng công bố / compared with the portal's published scores ({source})"
    ]
    for row in rows:
        out.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    differing = [c for c in comparisons if c.differs]
    if differing:
        names = "; ".join(
            f"{c.published.agency} {c.published.indicator.ref} {c.published.indicator.code}"
            for c in differing
        )
        out.append(f"differ ({len(differing)} of {len(comparisons)}): {names}")
    else:
        out.append(f"all {len(comparisons)} agree (points within 0.005, counts exact)")
    return "\n".join(line.rstrip() for line in out) + "\n"


def comparison_csv_rows(comparisons: Sequence[Comparison]) -> list[list[Any]]:
    """Rows for the CSV format's comparison section (a header first)."""
    rows: list[list[Any]] = [
        [
            "line",
            "agency",
            "indicator",
            "published_points",
            "published_numerator",
            "published_denominator",
            "portal_rule_points",
            "portal_rule_numerator",
            "portal_rule_denominator",
            "motcua_rule_points",
            "differs",
        ]
    ]
    for c in comparisons:
        p = c.published
        rows.append(
            [
                p.line,
                p.agency,
                p.indicator.code,
                "" if p.points is None else p.points,
                "" if p.numerator is None else p.numerator,
                "" if p.denominator is None else p.denominator,
                c.here.points,
                c.here.numerator,
                c.here.denominator,
                "" if c.motcua.points is None else c.motcua.points,
                " ".join(c.differs),
            ]
        )
    return rows
