"""The collector's QĐ 766 gauges: equal to the period report of the partitions held, served
from the last scan, rescanned off the event loop when stale, never across a rebalance."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, tzinfo
from typing import Any

import orjson
import pytest
from ledger_tools import accept

import service.outputs.metrics as metrics
from schemas import DossierEvent, parse_event
from service.domain import WorkingCalendar
from service.domain.index import INDICATORS
from service.domain.progress import fold_with_facts
from service.domain.report import (
    current_period,
    index_report,
    period_report,
    with_period_timeliness,
)
from service.outputs.metrics import LedgerCollector
from service.state.ledger import Ledger
from service.tools.simulate import SimulationConfig, generate

CAL = WorkingCalendar()
# The collector judges the current month and year at its clock's now, pinned here with the
# history's end: Tue 1 Dec 2026, 15:00 local. The first day of a month, so some agencies have
# received nothing this month yet (no index series) and others have. At the real now the
# figures changed with the day: in a month's first working days some agencies (on 1 Jan
# every one) had no series, and the index test, expecting one for each, failed.
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
PARTITIONS = 4


class PinnedClock(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        assert tz is not None, "the collector reads an aware now"
        return NOW.astimezone(tz)


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "datetime", PinnedClock)


def simulated_dossiers(count: int, seed: int) -> dict[str, list[DossierEvent]]:
    by_dossier: dict[str, list[DossierEvent]] = defaultdict(list)
    for raw in generate(SimulationConfig(dossiers=count, seed=seed, now=NOW)):
        event = parse_event(orjson.dumps(raw), now=NOW, key=raw["dossier_id"].encode())
        by_dossier[event.dossier_id].append(event)
    return by_dossier


def load(ledger: Ledger, dossiers: dict[str, list[DossierEvent]]) -> None:
    for n, (dossier_id, events) in enumerate(sorted(dossiers.items())):
        dossier, facts = fold_with_facts(dossier_id, events, CAL)
        accept(ledger, n % PARTITIONS, dossier, NOW, facts)


def gauges(collector: LedgerCollector, name: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for family in collector.collect():
        for sample in family.samples:
            if sample.name == name:
                out[(sample.labels["agency"], sample.labels["period"])] = sample.value
    return out


def expected_handled(
    loads: list[dict[str, list[DossierEvent]]], partitions: set[int] | None = None
) -> dict[tuple[str, str], float]:
    """From every loaded dossier's facts, open and closed (the ledger keeps the closed ones
    as day totals), on the partitions `load` put them in."""
    now = NOW
    facts = [
        fold_with_facts(dossier_id, events, CAL)[1]
        for dossiers in loads
        for n, (dossier_id, events) in enumerate(sorted(dossiers.items()))
        if partitions is None or n % PARTITIONS in partitions
    ]
    out: dict[tuple[str, str], float] = {}
    for kind in metrics.PERIOD_KINDS:
        figures = period_report([f for f in facts if f], *current_period(kind, now), now=now)
        for agency, row in figures.items():
            out[(agency, kind)] = row.resolved + row.in_progress
    return out


FIRST = simulated_dossiers(300, seed=3)
MORE = simulated_dossiers(50, seed=4)


@pytest.fixture
def ledger() -> Ledger:
    ledger = Ledger.counting(CAL, range(PARTITIONS))
    load(ledger, FIRST)
    return ledger


def wait_scan(collector: LedgerCollector) -> None:
    scan = collector._scan
    assert scan is not None, "a stale scrape starts a scan"
    scan.result(timeout=30)


def test_gauges_are_the_period_report_of_the_facts_held(ledger: Ledger) -> None:
    collector = LedgerCollector(ledger)
    handled = gauges(collector, "motcua_timeliness_handled")
    assert handled == expected_handled([FIRST])
    assert sum(handled.values()) > 0
    in_time = gauges(collector, "motcua_timeliness_in_time")
    rate = gauges(collector, "motcua_timeliness_rate")
    for key, value in handled.items():
        if value:
            assert rate[key] == pytest.approx(in_time[key] / value)


def test_index_series_are_the_index_report_of_the_facts_held(ledger: Ledger) -> None:
    collector = LedgerCollector(ledger)
    got: dict[tuple[str, ...], float] = {}
    for family in collector.collect():
        for sample in family.samples:
            if sample.name.startswith(("motcua_index_", "motcua_timeliness_score_portal")):
                got[(sample.name, *sorted(sample.labels.items()))] = sample.value  # type: ignore[arg-type]
    now = NOW
    # Every dossier, open and closed (the ledger keeps the closed ones as day totals).
    facts = [f for d, events in FIRST.items() if (f := fold_with_facts(d, events, CAL)[1])]
    period = current_period("month", now)
    month = with_period_timeliness(
        index_report(facts, *period, now=now), period_report(facts, *period, now=now)
    )
    assert month, "the simulated dossiers give a month"
    # Both cases below occur at NOW: agencies with dossiers received (and indicators measured)
    # this month, and agencies with only dossiers received before it.
    assert any(f.measured() for f in month.values())
    assert not all(f.measured() or f.received() for f in month.values())
    for agency, figures in month.items():
        for indicator in INDICATORS:
            code = indicator.code
            labels = (("agency", agency), ("indicator", code), ("period", "month"))
            if not figures.denominator(code):
                # Nobody reported it: no series at all, rather than a zero.
                assert ("motcua_index_ratio", *labels) not in got
                continue
            assert got[("motcua_index_numerator", *labels)] == figures.numerator(code)
            assert got[("motcua_index_denominator", *labels)] == figures.denominator(code)
            assert got[("motcua_index_points", *labels)] == pytest.approx(figures.points(code))
        labels = (("agency", agency), ("period", "month"))
        if not figures.measured():
            # Nothing received this month yet (early on the 1st, after a holiday): no totals.
            assert ("motcua_index_points_total", *labels) not in got
            assert ("motcua_index_points_total_max", *labels) not in got
        else:
            total = figures.total_points()
            assert got[("motcua_index_points_total", *labels)] == pytest.approx(total)
            assert got[("motcua_index_points_total_max", *labels)] == figures.total_maximum()
        portal = figures.points("timeliness_portal")
        if portal is None:
            assert ("motcua_timeliness_score_portal", *labels) not in got
        else:
            assert got[("motcua_timeliness_score_portal", *labels)] == pytest.approx(portal)
    # The portal's reading: a series for every indicator, its denominator, 0 when empty;
    # and the month-end projection (every open dossier judged at the month's end).
    projected = index_report(facts, *period)
    for agency, figures in month.items():
        for indicator in INDICATORS:
            labels = (("agency", agency), ("indicator", indicator.code), ("period", "month"))
            if not figures.received():
                # Only dossiers in progress this month, none received: no portal reading.
                assert ("motcua_index_portal_numerator", *labels) not in got
                assert ("motcua_index_portal_denominator", *labels) not in got
                assert ("motcua_index_projected_numerator", *labels[:2]) not in got
                continue
            figure = figures.figure(indicator.code, "portal")
            assert figure is not None
            assert got[("motcua_index_portal_numerator", *labels)] == figure.numerator
            assert got[("motcua_index_portal_denominator", *labels)] == figure.denominator
            assert got[("motcua_index_portal_points", *labels)] == pytest.approx(figure.points)
            assert figure.denominator >= figures.denominator(indicator.code)
            at_end = projected[agency].figure(indicator.code, "portal")
            assert at_end is not None
            labels = labels[:2]
            assert got[("motcua_index_projected_numerator", *labels)] == at_end.numerator
            assert got[("motcua_index_projected_denominator", *labels)] == at_end.denominator


def test_a_fresh_answer_is_served_without_a_new_scan(ledger: Ledger) -> None:
    collector = LedgerCollector(ledger)
    before = gauges(collector, "motcua_timeliness_handled")
    load(ledger, MORE)  # new dossiers, within the cache's age
    assert gauges(collector, "motcua_timeliness_handled") == before
    assert collector._scan is None


def test_a_stale_answer_is_served_once_more_while_a_thread_rescans(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = LedgerCollector(ledger)
    before = gauges(collector, "motcua_timeliness_handled")
    load(ledger, MORE)
    monkeypatch.setattr(metrics, "TIMELINESS_MAX_AGE_S", 0.0)
    assert gauges(collector, "motcua_timeliness_handled") == before  # no wait on the loop
    wait_scan(collector)
    after = gauges(collector, "motcua_timeliness_handled")
    assert after == expected_handled([FIRST, MORE])
    assert sum(after.values()) > sum(before.values())


def test_partitions_that_moved_away_are_never_served(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = LedgerCollector(ledger)
    everything = gauges(collector, "motcua_timeliness_handled")
    monkeypatch.setattr(metrics, "TIMELINESS_MAX_AGE_S", 0.0)
    gauges(collector, "motcua_timeliness_handled")  # starts a scan of all four partitions
    ledger.keep_only({0})  # a rebalance while the scan runs
    wait_scan(collector)
    mine = gauges(collector, "motcua_timeliness_handled")
    assert mine == expected_handled([FIRST], {0})
    assert sum(mine.values()) < sum(everything.values())


def test_a_failing_scan_keeps_the_previous_figures(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    collector = LedgerCollector(ledger)
    before = gauges(collector, "motcua_timeliness_handled")

    def broken(*args: Any) -> Any:
        raise RuntimeError("scan bug")

    monkeypatch.setattr(metrics, "TIMELINESS_MAX_AGE_S", 0.0)
    monkeypatch.setattr(metrics, "compute_timeliness", broken)
    gauges(collector, "motcua_timeliness_handled")
    with pytest.raises(RuntimeError):
        wait_scan(collector)
    with caplog.at_level(logging.ERROR, logger="service.outputs.metrics"):
        assert gauges(collector, "motcua_timeliness_handled") == before
    assert "timeliness scan failed" in caplog.text


def test_no_dossier_gives_no_timeliness_series() -> None:
    ledger = Ledger.counting(CAL, [])
    collector = LedgerCollector(ledger)
    assert gauges(collector, "motcua_timeliness_handled") == {}
    assert gauges(collector, "motcua_timeliness_rate") == {}


def center_open(collector: LedgerCollector) -> list[float]:
    return [
        sample.value
        for family in collector.collect()
        for sample in family.samples
        if sample.name == "motcua_center_open"
    ]


def test_the_center_is_open_by_the_workers_calendar_ready_or_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker with nothing assigned yet (not ready) still says whether centers are open:
    # the stalled-pipeline alert reads it (deploy/prometheus/rules/motcua.rules.yml).
    ledger = Ledger.counting(CAL, [])
    collector = LedgerCollector(ledger)
    assert center_open(collector) == [1.0]  # NOW: Tue 1 Dec 2026, 15:00 local

    class Holiday(datetime):  # Wed 2 Sep 2026, National Day, 10:00 local
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return datetime(2026, 9, 2, 3, 0, tzinfo=UTC).astimezone(tz)

    monkeypatch.setattr(metrics, "datetime", Holiday)
    assert center_open(collector) == [0.0]
    # The operator's calendar file counts too: a day off declared there closes the center.
    monkeypatch.setattr(metrics, "datetime", PinnedClock)
    off = WorkingCalendar(extra_days_off=frozenset({NOW.date()}))
    assert center_open(LedgerCollector(Ledger.counting(off, []))) == [0.0]
