"""`motcua report`: the period report, summed over the workers that each answer for their
partitions, printed as a table, JSON or CSV; and the body of a worker's /api/report answer."""

from __future__ import annotations

import csv
import io
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import orjson

from service.domain.index import (
    BY_CODE,
    INDICATORS,
    MOTCUA,
    NOT_MEASURED,
    PORTAL,
    RULES,
    TIMELINESS_LEGAL,
    Figure,
    IndexFigures,
    Indicator,
)
from service.domain.report import PeriodFigures, total
from service.outputs.compare import (
    PublishedScore,
    compare,
    comparison_csv_rows,
    render_comparison,
)
from service.outputs.coverage import coverage, ranges

SCOPE = "this worker's partitions; motcua report sums all workers"
TIMEOUT_S = 10.0
# A real answer is a few kB per agency; anything far larger is not a report.
MAX_BODY = 16 * 1024 * 1024
TOTAL_LABEL = "TỔNG / total"
FOOTNOTE = (
    "rate = (early + on time + open within) / (resolved + open, less those without a due); "
    "score = 20 × rate "
    "(QĐ 766/QĐ-TTg); online, postal = shares of new dossiers (targets 25%, 15%)"
)

# (key in the figures dict, Vietnamese header, English header, kind)
COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("carried_over", "Kỳ trước", "carried", "int"),
    ("new", "Mới nhận", "new", "int"),
    ("resolved_early", "Trước hạn", "early", "int"),
    ("resolved_on_time", "Đúng hạn", "on time", "int"),
    ("resolved_late", "Quá hạn", "late", "int"),
    ("withdrawn", "Rút", "withdrawn", "int"),
    ("in_progress_within", "Đang trong hạn", "open within", "int"),
    ("in_progress_overdue", "Đang quá hạn", "open overdue", "int"),
    ("resolved_without_due", "Xong, không hạn", "done no due", "int"),
    ("in_progress_without_due", "Đang, không hạn", "open no due", "int"),
    ("timeliness_rate", "Tỷ lệ", "rate", "pct"),
    ("timeliness_score", "Điểm/20", "score", "score"),
    ("online_share", "Trực tuyến", "online", "pct"),
    ("postal_share", "Bưu chính", "postal", "pct"),
)


class ReportError(Exception):
    """A worker could not be asked or gave an answer that is not a report."""


# Step outcomes per department in the period (rules R12–R17), from `steps.step_outcomes`.
StepOutcomes = Mapping[tuple[str, str], Mapping[str, int]]


def department_rows(steps: StepOutcomes) -> list[dict[str, Any]]:
    """The period's step outcomes as rows: agency, department, steps on time and late."""
    return [
        {
            "agency": agency,
            "department": department,
            "steps_on_time": int(steps[agency, department].get("on_time", 0)),
            "steps_late": int(steps[agency, department].get("late", 0)),
        }
        for agency, department in sorted(steps)
    ]


def combine_steps(
    answers: Sequence[tuple[str, dict[str, Any]]],
) -> dict[tuple[str, str], Counter[str]]:
    """Sum the workers' per-department step outcomes (answers without them add nothing)."""
    out: dict[tuple[str, str], Counter[str]] = {}
    for base, data in answers:
        rows = data.get("departments", [])
        if not isinstance(rows, list):
            raise ReportError(f"{base}: departments is not a list")
        for row in rows:
            try:
                place = (str(row["agency"]), str(row["department"]))
                counts = {"on_time": row["steps_on_time"], "late": row["steps_late"]}
            except (KeyError, TypeError):
                raise ReportError(f"{base}: a department row is not a step count") from None
            if not all(type(n) is int and n >= 0 for n in counts.values()):
                raise ReportError(f"{base}: a department row is not a step count")
            out.setdefault(place, Counter()).update(counts)
    return out


