"""The pipeline's own figures, computed at scrape time instead of per message.

faust's Prometheus sensor updated histograms and dicts for every event (a large share of an event's
cost, docs/benchmarks.md); operators used a handful of its series. These are those, read
from the state layer when Prometheus asks: consumer lag from the store's applied offsets and
the consumer's end offsets, messages read from the log (exact: applied offsets, durable),
batches and their duration, status messages sent, rebalances, and the input topic as last
checked: its partition count (what "every partition counted" means) and whether it deletes
events (its retention).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from service.ingest.input_topic import InputTopicCheck
from service.state.ledger import Ledger
from service.state.store import disk_space

# Batches take from a millisecond (a few live events) to a second (1,000 events catching up).
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class PipelineCounters:
    """What the agents count as they go (per process: they restart at 0 with it)."""

    status_sent: int = 0
    rebalances: int = 0
    batch_seconds: Histogram | None = None

    def register(self, registry: CollectorRegistry) -> None:
        self.batch_seconds = Histogram(
            "motcua_batch_seconds",
            "Time to apply, save and announce one batch of events",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )


@dataclass(eq=False)  # registered in a registry, which keys collectors by identity
class PipelineCollector(Collector):
    """Scrape-time view of the consumer and the store, per partition this worker holds."""

    topic: str
    ledger: Ledger
    counters: PipelineCounters
    # Partition → the end offset the consumer last saw (faust's highwater), or None.
    end_offset: Callable[[int], int | None]
    store_path: Path | None = None
    # The input topic as last checked (None: not checked yet).
    input_topic: Callable[[], InputTopicCheck | None] = lambda: None

    def collect(self) -> Iterator[Any]:
        end = GaugeMetricFamily(
            "motcua_partition_end_offset",
            "Next offset to be written to the input partition (as the consumer last saw it)",
            labels=["topic", "partition"],
        )
        applied = GaugeMetricFamily(
            "motcua_partition_offset_applied",
            "Next offset the local store will apply (everything before it is counted)",
            labels=["topic", "partition"],
        )
        read = 0
        for partition, ledger in sorted(self.ledger.partitions.items()):
            meta = ledger.meta
            label = [self.topic, str(partition)]
            applied.add_metric(label, float(meta.applied + 1))
            read += meta.applied + 1 - meta.start
            highwater = self.end_offset(partition)
            if highwater is not None and highwater >= 0:
                end.add_metric(label, float(max(highwater, meta.applied + 1)))
        yield end
        yield applied
        messages = CounterMetricFamily(
            "motcua_messages_read",
            "Messages of the input topic folded into the partitions this worker counts",
        )
        messages.add_metric([], float(read))
        yield messages
        sent = CounterMetricFamily(
            "motcua_status_messages_sent", "Status messages handed to the producer"
        )
        sent.add_metric([], float(self.counters.status_sent))
        yield sent
        rebalances = CounterMetricFamily(
            "motcua_rebalances", "Partition assignments this worker received"
        )
        rebalances.add_metric([], float(self.counters.rebalances))
        yield rebalances
        checked = self.input_topic()
        if checked is not None and checked.partitions > 0:
            # The partitions every figure is a sum over: dashboards show a total only while
            # the workers' motcua_partitions_active add up to this, each partition once.
            count = GaugeMetricFamily(
                "motcua_input_topic_partitions",
                "Partitions of the input topic, as last checked (the workers must count all)",
                labels=["topic"],
            )
            count.add_metric([checked.topic], float(checked.partitions))
            yield count
        if checked is not None:
            # The record must not expire: 1 while a setting deletes events (alert
            # MotcuaInputTopicDeletesEvents), so the fix shows as the series going to 0.
            finite = GaugeMetricFamily(
                "motcua_input_topic_retention_finite",
                "1 if this retention setting of the input topic deletes events (it must be -1)",
                labels=["topic", "setting"],
            )
            expiring = checked.finite
            for name, value in checked.retention.items():
                if value is not None:
                    finite.add_metric([checked.topic, name], 1.0 if name in expiring else 0.0)
            yield finite
        space = disk_space(self.store_path) if self.store_path is not None else None
        if space is not None:
            free = GaugeMetricFamily(
                "motcua_store_disk_free_bytes",
                "Free bytes on the filesystem of the local store (full: the worker stops)",
            )
            free.add_metric([], float(space.free))
            yield free
            size = GaugeMetricFamily(
                "motcua_store_disk_size_bytes", "Size of the filesystem of the local store"
            )
            size.add_metric([], float(space.total))
            yield size
