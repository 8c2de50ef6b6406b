"""The input topic's partition count is exported: the dashboards show a total only while the
workers' counted partitions cover it (deploy/grafana/generate.py, COMPLETE)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.domain import WorkingCalendar
from service.ingest.input_topic import InputTopicCheck
from service.outputs.pipeline_metrics import PipelineCollector, PipelineCounters
from service.state.ledger import Ledger

CAL = WorkingCalendar()
NAME = "motcua_input_topic_partitions"


def partitions(registry: CollectorRegistry) -> dict[tuple[tuple[str, str], ...], float]:
    text = generate_latest(registry).decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == NAME
    }


def collector(checked: list[InputTopicCheck]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(
        PipelineCollector(
            "ev",
            Ledger(CAL),
            PipelineCounters(),
            lambda partition: None,
            input_topic=lambda: checked[-1] if checked else None,
        )
    )
    return registry


def test_the_input_topics_partitions_are_exported_once_checked() -> None:
    checked: list[InputTopicCheck] = []
    registry = collector(checked)
    # Not checked yet: no count rather than a guess (and so no dashboard total).
    assert partitions(registry) == {}
    checked.append(InputTopicCheck("ev", 8, 8, {"retention.ms": "-1", "retention.bytes": "-1"}))
    assert partitions(registry) == {(("topic", "ev"),): 8}
    # Partitions added to the topic: the next check says so.
    checked.append(InputTopicCheck("ev", 12, 8, {"retention.ms": "-1", "retention.bytes": "-1"}))
    assert partitions(registry) == {(("topic", "ev"),): 12}


def test_a_missing_topic_exports_no_count() -> None:
    # 0 partitions (the topic does not exist): a count of 0 would make "0 of 0 counted" look
    # complete and the index panels' empty-denominator 0 show as the center's figure.
    registry = collector([InputTopicCheck("ev", 0, 8, {"retention.ms": None})])
    assert partitions(registry) == {}
