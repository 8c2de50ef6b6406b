"""Grafana dashboards for motcua, as code (grafana-foundation-sdk, Grafana 11.6 build).

`python deploy/grafana/generate.py` rewrites deploy/grafana/dashboards/*.json; the tests
check that the committed JSON equals a fresh render. Panel titles are Vietnamese where
operators read them that way; descriptions are English.

Dossier and event counters are read through the recorded sums of
deploy/prometheus/rules/motcua.rules.yml (`agency_channel:motcua_dossiers_received_total:sum`
and friends): the raw per-worker counters jump when partitions move between workers.

Exact or absent: every query of business series (motcua_dossiers_*, motcua_overdue_*,
motcua_timeliness_*, motcua_index_*, motcua_steps_* and the rules named after them) is gated
in `query` by COMPLETE, so a panel shows no data while a partition is not counted rather
than the sum of the others.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from grafana_foundation_sdk.builders import (
    bargauge,
    dashboard,
    piechart,
    prometheus,
    stat,
    timeseries,
)
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import table as table_builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import piechart as piechart_model
from grafana_foundation_sdk.models import prometheus as prometheus_model

from service.domain.index import COMPARED, INDICATORS, TIMELINESS_PORTAL, Indicator

#: Must equal the uid in provisioning/datasources/prometheus.yaml.
DATASOURCE_UID = "motcua-prometheus"
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
TIMEZONE = "Asia/Ho_Chi_Minh"
AGENCY_DASHBOARD_UID = "motcua-agency"

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)


# --- exact or absent -------------------------------------------------------------------

#: True (a sample) only while every partition of the input topic is counted, each by exactly
#: one ready worker: the ready workers hold as many partitions as the topic has
#: (motcua_partitions_active is 0 while a worker is not ready, and it then exports no dossier
#: series), and as many distinct ones. A worker down, catching up, or a partition held twice
#: for a scrape during a rebalance: no sample. `motcua report` and the board refuse a total
#: the same way (service/outputs/coverage.py).
COMPLETE = (
    "(sum(motcua_partitions_active) == max(motcua_input_topic_partitions)"
    " and on () count(count by (partition) ("
    "motcua_partition_ready == 1 and on (job, instance) motcua_ready == 1"
    ")) == max(motcua_input_topic_partitions))"
)
#: The business series (per-agency dossier figures, summed over the workers) and every
#: recording rule named after them: a sum of some partitions is not the center's figure.
BUSINESS = re.compile(r"motcua_(dossiers|overdue|timeliness|index|steps)_")
_SORTED = re.compile(r"(sort_desc|sort)\((.*)\)", re.DOTALL)


def exact(expr: str) -> str:
    """`expr`, answered only while every partition is counted (COMPLETE): no data rather
    than a partial sum, and an `or vector(0)` inside cannot turn "incomplete" into 0. Kept
    inside a sort so that the order stays."""
    if not BUSINESS.search(expr):
        return expr
    sorted_ = _SORTED.fullmatch(expr)
    if sorted_ and _balanced(sorted_.group(2)):
        return f"{sorted_.group(1)}({exact(sorted_.group(2))})"
    return f"({expr}) and on () {COMPLETE}"


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


# --- small builders -------------------------------------------------------------------


def query(
    expr: str, legend: str = "", *, instant: bool = False, table: bool = False
) -> prometheus.Dataquery:
    """One PromQL target; refIds are assigned per panel by `_finish`. A query of business
    series is gated by `exact`: every panel gets it here, none by hand."""
    target = prometheus.Dataquery().expr(exact(expr)).datasource(DATASOURCE)
    if legend:
        target = target.legend_format(legend)
    if table:
        target = target.format(prometheus_model.PromQueryFormat.TABLE)
    return target.instant() if instant or table else target.range()


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


GREEN_ONLY = thresholds((None, "green"))
#: Any open overdue dossier is worth a red number.
RED_ABOVE_ZERO = thresholds((None, "green"), (1, "red"))
#: The seeds' targets: the 2% provincial target (98% on time), the 10% ceiling (90%).
ON_TIME_TARGETS = thresholds((None, "red"), (0.90, "orange"), (0.98, "green"))
#: QĐ 766 timeliness points out of 20, same cut-offs as ON_TIME_TARGETS.
SCORE_TARGETS = thresholds((None, "red"), (18, "orange"), (19.6, "green"))


def stat_panel(
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    unit: str = "short",
    span: int = 4,
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .targets(list(targets))
        .unit(unit)
        .thresholds(GREEN_ONLY)
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .height(5)
        .span(span)
    )


def timeseries_panel(
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    unit: str = "short",
    stacked: bool = False,
    span: int = 12,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .targets(list(targets))
        .unit(unit)
        .min(0)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .height(8)
        .span(span)
    )
    if stacked:
        panel = panel.fill_opacity(30).stacking(
            common_builders.StackingConfig().mode(common.StackingMode.NORMAL)
        )
    return panel


def channel_share_panel(description: str, expr: str) -> piechart.Panel:
    return (
        piechart.Panel()
        .title("Tiếp nhận theo kênh")
        .description(description)
        .with_target(query(expr, "{{channel}}", instant=True))
        .pie_type(piechart_model.PieChartType.DONUT)
        .display_labels([piechart_model.PieChartLabels.PERCENT])
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .height(8)
        .span(8)
    )


def _finish(built: model.Dashboard) -> model.Dashboard:
    """Give every panel a stable id and every target a refId (A, B, ...)."""
    for panel_id, panel in enumerate(built.panels or [], start=1):
        panel.id_val = panel_id
        for index, target in enumerate(getattr(panel, "targets", None) or []):
            target.ref_id = chr(ord("A") + index)
    return built


def _base(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["motcua"])
        .timezone(TIMEZONE)
        .time("now-24h", "now")
        .refresh("30s")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard.DashboardLink("motcua")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags(["motcua"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


# --- dashboards -----------------------------------------------------------------------


# The center's live board (`motcua board`, docs/board.md) where docker-compose.yml
# publishes it; a deployment behind another address edits the link in Grafana.
BOARD_URL = "http://localhost:6080/"


def center_overview() -> model.Dashboard:
    agency_table = (
        table_builders.Panel()
        .title("Theo cơ quan")
        .description(
            "One row per agency: open dossiers, open overdue, overdue without an apology "
            "letter, on-time share of dossiers handled in 7 days, dossiers received in the "
            "selected range. Click an agency code to open its dashboard."
        )
        .targets(
            [
                query("sum by (agency) (motcua_dossiers_open)", table=True),
                query('sum by (agency) (motcua_dossiers_open{state="overdue"})', table=True),
                query("sum by (agency) (motcua_overdue_without_apology)", table=True),
                query("agency:motcua_dossiers_on_time:ratio7d", table=True),
                query(
                    "sum by (agency) "
                    "(increase(agency_channel:motcua_dossiers_received_total:sum[$__range]))",
                    table=True,
                ),
            ]
        )
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "renameByName": {
                        "agency": "Cơ quan",
                        "Value #A": "Đang xử lý",
                        "Value #B": "Quá hạn",
                        "Value #C": "Quá hạn chưa xin lỗi",
                        "Value #D": "Đúng hạn (7 ngày)",
                        "Value #E": "Tiếp nhận",
                    },
                },
            )
        )
        .override_by_name(
            "Đúng hạn (7 ngày)",
            [model.DynamicConfigValue(id_val="unit", value="percentunit")],
        )
        .override_by_name(
            "Cơ quan",
            [
                model.DynamicConfigValue(
                    id_val="links",
                    value=[
                        {
                            "title": "Cơ quan ${__value.text}",
                            "url": f"/d/{AGENCY_DASHBOARD_UID}/?var-agency=${{__value.raw}}"
                            "&${__url_time_range}",
                        }
                    ],
                )
            ],
        )
        .sort_by([common_builders.TableSortByFieldState().display_name("Quá hạn").desc(True)])
        .height(10)
        .span(16)
    )
    # The QĐ 766 gauges are ratios each worker computes over its own partitions (a random
    # share of every agency's dossiers): averaging the workers approximates the agency's
    # ratio: sum the counts of every worker, then divide.
    ranking = (
        bargauge.Panel()
        .title("Xếp hạng chỉ số đúng hạn (QĐ 766)")
        .description(
            "Agencies ranked by the timeliness score of the national real-time index "
            "(Quyết định 766/QĐ-TTg): 20 x (closed early or on time + open within the "
            "deadline) / dossiers handled this month. 20 is the maximum."
        )
        .with_target(
            query(
                'sort_desc(20 * sum by (agency) (motcua_timeliness_in_time{period="month"})'
                ' / sum by (agency) (motcua_timeliness_handled{period="month"}))',
                "{{agency}}",
                instant=True,
            )
        )
        .unit("short")
        .decimals(2)
        .min(0)
        .max(20)
        .thresholds(SCORE_TARGETS)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .height(10)
        .span(8)
    )
    built = (
        _base(
            "motcua-center",
            "Trung tâm Phục vụ hành chính công — Tổng quan",
            "Center overview: dossiers received, open, overdue and on time across all agencies.",
        )
        .link(
            dashboard.DashboardLink("Bảng theo dõi và hồ sơ cần xử lý (motcua board)")
            .type(model.DashboardLinkType.LINK)
            .url(BOARD_URL)
            .tooltip("Per-agency figures and the overdue queue, dossier by dossier")
            .icon("dashboard")
            .target_blank(True)
        )
        .with_row(dashboard.Row("Hôm nay"))
        .with_panel(
            stat_panel(
                "Tiếp nhận hôm nay",
                "Dossiers received since local midnight (Asia/Ho_Chi_Minh), all channels.",
                query(
                    "sum(increase(agency_channel:motcua_dossiers_received_total:sum[$__range]))",
                    instant=True,
                ),
            )
            .time_from("now/d")
            .hide_time_override(True)
            .decimals(0)
        )
        .with_panel(
            stat_panel(
                "Đang xử lý",
                "Dossiers open now: in time, due soon, overdue, paused for a supplement, "
                "or ready to return.",
                query("sum(motcua_dossiers_open)", instant=True),
            )
        )
        .with_panel(
            stat_panel(
                "Hồ sơ quá hạn",
                "Open dossiers past their appointment date (ngày hẹn trả).",
                query('sum(motcua_dossiers_open{state="overdue"})', instant=True),
            ).thresholds(RED_ABOVE_ZERO)
        )
        .with_panel(
            stat_panel(
                "Quá hạn chưa xin lỗi",
                "Open overdue dossiers without an apology letter and new appointment "
                "(văn bản xin lỗi và hẹn lại).",
                query("sum(motcua_overdue_without_apology)", instant=True),
            ).thresholds(RED_ABOVE_ZERO)
        )
        .with_panel(
            stat_panel(
                "Tỷ lệ đúng hạn (7 ngày)",
                "Share of dossiers handled in the last 7 days that were closed early or on "
                "time, or are open within the deadline. Target 98% (overdue below 2%), "
                "ceiling 90%.",
                query(":motcua_dossiers_on_time:ratio7d", instant=True),
                unit="percentunit",
            )
            .decimals(1)
            .thresholds(ON_TIME_TARGETS)
        )
        .with_panel(
            stat_panel(
                "Mới quá hạn (1 giờ)",
                "Dossiers that passed their due date in the last hour.",
                query(":motcua_dossiers_became_overdue:increase1h", instant=True),
            )
            .decimals(0)
            .thresholds(RED_ABOVE_ZERO)
        )
        .with_row(dashboard.Row("Xu hướng"))
        .with_panel(
            timeseries_panel(
                "Hồ sơ đang xử lý theo trạng thái",
                "Open dossiers by state: in_time, due_soon, overdue, paused (waiting for "
                "the citizen's supplement), ready (result ready to return).",
                query("sum by (state) (motcua_dossiers_open)", "{{state}}"),
                stacked=True,
            )
        )
        .with_panel(
            timeseries_panel(
                "Hồ sơ quá hạn",
                "Overdue trend: open overdue dossiers, and dossiers that became overdue in "
                "the preceding hour.",
                query('sum(motcua_dossiers_open{state="overdue"})', "Đang quá hạn"),
                query(":motcua_dossiers_became_overdue:increase1h", "Mới quá hạn / giờ"),
            )
        )
        .with_row(dashboard.Row("Cơ quan"))
        .with_panel(agency_table)
        .with_panel(ranking)
        .with_row(dashboard.Row("Kênh và kết quả"))
        .with_panel(
            channel_share_panel(
                "Dossiers received in the selected range by channel: direct (in person), "
                "online, postal. Targets quoted by the centers: 25% online, 15% postal.",
                "sum by (channel) "
                "(increase(agency_channel:motcua_dossiers_received_total:sum[$__range]))",
            )
        )
        .with_panel(
            timeseries_panel(
                "Hồ sơ hoàn thành theo kết quả",
                "Dossiers whose clock ended (approved, rejected or returned) in the "
                "preceding hour, by outcome: early, on_time, late.",
                query(
                    "sum by (outcome) "
                    "(increase(agency_outcome:motcua_dossiers_completed_total:sum[1h]))",
                    "{{outcome}}",
                ),
                stacked=True,
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Hồ sơ bị rút (24 giờ)",
                "Dossiers withdrawn by the citizen in the preceding 24 hours, per agency.",
                query(
                    "increase(agency:motcua_dossiers_withdrawn_total:sum[1d])",
                    "{{agency}}",
                ),
                span=8,
            )
        )
        .build()
    )
    return _finish(built)


def agency_drilldown() -> model.Dashboard:
    agency = (
        dashboard.QueryVariable("agency")
        .label("Cơ quan")
        .description("Agency code (from the metrics' agency label).")
        .datasource(DATASOURCE)
        .query("label_values(motcua_dossiers_open, agency)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.NATURAL_ASC)
    )
    # Departments holding the agency's steps (units file codes, `other`, `none`): one
    # repeated row each.
    department = (
        dashboard.QueryVariable("department")
        .label("Phòng ban")
        .description("Departments holding the agency's processing steps (units file codes).")
        .datasource(DATASOURCE)
        .query('label_values(motcua_steps_open{agency="$agency"}, department)')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.NATURAL_ASC)
        .multi(True)
        .include_all(True)
    )
    built = (
        _base(
            AGENCY_DASHBOARD_UID,
            "Cơ quan $agency",
            "Agency drill-down: one agency's open stock, overdue dossiers, volumes and "
            "QĐ 766 timeliness score.",
        )
        .with_variable(agency)
        .with_variable(department)
        .with_row(dashboard.Row("Hiện tại"))
        .with_panel(
            stat_panel(
                "Đang xử lý",
                "Open dossiers of the agency.",
                query('sum(motcua_dossiers_open{agency="$agency"})', instant=True),
            )
        )
        .with_panel(
            stat_panel(
                "Hồ sơ quá hạn",
                "Open dossiers of the agency past their appointment date.",
                query('sum(motcua_dossiers_open{agency="$agency",state="overdue"})', instant=True),
            ).thresholds(RED_ABOVE_ZERO)
        )
        .with_panel(
            stat_panel(
                "Quá hạn chưa xin lỗi",
                "Open overdue dossiers of the agency with no apology letter recorded.",
                query('sum(motcua_overdue_without_apology{agency="$agency"})', instant=True),
            ).thresholds(RED_ABOVE_ZERO)
        )
        .with_panel(
            stat_panel(
                "Tỷ lệ đúng hạn (7 ngày)",
                "Share of the agency's dossiers handled in the last 7 days that were closed "
                "early or on time, or are open within the deadline.",
                query(
                    'sum(agency:motcua_dossiers_on_time:ratio7d{agency="$agency"})', instant=True
                ),
                unit="percentunit",
            )
            .decimals(1)
            .thresholds(ON_TIME_TARGETS)
        )
        .with_panel(
            stat_panel(
                "Điểm đúng hạn tháng",
                "QĐ 766 timeliness score for this month, out of 20.",
                query(
                    '20 * sum(motcua_timeliness_in_time{agency="$agency",period="month"})'
                    ' / sum(motcua_timeliness_handled{agency="$agency",period="month"})',
                    instant=True,
                ),
            )
            .decimals(2)
            .thresholds(SCORE_TARGETS)
        )
        .with_panel(
            stat_panel(
                "Điểm đúng hạn năm",
                "QĐ 766 timeliness score for this year, out of 20.",
                query(
                    '20 * sum(motcua_timeliness_in_time{agency="$agency",period="year"})'
                    ' / sum(motcua_timeliness_handled{agency="$agency",period="year"})',
                    instant=True,
                ),
            )
            .decimals(2)
            .thresholds(SCORE_TARGETS)
        )
        .with_row(dashboard.Row("Hồ sơ"))
        .with_panel(
            timeseries_panel(
                "Hồ sơ đang xử lý theo trạng thái",
                "The agency's open dossiers by state.",
                query('sum by (state) (motcua_dossiers_open{agency="$agency"})', "{{state}}"),
                stacked=True,
            )
        )
        .with_panel(
            timeseries_panel(
                "Hồ sơ quá hạn",
                "Open overdue dossiers of the agency, and dossiers that became overdue in the "
                "preceding hour.",
                query(
                    'sum(motcua_dossiers_open{agency="$agency",state="overdue"})', "Đang quá hạn"
                ),
                query(
                    'sum(agency:motcua_dossiers_became_overdue:increase1h{agency="$agency"})',
                    "Mới quá hạn / giờ",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Tiếp nhận mỗi giờ theo kênh",
                "Dossiers received by the agency in the preceding hour, by channel.",
                query(
                    "sum by (channel) "
                    '(increase(agency_channel:motcua_dossiers_received_total:sum{agency="$agency"}[1h]))',
                    "{{channel}}",
                ),
                stacked=True,
            )
        )
        .with_panel(
            timeseries_panel(
                "Hoàn thành mỗi giờ theo kết quả",
                "Dossiers of the agency whose clock ended in the preceding hour, by outcome.",
                query(
                    "sum by (outcome) "
                    '(increase(agency_outcome:motcua_dossiers_completed_total:sum{agency="$agency"}[1h]))',
                    "{{outcome}}",
                ),
                stacked=True,
            )
        )
        .with_row(dashboard.Row("Kênh, rút hồ sơ, chỉ số"))
        .with_panel(
            channel_share_panel(
                "The agency's dossiers received in the selected range by channel.",
                "sum by (channel) "
                '(increase(agency_channel:motcua_dossiers_received_total:sum{agency="$agency"}[$__range]))',
            )
        )
        .with_panel(
            timeseries_panel(
                "Hồ sơ bị rút (24 giờ)",
                "Dossiers of the agency withdrawn by the citizen in the preceding 24 hours.",
                query(
                    'sum(increase(agency:motcua_dossiers_withdrawn_total:sum{agency="$agency"}[1d]))',
                    "Rút hồ sơ",
                ),
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Tỷ lệ đúng hạn (QĐ 766)",
                "QĐ 766 timeliness rate of the agency for the current month and year.",
                query(
                    'sum by (period) (motcua_timeliness_in_time{agency="$agency"})'
                    ' / sum by (period) (motcua_timeliness_handled{agency="$agency"})',
                    "{{period}}",
                ),
                unit="percentunit",
                span=8,
            ).max(1)
        )
        .with_row(dashboard.Row("Phòng ban $department").repeat("department"))
        .with_panel(
            stat_panel(
                "Hồ sơ quá hạn đang giữ",
                "Open overdue dossiers whose open processing step this department of the "
                "agency holds (none: overdue with no step open).",
                query(
                    'sum(motcua_dossiers_overdue_held{agency="$agency",department="$department"})',
                    instant=True,
                ),
            ).thresholds(RED_ABOVE_ZERO)
        )
        .with_panel(
            timeseries_panel(
                "Bước xử lý đang mở theo trạng thái",
                "The department's open processing steps by their own due: in time, due soon, "
                "overdue, or paused with the dossier.",
                query(
                    'sum by (state) (motcua_steps_open{agency="$agency",department="$department"})',
                    "{{state}}",
                ),
                stacked=True,
                span=4,
            )
        )
        .with_panel(
            timeseries_panel(
                "Bước hoàn thành mỗi giờ theo kết quả",
                "The department's processing steps ended in the preceding hour, on time or "
                "late (liên thông: counted for the agency whose step it was).",
                query(
                    "sum by (outcome) (increase("
                    "agency_department_outcome:motcua_steps_completed_total:sum"
                    '{agency="$agency",department="$department"}[1h]))',
                    "{{outcome}}",
                ),
                stacked=True,
                span=4,
            )
        )
        .build()
    )
    return _finish(built)


def pipeline_health() -> model.Dashboard:
    up_mapping = model.ValueMap(
        options={
            "0": model.ValueMappingResult(text="DOWN", color="red"),
            "1": model.ValueMappingResult(text="UP", color="green"),
        }
    )
    ready_mapping = model.ValueMap(
        options={
            "0": model.ValueMappingResult(text="chưa sẵn sàng", color="red"),
            "1": model.ValueMappingResult(text="sẵn sàng", color="green"),
        }
    )
    open_mapping = model.ValueMap(
        options={
            "0": model.ValueMappingResult(text="đóng cửa", color="blue"),
            "1": model.ValueMappingResult(text="mở cửa", color="green"),
        }
    )
    retention_mapping = model.ValueMap(
        options={
            "0": model.ValueMappingResult(text="giữ mãi", color="green"),
            "1": model.ValueMappingResult(text="XOÁ sự kiện", color="red"),
        }
    )
    built = (
        _base(
            "motcua-pipeline",
            "motcua — Đường ống dữ liệu",
            "Pipeline health: workers, event throughput, consumer lag, dead-letter topic, "
            "rebalances and scrape cost.",
        )
        .with_row(dashboard.Row("Worker"))
        .with_panel(
            stat_panel(
                "Scrape",
                "Whether Prometheus can scrape each worker's /metrics (up).",
                query('up{job="motcua"}', "{{instance}}", instant=True),
                span=3,
            ).mappings([up_mapping])
        )
        .with_panel(
            stat_panel(
                "Sẵn sàng",
                "motcua_ready per worker: partitions assigned and tables recovered.",
                query('motcua_ready{job="motcua"}', "{{instance}}", instant=True),
                span=3,
            ).mappings([ready_mapping])
        )
        .with_panel(
            stat_panel(
                "Partition đang xử lý",
                "Active partitions per worker (0 while not ready), and the partitions of "
                "dossier-events as last checked: together the workers must hold every one, "
                "each once, or the dossier panels of the other dashboards show no data.",
                query("sum by (instance) (motcua_partitions_active)", "{{instance}}", instant=True),
                query("max by (topic) (motcua_input_topic_partitions)", "{{topic}}", instant=True),
                span=3,
            )
        )
        .with_panel(
            stat_panel(
                "Consumer lag",
                "Events on dossier-events not yet counted by the workers (end offset "
                "minus the next offset their stores will apply).",
                query("sum(topic:motcua_consumer_lag:sum)", instant=True),
            )
        )
        .with_panel(
            stat_panel(
                "Sự kiện mới nhất",
                "Age of the newest processed event (Kafka timestamp; after a restart, the "
                "previous process's newest, for a day). Grows overnight; should stay small "
                "during working hours.",
                query(
                    "time() - max(last_over_time(motcua_last_event_timestamp_seconds[1d]))",
                    instant=True,
                ),
                unit="s",
            )
        )
        .with_panel(
            stat_panel(
                "Mới nhận (tin nhắn/giây)",
                "Messages of dossier-events folded into the workers' stores per second "
                "(the recorded sum over the workers: the count moves with its partitions).",
                query(
                    "sum(rate(:motcua_messages_read_total:sum[$__rate_interval]))",
                    instant=True,
                ),
                unit="reqps",
            )
        )
        .with_panel(
            stat_panel(
                "Lưu giữ dossier-events",
                "Whether dossier-events keeps its events forever, as the workers read it every "
                "MOTCUA_TOPIC_CHECK_SECONDS: a retention setting that deletes events is red "
                "(the log is the record; fix with `motcua keep-events`).",
                query(
                    "max by (topic, setting) (motcua_input_topic_retention_finite)",
                    "{{topic}} {{setting}}",
                    instant=True,
                ),
                span=3,
            ).mappings([retention_mapping])
        )
        .with_panel(
            stat_panel(
                "Giờ làm việc",
                "Whether the center is open now by the workers' working calendar "
                "(motcua_center_open; with no worker scraped, Monday-Friday 07:30-17:00): "
                "MotcuaPipelineStalled (no_events) expects events only while it is open.",
                query("motcua:working_hours", instant=True),
                span=3,
            ).mappings([open_mapping])
        )
        .with_row(dashboard.Row("Luồng sự kiện"))
        .with_panel(
            timeseries_panel(
                "Sự kiện mỗi giây theo loại",
                "Accepted dossier events per second by type (received, appraised, "
                "approved, returned, ...).",
                query(
                    "sum by (type) (rate(type:motcua_events_total:sum[$__rate_interval]))",
                    "{{type}}",
                ),
                unit="reqps",
                stacked=True,
            )
        )
        .with_panel(
            timeseries_panel(
                "Consumer lag theo partition",
                "Per partition of dossier-events: end offset minus the next offset the store "
                "will apply. A line that keeps rising is a stalled or too slow worker.",
                query(
                    "sum by (topic, partition) (motcua_partition_end_offset"
                    " - motcua_partition_offset_applied)",
                    "{{topic}} {{partition}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Hàng đợi lỗi (DLQ) và trùng lặp",
                "Events sent to dossier-events-dlq per second by rejection reason, and "
                "duplicate events (same event_id) ignored per second (recorded sums over the "
                "workers: both counts move with their partitions).",
                query(
                    "sum by (reason) "
                    "(rate(reason:motcua_events_rejected_total:sum[$__rate_interval]))",
                    "DLQ {{reason}}",
                ),
                query(
                    "sum(rate(:motcua_events_duplicate_total:sum[$__rate_interval]))", "trùng lặp"
                ),
                unit="reqps",
            )
        )
        .with_panel(
            timeseries_panel(
                "Tin nhắn trạng thái gửi đi",
                "Status messages (due soon, overdue, ready, closed) produced per second "
                "to dossier-status.",
                query(
                    "sum(rate(motcua_status_messages_sent_total[$__rate_interval]))",
                    "dossier-status",
                ),
                unit="reqps",
            )
        )
        .with_row(dashboard.Row("Cổng HTTP (gateway)"))
        .with_panel(
            stat_panel(
                "Gateway sẵn sàng",
                "motcua_gateway_ready per gateway: whether the broker answered its producer at "
                "this scrape. Red: senders get 503 and send again later.",
                query("motcua_gateway_ready", "{{instance}}", instant=True),
                span=6,
            ).mappings([ready_mapping])
        )
        .with_panel(
            timeseries_panel(
                "Yêu cầu theo mã trạng thái",
                "HTTP requests per second to motcua gateway by route and status: 200 all "
                "accepted, 207 some rejected, 422 all rejected, 401 bad token, 413 too large, "
                "429 rate-limited, 503 Kafka did not acknowledge (nothing accepted).",
                query(
                    "sum by (route, status) "
                    "(rate(motcua_gateway_requests_total[$__rate_interval]))",
                    "{{route}} {{status}}",
                ),
                unit="reqps",
                span=6,
            )
        )
        .with_panel(
            timeseries_panel(
                "Mục bị từ chối theo lý do",
                "Items (events or national-sync dossiers) per second: refused by reason and "
                "calling system, and accepted (acknowledged by Kafka) by system.",
                query(
                    "sum by (source, reason) "
                    "(rate(motcua_gateway_items_rejected_total[$__rate_interval]))",
                    "từ chối {{source}} {{reason}}",
                ),
                query(
                    "sum by (source) (rate(motcua_gateway_items_accepted_total[$__rate_interval]))",
                    "nhận {{source}}",
                ),
                unit="reqps",
                span=6,
            )
        )
        .with_panel(
            timeseries_panel(
                "Độ trễ ghi Kafka",
                "From sending a request's events to Kafka's last acknowledgement (acks=all), "
                "median and 99th percentile, and requests answered 503 per second.",
                query(
                    "histogram_quantile(0.5, sum by (le) "
                    "(rate(motcua_gateway_produce_seconds_bucket[$__rate_interval])))",
                    "p50",
                ),
                query(
                    "histogram_quantile(0.99, sum by (le) "
                    "(rate(motcua_gateway_produce_seconds_bucket[$__rate_interval])))",
                    "p99",
                ),
                query(
                    "sum(rate(motcua_gateway_broker_unavailable_total[$__rate_interval]))",
                    "503/s",
                ),
                unit="s",
                span=6,
            )
        )
        .with_row(dashboard.Row("Chi phí"))
        .with_panel(
            timeseries_panel(
                "Đĩa còn trống (store)",
                "Free share of the disk under each worker's store (MOTCUA_DATA_DIR). "
                "The store grows with every dossier ever received; MotcuaStoreDiskFilling "
                "opens a ticket under 10% free or when it would be full within a day.",
                query(
                    "motcua_store_disk_free_bytes / motcua_store_disk_size_bytes",
                    "{{instance}}",
                ),
                unit="percentunit",
                span=6,
            )
        )
        .with_panel(
            timeseries_panel(
                "Thời gian xử lý một lô",
                "Time the worker spends on one batch of events (apply, save, announce), "
                "median and 95th percentile.",
                query(
                    "histogram_quantile(0.5, sum by (le) "
                    "(rate(motcua_batch_seconds_bucket[$__rate_interval])))",
                    "p50",
                ),
                query(
                    "histogram_quantile(0.95, sum by (le) "
                    "(rate(motcua_batch_seconds_bucket[$__rate_interval])))",
                    "p95",
                ),
                unit="s",
                span=6,
            )
        )
        .with_panel(
            timeseries_panel(
                "Thời gian scrape",
                "How long each worker takes to render /metrics. faust renders it inside the "
                "event loop, so a slow scrape also delays event processing.",
                query('scrape_duration_seconds{job="motcua"}', "{{instance}}"),
                unit="s",
                span=6,
            )
        )
        .with_panel(
            timeseries_panel(
                "Rebalance",
                "Partition assignments per worker since it started. Steps mean partitions "
                "moved: a worker restarted, joined or left.",
                query("sum by (instance) (motcua_rebalances_total)", "{{instance}}"),
                span=6,
            )
        )
        .build()
    )
    return _finish(built)


INDEX_DASHBOARD_UID = "motcua-index"


def index_points(indicator: Indicator, selector: str, by: str = "") -> str:
    """PromQL for an indicator's points from the workers' summed numerators and
    denominators (a ratio of one worker's partitions is not the agency's), under the
    indicator's rule: max × ratio, or full points from the target on."""
    grouping = f" by ({by})" if by else ""
    labels = f'indicator="{indicator.code}",period="month"{selector}'
    ratio = (
        f"(sum{grouping} (motcua_index_numerator{{{labels}}})"
        f" / sum{grouping} (motcua_index_denominator{{{labels}}}))"
    )
    scale = f" / {indicator.target:g}" if indicator.target else ""
    return f"clamp_max({indicator.maximum:g} * {ratio}{scale}, {indicator.maximum:g})"


