"""The Prometheus view of the ledger, built fresh at each scrape.

Only partitions this worker holds are in the ledger, and nothing per dossier is exported
while a partition recovers: series are omitted rather than under-reported. Labels are
agency codes and closed sets (channel, outcome, state); never dossier ids or procedures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from schemas import Channel, EventType, Reason
from service.domain import OpenState, Outcome
from service.domain.report import PeriodFigures, current_period, period_report
from service.ledger import Ledger

# The timeliness gauges scan every dossier's facts; a scrape reuses a recent answer.
TIMELINESS_MAX_AGE_S = 15.0


class LedgerCollector(Collector):
    """Reads the ledger at scrape time (prometheus_client custom collector)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._timeliness: dict[str, dict[str, PeriodFigures]] = {}
        self._timeliness_at = float("-inf")

    def collect(self) -> Iterator[Any]:
        started = time.perf_counter()
        ledger = self.ledger
        ready = GaugeMetricFamily(
            "motcua_ready", "1 when partitions are assigned, recovered and summed"
        )
        ready.add_metric([], 1.0 if ledger.ready else 0.0)
        yield ready
        active = GaugeMetricFamily(
            "motcua_partitions_active", "Input partitions this worker holds and counts"
        )
        active.add_metric([], float(len(ledger.partitions) if ledger.ready else 0))
        yield active

        rejected = CounterMetricFamily(
            "motcua_events_rejected", "Messages sent to the dead-letter topic", labels=["reason"]
        )
        for reason in Reason:
            rejected.add_metric([reason.value], float(ledger.rejected.get(reason.value, 0)))
        yield rejected
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
        duplicates = CounterMetricFamily(
            "motcua_events_duplicate", "Events whose event_id was already seen (ignored)"
        )
        duplicates.add_metric([], float(ledger.duplicates()))
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
            withdrawn.add_metric([agency], float(totals[("withdrawn", agency)]))
            became_overdue.add_metric([agency], float(totals[("became_overdue", agency)]))
            for state in OpenState:
                open_.add_metric(
                    [agency, state.value], float(totals[("open", agency, state.value)])
                )
            no_apology.add_metric([agency], float(totals[("overdue_without_apology", agency)]))
        yield from (received, completed, withdrawn, became_overdue, open_, no_apology)

    def _timeliness_families(self) -> Iterator[Any]:
        if time.monotonic() - self._timeliness_at > TIMELINESS_MAX_AGE_S:
            now = datetime.now(UTC)
            self._timeliness = {
                kind: period_report(self.ledger.iter_facts(), *current_period(kind, now), now=now)
                for kind in ("month", "year")
            }
            self._timeliness_at = time.monotonic()
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
            "Dossiers resolved or in progress this period (QĐ 766 denominator)",
            labels=["agency", "period"],
        )
        for kind, by_agency in self._timeliness.items():
            for agency in sorted(by_agency):
                figures = by_agency[agency]
                in_time.add_metric(
                    [agency, kind],
                    figures.resolved_early + figures.resolved_on_time + figures.in_progress_within,
                )
                handled.add_metric([agency, kind], figures.resolved + figures.in_progress)
                if figures.timeliness_rate is None:
                    continue  # nothing handled this period: no score, not a zero
                rate.add_metric([agency, kind], figures.timeliness_rate)
                score.add_metric([agency, kind], figures.timeliness_score or 0.0)
        yield from (rate, score, in_time, handled)
