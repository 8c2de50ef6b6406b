"""End to end: dossier events -> worker -> real Prometheus -> real Alertmanager -> webhook.

The rules and routes are the deployed ones (see conftest.py for the shortened `for:`).
"""

from __future__ import annotations

import importlib.util
import itertools
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
SPIKE_AGENCY = "H10.14"
QUIET_AGENCY = "H10.20"
PROCEDURE = "1.000948"
# Events reach the recorded sums within about a minute (the rules' handover smoothing).
ALERT_TIMEOUT = 180.0
QUERY_TIMEOUT = 120.0

_ids = itertools.count(1)


def load_dashboards() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "motcua_dashboards", ROOT / "deploy" / "grafana" / "generate.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stamp(moment: datetime) -> str:
    return moment.astimezone(LOCAL).isoformat(timespec="seconds")


def event(kind: str, dossier_id: str, **fields: Any) -> dict:
    now = datetime.now(LOCAL)
    return {
        "event_id": f"e2e-{time.time_ns()}-{next(_ids)}",
        "dossier_id": dossier_id,
        "type": kind,
        "occurred_at": stamp(now),
        **fields,
    }


def received(dossier_id: str, agency: str, due_in: timedelta, channel: str = "direct") -> dict:
    return event(
        "received",
        dossier_id,
        agency=agency,
        procedure=PROCEDURE,
        channel=channel,
        due_at=stamp(datetime.now(LOCAL) + due_in),
    )


def background(run: str) -> list[dict]:
    """An ordinary morning at the quiet agency: filings on every channel, results returned,
    one withdrawal, one apology letter, one duplicate and one malformed event."""
    events = []
    for n, channel in enumerate(["direct", "online", "postal"] * 3):
        events.append(received(f"{run}-Q{n}", QUIET_AGENCY, timedelta(days=2), channel))
    events += [event("returned", f"{run}-Q0"), event("returned", f"{run}-Q1")]
    events.append(event("withdrawn", f"{run}-Q2"))
    events.append(
        event("extended", f"{run}-Q3", new_due_at=stamp(datetime.now(LOCAL) + timedelta(days=5)))
    )
    events.append(dict(events[0]))  # the same event_id again: a duplicate
    events.append({"event_id": f"{run}-bad", "dossier_id": f"{run}-Q9", "type": "teleported"})
    return events


def index_and_steps(run: str) -> list[dict]:
    """Two dossiers at SPIKE_AGENCY that feed the national-index and department panels: one
    online, reporting every index field, paid online, returned with an electronic result
    and rated; one whose first processing step ended and whose second is open. Their
    department is not in the worker's units file, so it is counted as `other`."""
    start = datetime.now(LOCAL) - timedelta(minutes=10)

    def at(seconds: int) -> str:
        return stamp(start + timedelta(seconds=seconds))

    indexed, stepped = f"{run}-I0", f"{run}-I1"
    base = {"agency": SPIKE_AGENCY, "procedure": PROCEDURE}
    due = stamp(datetime.now(LOCAL) + timedelta(days=3))
    events = [
        event(
            "received",
            indexed,
            **base,
            channel="online",
            due_at=due,
            online_level="full",
            fee_due=True,
            components=3,
            components_digitised=2,
            components_reused=1,
            components_from_data_store=1,
            identity_verified=True,
        ),
        event("paid", indexed, method="national_portal"),
        event("approved", indexed),
        event("returned", indexed, e_result=True),
        event("rated", indexed, rating="satisfied"),
        event("received", stepped, **base, channel="direct", due_at=due),
        event("step_started", stepped, step="TIEP_NHAN", department="H10.14.MC", step_hours=8),
        event("step_completed", stepped, step="TIEP_NHAN"),
        event("step_started", stepped, step="THAM_DINH", department="H10.14.CM", step_days=2),
    ]
    for n, item in enumerate(events):
        item["occurred_at"] = at(n)  # in order: same-second ties would reorder them (R6)
    return events