def report_json(
    figures_by_agency: dict[str, PeriodFigures],
    partitions: list[int],
    start: date,
    end: date,
    as_of: datetime | None = None,
    steps: StepOutcomes | None = None,
    index_by_agency: dict[str, IndexFigures] | None = None,
    projection: Projection | None = None,
) -> dict[str, Any]:
    """The /api/report body of one worker: its partitions' figures per agency and in total,
    each with its national index (QĐ 766) counts, indicators and points, and, when given,
    the step outcomes per department and the current month's end projection."""
    index_by_agency = index_by_agency or {}
    agencies: dict[str, Any] = {}
    for code in sorted(set(figures_by_agency) | set(index_by_agency)):
        row = figures_by_agency.get(code, PeriodFigures()).to_dict()
        row["index"] = index_by_agency.get(code, IndexFigures()).to_dict()
        agencies[code] = row
    center = total(figures_by_agency.values()).to_dict()
    center["index"] = index_total(index_by_agency.values()).to_dict()
    body: dict[str, Any] = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "as_of": as_of.isoformat() if as_of is not None else None,
        "partitions": sorted(partitions),
        "scope": SCOPE,
        "agencies": agencies,
        "total": center,
        "index_not_measured": [n.to_dict() for n in NOT_MEASURED],
    }
    if steps is not None:
        body["departments"] = department_rows(steps)
    if projection is not None:
        body["projection"] = projection_json(*projection)
    return body


# The current month (first, last local date) and its index counts per agency at its end.
Projection = tuple[tuple[date, date], dict[str, IndexFigures]]
PROJECTION_ASSUMPTION = (
    "the month's end if no open dossier moves and none more is received: every dossier "
    "open now judged then, as the portal will judge it"
)


def projection_json(month: tuple[date, date], by_agency: dict[str, IndexFigures]) -> dict[str, Any]:
    """The month-end projection: per agency and in total, each indicator's portal figure
    (its counts, so that several workers' projections can be summed and rescored)."""
    return {
        "from": month[0].isoformat(),
        "to": month[1].isoformat(),
        "assumption": PROJECTION_ASSUMPTION,
        "agencies": {code: _projected(by_agency[code]) for code in sorted(by_agency)},
        "total": _projected(index_total(by_agency.values())),
    }


def _projected(figures: IndexFigures) -> dict[str, Any]:
    indicators = {}
    for indicator in INDICATORS:
        figure = figures.figure(indicator.code, PORTAL)
        assert figure is not None  # every index indicator is the portal's
        indicators[indicator.code] = {
            "ref": indicator.ref,
            "maximum": indicator.maximum,
            "weight_verified": indicator.weight_verified,
            PORTAL: figure.to_dict(),
        }
    return {
        "counts": dict(sorted(figures.counts.items())),
        "indicators": indicators,
        "total": {"points": figures.total_points(PORTAL), "maximum": figures.total_maximum(PORTAL)},
        "total_excludes": [i.code for i in INDICATORS if not i.weight_verified],
    }


def combine_projection(
    answers: Sequence[tuple[str, dict[str, Any]]],
) -> tuple[Projection | None, str | None]:
    """The workers' month-end projections summed, or None (with a warning when only some
    workers gave one, or for different months: a partial sum would look like the real one)."""
    given = [(base, data["projection"]) for base, data in answers if "projection" in data]
    if not given:
        return None, None
    months: set[tuple[Any, Any]] = set()
    out: dict[str, IndexFigures] = {}
    for base, projection in given:
        try:
            month = (date.fromisoformat(projection["from"]), date.fromisoformat(projection["to"]))
            for code, figures in projection["agencies"].items():
                out.setdefault(code, IndexFigures()).add(IndexFigures.from_dict(figures))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReportError(f"{base}: the projection is not one ({exc})") from None
        months.add(month)
    if len(given) < len(answers) or len(months) > 1:
        return None, (
            "the month-end projection is left out: not every worker gave one for the same "
            "month (a month just began?)"
        )
    return (months.pop(), out), None


def index_total(figures: Any) -> IndexFigures:
    """The center's index counts: the sum of its agencies' (ratios are recomputed)."""
    out = IndexFigures()
    for item in figures:
        out.add(item)
    return out


