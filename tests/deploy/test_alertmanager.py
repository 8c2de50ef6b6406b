"""deploy/alertmanager: the config loads in Alertmanager 0.25, alerts reach the intended
receiver, and a pipeline outage silences the business alerts it would cause.

The live check of inhibition (a real Alertmanager) is in tests/e2e/test_alerting.py.
"""

from __future__ import annotations

import re

import pytest
from deploy_tools import ALERTMANAGER_CONFIG, alert_rules, explain, load_yaml, run


def test_config_loads(amtool: str) -> None:
    result = run(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, explain(result)


def route(amtool: str, labels: dict[str, str], receiver: str) -> None:
    result = run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receiver}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert result.returncode == 0, explain(result)
    assert result.stdout.strip() == receiver, explain(result)


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        # A page about one agency: the center's duty officer.
        (
            {
                "alertname": "MotcuaOverdueSpike",
                "severity": "page",
                "category": "business",
                "agency": "H10.14",
            },
            "center-duty",
        ),
        # A page about the pipeline: the platform on-call.
        (
            {
                "alertname": "MotcuaWorkerDown",
                "severity": "page",
                "category": "pipeline",
                "instance": "worker-1:6066",
            },
            "platform-oncall",
        ),
        # Tickets, with or without an agency.
        (
            {
                "alertname": "MotcuaOverdueWithoutApology",
                "severity": "ticket",
                "category": "business",
                "agency": "H10.14",
            },
            "tickets",
        ),
        (
            {
                "alertname": "MotcuaDeadLetterRateRising",
                "severity": "ticket",
                "category": "pipeline",
                "reason": "schema_invalid",
            },
            "tickets",
        ),
    ],
)
def test_alerts_reach_their_receiver(amtool: str, labels: dict[str, str], receiver: str) -> None:
    route(amtool, labels, receiver)


def test_an_inhibited_business_page_is_still_routed_to_the_duty_officer(amtool: str) -> None:
    """Inhibition only holds it back while the pipeline alert fires; once that resolves
    the business alert must still have somewhere to go."""
    spike = {
        "alertname": "MotcuaOverdueSpike",
        "severity": "page",
        "category": "business",
        "agency": "H10.14",
    }
    assert inhibited_by_any(
        spike,
        {
            "alertname": "MotcuaPipelineStalled",
            "cause": "no_events",
            "severity": "page",
            "category": "pipeline",
        },
    )
    route(amtool, spike, "center-duty")


# --- inhibition, evaluated on the alerts the rules can raise ------------------------------

MATCHER = re.compile(r'^\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*$')


def matches(matchers: list[str], labels: dict[str, str]) -> bool:
    """Alertmanager's matcher strings against a label set (anchored regexes)."""
    for matcher in matchers:
        found = MATCHER.match(matcher)
        assert found, f"matcher not understood by this test: {matcher}"
        name, op, value = found.groups()
        actual = labels.get(name, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


def inhibited_by_any(target: dict[str, str], source: dict[str, str]) -> bool:
    for rule in load_yaml(ALERTMANAGER_CONFIG).get("inhibit_rules", []):
        if (
            matches(rule["source_matchers"], source)
            and matches(rule["target_matchers"], target)
            and all(source.get(k) == target.get(k) for k in rule.get("equal", []))
        ):
            return True
    return False


def rule_labels(category: str) -> list[dict[str, str]]:
    """Label sets of the rules' alerts of one category (agency/instance filled in)."""
    return [
        {"alertname": r["alert"], **r["labels"], "agency": "H10.14"}
        if category == "business"
        else {"alertname": r["alert"], **r["labels"], "instance": "worker-1:6066"}
        for r in alert_rules()
        if r["labels"]["category"] == category
    ]


def test_a_stalled_or_missing_worker_silences_every_business_alert() -> None:
    sources = [
        labels
        for labels in rule_labels("pipeline")
        if labels["alertname"]
        in {"MotcuaPipelineStalled", "MotcuaWorkerDown", "MotcuaWorkerNotReady"}
    ]
    assert len(sources) == 4  # two causes of a stall, down, not ready
    for source in sources:
        for target in rule_labels("business"):
            assert inhibited_by_any(target, source), (source["alertname"], target["alertname"])


def test_nothing_silences_the_pipeline_alerts_or_comes_from_a_business_alert() -> None:
    everything = rule_labels("business") + rule_labels("pipeline")
    for source in everything:
        for target in rule_labels("pipeline"):
            assert not inhibited_by_any(target, source), (source["alertname"], target["alertname"])
    # A dead-letter ticket says events are bad, not that the numbers stopped: no silencing.
    dlq = next(s for s in rule_labels("pipeline") if s["alertname"] == "MotcuaDeadLetterRateRising")
    for target in rule_labels("business"):
        assert not inhibited_by_any(target, dlq), target["alertname"]


def test_every_receiver_posts_to_the_one_webhook_url() -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
    urls = {
        webhook["url"]
        for receiver in config["receivers"]
        for webhook in receiver["webhook_configs"]
    }
    assert urls == {"http://alert-webhook:8080/alertmanager"}
