"""The pipeline figures come from the state layer at scrape time: lag = end − next applied."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.domain import WorkingCalendar
from service.ingest.input_topic import InputTopicCheck
from service.outputs.pipeline_metrics import PipelineCollector, PipelineCounters
from service.state.ledger import Ledger, PartitionLedger
from service.state.store import PartitionMeta

CAL = WorkingCalendar()


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_lag_messages_read_and_counters_from_the_state() -> None:
    ledger = Ledger(CAL)
    ledger.assign({0, 3})
    ledger.install(0, PartitionLedger(CAL, PartitionMeta(applied=99)))
    # Counted from offset 40 on: an operator accepted a log whose beginning was deleted.
    ledger.install(3, PartitionLedger(CAL, PartitionMeta(applied=49, start=40)))
    counters = PipelineCounters(status_sent=7, rebalances=2)
    registry = CollectorRegistry()
    counters.register(registry)
    ends = {0: 130, 3: None}
    registry.register(PipelineCollector("ev", ledger, counters, ends.get))
    counters.batch_seconds.observe(0.02)  # type: ignore[union-attr]
    got = samples(registry)
    part = (("partition", "0"), ("topic", "ev"))
    assert (
        got[("motcua_partition_end_offset", part)] - got[("motcua_partition_offset_applied", part)]
        == 30
    )
    # No end offset seen yet for partition 3: no end series rather than a wrong lag.
    assert ("motcua_partition_end_offset", (("partition", "3"), ("topic", "ev"))) not in got
    assert got[("motcua_messages_read_total", ())] == 100 + 10
    assert got[("motcua_status_messages_sent_total", ())] == 7
    assert got[("motcua_rebalances_total", ())] == 2
    assert got[("motcua_batch_seconds_count", ())] == 1


def test_the_input_topic_retention_is_exported_once_checked() -> None:
    ledger = Ledger(CAL)
    checked: list[InputTopicCheck] = []
    registry = CollectorRegistry()
    registry.register(
        PipelineCollector(
            "ev",
            ledger,
            PipelineCounters(),
            {}.get,
            input_topic=lambda: checked[-1] if checked else None,
        )
    )
    # Not checked yet: no series rather than a guess.
    assert not [key for key in samples(registry) if key[0].startswith("motcua_input_topic")]
    # Kafka's defaults: seven days, no size limit; a setting the broker did not give: none.
    checked.append(
        InputTopicCheck("ev", 8, 8, {"retention.ms": "604800000", "retention.bytes": "-1"})
    )
    got = samples(registry)
    setting = "motcua_input_topic_retention_finite"
    assert got[(setting, (("setting", "retention.ms"), ("topic", "ev")))] == 1
    assert got[(setting, (("setting", "retention.bytes"), ("topic", "ev")))] == 0
    checked.append(InputTopicCheck("ev", 8, 8, {"retention.ms": "-1", "retention.bytes": None}))
    got = samples(registry)
    assert got[(setting, (("setting", "retention.ms"), ("topic", "ev")))] == 0
    assert (setting, (("setting", "retention.bytes"), ("topic", "ev"))) not in got
