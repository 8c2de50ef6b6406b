"""deploy/prometheus: config and rules load in Prometheus 2.42, rule unit tests pass, and
every alert carries what Alertmanager routing and the on-call need."""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from deploy_tools import (
    PROMETHEUS_CONFIG,
    RULE_TESTS,
    RULES,
    RUNBOOK,
    alert_rules,
    explain,
    load_yaml,
    run,
)


def test_prometheus_config_and_its_rule_files_load(promtool: str) -> None:
    result = run(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, explain(result)
    # The glob in rule_files must match the rules file, or Prometheus runs without rules.
    assert "1 rule files found" in result.stdout, result.stdout


def test_rules_load(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, explain(result)


def test_rule_unit_tests_pass(promtool: str) -> None:
    result = run(promtool, "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, explain(result)


def keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from keys(item)


def test_rule_tests_use_nothing_newer_than_prometheus_2_42() -> None:
    used = set(keys(load_yaml(RULE_TESTS)))
    assert not used & {"fuzzy_compare", "start_timestamp"}


def test_every_alert_is_tested_firing_and_silent() -> None:
    tests = load_yaml(RULE_TESTS)["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for name in {rule["alert"] for rule in alert_rules()}:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: no test where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{name}: no test where it is silent"


def test_every_alert_has_routing_labels_and_an_operator_text() -> None:
    for rule in alert_rules():
        name, labels, annotations = rule["alert"], rule["labels"], rule["annotations"]
        assert labels["severity"] in {"page", "ticket"}, name
        assert labels["category"] in {"business", "pipeline"}, name
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        if labels["category"] == "business":
            # Per-agency alerts keep the agency label and name the agency in the text.
            kept = re.search(r"by \(agency[,)]", rule["expr"]) or "agency:" in rule["expr"]
            assert kept, name
            assert "{{ $labels.agency }}" in annotations["summary"], name
            assert "{{ $labels.agency }}" in annotations["description"], name


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_every_runbook_url_points_at_a_runbook_section() -> None:
    headings = re.findall(r"^#{1,6} (.+)$", RUNBOOK.read_text(encoding="utf-8"), re.MULTILINE)
    anchors = {github_anchor(h) for h in headings}
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbook.md", url
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor} in docs/runbook.md"
        assert anchor == github_anchor(rule["alert"]), url


def test_scrape_job_is_motcua_and_alerts_go_to_alertmanager() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert "motcua" in jobs  # rules and dashboards select job="motcua"
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]


def test_the_working_hours_fallback_is_the_calendars_opening_hours() -> None:
    # With no worker scraped, motcua:working_hours falls back to minutes of the local day;
    # they must be the hours the workers' motcua_center_open uses (WorkingCalendar.is_open_at).
    from service.domain.calendar import CLOSES_AT, OPENS_AT

    rules = [
        rule
        for group in load_yaml(RULES)["groups"]
        for rule in group["rules"]
        if rule.get("record") == "motcua:working_hours"
    ]
    assert len(rules) == 1
    expr = rules[0]["expr"]
    assert "max(motcua_center_open)" in expr
    opens = OPENS_AT.hour * 60 + OPENS_AT.minute
    closes = CLOSES_AT.hour * 60 + CLOSES_AT.minute
    # hour * 60 + minute of the local clock, compared with the opening and closing minutes.
    assert re.findall(r"minute\(vector\(time\(\) \+ 7 \* 3600\)\) (>=|<) bool (\d+)", expr) == [
        (">=", str(opens)),
        ("<", str(closes)),
    ]


# --- exact or absent ---------------------------------------------------------------------

# Exported counters summed per partition that are not business series: they move with
# their partitions like the dossier counters (service/outputs/metrics.py, pipeline_metrics.py).
PER_PARTITION_PIPELINE = {
    "motcua_events_total",
    "motcua_events_duplicate_total",
    "motcua_events_rejected_total",
    "motcua_messages_read_total",
}
# Alerts that must fire while a partition is not counted: they say why.
OUTAGE_ALERTS = {
    "MotcuaPipelineStalled",
    "MotcuaWorkerDown",
    "MotcuaWorkerNotReady",
    "MotcuaStoreDiskFilling",
    "MotcuaInputTopicDeletesEvents",
}


def names_in(expr: str) -> list[str]:
    """Metric names in `expr`, once per occurrence (label values and ranges left out)."""
    bare = re.sub(r'"[^"]*"|\[[^\]]*\]', "", expr)
    return re.findall(r"[a-zA-Z_:][\w:]*", bare)


def normalised(text: str) -> str:
    return " ".join(text.split())


def test_every_sum_of_partition_figures_is_gated_by_the_dashboards_gate(
    dashboards: ModuleType,
) -> None:
    """A sum over the workers of per-partition figures, in a rule or an alert, is taken only
    while every partition is counted (the dashboards' COMPLETE, verbatim): a partial sum
    would pass for the center's, and a counter's drop and return would count a partition's
    history twice."""
    gate = f"and on () {dashboards.COMPLETE}"
    checked = 0
    for group in load_yaml(RULES)["groups"]:
        for rule in group["rules"]:
            expr = normalised(rule["expr"])
            raw = [
                name
                for name in names_in(expr)
                if ":" not in name
                and (dashboards.BUSINESS.search(name) or name in PER_PARTITION_PIPELINE)
            ]
            if not raw:
                continue
            checked += 1
            name = rule.get("record") or rule.get("alert")
            assert expr.count(gate) == len(raw), f"{name}: {raw} not each gated: {expr}"
    assert checked >= 15  # the smoothed counters, the open stocks, the gauges of alerts


def test_alerts_that_explain_an_outage_are_not_gated(dashboards: ModuleType) -> None:
    """They must fire while a partition is not counted, so neither they nor the recordings
    they read carry the gate."""
    recorded = {
        rule["record"]: rule["expr"]
        for group in load_yaml(RULES)["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    gate = normalised(dashboards.COMPLETE)
    for rule in alert_rules():
        if rule["alert"] not in OUTAGE_ALERTS:
            continue
        todo, seen = [rule["expr"]], set[str]()
        while todo:
            expr = todo.pop()
            assert gate not in normalised(expr), f"{rule['alert']} reads the gate: {expr}"
            for name in set(names_in(expr)) & recorded.keys() - seen:
                seen.add(name)
                todo.append(recorded[name])
