"""The Prometheus view of the ledger, built fresh at each scrape.

Only partitions this worker holds are in the ledger, and nothing per dossier is exported
while a partition recovers: series are omitted rather than under-reported. Labels are
agency codes, the department codes the units file lists (others: `other`) and closed sets
(channel, outcome, state); never dossier ids or procedures.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from schemas import Channel, EventType, Reason
from service.domain import Key, OpenState, Outcome
from service.domain.calendar import CLOSES_AT, OPENS_AT
from service.domain.report import DossierFacts, PeriodFigures, current_period, period_report
from service.outputs.index_metrics import IndexScan, index_families, scan_index
from service.reference import Departments
from service.state.ledger import ClosedIndex, Ledger, add_figures

# The timeliness and index gauges scan the open dossiers' facts (the closed ones are day
# totals); a scrape serves the last answer and, once it is older than this, starts the next.
TIMELINESS_MAX_AGE_S = 15.0
PERIOD_KINDS = ("month", "year")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timeliness:
    """QĐ 766 figures per period kind and agency, for the partitions held when computed."""

    partitions: frozenset[int]
    computed_at: float  # time.monotonic()
    figures: dict[str, dict[str, PeriodFigures]]
    index: IndexScan


STEP_STATES = (
    OpenState.IN_TIME.value,
    OpenState.DUE_SOON.value,
    OpenState.OVERDUE.value,
    OpenState.PAUSED.value,
)
STEP_OUTCOMES = (Outcome.ON_TIME.value, Outcome.LATE.value)
_STEP_FAMILIES = frozenset(("steps_open", "steps_completed", "overdue_held"))


def department_counts(
    totals: Counter[Key], departments: Departments
) -> Counter[tuple[tuple[str, str], tuple[str, str]]]:
    """The step keys of the ledger by ((agency, department label), (family, state or
    outcome)); departments the units file does not list are summed under `other`."""
    out: Counter[tuple[tuple[str, str], tuple[str, str]]] = Counter()
    for key, count in totals.items():
        if key[0] not in _STEP_FAMILIES or not count:
            continue
        agency, department = key[1], key[2]
        place = (agency, departments.label(agency, department))
        out[place, (key[0], key[3] if len(key) > 3 else "")] += count
    return out


@dataclass(frozen=True)
class TimelinessParts:
    """Taken on the loop (`Ledger.report_parts`): per period kind, the closed dossiers'
    figures and index counts, and the facts still to judge, scanned in another thread."""

    partitions: frozenset[int]
    now: datetime
    closed: dict[str, dict[str, PeriodFigures]]
    index: ClosedIndex
    facts: list[DossierFacts]


def timeliness_parts(ledger: Ledger, now: datetime) -> TimelinessParts:
    periods = [current_period(kind, now) for kind in PERIOD_KINDS]
    closed, facts = ledger.report_parts(periods, None, now)
    return TimelinessParts(
        frozenset(ledger.partitions),
        now,
        dict(zip(PERIOD_KINDS, closed, strict=True)),
        ledger.closed_index(dict(zip(PERIOD_KINDS, periods, strict=True)), now),
        facts,
    )


def compute_timeliness(parts: TimelinessParts) -> Timeliness:
    figures = {}
    for kind in PERIOD_KINDS:
        figures[kind] = period_report(parts.facts, *current_period(kind, parts.now), now=parts.now)
        add_figures(figures[kind], parts.closed[kind])
    index = scan_index(
        parts.facts, parts.now, PERIOD_KINDS, parts.index, figures, parts.closed["month"]
    )
    return Timeliness(parts.partitions, time.monotonic(), figures, index)


class LedgerCollector(Collector):
    """Reads the ledger at scrape time (prometheus_client custom collector).

    Scrapes run on the worker's event loop, so everything here must stay cheap: the open
    counts are sums the ledger keeps; the timeliness scan runs in a thread, on a snapshot.
    """

    def __init__(self, ledger: Ledger, departments: Departments | None = None) -> None:
        self.ledger = ledger
        self.departments = departments or Departments()
        self._timeliness: Timeliness | None = None
        self._scan: Future[Timeliness] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="motcua-timeliness")

    def collect(self) -> Iterator[Any]:
        started = time.perf_counter()
        ledger = self.ledger
        ready = GaugeMetricFamily(
            "motcua_ready", "1 when every assigned partition is caught up from the log and summed"
        )
        ready.add_metric([], 1.0 if ledger.ready else 0.0)
        yield ready
        active = GaugeMetricFamily(
            "motcua_partitions_active", "Input partitions this worker holds and counts"
        )
        active.add_metric([], float(len(ledger.partitions) if ledger.ready else 0))
        yield active
        by_partition = GaugeMetricFamily(
            "motcua_partition_ready",
            "1 when this assigned partition is counted, 0 while it catches up or cannot be",
            labels=["partition"],
        )
        for partition in sorted(ledger.assignment or ()):
            by_partition.add_metric([str(partition)], 1.0 if ledger.counted(partition) else 0.0)
        yield by_partition
        # From the worker's calendar, ready or not: the stalled-pipeline alert expects
        # events only while a center is open, and Prometheus knows no holidays.
        center_open = GaugeMetricFamily(
            "motcua_center_open",
            "1 while the centers are open by the worker's working calendar (working days, "
            f"public holidays off and make-up Saturdays on, {OPENS_AT:%H:%M}-{CLOSES_AT:%H:%M}"
            " Asia/Ho_Chi_Minh)",
        )
        center_open.add_metric([], 1.0 if ledger.calendar.is_open_at(datetime.now(UTC)) else 0.0)
        yield center_open
        if ledger.last_event_timestamp is not None:
            last = GaugeMetricFamily(
                "motcua_last_event_timestamp_seconds",
                "Kafka timestamp of the newest event this worker processed",
            )
            last.add_metric([], ledger.last_event_timestamp)
            yield last
        if not ledger.ready:
            return

        yield from self._dossier_families()
        yield from self._timeliness_families()
        events = CounterMetricFamily(
            "motcua_events", "Valid events accepted (duplicates excluded)", labels=["type"]
        )
        by_type = ledger.events_by_type()
        for kind in EventType:
            events.add_metric([kind.value], float(by_type.get(kind.value, 0)))
        yield events
        rejected = CounterMetricFamily(
            "motcua_events_rejected",
            "Messages of the log sent to the dead-letter topic (once per offset)",
            labels=["reason"],
        )
        by_reason = ledger.rejected()
        for reason in Reason:
            rejected.add_metric([reason.value], float(by_reason.get(reason.value, 0)))
        yield rejected
        duplicates = CounterMetricFamily(
            "motcua_events_duplicate",
            "Events whose event_id the dossier already held from another offset (ignored), by "
            "the center system that re-sent them (gateway token name, or direct)",
            labels=["source"],
        )
        by_source = ledger.duplicates()
        for source in sorted(by_source) or ["direct"]:
            duplicates.add_metric([source], float(by_source.get(source, 0)))
        yield duplicates
        render = GaugeMetricFamily(
            "motcua_metrics_render_seconds", "Time to build the motcua_ series of this scrape"
        )
        render.add_metric([], time.perf_counter() - started)
        yield render

    def _dossier_families(self) -> Iterator[Any]:
        totals = self.ledger.totals()
        agencies = sorted({key[1] for key in totals})
        received = CounterMetricFamily(
            "motcua_dossiers_received",
            "Dossiers received (tiếp nhận)",
            labels=["agency", "channel"],
        )
        completed = CounterMetricFamily(
            "motcua_dossiers_completed",
            "Dossiers whose clock ended (approved, rejected or returned), by outcome",
            labels=["agency", "outcome"],
        )
        without_due = CounterMetricFamily(
            "motcua_dossiers_completed_without_due",
            "Dossiers whose clock ended with no due known: resolved, never judged (rule R11)",
            labels=["agency"],
        )
        withdrawn = CounterMetricFamily(
            "motcua_dossiers_withdrawn",
            "Dossiers withdrawn before their clock ended (rút hồ sơ)",
            labels=["agency"],
        )
        became_overdue = CounterMetricFamily(
            "motcua_dossiers_became_overdue",
            "Dossiers whose running clock passed the due (each at most once)",
            labels=["agency"],
        )
        open_ = GaugeMetricFamily(
            "motcua_dossiers_open",
            "Open dossiers by state at this moment",
            labels=["agency", "state"],
        )
        no_apology = GaugeMetricFamily(
            "motcua_overdue_without_apology",
            "Open overdue dossiers with no apology letter (văn bản xin lỗi)",
            labels=["agency"],
        )
        for agency in agencies:
            for channel in Channel:
                received.add_metric(
                    [agency, channel.value], float(totals[("received", agency, channel.value)])
                )
            for outcome in Outcome:
                completed.add_metric(
                    [agency, outcome.value], float(totals[("completed", agency, outcome.value)])
                )
            without_due.add_metric([agency], float(totals[("completed_without_due", agency)]))
            withdrawn.add_metric([agency], float(totals[("withdrawn", agency)]))
            became_overdue.add_metric([agency], float(totals[("became_overdue", agency)]))
            for state in OpenState:
                open_.add_metric(
                    [agency, state.value], float(totals[("open", agency, state.value)])
                )
            no_apology.add_metric([agency], float(totals[("overdue_without_apology", agency)]))
        yield from (received, completed, without_due, withdrawn, became_overdue, open_, no_apology)
        yield from self._step_families(totals)

    def _step_families(self, totals: Counter[Key]) -> Iterator[Any]:
        """Who holds the dossiers: steps by agency and department (rules R12–R17)."""
        steps = department_counts(totals, self.departments)
        steps_open = GaugeMetricFamily(
            "motcua_steps_open",
            "Open processing steps (bước xử lý) by the agency and department holding them",
            labels=["agency", "department", "state"],
        )
        completed = CounterMetricFamily(
            "motcua_steps_completed",
            "Processing steps ended, by the agency and department whose step it was",
            labels=["agency", "department", "outcome"],
        )
        held = GaugeMetricFamily(
            "motcua_dossiers_overdue_held",
            "Open overdue dossiers by where they sit now: their open step's agency and "
            "department (none: no step open)",
            labels=["agency", "department"],
        )
        for agency, department in sorted({place for place, _ in steps}):
            labels = [agency, department]
            for state in STEP_STATES:
                value = steps[(agency, department), ("steps_open", state)]
                steps_open.add_metric([*labels, state], float(value))
            for outcome in STEP_OUTCOMES:
                value = steps[(agency, department), ("steps_completed", outcome)]
                completed.add_metric([*labels, outcome], float(value))
            held.add_metric(labels, float(steps[(agency, department), ("overdue_held", "")]))
        yield from (steps_open, completed, held)

    def timeliness(self) -> Timeliness:
        """The latest figures for the partitions held now; starts a new scan when stale."""
        held = frozenset(self.ledger.partitions)
        scan = self._scan
        if scan is not None and scan.done():
            self._scan = None
            try:
                self._timeliness = scan.result()
            except Exception:  # a bug in the scan must not take /metrics down with it
                log.exception("timeliness scan failed; serving the previous figures")
        latest = self._timeliness
        if latest is None or latest.partitions != held:
            # First scrape, or partitions moved: figures of partitions another worker now
            # holds would be counted twice across the group. Compute now, on the loop, once.
            latest = self._timeliness = compute_timeliness(
                timeliness_parts(self.ledger, datetime.now(UTC))
            )
        elif self._scan is None and time.monotonic() - latest.computed_at > TIMELINESS_MAX_AGE_S:
            # A snapshot of the (immutable) facts: the loop keeps changing the dicts.
            parts = timeliness_parts(self.ledger, datetime.now(UTC))
            self._scan = self._executor.submit(compute_timeliness, parts)
        return latest

    def _timeliness_families(self) -> Iterator[Any]:
        latest = self.timeliness()
        rate = GaugeMetricFamily(
            "motcua_timeliness_rate",
            "QĐ 766 timeliness: (early + on time + in progress within the due) / handled",
            labels=["agency", "period"],
        )
        score = GaugeMetricFamily(
            "motcua_timeliness_score",
            "QĐ 766 component 2: 20 × timeliness rate (out of 20 points)",
            labels=["agency", "period"],
        )
        # The counts behind the rate: a rate cannot be summed across workers, counts can.
        in_time = GaugeMetricFamily(
            "motcua_timeliness_in_time",
            "Dossiers resolved early or on time, or in progress within the due, this period",
            labels=["agency", "period"],
        )
        handled = GaugeMetricFamily(
            "motcua_timeliness_handled",
            "Dossiers resolved or in progress with a due this period (QĐ 766 denominator)",
            labels=["agency", "period"],
        )
        for kind, by_agency in latest.figures.items():
            for agency in sorted(by_agency):
                figures = by_agency[agency]
                in_time.add_metric(
                    [agency, kind],
                    figures.resolved_early + figures.resolved_on_time + figures.in_progress_within,
                )
                handled.add_metric([agency, kind], figures.judged)
                if figures.timeliness_rate is None:
                    continue  # nothing handled this period: no score, not a zero
                rate.add_metric([agency, kind], figures.timeliness_rate)
                score.add_metric([agency, kind], figures.timeliness_score or 0.0)
        yield from (rate, score, in_time, handled)
        yield from index_families(latest.index)
