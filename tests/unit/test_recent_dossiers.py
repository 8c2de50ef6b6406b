"""The decoded cache of recently saved dossiers (service/state/recent.py) is only a cache of
the store: a transaction that fails leaves the store's record as the truth, the cache never
holds more than its size, and a dropped partition is forgotten."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_worker_state import CAL, TOPIC, log_of, simulated

from service.state.ledger import Ledger
from service.state.log_reader import Incoming
from service.state.recent import RecentDossiers
from service.state.store import DossierStore, StoreError
from service.state.worker_state import WorkerState


def state_over(path: Path, size: int) -> WorkerState:
    ledger = Ledger(CAL)
    ledger.assign({0})
    state = WorkerState(DossierStore(path, TOPIC), ledger, CAL, RecentDossiers(size))
    ledger.install(0, asyncio.run(state.rebuild(0)))
    return state


def records(state: WorkerState) -> dict[bytes, bytes]:
    return dict(state.store.dossiers(0))


def renumbered(log: list[Incoming]) -> list[Incoming]:
    return [m._replace(offset=i) for i, m in enumerate(log)]


def test_a_failed_write_leaves_the_stored_record_the_truth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = simulated(30, seed=3)
    log = log_of(events)
    first, lost, rest = log[:40], log[40:70], log[70:]
    cached = state_over(tmp_path / "cached", 20_000)
    cached.commit(cached.apply(first, live=True))
    assert len(cached.recent) > 0

    held = set(cached.recent._entries)
    failing = cached.apply(lost, live=True)
    assert held & set(failing.dossiers)  # the lost batch changes dossiers the cache held

    def refuse(*_: object) -> None:
        raise StoreError("the disk is full")

    monkeypatch.setattr(cached.store, "write", refuse)
    with pytest.raises(StoreError):
        cached.commit(failing)
    monkeypatch.undo()
    # The lost batch's messages are skipped from the log (as if never sent), the rest applied
    # with their offsets moved down: the same events a store that never saw them would get.
    for where in failing.dossiers:
        assert cached.recent.take(where) is None  # changed in place: never given back
    cached.commit(cached.apply(renumbered(first + rest)[len(first) :], live=True))

    plain = state_over(tmp_path / "plain", 0)
    plain.commit(plain.apply(renumbered(first + rest), live=True))
    assert records(cached) == records(plain)


def test_the_cache_holds_at_most_its_size_and_evicted_dossiers_are_read_again(
    tmp_path: Path,
) -> None:
    log = log_of(simulated(60, seed=8))
    small = state_over(tmp_path / "small", 3)
    plain = state_over(tmp_path / "plain", 0)
    for first in range(0, len(log), 17):
        small.commit(small.apply(log[first : first + 17], live=True))
        plain.commit(plain.apply(log[first : first + 17], live=True))
        assert len(small.recent) <= 3
        assert len(plain.recent) == 0
    assert records(small) == records(plain)
    assert small.ledger.totals() == plain.ledger.totals()


def test_a_dropped_partition_is_forgotten(tmp_path: Path) -> None:
    state = state_over(tmp_path / "store", 20_000)
    state.commit(state.apply(log_of(simulated(10, seed=1)), live=True))
    assert len(state.recent) > 0
    state.forget(0)
    assert len(state.recent) == 0
    state.commit(state.apply(log_of(simulated(10, seed=2)), live=True))
    state.drop_caches()
    assert len(state.recent) == 0