def http_address_problem(url: str) -> str | None:
    """Why `url` is not an http(s)://host[:port] address a worker can answer at; None if it
    is (a typo is one line for the CLI, not urllib's traceback)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"not an http(s)://host:port address ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http(s)://host:port address"
    return None


def _fetch(base: str, start: date, end: date, agency: str | None) -> dict[str, Any]:
    query = {"from": start.isoformat(), "to": end.isoformat()}
    if agency is not None:
        query["agency"] = agency
    problem = http_address_problem(base)
    if problem is not None:
        raise ReportError(f"{base}: {problem}")
    url = f"{base.rstrip('/')}/api/report?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            body = response.read(MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        detail = exc.read(200).decode("utf-8", "replace").strip().replace("\n", " ")
        raise ReportError(f"{base}: HTTP {exc.code} {detail}".rstrip()) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReportError(f"{base}: unreachable ({reason})") from None
    if len(body) > MAX_BODY:
        raise ReportError(f"{base}: the answer is larger than {MAX_BODY} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ReportError(f"{base}: the answer is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("agencies"), dict):
        raise ReportError(f"{base}: the answer is not a period report")
    partitions = data.get("partitions")
    if not isinstance(partitions, list) or not all(type(p) is int for p in partitions):
        raise ReportError(f"{base}: the answer has no list of partitions")
    return data


def combine(
    answers: Sequence[tuple[str, dict[str, Any]]],
) -> tuple[dict[str, PeriodFigures], list[int], dict[str, IndexFigures]]:
    """Sum the workers' per-agency counts (and index counts), with the partitions they
    answer for; whether those cover the topic is `coverage`'s to say."""
    by_agency: dict[str, PeriodFigures] = {}
    index: dict[str, IndexFigures] = {}
    partitions: set[int] = set()
    for base, data in answers:
        partitions.update(data["partitions"])
        for code, figures in data["agencies"].items():
            try:
                counts = PeriodFigures.from_dict(figures)
                index_counts = IndexFigures.from_dict(figures.get("index", {"counts": {}}))
            except (ValueError, AttributeError) as exc:
                raise ReportError(f"{base}: agency {code!r:.40}: {exc}") from None
            by_agency.setdefault(code, PeriodFigures()).add(counts)
            index.setdefault(code, IndexFigures()).add(index_counts)
    return by_agency, sorted(partitions), index


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "score":
        return f"{value:.2f}"
    return str(value)


def render_table(
    by_agency: dict[str, PeriodFigures], start: date, end: date, partitions: list[int]
) -> str:
    """Agency rows and the center total under two header lines (Vietnamese, English)."""
    rows = [(code, by_agency[code].to_dict()) for code in sorted(by_agency)]
    rows.append((TOTAL_LABEL, total(by_agency.values()).to_dict()))
    headers = [("Cơ quan", "agency"), *((vi, en) for _, vi, en, _ in COLUMNS)]
    body = [[label, *(_cell(d[key], kind) for key, _, _, kind in COLUMNS)] for label, d in rows]
    widths = [
        max(len(vi), len(en), *(len(row[i]) for row in body)) for i, (vi, en) in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest)).rstrip()

    out = [
        f"Kỳ báo cáo / period {start.isoformat()} – {end.isoformat()} "
        f"(partitions: {ranges(partitions) or 'none'})",
        line([vi for vi, _ in headers]),
        line([en for _, en in headers]),
        "-" * (sum(widths) + 2 * (len(widths) - 1)),
    ]
    out.extend(line(row) for row in body[:-1])
    out.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    out.append(line(body[-1]))
    out.append(FOOTNOTE)
    return "\n".join(out) + "\n"


def render_steps(steps: StepOutcomes) -> str:
    """The period's step outcomes per agency and department (Vietnamese, English headers)."""
    rows = department_rows(steps)
    if not rows:
        return ""
    headers = [
        ("Cơ quan", "agency"),
        ("Phòng ban", "department"),
        ("Bước đúng hạn", "steps on time"),
        ("Bước trễ hạn", "steps late"),
    ]
    body = [
        [r["agency"], r["department"], str(r["steps_on_time"]), str(r["steps_late"])] for r in rows
    ]
    widths = [
        max(len(vi), len(en), *(len(row[i]) for row in body)) for i, (vi, en) in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        left = (cell.ljust(width) for cell, width in zip(cells[:2], widths[:2], strict=True))
        right = (cell.rjust(width) for cell, width in zip(cells[2:], widths[2:], strict=True))
        return "  ".join((*left, *right)).rstrip()

    out = [
        "Bước xử lý theo phòng ban / processing steps by department",
        line([vi for vi, _ in headers]),
        line([en for _, en in headers]),
        "-" * (sum(widths) + 2 * (len(widths) - 1)),
        *(line(row) for row in body),
    ]
    return "\n".join(out) + "\n"


def render_csv(by_agency: dict[str, PeriodFigures]) -> str:
    """One row per agency and a "TOTAL" row; every count and derived figure, rates as 0–1."""
    rows = [(code, by_agency[code].to_dict()) for code in sorted(by_agency)]
    rows.append(("TOTAL", total(by_agency.values()).to_dict()))
    keys = list(rows[-1][1])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["agency", *keys])
    for code, data in rows:
        writer.writerow([code, *("" if data[key] is None else data[key] for key in keys)])
    return buffer.getvalue()