def portal_points(indicator: Indicator, selector: str, family: str = "portal") -> str:
    """PromQL for an indicator's points as the portal scores them, from the workers' summed
    portal numerators and denominators (`family` "portal": this month's,
    motcua_index_portal_*; "projected": the month-end projection, motcua_index_projected_*).
    The portal gives 0 for an empty denominator, and so does this (`> 0`, `or vector(0)`)."""
    period = ',period="month"' if family == "portal" else ""
    labels = f'indicator="{indicator.code}"{period}{selector}'
    ratio = (
        f"(sum (motcua_index_{family}_numerator{{{labels}}})"
        f" / (sum (motcua_index_{family}_denominator{{{labels}}}) > 0))"
    )
    scale = f" / {indicator.target:g}" if indicator.target else ""
    return (
        f"(clamp_max({indicator.maximum:g} * {ratio}{scale}, {indicator.maximum:g}) or vector(0))"
    )


def portal_total(selector: str, family: str = "portal") -> str:
    """The total compared with the portal: its points of the indicators whose weight is
    verified (3.3 left out), out of 50."""
    return " + ".join(portal_points(i, selector, family) for i in COMPARED)


PORTAL_LABEL = "Cổng DVCQG (cách chấm của Cổng)"
MOTCUA_LABEL = "motcua: dữ kiện đã biết"
UNVERIFIED = "trọng số chưa kiểm chứng"
EXCLUDED = ", ".join(i.ref for i in INDICATORS if not i.weight_verified)


