"""The national index's Prometheus series (QĐ 766 beyond timeliness), from dossier facts.

`scan_index` runs in the collector's timeliness scan (off the event loop, on a snapshot of
the facts); `index_families` renders its answer at scrape time. Only indicators some
dossier reports are exported: no series is "unknown", never a zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from service.domain.index import (
    INDICATORS,
    PORTAL,
    TIMELINESS_PORTAL,
    IndexFigures,
    add_index,
    index_marks,
)
from service.domain.report import (
    DossierFacts,
    PeriodFigures,
    current_period,
    index_report,
    period_report,
    with_period_timeliness,
)
from service.state.ledger import ClosedIndex, add_figures


@dataclass(frozen=True)
class IndexScan:
    """The index per period kind and agency, the month-end projection and all-time marks."""

    figures: dict[str, dict[str, IndexFigures]]
    projected: dict[str, IndexFigures]  # this month, unfinished dossiers judged at its end
    marks: Counter[tuple[str, str]]  # (agency, mark key) over every dossier held


def scan_index(
    facts: Iterable[DossierFacts],
    now: datetime,
    kinds: Iterable[str],
    closed: ClosedIndex,
    figures: dict[str, dict[str, PeriodFigures]],
    closed_figures: dict[str, PeriodFigures],
) -> IndexScan:
    """The index of the current period of each kind (month, year) at `now`: the open
    dossiers' `facts` scanned, the closed dossiers' counts (`closed`, from the day totals)
    added, the legal timeliness set from the period figures (`figures`, per kind)."""
    facts = list(facts)
    by_kind: dict[str, dict[str, IndexFigures]] = {}
    for kind in kinds:
        index = index_report(facts, *current_period(kind, now), now=now)
        add_index(index, closed.by_period[kind])
        by_kind[kind] = with_period_timeliness(index, figures[kind])
    projected = month_end_projection(
        facts, current_period("month", now), closed.by_period["month"], closed_figures
    )
    # Dossiers share a few hundred shapes (agency and keys): count shapes, then expand.
    shapes: Counter[tuple[str, tuple[str, ...]]] = Counter()
    for f in facts:
        if f.index is not None:
            shapes[(f.agency, tuple(key for _, key in index_marks(f.index)))] += 1
    marks: Counter[tuple[str, str]] = Counter(closed.marks)
    for (agency, keys), count in shapes.items():
        for key in keys:
            marks[(agency, key)] += count
    return IndexScan(by_kind, projected, +marks)


def month_end_projection(
    facts: Sequence[DossierFacts],
    month: tuple[date, date],
    closed_index: dict[str, IndexFigures],
    closed_figures: dict[str, PeriodFigures],
    agency: str | None = None,
) -> dict[str, IndexFigures]:
    """The month's index counts at its end if no open dossier moves and none more is
    received (a conservative projection: nothing more is resolved this month, so every
    dossier open now is judged at the month's end as the portal will judge it then).
    `facts`: the dossiers to judge (open, or closed after now); `closed_index`,
    `closed_figures`: the closed dossiers' month counts from the day totals, which a later
    instant cannot change. The metrics and /api/report both project with this."""
    projected = index_report(facts, *month, agency)
    add_index(projected, {a: f for a, f in closed_index.items() if agency in (None, a)})
    month_end = period_report(facts, *month, agency)
    add_figures(month_end, {a: f for a, f in closed_figures.items() if agency in (None, a)})
    return with_period_timeliness(projected, month_end)


def index_families(scan: IndexScan) -> Iterator[Any]:
    labels = ["agency", "indicator", "period"]
    # Ratios and points are of this worker's partitions; with several workers, sum the
    # numerators and denominators (the dashboards do) and score the sums.
    ratio = GaugeMetricFamily(
        "motcua_index_ratio",
        "QĐ 766 indicator ratio this period, over the dossiers that report what it needs",
        labels=labels,
    )
    points = GaugeMetricFamily(
        "motcua_index_points", "QĐ 766 indicator points under the transcribed rule", labels=labels
    )
    maximum = GaugeMetricFamily(
        "motcua_index_points_max", "QĐ 766 indicator maximum points", labels=labels
    )
    numerator = GaugeMetricFamily(
        "motcua_index_numerator", "QĐ 766 indicator numerator this period", labels=labels
    )
    denominator = GaugeMetricFamily(
        "motcua_index_denominator",
        "QĐ 766 indicator denominator this period (dossiers reporting the field)",
        labels=labels,
    )
    total = GaugeMetricFamily(
        "motcua_index_points_total",
        "QĐ 766 points of the indicators measured here this period, 3.3 (weight unverified) "
        "left out (see _max for their maximum)",
        labels=["agency", "period"],
    )
    total_max = GaugeMetricFamily(
        "motcua_index_points_total_max",
        "The maximum of the indicators measured here this period",
        labels=["agency", "period"],
    )
    portal = GaugeMetricFamily(
        "motcua_timeliness_score_portal",
        "QĐ 766 timeliness by the portal's rules (20 × on time ÷ handled), out of 20",
        labels=["agency", "period"],
    )
    # The portal's reading (docs/report.md): its denominators, 0 for an empty one, so every
    # indicator of an agency with dossiers received has a series.
    portal_numerator = GaugeMetricFamily(
        "motcua_index_portal_numerator",
        "QĐ 766 indicator numerator this period, as the portal counts it",
        labels=labels,
    )
    portal_denominator = GaugeMetricFamily(
        "motcua_index_portal_denominator",
        "QĐ 766 indicator denominator this period, the portal's (dossiers received; payment: "
        "those with a fee)",
        labels=labels,
    )
    portal_scored = GaugeMetricFamily(
        "motcua_index_portal_points",
        "QĐ 766 indicator points this period as the portal scores them (0 when empty)",
        labels=labels,
    )
    for kind, by_agency in scan.figures.items():
        for agency in sorted(by_agency):
            figures = by_agency[agency]
            if figures.received():
                for indicator in INDICATORS:
                    figure = figures.figure(indicator.code, PORTAL)
                    assert figure is not None and figure.points is not None
                    key = [agency, indicator.code, kind]
                    portal_numerator.add_metric(key, figure.numerator)
                    portal_denominator.add_metric(key, figure.denominator)
                    portal_scored.add_metric(key, figure.points)
            for indicator in INDICATORS:
                code = indicator.code
                den = figures.denominator(code)
                if not den:
                    continue  # nobody reports it: unknown, not zero
                key = [agency, code, kind]
                numerator.add_metric(key, figures.numerator(code))
                denominator.add_metric(key, den)
                ratio.add_metric(key, figures.ratio(code) or 0.0)
                points.add_metric(key, figures.points(code) or 0.0)
                maximum.add_metric(key, indicator.maximum)
            if figures.measured():
                total.add_metric([agency, kind], figures.total_points())
                total_max.add_metric([agency, kind], figures.total_maximum())
            portal_points = figures.points(TIMELINESS_PORTAL.code)
            if portal_points is not None:
                portal.add_metric([agency, kind], portal_points)
    # The month-end projection as counts (a ratio of one worker's partitions cannot be
    # summed across workers): the alert computes 20 × Σ on time ÷ Σ handled.
    projected_on_time = GaugeMetricFamily(
        "motcua_timeliness_portal_projected_on_time",
        "This month's dossiers on time by the portal's rules if no open one is resolved "
        "before the month's end",
        labels=["agency"],
    )
    projected_handled = GaugeMetricFamily(
        "motcua_timeliness_portal_projected_handled",
        "This month's dossiers handled, as the portal will count them at the month's end",
        labels=["agency"],
    )
    # Every indicator's month-end projection, the portal's reading, on the same assumption.
    projected_numerator = GaugeMetricFamily(
        "motcua_index_projected_numerator",
        "This month's QĐ 766 numerator at the month's end as the portal will count it, if "
        "no open dossier moves and none more is received",
        labels=["agency", "indicator"],
    )
    projected_denominator = GaugeMetricFamily(
        "motcua_index_projected_denominator",
        "This month's QĐ 766 denominator (the portal's) at the month's end, on the same assumption",
        labels=["agency", "indicator"],
    )
    for agency in sorted(scan.projected):
        figures = scan.projected[agency]
        handled = figures.denominator(TIMELINESS_PORTAL.code)
        if handled:
            projected_on_time.add_metric([agency], figures.numerator(TIMELINESS_PORTAL.code))
            projected_handled.add_metric([agency], handled)
        if figures.received():
            for indicator in INDICATORS:
                figure = figures.figure(indicator.code, PORTAL)
                assert figure is not None
                projected_numerator.add_metric([agency, indicator.code], figure.numerator)
                projected_denominator.add_metric([agency, indicator.code], figure.denominator)
    marks = CounterMetricFamily(
        "motcua_index_marks",
        "QĐ 766 numerator and denominator marks of every dossier held, by mark "
        "(indicator:den, indicator:num, dossier_satisfaction:negative)",
        labels=["agency", "mark"],
    )
    for (agency, mark), count in sorted(scan.marks.items()):
        marks.add_metric([agency, mark], count)
    yield from (ratio, points, maximum, numerator, denominator, total, total_max, portal)
    yield from (portal_numerator, portal_denominator, portal_scored)
    yield from (projected_on_time, projected_handled, projected_numerator, projected_denominator)
    yield marks
