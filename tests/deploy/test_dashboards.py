"""deploy/grafana: the committed dashboards are the generator's output, and they are sound
without a Grafana server: ids, layout, datasource, variables, PromQL syntax, metric names.

Whether each query returns data is checked against a live Prometheus in
tests/e2e/test_alerting.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from deploy_tools import DEPLOY, RULE_TESTS, RULES, explain, load_yaml, recorded_names, run

GRAFANA = DEPLOY / "grafana"
PROVISIONED_DATASOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"

# What the worker exposes (service/outputs/metrics.py, service/outputs/pipeline_metrics.py)
# plus Prometheus' own per-target series. A name outside this list and the recording
# rules is a typo or a metric nobody exports.
EXPORTED = {
    "motcua_dossiers_received_total",
    "motcua_dossiers_completed_total",
    "motcua_dossiers_withdrawn_total",
    "motcua_dossiers_open",
    "motcua_dossiers_became_overdue_total",
    "motcua_overdue_without_apology",
    "motcua_steps_open",
    "motcua_steps_completed_total",
    "motcua_dossiers_overdue_held",
    "motcua_timeliness_rate",
    "motcua_timeliness_in_time",
    "motcua_timeliness_handled",
    "motcua_timeliness_score",
    "motcua_timeliness_score_portal",
    "motcua_timeliness_portal_projected_on_time",
    "motcua_timeliness_portal_projected_handled",
    "motcua_index_ratio",
    "motcua_index_points",
    "motcua_index_points_max",
    "motcua_index_numerator",
    "motcua_index_denominator",
    "motcua_index_points_total",
    "motcua_index_points_total_max",
    "motcua_index_marks_total",
    "motcua_index_portal_numerator",
    "motcua_index_portal_denominator",
    "motcua_index_portal_points",
    "motcua_index_projected_numerator",
    "motcua_index_projected_denominator",
    "motcua_events_total",
    "motcua_events_rejected_total",
    "motcua_events_duplicate_total",
    "motcua_last_event_timestamp_seconds",
    "motcua_center_open",
    "motcua_ready",
    "motcua_partitions_active",
    "motcua_partition_ready",
    "motcua_messages_read_total",
    "motcua_partition_end_offset",
    "motcua_partition_offset_applied",
    "motcua_rebalances_total",
    "motcua_batch_seconds_bucket",
    "motcua_status_messages_sent_total",
    "motcua_gateway_requests_total",
    "motcua_gateway_items_accepted_total",
    "motcua_gateway_items_rejected_total",
    "motcua_gateway_events_produced_total",
    "motcua_gateway_produce_seconds_bucket",
    "motcua_gateway_broker_unavailable_total",
    "motcua_gateway_ready",
    "motcua_store_disk_free_bytes",
    "motcua_store_disk_size_bytes",
    "motcua_input_topic_retention_finite",
    "motcua_input_topic_partitions",
    "up",
    "scrape_duration_seconds",
}
# Grafana's own variables ($__range, ${__value.raw}, ...).
BUILTIN_VARIABLE = re.compile(r"__\w+")
# Values Grafana would put in place of a variable, for syntax checks.
SAMPLE_VALUES = {
    "$agency": "H10.14",
    "$department": "H10.14.CM",
    "$__rate_interval": "1m",
    "$__range": "1h",
}


@pytest.fixture(scope="module")
def rendered(dashboards: ModuleType) -> dict[str, dict]:
    return {name: json.loads(text) for name, text in dashboards.rendered().items()}


def panels(nodes: list[dict]) -> Iterator[dict]:
    for panel in nodes:
        yield panel
        yield from panels(panel.get("panels") or [])


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def datasources(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            yield node["datasource"]
        for value in node.values():
            yield from datasources(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasources(item)


def test_committed_json_is_the_generators_output(dashboards: ModuleType) -> None:
    fresh = dashboards.rendered()
    committed = {path.name for path in (GRAFANA / "dashboards").glob("*.json")}
    assert committed == set(fresh), "run: python deploy/grafana/generate.py"
    for name, text in fresh.items():
        on_disk = (GRAFANA / "dashboards" / name).read_text(encoding="utf-8")
        assert on_disk == text, f"{name} is stale: run python deploy/grafana/generate.py"


def test_generator_writes_where_provisioning_reads(dashboards: ModuleType, tmp_path: Path) -> None:
    written = dashboards.write(tmp_path)
    assert sorted(p.name for p in written) == sorted(dashboards.DASHBOARDS)
    assert dashboards.DASHBOARD_DIR == GRAFANA / "dashboards"


def test_dashboard_uids_are_unique_and_links_resolve(rendered: dict[str, dict]) -> None:
    uids = [d["uid"] for d in rendered.values()]
    assert len(set(uids)) == len(uids)
    for dashboard in rendered.values():
        for text in strings(dashboard):
            for uid in re.findall(r"/d/([\w-]+)/", text):
                assert uid in uids, f"{dashboard['uid']}: link to unknown dashboard {uid}"


def test_panel_ids_are_unique(rendered: dict[str, dict]) -> None:
    for name, dashboard in rendered.items():
        ids = [panel["id"] for panel in panels(dashboard["panels"])]
        assert all(isinstance(i, int) and i > 0 for i in ids), name
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"


def test_panels_fit_the_24_column_grid_without_overlap(rendered: dict[str, dict]) -> None:
    for name, dashboard in rendered.items():
        taken: dict[tuple[int, int], str] = {}
        for panel in panels(dashboard["panels"]):
            pos = panel["gridPos"]
            title = f"{name}: {panel.get('title')}"
            assert pos["x"] >= 0 and pos["y"] >= 0 and pos["w"] >= 1 and pos["h"] >= 1, title
            assert pos["x"] + pos["w"] <= 24, f"{title} is wider than the grid"
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in taken, f"{title} overlaps {taken[(x, y)]}"
                    taken[(x, y)] = title


def test_every_datasource_is_the_provisioned_one(
    rendered: dict[str, dict], dashboards: ModuleType
) -> None:
    provisioned = load_yaml(PROVISIONED_DATASOURCE)["datasources"]
    assert [d["uid"] for d in provisioned] == [dashboards.DATASOURCE_UID]
    assert provisioned[0]["type"] == "prometheus"
    for name, dashboard in rendered.items():
        refs = list(datasources(dashboard))
        assert refs, name
        for ref in refs:
            assert ref == {"type": "prometheus", "uid": dashboards.DATASOURCE_UID}, name
        for panel in panels(dashboard["panels"]):
            for target in panel.get("targets") or []:
                assert target["datasource"]["uid"] == dashboards.DATASOURCE_UID, name


def test_every_variable_is_declared(rendered: dict[str, dict]) -> None:
    for name, dashboard in rendered.items():
        declared = {v["name"] for v in (dashboard.get("templating") or {}).get("list", [])}
        for text in strings(dashboard):
            for used in re.findall(r"\$\{?(\w+)", text):
                assert used in declared or BUILTIN_VARIABLE.fullmatch(used), (
                    f"{name}: ${used} is not a dashboard variable"
                )


def test_agency_variable_reads_an_exported_label(rendered: dict[str, dict]) -> None:
    variable = rendered["agency-drilldown.json"]["templating"]["list"][0]
    found = re.fullmatch(r"label_values\((\w+), agency\)", variable["query"])
    assert found and found.group(1) in EXPORTED


def substitute(expr: str) -> str:
    for variable, value in SAMPLE_VALUES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"no sample value for a variable in {expr}"
    return expr


def test_every_query_parses(dashboards: ModuleType, promtool: str, tmp_path: Path) -> None:
    """promtool 2.42 cannot parse a bare expression; as recording rules it checks each."""
    queries = dashboards.all_panel_queries()
    assert len(queries) > 30
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard_query_{n}", "expr": substitute(expr)}
                    for n, expr in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, explain(result)


def metric_names(expr: str) -> set[str]:
    """Names in an expression that look like metrics (contain motcua or a colon, or are
    Prometheus' own per-target series)."""
    bare = re.sub(r'"[^"]*"|\[[^\]]*\]', "", expr)  # drop label values and [ranges]
    names = set(re.findall(r"[a-zA-Z_:][\w:]*", bare))
    return {n for n in names if "motcua" in n or ":" in n or n in {"up", "scrape_duration_seconds"}}


def test_every_metric_in_dashboards_and_rules_exists(dashboards: ModuleType) -> None:
    known = EXPORTED | recorded_names()
    rules = [r["expr"] for g in load_yaml(RULES)["groups"] for r in g["rules"]]
    for expr in dashboards.all_panel_queries() + rules:
        unknown = metric_names(expr) - known
        assert not unknown, f"unknown metric(s) {sorted(unknown)} in: {expr}"


def exported_behind(names: set[str]) -> set[str]:
    """The exported metrics `names` read, through the recording rules they name."""
    recorded = {
        rule["record"]: rule["expr"]
        for group in load_yaml(RULES)["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    out: set[str] = set()
    todo = list(names)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in recorded:
            todo.extend(metric_names(recorded[name]))
        elif name in EXPORTED:
            out.add(name)
    return out


def test_every_pipeline_alert_can_be_seen_on_the_pipeline_dashboard(
    rendered: dict[str, dict],
) -> None:
    """An on-call engineer paged by a pipeline alert finds what it watches on the pipeline
    dashboard: every exported metric a pipeline alert reads, itself or through a recorded
    sum, is in one of its panels (itself or through a recorded sum)."""
    dashboard = rendered["pipeline-health.json"]
    shown: set[str] = set()
    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets") or []:
            shown |= exported_behind(metric_names(target["expr"]))
    for group in load_yaml(RULES)["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule or rule["labels"].get("category") != "pipeline":
                continue
            watched = exported_behind(metric_names(rule["expr"]))
            assert watched, f"{rule['alert']} reads no exported metric"
            missing = watched - shown
            assert not missing, f"{rule['alert']}: no pipeline panel shows {sorted(missing)}"


# --- exact or absent ---------------------------------------------------------------------

# Exported families of per-agency dossier figures: each worker exports those of the partitions
# it counts, so a sum is the center's figure only while every partition is counted.
BUSINESS_FAMILIES = (
    "motcua_dossiers_",
    "motcua_overdue_",
    "motcua_timeliness_",
    "motcua_index_",
    "motcua_steps_",
)


def business_names() -> set[str]:
    """The business series and every recording rule that reads one, however indirectly."""
    business = {name for name in EXPORTED if name.startswith(BUSINESS_FAMILIES)}
    recorded = [
        (rule["record"], rule["expr"])
        for group in load_yaml(RULES)["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]
    grown = True
    while grown:
        grown = False
        for name, expr in recorded:
            if name not in business and metric_names(expr) & business:
                business.add(name)
                grown = True
    return business


def wraps_whole(text: str) -> bool:
    """`text` is one parenthesised expression: its first "(" closes at its end."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and index < len(text) - 1:
            return False
    return depth == 0


def gated(expr: str, complete: str) -> str | None:
    """What `expr` answers while every partition is counted, if the gate applies to the
    whole of it (inside a sort, which keeps the order), else None."""
    sorted_ = re.fullmatch(r"(?:sort_desc|sort)(\(.*\))", expr, re.DOTALL)
    if sorted_ and wraps_whole(sorted_.group(1)):
        expr = sorted_.group(1)[1:-1]
    gate = f" and on () {complete}"
    inner = expr.removesuffix(gate)
    if inner == expr or not wraps_whole(inner):
        return None
    return inner


def test_business_families_are_all_known() -> None:
    business = business_names()
    assert "motcua_dossiers_open" in business and "motcua_index_portal_numerator" in business
    assert ":motcua_dossiers_on_time:ratio7d" in business  # recorded from them
    assert "agency:motcua_timeliness_points_projected:month" in business
    assert "motcua:timeliness_points_projected:threshold" not in business  # a constant
    assert not business & {"motcua_partitions_active", "motcua_events_total", "up"}


def test_the_gate_counts_every_input_partition_once(dashboards: ModuleType) -> None:
    complete = dashboards.COMPLETE
    # The workers' counted partitions against the topic's, and each partition once.
    assert "sum(motcua_partitions_active) == max(motcua_input_topic_partitions)" in complete
    assert "count(count by (partition) (motcua_partition_ready == 1" in complete
    assert wraps_whole(complete)
    assert not metric_names(complete) & business_names()


def test_every_panel_reading_business_series_is_gated_whole(
    rendered: dict[str, dict], dashboards: ModuleType
) -> None:
    """Exact or absent: a panel that sums business series shows nothing while a partition is
    not counted (a worker down or catching up), never the other partitions' sum; the gate
    covers the whole query, so an `or vector(0)` inside cannot turn "incomplete" into 0."""
    business = business_names()
    checked = 0
    for name, dashboard in rendered.items():
        for panel in panels(dashboard["panels"]):
            for target in panel.get("targets") or []:
                expr = target["expr"]
                inner = gated(expr, dashboards.COMPLETE)
                reads = metric_names(expr if inner is None else inner) & business
                if not reads:
                    continue
                checked += 1
                assert inner is not None, (
                    f"{name}, {panel['title']!r}: reads {sorted(reads)} without the gate: {expr}"
                )
    assert checked > 50  # the center, agency and index dashboards


def test_the_rule_tests_check_the_gate_the_dashboards_use(dashboards: ModuleType) -> None:
    """deploy/prometheus/tests shows the center total absent with a worker not ready and
    present with both; it must test the very expressions the dashboards run."""
    tested = {
        case["expr"]
        for test in load_yaml(RULE_TESTS)["tests"]
        for case in test.get("promql_expr_test", [])
    }
    queries = set(dashboards.all_panel_queries())
    for expr in (
        'sum(motcua_dossiers_open{state="overdue"})',
        dashboards.portal_points(dashboards.TIMELINESS_PORTAL, ""),
    ):
        assert dashboards.exact(expr) in queries
        assert dashboards.exact(expr) in tested, f"no rule test of {dashboards.exact(expr)}"
