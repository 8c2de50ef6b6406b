"""The state layer without Kafka: a real RocksDB store, messages as the log would give them.

Each rule of service/state/worker_state.py: offsets at or below the applied one are skipped
(never counted twice), rejections are counted once per offset and sent only when live,
a duplicate is an event_id already held from another offset (counted by source), status
messages only for fresh events, and the store rebuilt after a restart gives the same sums.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson

from schemas import SOURCE_HEADER
from service.domain import WorkingCalendar, contribution, fold
from service.state.ledger import Ledger
from service.state.log_reader import Incoming
from service.state.store import DossierStore, open_key
from service.state.transaction import FRESH_FOR_S, MAX_SOURCES, OTHER_SOURCE
from service.state.worker_state import WorkerState
from service.tools.simulate import SimulationConfig, generate

CAL = WorkingCalendar()
NOW = datetime.now(UTC)
TOPIC = "dossier-events"


def log_of(events: list[dict], partition: int = 0, at: float | None = None) -> list[Incoming]:
    stamp = time.time() if at is None else at
    return [
        Incoming(partition, offset, e.get("dossier_id", "?").encode(), orjson.dumps(e), stamp, None)
        for offset, e in enumerate(events)
    ]


def new_state(path: Path) -> WorkerState:
    ledger = Ledger(CAL)
    ledger.assign({0})
    state = WorkerState(DossierStore(path / "store", TOPIC), ledger, CAL)
    ledger.install(0, asyncio.run(state.rebuild(0)))
    return state


def simulated(dossiers: int, seed: int, now: datetime = NOW) -> list[dict]:
    config = SimulationConfig(dossiers=dossiers, seed=seed, now=now, duplicate_ratio=0.05)
    return list(generate(config))


def truth(events: list[dict]) -> Counter:
    from schemas import event_from_dict

    by_dossier: dict[str, list] = {}
    for raw in events:
        event = event_from_dict(raw, now=NOW)
        by_dossier.setdefault(event.dossier_id, []).append(event)
    out: Counter = Counter()
    for dossier_id, held in by_dossier.items():
        out.update(contribution(fold(dossier_id, held, CAL), NOW, CAL))
    return +out


def test_a_re_read_batch_counts_nothing_twice(tmp_path: Path) -> None:
    events = simulated(150, seed=4)
    bad = {"event_id": "x", "type": "received"}  # no dossier: rejected
    log = log_of([*events[:200], bad, *events[200:]])
    state = new_state(tmp_path)
    first = state.apply(log[:120], live=True)
    state.commit(first)
    again = state.apply(log, live=True)  # at-least-once: the first 120 come again
    state.commit(again)
    assert first.applied == 120 and again.applied == len(log) - 120
    meta = state.meta(0)
    assert meta.applied == len(log) - 1
    assert sum(meta.rejected.values()) == 1 and len(again.rejected) == 1
    distinct = len({e["event_id"] for e in events})
    assert sum(meta.events.values()) == distinct
    # Every re-sent event is a duplicate: the same event_id from another offset.
    assert meta.duplicates == Counter({"direct": len(events) - distinct})
    assert state.apply(log, live=True).applied == 0  # a third read changes nothing

    # Nothing is in memory only: a new process rebuilds the same sums from the store.
    live_totals = state.ledger.totals()
    state.store.close()
    reopened = new_state(tmp_path)
    assert reopened.ledger.totals() == live_totals
    assert reopened.meta(0) == meta


def test_sums_equal_the_domain_core(tmp_path: Path) -> None:
    events = simulated(200, seed=5)
    state = new_state(tmp_path)
    log = log_of(events)
    for start in range(0, len(log), 97):
        state.commit(state.apply(log[start : start + 97], live=True))
    got = state.ledger.totals()
    want = truth(events)

    # Open states move with the clock (the ledger judged them at its own `now`): compare what
    # does not, and the number of open dossiers per agency, whatever their state.
    def settled(counts: Counter) -> dict:
        return {k: v for k, v in counts.items() if k[0] in ("received", "completed", "withdrawn")}

    assert settled(got) == settled(want) and settled(got)
    opened: Counter = Counter()
    for k, v in got.items():
        if k[0] == "open":
            opened[k[1]] += v
    expected: Counter = Counter()
    for k, v in want.items():
        if k[0] == "open":
            expected[k[1]] += v
    assert opened == expected


def test_history_is_applied_silently_and_only_fresh_events_are_announced(
    tmp_path: Path,
) -> None:
    # A history that ended an hour ago: simulated up to now, its last events would be fresh
    # news whenever the center is open (at 08:30 local some were received minutes before).
    events = simulated(120, seed=6, now=NOW - timedelta(hours=1))
    assert max(datetime.fromisoformat(e["occurred_at"]) for e in events) < NOW - timedelta(
        seconds=FRESH_FOR_S
    )
    old = time.time() - FRESH_FOR_S - 60
    state = new_state(tmp_path)
    history = state.apply(log_of(events, at=old), live=True)
    assert history.applied > 0 and history.changes == []
    state.store.close()

    # Published now, but about things long past (a back-fill): silent too.
    backfill = new_state(tmp_path / "backfill")
    assert backfill.apply(log_of(events), live=True).changes == []

    # What happens now is announced: a dossier received a minute ago, approved and returned.
    def happening(kind: str, seconds_ago: int, **fields: object) -> dict:
        at = (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()
        return {
            "event_id": f"LIVE-1-{kind}",
            "dossier_id": "LIVE-1",
            "type": kind,
            "occurred_at": at,
            **fields,
        }

    live_events = [
        happening(
            "received", 60, agency="SXD", procedure="1.000948", channel="online", processing_days=3
        ),
        happening("approved", 30),
        happening("returned", 1),
    ]
    fresh = new_state(tmp_path / "fresh")
    batch = fresh.apply(log_of(live_events[:2]), live=True)
    assert [c.status for c in batch.changes] == ["ready"]  # a receipt in time is not news
    fresh.commit(batch)
    batch = fresh.apply(log_of(live_events)[2:], live=True)
    assert [c.status for c in batch.changes] == ["closed"]

    # A catch-up (live=False) neither announces nor sends dead letters, but counts.
    caught = new_state(tmp_path / "caught")
    bad = Incoming(0, len(events), b"k", b"not json", time.time(), None)
    quiet = caught.apply([*log_of(events), bad], live=False)
    assert quiet.changes == [] and quiet.rejected == []
    assert caught.meta(0).rejected == Counter()  # nothing shown before it is saved
    caught.commit(quiet)
    assert caught.meta(0).rejected == Counter({"not_json": 1})


def _receipt_of_hs1() -> bytes:
    """A receipt of yesterday, re-sent in the duplicate tests."""
    return orjson.dumps(
        {
            "event_id": "HS-1-r",
            "dossier_id": "HS-1",
            "type": "received",
            "occurred_at": (NOW - timedelta(days=1)).isoformat(),
            "agency": "SXD",
            "procedure": "1.000948",
            "channel": "online",
            "processing_days": 5,
        }
    )


def test_duplicates_are_counted_by_the_source_that_re_sent_them(tmp_path: Path) -> None:
    value = _receipt_of_hs1()
    headers = [(SOURCE_HEADER, b"opencps-bg")]
    log = [
        Incoming(0, 0, b"HS-1", value, time.time(), None),
        Incoming(0, 1, b"HS-1", value, time.time(), headers),
        Incoming(0, 2, b"HS-1", value, time.time(), headers),
    ]
    state = new_state(tmp_path)
    state.commit(state.apply(log, live=True))
    assert state.meta(0).duplicates == Counter({"opencps-bg": 2})
    assert state.meta(0).events == Counter({"received": 1})


def test_a_producer_naming_a_new_source_on_every_message_cannot_grow_the_labels(
    tmp_path: Path,
) -> None:
    # motcua-source is anyone's header on a direct producer: a thousand names re-sending
    # one event must not become a thousand `source` labels (nor a thousand meta entries).
    value = _receipt_of_hs1()
    log = [Incoming(0, 0, b"HS-1", value, time.time(), None)]
    for n in range(1, 1001):
        headers = [(SOURCE_HEADER, f"sender-{n}".encode())]
        log.append(Incoming(0, n, b"HS-1", value, time.time(), headers))
    state = new_state(tmp_path)
    state.commit(state.apply(log, live=True))
    duplicates = state.meta(0).duplicates
    assert len(duplicates) == MAX_SOURCES + 1
    assert duplicates[OTHER_SOURCE] == 1000 - MAX_SOURCES
    assert sum(duplicates.values()) == 1000  # every duplicate still counted


def test_an_unreadable_stored_dossier_is_found_by_the_rebuild(tmp_path: Path) -> None:
    state = new_state(tmp_path)
    state.commit(state.apply(log_of(simulated(20, seed=7)), live=True))
    state.store.write({open_key(0, b"SIM-broken"): b"\x07garbage"})
    try:
        asyncio.run(state.rebuild(0))
    except (ValueError, struct.error):
        pass  # the keeper then forgets the partition and reads it again from the log
    else:
        raise AssertionError("a corrupt record must not be rebuilt into the sums")
    state.forget(0)
    assert list(state.store.dossiers(0)) == [] and state.meta(0).applied == -1


def test_a_corrupt_block_in_the_store_is_never_a_partial_rebuild(tmp_path: Path) -> None:
    """RocksDB ends an iteration at a corrupt block as if the data ended there: the store
    must say so (and mark itself for a rebuild from the log at the next start)."""
    from service.state.store import StoreError

    path = tmp_path / "store"
    store = DossierStore(path, TOPIC)
    filler = bytes(range(256)) * 4
    for chunk in range(6):
        store.write({open_key(0, f"HS-{chunk}-{n:05d}".encode()): filler for n in range(1000)})
    store.close()
    # Reopening flushes the write-ahead log into table files; then damage their middles.
    DossierStore(path, TOPIC).close()
    tables = sorted(path.glob("*.sst"))
    assert tables, "no table file to damage"
    for table in tables:
        size = table.stat().st_size
        with table.open("r+b") as f:
            f.seek(size // 2)
            f.write(b"\xff" * 4096)
    store = DossierStore(path, TOPIC)
    try:
        count = sum(1 for _ in store.dossiers(0))
    except StoreError:
        pass
    else:
        raise AssertionError(f"read {count} of 6000 dossiers and called it whole")
    store.close()
    reopened = DossierStore(path, TOPIC)  # set aside, empty: the partition is read again
    assert list(reopened.dossiers(0)) == []
    assert any(p.name.startswith("store.unreadable-") for p in tmp_path.iterdir())


def test_closed_dossiers_leave_memory_and_a_restart_reads_only_open_ones(tmp_path: Path) -> None:
    events = simulated(200, seed=21)
    state = new_state(tmp_path)
    log = log_of(events)
    for start in range(0, len(log), 113):
        state.commit(state.apply(log[start : start + 113], live=True))
    held = state.ledger.partitions[0]
    open_ids = {k.decode() for k, _ in state.store.open_dossiers(0)}
    closed_ids = {k.decode() for k, _ in state.store.closed_dossiers(0)}
    assert open_ids and closed_ids and not open_ids & closed_ids
    # In memory: open dossiers only; the closed ones are in the saved sums.
    assert set(held.facts) <= open_ids and set(held.contributions) <= open_ids
    assert _settled(state.ledger.totals()) == _settled(truth(events))
    live = _settled(state.ledger.totals())
    state.store.close()

    reopened = new_state(tmp_path)
    assert _settled(reopened.ledger.totals()) == live
    assert set(reopened.ledger.partitions[0].facts) <= open_ids


def _settled(counts: Counter) -> dict:
    """What the clock does not move: receipts, outcomes, withdrawals, open dossiers."""
    out: Counter = Counter()
    for key, n in counts.items():
        if key[0] in ("received", "completed", "withdrawn"):
            out[key] += n
        elif key[0] == "open":
            out[("open", key[1])] += n
    return dict(+out)


def _event(kind: str, at: str, **fields: object) -> dict:
    return {
        "event_id": f"HS-9-{kind}-{at}",
        "dossier_id": "HS-9",
        "type": kind,
        "occurred_at": at,
        **fields,
    }


def test_a_late_event_on_a_closed_dossier_moves_its_saved_contribution(tmp_path: Path) -> None:
    received = _event(
        "received",
        "2026-10-05T08:00:00+07:00",
        agency="SXD",
        procedure="1.000948",
        channel="direct",
        processing_days=2,
    )
    returned = _event("returned", "2026-10-09T15:00:00+07:00")  # past the due (10-07): late
    state = new_state(tmp_path)
    state.commit(state.apply(log_of([received, returned]), live=True))
    assert state.closed_totals(0)[("completed", "SXD", "late")] == 1
    assert "HS-9" not in state.ledger.partitions[0].contributions

    # The center's system sends the supplement pause it forgot: three working days paused
    # before the due, so the result came on time.
    pause = [
        _event("supplement_requested", "2026-10-06T09:00:00+07:00"),
        _event("supplement_received", "2026-10-09T09:00:00+07:00"),
    ]
    late = [
        Incoming(0, 2 + n, b"HS-9", orjson.dumps(e), time.time(), None) for n, e in enumerate(pause)
    ]
    batch = state.apply(late, live=True)
    assert batch.changes == []  # closed before, closed after: nothing new to announce
    state.commit(batch)
    saved = state.closed_totals(0)
    assert saved[("completed", "SXD", "late")] == 0
    assert saved[("completed", "SXD", "on_time")] + saved[("completed", "SXD", "early")] == 1
    assert state.ledger.totals()[("received", "SXD", "direct")] == 1
    state.store.close()
    assert new_state(tmp_path).closed_totals(0) == saved


def test_an_agency_with_many_departments_commits_and_reports_them_after_a_restart(
    tmp_path: Path,
) -> None:
    """150 departments of one agency, each with a step kept and a step late in dossiers that
    then close: a page of the agency's day totals holds 300+ keys. The batch commits, and a
    restarted worker's step report names every department with both outcomes (history page
    version 2)."""
    departments = [f"SXD.P{n:03d}" for n in range(150)]
    events: list[dict] = []
    for n, department in enumerate(departments * 2):
        dossier = f"HS-D{n:03d}"

        def event(kind: str, at: str, dossier: str = dossier, **fields: object) -> dict:
            head = {"event_id": f"{dossier}-{kind}", "dossier_id": dossier, "type": kind}
            return {**head, "occurred_at": at, **fields}

        events += [
            event(
                "received",
                "2026-10-05T08:00:00+07:00",
                agency="SXD",
                procedure="1.000948",
                channel="direct",
                processing_days=5,
            ),
            event(
                "step_started",
                "2026-10-05T09:00:00+07:00",
                step="S1",
                department=department,
                step_hours=8,
            ),
            # The first dossier of a department within its 8 working hours, the second late.
            event(
                "step_completed",
                "2026-10-05T15:00:00+07:00" if n < 150 else "2026-10-07T15:00:00+07:00",
                step="S1",
            ),
            event("returned", "2026-10-08T10:00:00+07:00"),
        ]
    state = new_state(tmp_path)
    state.commit(state.apply(log_of(events), live=True))
    state.store.close()

    reopened = new_state(tmp_path)
    report = reopened.ledger.step_report(date(2026, 10, 1), date(2026, 10, 31))
    assert set(report) == {("SXD", d) for d in departments}
    for department in departments:
        assert report[("SXD", department)] == Counter({"on_time": 1, "late": 1})


def test_a_kafka_timestamp_no_date_can_hold_is_rejected_and_the_batch_goes_on(
    tmp_path: Path,
) -> None:
    """The message's Kafka timestamp is the instant its event is judged at: one no datetime
    can hold (microseconds taken for milliseconds, before year 1, NaN, infinite) rejects
    that message as bad_timestamp, a dead letter; the batch is applied around it, and the
    newest event time the worker reports stays a real one."""
    events = simulated(20, seed=22)
    log = log_of(events)
    now = time.time()
    bogus = {3: now * 1e6, 4: now * 1e6, 9: -1e14, 12: float("nan"), 15: float("inf")}
    log = [m._replace(timestamp=bogus.get(m.offset, m.timestamp)) for m in log]
    state = new_state(tmp_path)
    batch = state.apply(log, live=True)
    assert [(m.offset, e.reason.value) for m, e in batch.rejected] == [
        (offset, "bad_timestamp") for offset in sorted(bogus)
    ]
    assert "Kafka timestamp" in batch.rejected[0][1].detail
    assert batch.last_timestamp == log[0].timestamp  # the real stamp, not a bogus one
    state.commit(batch)
    meta = state.meta(0)
    assert meta.applied == len(log) - 1
    assert meta.rejected == {"bad_timestamp": len(bogus)}
    kept = [e for offset, e in enumerate(events) if offset not in bogus]
    assert sum(meta.events.values()) + sum(meta.duplicates.values()) == len(kept)
    # The same verdicts when the log is read again (state is a function of the log).
    again = new_state(tmp_path / "again")
    again.commit(again.apply(log, live=False))
    assert dict(again.store.dossiers(0)) == dict(state.store.dossiers(0))
    assert again.meta(0) == meta
