"""The period report and the QĐ 766 gauges, served by a real worker, agree."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harness import WorkerProcess, produce_events, wait_exact, wait_for

from service.domain.calendar import local_date
from service.domain.report import current_period
from service.tools.simulate import SimulationConfig, generate

pytestmark = pytest.mark.integration


def gauges(worker: WorkerProcess, name: str, period: str) -> dict[str, float]:
    return {
        dict(labels)["agency"]: value
        for (metric, labels), value in worker.metrics().items()
        if metric == name and dict(labels)["period"] == period
    }


def test_report_agrees_with_the_gauges(kafka_broker: Any, worker_factory: Any) -> None:
    worker: WorkerProcess = worker_factory()
    events = list(
        generate(
            SimulationConfig(dossiers=400, seed=5, now=datetime.now(UTC) - timedelta(seconds=5))
        )
    )
    produce_events(kafka_broker.bootstrap, worker.topic, events)
    got, want = wait_exact([worker], events, timeout=120)
    assert got == want

    start, end = current_period("month", datetime.now(UTC))
    status, body = worker.get(f"/api/report?from={start}&to={end}")
    assert status == 200
    report = json.loads(body)
    assert report["partitions"] == list(range(worker.partitions))
    agencies = report["agencies"]
    assert agencies, "a simulated month has dossiers in it"

    def in_time(row: dict[str, Any]) -> float:
        return row["resolved_early"] + row["resolved_on_time"] + row["in_progress_within"]

    def handled(row: dict[str, Any]) -> float:
        return (
            row["resolved_early"]
            + row["resolved_on_time"]
            + row["resolved_late"]
            + (row["in_progress_within"] + row["in_progress_overdue"])
        )

    # The gauges are recomputed at most every 15 s; wait for the figures of this data.
    expected_in_time = {code: in_time(row) for code, row in agencies.items()}
    assert wait_for(
        lambda: gauges(worker, "motcua_timeliness_in_time", "month") == expected_in_time, 60
    )
    assert gauges(worker, "motcua_timeliness_handled", "month") == {
        code: handled(row) for code, row in agencies.items()
    }
    scores = gauges(worker, "motcua_timeliness_score", "month")
    for code, row in agencies.items():
        if row["timeliness_score"] is None:
            assert code not in scores
        else:
            assert scores[code] == pytest.approx(row["timeliness_score"])
            assert scores[code] == pytest.approx(20 * in_time(row) / handled(row))

    # Received this month equals the receipts the events carry for this month.
    month_receipts = sum(
        1
        for e in events
        if e["type"] == "received"
        and start <= local_date(datetime.fromisoformat(e["occurred_at"])) <= end
    )
    assert report["total"]["new"] == month_receipts

    # The month runs through today to its end: the answer projects it, each indicator's
    # portal figure at the month's end, as the worker's projected gauges do (one function).
    projection = report["projection"]
    assert (projection["from"], projection["to"]) == (start.isoformat(), end.isoformat())

    def projected_gauges() -> dict[tuple[str, str, str], float]:
        names = {"motcua_index_projected_numerator": "numerator"}
        names["motcua_index_projected_denominator"] = "denominator"
        return {
            (dict(labels)["agency"], dict(labels)["indicator"], names[metric]): value
            for (metric, labels), value in worker.metrics().items()
            if metric in names
        }

    from_report = {
        (code, indicator, part): figure["portal"][part]
        for code, row in projection["agencies"].items()
        if row["counts"].get("online_share:den")
        for indicator, figure in row["indicators"].items()
        for part in ("numerator", "denominator")
    }
    assert from_report, "a simulated month has dossiers to project"
    assert wait_for(lambda: projected_gauges() == from_report, 60), sorted(
        set(projected_gauges().items()) ^ set(from_report.items())
    )[:10]
    # A period that stops before the month's end (the board's month to date) projects
    # nothing.
    status, body = worker.get(f"/api/report?from={start}&to={start}")
    assert status == 200 and "projection" not in json.loads(body)


def test_report_command_reads_the_worker(kafka_broker: Any, worker_factory: Any) -> None:
    worker: WorkerProcess = worker_factory()
    events = list(
        generate(
            SimulationConfig(dossiers=100, seed=9, now=datetime.now(UTC) - timedelta(seconds=5))
        )
    )
    produce_events(kafka_broker.bootstrap, worker.topic, events)
    got, want = wait_exact([worker], events, timeout=120)
    assert got == want
    start, end = current_period("year", datetime.now(UTC))
    base = [sys.executable, "-m", "service", "report", "--from", str(start), "--to", str(end)]
    url = f"http://{worker.host_port}"
    # A worker holding fewer partitions than the topic has is no report: no figure at all.
    partial = subprocess.run(
        [*base, "--url", url, "--partitions", str(worker.partitions + 1)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert partial.returncode == 1 and partial.stdout == ""
    assert f"partitions {worker.partitions} of {worker.partitions + 1} are not answered" in (
        partial.stderr
    )
    base += ["--partitions", str(worker.partitions)]
    out = subprocess.run(
        [*base, "--format", "json", "--url", url], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    summed = json.loads(out.stdout)
    _, body = worker.get(f"/api/report?from={start}&to={end}")
    assert summed["total"] == json.loads(body)["total"]

    table = subprocess.run([*base, "--url", url], capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and "total" in table.stdout.lower()

    for bad in (["--to", "2026-01-01", "--from", "2026-02-01"], ["--from", "01/02/2026"]):
        wrong = subprocess.run(
            [sys.executable, "-m", "service", "report", *bad, "--url", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert wrong.returncode == 2
        assert len(wrong.stderr.strip().splitlines()) == 1
    unreachable = subprocess.run(
        [*base, "--url", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60
    )
    assert unreachable.returncode == 1
    assert len(unreachable.stderr.strip().splitlines()) == 1
