"""The ledger: its sums equal the domain core's contributions however they were reached
(event by event, or rebuilt from the table), and a rebuild announces no status change."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import orjson

from schemas import DossierEvent, parse_event
from service.domain import WorkingCalendar, contribution, fold
from service.domain.report import fold_with_facts
from service.state.ledger import Ledger
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
    live = Ledger(CAL)
    for event in events:
        seen[event.dossier_id].append(event)
        dossier, facts = fold_with_facts(event.dossier_id, seen[event.dossier_id], CAL)
        live.accept(hash(event.dossier_id) % 4, dossier, event.type.value, NOW, facts)
    later = NOW + timedelta(seconds=5)  # past the live dues: the timer must turn them
    changes = live.tick(later)
    assert any(change.status == "overdue" for change in changes)
    assert live.totals() == truth(seen, later)

    rebuilt = Ledger(CAL)
    records = [
        (
            fold(dossier_id, history, CAL),
            [e.type.value for e in history],
            0,
            hash(dossier_id) % 4,
            fold_with_facts(dossier_id, history, CAL)[1],
        )
        for dossier_id, history in seen.items()
    ]
    rebuilt.rebuild(iter(records), range(4), later)
    assert rebuilt.totals() == live.totals()
    assert rebuilt.events_by_type() == live.events_by_type()
    assert rebuilt.tick(later) == []  # nothing left to announce at the same instant


def test_dossiers_in_the_same_state_share_one_contribution() -> None:
    events = simulated(200, seed=9)
    by_dossier: dict[str, list[DossierEvent]] = defaultdict(list)
    for event in events:
        by_dossier[event.dossier_id].append(event)
    ledger = Ledger(CAL)
    for dossier_id, history in by_dossier.items():
        ledger.accept(0, fold(dossier_id, history, CAL), history[-1].type.value, NOW)
    contributions = list(ledger.iter_contributions())
    distinct = {id(c) for c in contributions}
    assert len(distinct) == len(set(contributions)) < len(contributions)