def spike(run: str, count: int = 60) -> list[dict]:
    """`count` dossiers at SPIKE_AGENCY whose appointment passes within seconds. The
    delay lets Prometheus scrape them once while still in time, so the counter of newly
    overdue dossiers is seen rising from zero."""
    return [
        received(f"{run}-S{n}", SPIKE_AGENCY, timedelta(seconds=8), ["direct", "online"][n % 2])
        for n in range(count)
    ]


def test_an_overdue_spike_pages_the_center_duty_officer(
    motcua_worker: Any, prometheus: Any, alert_webhook: Any
) -> None:
    run = f"spike{time.time_ns()}"
    motcua_worker.publish(background(run))
    motcua_worker.publish(spike(run))

    receiver, alert = alert_webhook.wait_for(
        "MotcuaOverdueSpike", ALERT_TIMEOUT, agency=SPIKE_AGENCY
    )

    assert receiver == "center-duty"
    assert alert["labels"]["severity"] == "page"
    assert SPIKE_AGENCY in alert["annotations"]["summary"]
    assert alert["annotations"]["runbook_url"].endswith("#motcuaoverduespike")
    # Nine dossiers due in two days are normal traffic, not a spike.
    assert not alert_webhook.firing("MotcuaOverdueSpike", agency=QUIET_AGENCY)


def substitute(expr: str) -> str:
    """What Grafana would send: the agency and department variables and the interval macros
    filled in (the test's departments are not in the units file: `other`)."""
    return (
        expr.replace("$agency", SPIKE_AGENCY)
        .replace("$department", "other")
        .replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
    )


def test_every_dashboard_query_returns_data(
    motcua_worker: Any, prometheus_factory: Any, gateway_factory: Any
) -> None:
    # The worker and a gateway in front of it, as in the stack: the pipeline dashboard has a
    # gateway row.
    gateway = gateway_factory(topic=motcua_worker.worker.topic)
    prometheus = prometheus_factory([motcua_worker.host_port, f"127.0.0.1:{gateway.port}"])
    run = f"dash{time.time_ns()}"
    motcua_worker.publish(background(run))
    motcua_worker.publish(spike(run, count=12))
    motcua_worker.publish(index_and_steps(run))
    status, _, answer = gateway.post(
        "/v1/events",
        [event("approved", f"{run}-S0"), event("returned", f"{run}-S1"), {"type": "nonsense"}],
    )
    assert status == 207, answer  # two accepted, one rejected: both gateway rows have data

    pending = {substitute(expr) for expr in load_dashboards().all_panel_queries()}
    deadline = time.monotonic() + QUERY_TIMEOUT
    while pending and time.monotonic() < deadline:
        pending = {expr for expr in pending if not prometheus.query(expr)}
        if pending:
            time.sleep(2)

    assert not pending, "dashboard queries with no data:\n" + "\n".join(sorted(pending))


def test_a_stalled_pipeline_silences_the_business_alerts(
    alertmanager: Any, alert_webhook: Any
) -> None:
    """Inhibition, on the real Alertmanager with the deployed config (no worker needed)."""
    starts = datetime.now(LOCAL).isoformat()
    stalled = {
        "labels": {
            "alertname": "MotcuaPipelineStalled",
            "severity": "page",
            "category": "pipeline",
            "cause": "no_events",
        },
        "startsAt": starts,
    }
    spike_alert = {
        "labels": {
            "alertname": "MotcuaOverdueSpike",
            "severity": "page",
            "category": "business",
            "agency": SPIKE_AGENCY,
        },
        "startsAt": starts,
    }
    alertmanager.post_alerts([stalled, spike_alert])

    receiver, _ = alert_webhook.wait_for("MotcuaPipelineStalled", 30)
    assert receiver == "platform-oncall"
    by_name = {a["labels"]["alertname"]: a for a in alertmanager.alerts()}
    assert by_name["MotcuaOverdueSpike"]["status"]["state"] == "suppressed"
    assert by_name["MotcuaOverdueSpike"]["status"]["inhibitedBy"]
    time.sleep(3)  # several group intervals: the spike must still not be sent
    assert not alert_webhook.firing("MotcuaOverdueSpike")