def _indicator_title(indicator: Indicator) -> str:
    title = f"{indicator.ref} {indicator.title.split(' ÷ ')[0]}"
    return title if indicator.weight_verified else f"{title} ({UNVERIFIED})"


def _rule(indicator: Indicator) -> str:
    return "linear" if indicator.target is None else f"T {indicator.target:.0%}"


def national_index() -> model.Dashboard:
    """The QĐ 766 national index (docs/report.md) this month, the portal's reading first
    (its denominators, 0 when empty: the figure to compare with the portal), then motcua's
    (the dossiers whose reported facts decide each indicator); for the center and one
    agency, with the month-end projection. 3.3's weight is unverified: marked, in no total."""
    agency = (
        dashboard.QueryVariable("agency")
        .label("Cơ quan")
        .description("Agency code (from the metrics' agency label).")
        .datasource(DATASOURCE)
        .query("label_values(motcua_index_denominator, agency)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.NATURAL_ASC)
    )
    built = (
        _base(
            INDEX_DASHBOARD_UID,
            "Chỉ số QĐ 766",
            "The national service index (QĐ 766/QĐ-TTg) this month: first as the portal will "
            "score it (Cổng DVCQG: its denominators, 0 for an empty one), then motcua's "
            "reading (known facts only); groups that need the procedure catalogue are not "
            f"shown (docs/report.md lists them). {EXCLUDED}: weight unverified, in no total.",
        )
        .with_variable(agency)
        .with_row(dashboard.Row(f"Toàn trung tâm, tháng này: {PORTAL_LABEL}"))
        .with_panel(
            stat_panel(
                f"Tổng so sánh với Cổng (/50, không tính {EXCLUDED})",
                "The portal's points of the eight indicators whose weight is verified, each "
                "0 when its denominator is empty, out of 50: the total to compare with the "
                f"portal's page (less what needs the catalogue). {EXCLUDED} left out.",
                query(portal_total(""), instant=True),
            ).decimals(2)
        )
        .with_panel(
            stat_panel(
                "Dự báo cuối tháng (/50)",
                "The same total at the month's end if no open dossier moves and none more is "
                "received (motcua_index_projected_*; docs/report.md, the month-end projection).",
                query(portal_total("", "projected"), instant=True),
            ).decimals(2)
        )
    )
    for indicator in INDICATORS:
        built = built.with_panel(
            stat_panel(
                _indicator_title(indicator),
                f"{indicator.title}, the portal's denominator, 0 when empty. Points (max "
                f"{indicator.maximum:g}) under the {_rule(indicator)} rule, {indicator.status} "
                "(docs/report.md)."
                + ("" if indicator.weight_verified else " Weight unverified: in no total."),
                query(portal_points(indicator, ""), instant=True),
            ).decimals(2)
        )
    built = built.with_row(dashboard.Row(f"Toàn trung tâm, tháng này: {MOTCUA_LABEL}"))
    for indicator in INDICATORS:
        built = built.with_panel(
            stat_panel(
                _indicator_title(indicator),
                f"{indicator.title}, over the dossiers whose reported facts decide it. Points "
                f"(max {indicator.maximum:g}) under the {_rule(indicator)} rule, "
                f"{indicator.status} (docs/report.md). Empty: no dossier reports it."
                + ("" if indicator.weight_verified else " Weight unverified: in no total."),
                query(index_points(indicator, ""), instant=True),
            ).decimals(2)
        )
    agency_selector = ',agency="$agency"'
    built = (
        built.with_row(dashboard.Row("Cơ quan $agency, tháng này"))
        .with_panel(
            timeseries_panel(
                f"Điểm từng chỉ số: {PORTAL_LABEL}",
                "The agency's points per indicator this month as the portal scores them "
                f"(summed over the workers; 0 when the denominator is empty). {EXCLUDED}: "
                "weight unverified.",
                *(query(portal_points(i, agency_selector), _legend(i)) for i in INDICATORS),
            )
        )
        .with_panel(
            timeseries_panel(
                f"Tổng so sánh với Cổng (/50, không tính {EXCLUDED}) và dự báo cuối tháng",
                "The agency's total compared with the portal this month, and the same at "
                "the month's end if no open dossier moves and none more is received.",
                query(portal_total(agency_selector), "Cổng DVCQG"),
                query(portal_total(agency_selector, "projected"), "dự báo cuối tháng"),
            )
        )
        .with_panel(
            timeseries_panel(
                f"Điểm từng chỉ số: {MOTCUA_LABEL}",
                "The agency's points per indicator this month over the dossiers whose reported "
                "facts decide each one (summed over the workers; none: nobody reports it).",
                *(query(index_points(i, agency_selector), _legend(i)) for i in INDICATORS),
            )
        )
        .with_panel(
            timeseries_panel(
                "Tiến độ: Cổng DVCQG và luật",
                "Timeliness points out of 20 this month: by the portal's rules (more than one "
                "supplement request is overdue; withdrawn dossiers count) and by the legal "
                "clock. docs/report.md lists every difference.",
                query(portal_points(TIMELINESS_PORTAL, agency_selector), "portal"),
                query(
                    '20 * sum(motcua_timeliness_in_time{agency="$agency",period="month"})'
                    ' / sum(motcua_timeliness_handled{agency="$agency",period="month"})',
                    "legal",
                ),
                span=12,
            )
        )
        .with_panel(
            timeseries_panel(
                "Dự báo điểm tiến độ cuối tháng",
                "Portal timeliness points at the month's end if no open dossier is resolved "
                "before it, per agency, and the alert threshold of the rules file "
                "(MotcuaTimelinessProjectedLow).",
                query("agency:motcua_timeliness_points_projected:month", "{{agency}}"),
                query("motcua:timeliness_points_projected:threshold", "threshold"),
                span=12,
            )
        )
        .build()
    )
    return _finish(built)


def _legend(indicator: Indicator) -> str:
    return indicator.code if indicator.weight_verified else f"{indicator.code} ({UNVERIFIED})"


#: File name in deploy/grafana/dashboards/ -> dashboard factory.
DASHBOARDS = {
    "center-overview.json": center_overview,
    "agency-drilldown.json": agency_drilldown,
    "pipeline-health.json": pipeline_health,
    "national-index.json": national_index,
}


# --- output ---------------------------------------------------------------------------


def render(built: model.Dashboard) -> str:
    """Stable JSON text for a dashboard (sorted keys, Vietnamese kept readable)."""
    return json.dumps(built, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """File name -> JSON text, freshly generated."""
    return {name: render(factory()) for name, factory in DASHBOARDS.items()}


def write(directory: Path = DASHBOARD_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _panel_targets(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield from panel.get("targets") or []
        yield from _panel_targets(panel.get("panels") or [])


def all_panel_queries() -> list[str]:
    """Every PromQL expression of every panel, as written (with $variables)."""
    exprs: list[str] = []
    for text in rendered().values():
        exprs.extend(target["expr"] for target in _panel_targets(json.loads(text)["panels"]))
    return exprs


def main() -> int:
    for path in write():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
