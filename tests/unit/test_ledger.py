"""The ledger: its sums equal the domain core's contributions however they were reached
(event by event, or rebuilt from the store), a rebuild announces no status change, and the
worker is ready only when every assigned partition is counted."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from ledger_tools import accept

from schemas import DossierEvent, parse_event
from service.domain import WorkingCalendar, contribution, fold
from service.domain.progress import fold_with_facts
from service.state import ledger as ledger_module
from service.state.ledger import NOTIFIED, Ledger, PartitionLedger
from service.state.store import PartitionMeta
from service.tools.simulate import SimulationConfig, generate

CAL = WorkingCalendar()
NOW = datetime.now(UTC)


def simulated(count: int, seed: int) -> list[DossierEvent]:
    config = SimulationConfig(dossiers=count, seed=seed, now=NOW, live_due_seconds=(1, 3))
    return [
        parse_event(orjson.dumps(raw), now=NOW, key=raw["dossier_id"].encode())
        for raw in generate(config)
    ]


def truth(by_dossier: dict[str, list[DossierEvent]], now: datetime) -> Counter[tuple]:
    out: Counter[tuple] = Counter()
    for dossier_id, events in by_dossier.items():
        out.update(contribution(fold(dossier_id, events, CAL), now, CAL))
    return +out


def test_event_by_event_and_rebuilt_sums_agree_with_the_domain_core() -> None:
    events = simulated(400, seed=8)
    random.Random(8).shuffle(events)  # late events reach stored dossiers out of order
    seen: dict[str, list[DossierEvent]] = defaultdict(list)
    live = Ledger.counting(CAL, range(4))
    for event in events:
        before = fold(event.dossier_id, seen[event.dossier_id], CAL)
        seen[event.dossier_id].append(event)
        dossier, facts = fold_with_facts(event.dossier_id, seen[event.dossier_id], CAL)
        accept(live, hash(event.dossier_id) % 4, dossier, NOW, facts, before=before)
    later = NOW + timedelta(seconds=5)  # past the live dues: the timer must turn them
    changes = live.tick(later)
    assert any(change.status == "overdue" for change in changes)
    assert live.totals() == truth(seen, later)

    rebuilt = Ledger(CAL)
    rebuilt.assign(range(4))
    assert not rebuilt.ready and set(rebuilt.waiting) == {0, 1, 2, 3}
    for partition in range(4):
        stored = [
            fold_with_facts(dossier_id, history, CAL)
            for dossier_id, history in seen.items()
            if hash(dossier_id) % 4 == partition
        ]
        rebuilt.install(
            partition, PartitionLedger.rebuilt(CAL, PartitionMeta(), iter(stored), later)
        )
        assert rebuilt.ready is (partition == 3)  # exact or absent: all partitions or none
    assert rebuilt.totals() == live.totals()
    assert rebuilt.tick(later) == []  # nothing left to announce at the same instant


def test_a_new_assignment_drops_sums_of_partitions_no_longer_held() -> None:
    ledger = Ledger(CAL)
    ledger.assign({0, 1})
    for partition in (0, 1):
        ledger.install(partition, PartitionLedger(CAL))
    assert ledger.ready
    ledger.revoke()
    assert not ledger.ready
    ledger.assign({1, 2})
    assert set(ledger.partitions) == {1} and set(ledger.waiting) == {2}
    ledger.install(0, PartitionLedger(CAL))  # a catch-up that finished after revocation
    assert 0 not in ledger.partitions
    ledger.wait(1, "catch-up failed: disk full")
    assert ledger.waiting[1] == "catch-up failed: disk full" and 1 not in ledger.partitions


def test_only_actionable_status_changes_are_announced() -> None:
    events = simulated(300, seed=10)
    ledger = Ledger.counting(CAL, [0])
    seen: dict[str, list[DossierEvent]] = defaultdict(list)
    statuses: Counter[str] = Counter()
    for event in events:
        seen[event.dossier_id].append(event)
        change = accept(ledger, 0, fold(event.dossier_id, seen[event.dossier_id], CAL), NOW)
        if change is not None:
            statuses[change.status] += 1
    later = NOW + timedelta(seconds=5)
    statuses.update(change.status for change in ledger.tick(later))
    assert statuses["overdue"] > 0 and statuses["closed"] > 0
    assert set(statuses) <= NOTIFIED


def test_dossiers_in_the_same_state_share_one_contribution() -> None:
    events = simulated(200, seed=9)
    by_dossier: dict[str, list[DossierEvent]] = defaultdict(list)
    for event in events:
        by_dossier[event.dossier_id].append(event)
    ledger = Ledger.counting(CAL, [0])
    for dossier_id, history in by_dossier.items():
        accept(ledger, 0, fold(dossier_id, history, CAL), NOW)
    contributions = list(ledger.iter_contributions())
    distinct = {id(c) for c in contributions}
    assert len(distinct) == len(set(contributions)) < len(contributions)


def test_a_rebuilt_due_index_equals_the_one_kept_event_by_event() -> None:
    events = simulated(300, seed=12)
    random.Random(12).shuffle(events)
    seen: dict[str, list[DossierEvent]] = defaultdict(list)
    live = Ledger.counting(CAL, [0])
    for event in events:
        before = fold(event.dossier_id, seen[event.dossier_id], CAL)
        seen[event.dossier_id].append(event)
        accept(live, 0, fold(event.dossier_id, seen[event.dossier_id], CAL), NOW, before=before)
    stored = [fold_with_facts(d, history, CAL) for d, history in seen.items()]
    rebuilt = PartitionLedger.rebuilt(CAL, PartitionMeta(), iter(stored), NOW)
    kept = live.partitions[0].due_index
    assert {place: list(cell) for place, cell in rebuilt.due_index.cells.items()} == {
        place: list(cell) for place, cell in kept.cells.items()
    }
    assert rebuilt.due_index.by_procedure == kept.by_procedure
    assert len(rebuilt.due_index) == len(rebuilt.open) > 0


def test_the_shared_contributions_stay_bounded_and_the_sums_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each partition's table of shared contributions is emptied when it outgrows its open
    dossiers (contributions of states left behind and of closed dossiers are not kept
    forever), goes with the partition, and sharing never changes a sum."""
    monkeypatch.setattr(ledger_module, "INTERN_SLACK", 50)
    events = simulated(1500, seed=21)
    seen: dict[str, list[DossierEvent]] = defaultdict(list)
    ledger = Ledger.counting(CAL, [0, 1])
    distinct: set[tuple] = set()
    largest = 0
    most_open = dict.fromkeys(ledger.partitions, 0)
    for event in events:
        partition = hash(event.dossier_id) % 2
        before = fold(event.dossier_id, seen[event.dossier_id], CAL)
        seen[event.dossier_id].append(event)
        dossier, facts = fold_with_facts(event.dossier_id, seen[event.dossier_id], CAL)
        accept(ledger, partition, dossier, NOW, facts, before=before)
        distinct.add(contribution(dossier, NOW, CAL))
        sums = ledger.partitions[partition]
        most_open[partition] = max(most_open[partition], len(sums.contributions))
        # Emptied when it passes twice the open dossiers (as they were then) and the slack.
        assert len(sums.interned) <= 2 * most_open[partition] + 50 + 1
        largest = max(largest, len(sums.interned))
    assert len(distinct) > 2 * largest  # the bound was reached
    assert ledger.totals() == truth(seen, NOW)
    later = NOW + timedelta(seconds=5)  # the timer moves running dossiers on
    ledger.tick(later)
    assert ledger.totals() == truth(seen, later)
    # Each partition's own: dropped with it (no table at module level kept them all).
    assert ledger.partitions[0].interned is not ledger.partitions[1].interned


def test_a_partition_whose_clock_update_fails_is_held_and_the_others_move_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fault nobody foresaw in one partition's tick: its sums would stay behind the clock
    # while the worker said it was ready, and the exception would end faust's timer.
    ledger = Ledger.counting(CAL, [0, 1])
    moved: list[int] = []

    def tick_of(partition: int) -> Any:
        def tick(now: datetime) -> list[Any]:
            if partition == 0:
                raise ZeroDivisionError("a bug")
            moved.append(partition)
            return []

        return tick

    for partition, part in ledger.partitions.items():
        monkeypatch.setattr(part, "tick", tick_of(partition))
    assert ledger.ready
    assert ledger.tick(NOW) == []  # no exception out of it
    assert moved == [1]
    assert not ledger.counted(0) and ledger.counted(1)
    assert (
        "moving its dossiers with the clock failed (ZeroDivisionError: a bug)"
        in (ledger.waiting[0])
    )
    assert not ledger.ready  # absent, not stale