def run_report_cli(
    start: date,
    end: date,
    agency: str | None,
    fmt: str,
    url: str,
    partition_count: int,
    sheet: Sequence[PublishedScore] | None = None,
    sheet_name: str = "",
) -> int:
    """Ask every worker in the comma-separated `url`, sum their answers, print the report;
    with a portal score `sheet` (`--compare`), line it up with the index after it. Only a
    sum over all `partition_count` input partitions, each once, is printed: anything else
    is one line on stderr and exit status 1 (a partial sum would look like the report)."""
    bases = [part.strip() for part in url.split(",") if part.strip()]
    if not bases:
        print("motcua report: --url names no worker", file=sys.stderr)
        return 1
    answers: list[tuple[str, dict[str, Any]]] = []
    try:
        for base in bases:
            answers.append((base, _fetch(base, start, end, agency)))
        problem = coverage((data["partitions"] for _, data in answers), partition_count).problem()
        if problem is not None:
            raise ReportError(
                f"no report: {problem} (asked {', '.join(bases)}; "
                "give every worker in --url, comma-separated)"
            )
        by_agency, partitions, index = combine(answers)
        steps = combine_steps(answers)
        projection, warning = combine_projection(answers)
    except ReportError as exc:
        print(f"motcua report: {exc}", file=sys.stderr)
        return 1
    if warning is not None:
        print(f"motcua report: warning: {warning}", file=sys.stderr)

    compared = compare(sheet, index, index_total(index.values())) if sheet else None
    if fmt == "json":
        body = report_json(
            by_agency,
            partitions,
            start,
            end,
            steps=steps,
            index_by_agency=index,
            projection=projection,
        )
        body["scope"] = f"sum of {len(bases)} worker(s): {', '.join(bases)}"
        if compared is not None:
            body["compare"] = {"sheet": sheet_name, "lines": [c.to_dict() for c in compared]}
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif fmt == "csv":
        sys.stdout.write(render_csv(by_agency))
        sys.stdout.write("\n" + render_index_csv(index))
        if projection is not None:
            sys.stdout.write("\n" + render_projection_csv(*projection))
        if compared is not None:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows(comparison_csv_rows(compared))
            sys.stdout.write("\n" + buffer.getvalue())
    else:
        sys.stdout.write(render_table(by_agency, start, end, partitions))
        sys.stdout.write("\n" + render_index_table(index))
        if projection is not None:
            sys.stdout.write("\n" + render_projection_table(*projection))
        sys.stdout.write(render_steps(steps))
        if compared is not None:
            sys.stdout.write("\n" + render_comparison(compared, sheet_name))
    return 0


_INDEX_ROWS = (*INDICATORS, TIMELINESS_LEGAL)
RULE_LABELS = {PORTAL: "portal", MOTCUA: "motcua"}
UNVERIFIED = "weight unverified"


def _index_cell(figures: IndexFigures, code: str, rule: str) -> str:
    """`ratio points/maximum (numerator/denominator)`; "–" where motcua has no figure (no
    dossier's reported facts decide it) or the portal does not score it."""
    figure = figures.figure(code, rule)
    if figure is None or figure.ratio is None or figure.points is None:
        return "–"
    maximum = BY_CODE[code].maximum
    return (
        f"{100 * figure.ratio:.1f}% {figure.points:.2f}/{maximum:g} "
        f"({figure.numerator}/{figure.denominator})"
    )


def _index_label(indicator: Indicator) -> str:
    label = f"{indicator.ref} {indicator.code}"
    if indicator is TIMELINESS_LEGAL:
        label += " (legal, beside the index)"
    if not indicator.weight_verified:
        label += f" ({UNVERIFIED})"
    return label


def render_index_table(index: dict[str, IndexFigures]) -> str:
    """The national index: two rows per indicator, the portal's figure then motcua's, a
    column per agency and the center; then the totals compared with the portal."""
    columns = [*sorted(index), TOTAL_LABEL]
    figures = [*(index[code] for code in sorted(index)), index_total(index.values())]
    rows = [["Chỉ số / indicator", "rule", *columns]]
    for indicator in _INDEX_ROWS:
        label = _index_label(indicator)
        for rule in RULES:
            if indicator.portal_denominator is None and rule == PORTAL:
                continue  # the legal clock: the portal does not score it
            values = (_index_cell(f, indicator.code, rule) for f in figures)
            rows.append([label, RULE_LABELS[rule], *values])
            label = ""
    excluded = ", ".join(i.ref for i in INDICATORS if not i.weight_verified)
    for rule in RULES:
        rows.append(
            [
                f"total compared ({excluded} left out)" if rule == PORTAL else "",
                RULE_LABELS[rule],
                *(f"{f.total_points(rule):.2f}/{f.total_maximum(rule):g}" for f in figures),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns) + 2)]
    out = [
        "Chỉ số QĐ 766 / national index: ratio points/maximum (numerator/denominator)",
        "  portal = the portal's denominator (every dossier received; payment: those with a "
        "fee), an unreported field counted as no, 0 when empty",
        "  motcua = only the dossiers whose reported facts decide it, – when none do",
    ]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        out.append("  ".join(cells).rstrip())
    not_measured = ", ".join(n.ref for n in NOT_MEASURED)
    out.append(f"not measured here (need catalogue or other data): {not_measured}")
    return "\n".join(out) + "\n"


INDEX_CSV_HEADER = (
    "agency",
    "indicator",
    "rule",
    "numerator",
    "denominator",
    "ratio",
    "points",
    "max",
    "weight_verified",
)


def render_index_csv(index: dict[str, IndexFigures]) -> str:
    """One row per agency (and TOTAL), indicator and rule (portal first): numerator,
    denominator, ratio, points; empty cells where the rule gives no figure."""

    def rows_of(figures: IndexFigures) -> Iterator[tuple[Indicator, str, Figure]]:
        for indicator in _INDEX_ROWS:
            for rule in RULES:
                figure = figures.figure(indicator.code, rule)
                if figure is not None:
                    yield indicator, rule, figure

    return _index_csv(index, rows_of)


def _index_csv(
    by_agency: dict[str, IndexFigures],
    rows_of: Callable[[IndexFigures], Iterable[tuple[Indicator, str, Figure]]],
) -> str:
    """An index CSV (INDEX_CSV_HEADER): per agency in code order, then TOTAL, the rows
    `rows_of` gives for its figures."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(INDEX_CSV_HEADER)
    agencies = [(code, by_agency[code]) for code in sorted(by_agency)]
    agencies.append(("TOTAL", index_total(by_agency.values())))
    for code, figures in agencies:
        for indicator, rule, figure in rows_of(figures):
            writer.writerow(_index_csv_row(code, indicator, rule, figure))
    return buffer.getvalue()


def _index_csv_row(code: str, indicator: Indicator, rule: str, figure: Figure) -> list[object]:
    """One index CSV row (INDEX_CSV_HEADER): empty cells where the rule gives no ratio."""
    return [
        code,
        indicator.code,
        rule,
        figure.numerator,
        figure.denominator,
        "" if figure.ratio is None else figure.ratio,
        "" if figure.points is None else figure.points,
        indicator.maximum,
        str(indicator.weight_verified).lower(),
    ]


def render_projection_table(month: tuple[date, date], by_agency: dict[str, IndexFigures]) -> str:
    """The month-end projection: one row per indicator, the portal's figure per agency and
    for the center; then the total compared with the portal (3.3 left out)."""
    columns = [*sorted(by_agency), TOTAL_LABEL]
    figures = [*(by_agency[code] for code in sorted(by_agency)), index_total(by_agency.values())]
    rows = [["Chỉ số / indicator", *columns]]
    for indicator in INDICATORS:
        rows.append(
            [_index_label(indicator), *(_index_cell(f, indicator.code, PORTAL) for f in figures)]
        )
    excluded = ", ".join(i.ref for i in INDICATORS if not i.weight_verified)
    rows.append(
        [
            f"total compared ({excluded} left out)",
            *(f"{f.total_points(PORTAL):.2f}/{f.total_maximum(PORTAL):g}" for f in figures),
        ]
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns) + 1)]
    out = [
        f"Dự kiến cuối tháng / month-end projection {month[0].isoformat()} – "
        f"{month[1].isoformat()}, portal reading: ratio points/maximum (numerator/denominator)",
        f"  at {PROJECTION_ASSUMPTION}",
    ]
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"


PROJECTED = "portal_projected"


def render_projection_csv(month: tuple[date, date], by_agency: dict[str, IndexFigures]) -> str:
    """The projection as index CSV rows (same header), rule `portal_projected`."""

    def rows_of(figures: IndexFigures) -> Iterator[tuple[Indicator, str, Figure]]:
        for indicator in INDICATORS:
            figure = figures.figure(indicator.code, PORTAL)
            assert figure is not None and figure.points is not None
            yield indicator, PROJECTED, figure

    return _index_csv(by_agency, rows_of)
