"""The simulated center: seeded, valid against the contract, realistic once folded."""

from __future__ import annotations

import itertools
import re
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import DossierEvent, EventType, event_from_dict, parse_event
from service.domain import DEFAULT_CALENDAR, Dossier, OpenState, Outcome, fold, open_state
from service.domain.calendar import LOCAL_TZ
from service.tools.simulate import (
    AGENCIES,
    IndexRates,
    SimulationConfig,
    SimulationError,
    TokenBucket,
    catalog,
    generate,
    run_simulation,
)

# A Tuesday, 15:30 at the center: receipts have been coming in since 07:30.
NOW = datetime(2025, 7, 29, 8, 30, tzinfo=UTC)


def folded(events: Iterable[dict[str, Any]], now: datetime) -> dict[str, Dossier]:
    by_dossier: dict[str, list[DossierEvent]] = defaultdict(list)
    for raw in events:
        event = event_from_dict(raw, now=now)
        by_dossier[event.dossier_id].append(event)
    return {d: fold(d, evs, DEFAULT_CALENDAR) for d, evs in by_dossier.items()}


def late_share(dossiers: Iterable[Dossier], now: datetime) -> tuple[float, int]:
    """Late share among dossiers whose due has passed with the clock running: for them the
    fate is settled (decided by the due, or late), so a short history does not bias it."""
    settled = late = 0
    for dossier in dossiers:
        if dossier.withdrawn or dossier.paused_at is not None:
            continue
        assert dossier.due is not None
        if dossier.due >= now:
            continue
        settled += 1
        if dossier.outcome is Outcome.LATE or (
            open_state(dossier, now, DEFAULT_CALENDAR) is OpenState.OVERDUE
        ):
            late += 1
    return late / settled, settled


@pytest.fixture(scope="module")
def config() -> SimulationConfig:
    return SimulationConfig(dossiers=5000, seed=11, now=NOW)


@pytest.fixture(scope="module")
def events(config: SimulationConfig) -> list[dict[str, Any]]:
    return list(generate(config))


@pytest.fixture(scope="module")
def dossiers(events: list[dict[str, Any]], config: SimulationConfig) -> dict[str, Dossier]:
    assert config.now is not None
    return folded(events, config.now)


def test_catalog_is_the_sample_center() -> None:
    procedures = catalog()
    assert len(AGENCIES) == 22
    assert len(procedures) == 1700
    assert len({p.code for p in procedures}) == 1700
    assert all(re.fullmatch(r"[123]\.\d{6}", p.code) for p in procedures)
    per_agency = Counter(p.agency for p in procedures)
    assert set(per_agency) == {a.code for a in AGENCIES}
    assert max(per_agency.values()) > 10 * min(per_agency.values())  # uneven on purpose
    limits = Counter(p.limit_days for p in procedures)
    assert sum(n for days, n in limits.items() if 1 <= days <= 20) > 0.75 * 1700
    assert limits[0] > 0 and sum(n for days, n in limits.items() if days >= 30) > 0
    assert catalog() == procedures  # the same center for every seed


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    first = list(generate(SimulationConfig(dossiers=400, seed=3, now=NOW)))
    again = list(generate(SimulationConfig(dossiers=400, seed=3, now=NOW)))
    other = list(generate(SimulationConfig(dossiers=400, seed=4, now=NOW)))
    assert first == again
    assert first != other


def test_every_event_meets_the_contract(
    events: list[dict[str, Any]], config: SimulationConfig
) -> None:
    for raw in events:
        assert raw["schema_version"] == 1
        event_from_dict(raw, now=config.now)
        # What goes on the wire is what the service parses.
        parse_event(orjson.dumps(raw), now=config.now, key=raw["dossier_id"].encode())
    assert len({e["event_id"] for e in events}) == len(events)
    assert len({e["dossier_id"] for e in events}) == config.dossiers


def test_history_ends_at_now_in_order(events: list[dict[str, Any]]) -> None:
    times = [datetime.fromisoformat(e["occurred_at"]) for e in events]
    assert max(times) <= NOW
    assert times == sorted(times)


def test_receipts_fall_in_working_hours_on_working_days(events: list[dict[str, Any]]) -> None:
    for raw in events:
        local = datetime.fromisoformat(raw["occurred_at"]).astimezone(LOCAL_TZ)
        assert DEFAULT_CALENDAR.is_working_day(local.date()), raw
        assert "07:30:00" <= local.strftime("%H:%M:%S") < "17:00:00", raw


def test_channel_shares_are_70_25_5(dossiers: dict[str, Dossier]) -> None:
    channels = Counter(d.channel.value for d in dossiers.values() if d.channel)
    total = sum(channels.values())
    assert channels["direct"] / total == pytest.approx(0.70, abs=0.03)
    assert channels["online"] / total == pytest.approx(0.25, abs=0.025)
    assert channels["postal"] / total == pytest.approx(0.05, abs=0.015)


def test_folded_state_is_a_realistic_mix(
    dossiers: dict[str, Dossier], events: list[dict[str, Any]]
) -> None:
    outcomes = Counter(d.outcome for d in dossiers.values())
    states = Counter(open_state(d, NOW, DEFAULT_CALENDAR) for d in dossiers.values())
    closed = Counter(d.closed_by for d in dossiers.values())
    total = len(dossiers)

    # Every outcome and every open state shows up at now.
    assert all(outcomes[o] > 0 for o in Outcome)
    # The simulated center prints an appointment on every receipt: never no_due (rule R11).
    assert all(states[s] > 0 for s in OpenState if s is not OpenState.NO_DUE)
    assert states[OpenState.NO_DUE] == 0
    # Mostly early (trước hạn), as the centers in the seeds report.
    judged = sum(outcomes[o] for o in Outcome)
    assert outcomes[Outcome.EARLY] / judged > 0.7
    # Most closed dossiers are returned results; a few rejected or withdrawn.
    assert closed[EventType.RETURNED] > 0.6 * total
    assert 0.01 * total < closed[EventType.REJECTED] < 0.03 * total
    assert 0.005 * total < closed[EventType.WITHDRAWN] < 0.025 * total
    types = Counter(e["type"] for e in events)
    assert 0.06 * total < types["supplement_requested"] < 0.12 * total
    # Apologies for most late dossiers; some overdue ones never got one (seed 003).
    late_or_overdue = [
        d
        for d in dossiers.values()
        if d.outcome is Outcome.LATE or open_state(d, NOW, DEFAULT_CALENDAR) is OpenState.OVERDUE
    ]
    with_apology = sum(d.apology_at is not None for d in late_or_overdue)
    assert 0.6 < with_apology / len(late_or_overdue) < 1.0
    # Both ways of stating the due appear.
    receipts = [e for e in events if e["type"] == "received"]
    explicit = sum("due_at" in e for e in receipts)
    assert 0.1 * total < explicit < 0.5 * total


@pytest.mark.parametrize("ratio", [0.0, 0.03, 0.1])
def test_late_share_follows_overdue_ratio(ratio: float) -> None:
    config = SimulationConfig(dossiers=5000, seed=21, now=NOW, overdue_ratio=ratio)
    share, settled = late_share(folded(generate(config), NOW).values(), NOW)
    assert settled > 1500
    if ratio == 0.0:
        assert share == 0.0
    else:
        # Binomial spread at ~2,000 settled dossiers is under 0.007 at 10%.
        assert share == pytest.approx(ratio, abs=max(0.012, ratio * 0.25))


def test_live_dossiers_fall_due_just_after_now() -> None:
    config = SimulationConfig(
        dossiers=300, seed=5, now=NOW, live_due_seconds=(5.0, 90.0), live_due_count=4
    )
    state = folded(generate(config), NOW)
    assert len(state) == 300
    live = [
        d
        for d in state.values()
        if d.is_running and d.due is not None and NOW < d.due <= NOW + timedelta(seconds=91)
    ]
    assert len(live) == 4
    for dossier in live:
        assert open_state(dossier, NOW, DEFAULT_CALENDAR) is OpenState.DUE_SOON
        later = NOW + timedelta(seconds=92)
        assert open_state(dossier, later, DEFAULT_CALENDAR) is OpenState.OVERDUE


def test_duplicates_and_shuffling_do_not_change_the_state() -> None:
    base = SimulationConfig(dossiers=1500, seed=8, now=NOW)
    messy = SimulationConfig(dossiers=1500, seed=8, now=NOW, duplicate_ratio=0.2, shuffle_window=64)
    clean_events = list(generate(base))
    messy_events = list(generate(messy))

    ids = [e["event_id"] for e in messy_events]
    assert len(ids) > len(clean_events) * 1.1  # re-sent events
    assert set(ids) == {e["event_id"] for e in clean_events}
    assert ids != [e["event_id"] for e in clean_events]  # delivered out of order
    received_at: dict[str, int] = {}
    orphans = 0
    for position, raw in enumerate(messy_events):
        if raw["type"] == "received":
            received_at.setdefault(raw["dossier_id"], position)
        elif raw["dossier_id"] not in received_at:
            orphans += 1  # an event delivered before its dossier's receipt
    assert orphans > 0

    assert folded(messy_events, NOW) == folded(clean_events, NOW)


def test_shuffle_displacement_stays_within_the_window() -> None:
    window = 16
    clean = [e["event_id"] for e in generate(SimulationConfig(dossiers=500, seed=2, now=NOW))]
    shuffled = generate(SimulationConfig(dossiers=500, seed=2, now=NOW, shuffle_window=window))
    where = {event_id: i for i, event_id in enumerate(clean)}
    assert all(abs(where[e["event_id"]] - i) < window for i, e in enumerate(shuffled))


def test_generation_streams_in_bounded_memory() -> None:
    # A million dossiers (~4 million events, gigabytes as a list): the first 10,000 events
    # must come without building the rest. The run's calendar tables are built first.
    stream = generate(SimulationConfig(dossiers=1_000_000, seed=1, now=NOW))
    tracemalloc.start()
    try:
        taken = sum(1 for _ in itertools.islice(stream, 10_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert taken == 10_000
    assert peak < 20 * 1024 * 1024


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"dossiers": 0}, "dossiers"),
        ({"dossiers": 10, "overdue_ratio": 1.5}, "overdue ratio"),
        ({"dossiers": 10, "overdue_ratio": -0.1}, "overdue ratio"),
        ({"dossiers": 10, "duplicate_ratio": 2.0}, "duplicate ratio"),
        ({"dossiers": 10, "shuffle_window": -1}, "shuffle"),
        ({"dossiers": 10, "now": datetime(2025, 7, 29, 8, 30)}, "timezone"),
    ],
)
def test_bad_configuration_is_one_line(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(SimulationError, match=words) as caught:
        SimulationConfig(**kwargs)
    assert "\n" not in str(caught.value)


def test_config_fills_in_now() -> None:
    before = datetime.now(UTC)
    config = SimulationConfig(dossiers=1)
    assert config.now is not None and before <= config.now <= datetime.now(UTC)


def test_run_simulation_writes_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    summary = run_simulation(200, 0, 0.03, 9, out, None, "dossier-events", now=NOW)
    lines = out.read_bytes().splitlines()
    assert "\n" not in summary and f"{len(lines):,} events" in summary
    parsed = [parse_event(line, now=NOW) for line in lines]
    assert len({e.dossier_id for e in parsed}) == 200
    live = [e for e in parsed if e.due_at is not None and e.due_at > NOW]
    assert live, "run_simulation adds a few dossiers falling due just after now for the demo"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((0, 10.0, 0.03), "dossiers"),
        ((10, -1.0, 0.03), "rate"),
        ((10, float("nan"), 0.03), "rate"),
        ((10, 10.0, 1.01), "overdue ratio"),
    ],
)
def test_run_simulation_rejects_bad_arguments(
    tmp_path: Path, args: tuple[int, float, float], words: str
) -> None:
    dossiers, rate, ratio = args
    with pytest.raises(SimulationError, match=words):
        run_simulation(dossiers, rate, ratio, 1, tmp_path / "x.jsonl", None, "t", now=NOW)
    assert not (tmp_path / "x.jsonl").exists()


def test_run_simulation_wants_one_destination(tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match="not both"):
        run_simulation(10, 0, 0.03, 1, tmp_path / "x.jsonl", "127.0.0.1:9092", "t", now=NOW)


def test_run_simulation_bad_broker_address_is_a_bad_argument() -> None:
    with pytest.raises(SimulationError, match="host:port"):
        run_simulation(10, 0, 0.03, 1, None, "localhost", "t", now=NOW)


def test_token_bucket_paces_to_the_rate() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    bucket = TokenBucket(10.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(35):
        bucket.take()
    # One second's burst (10), then 25 more at 10/s.
    assert clock[0] == pytest.approx(2.5)
    assert len(slept) == 25


def test_dossiers_pass_two_to_four_steps_a_tenth_across_agencies(
    events: list[dict[str, Any]], dossiers: dict[str, Dossier]
) -> None:
    steps: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for raw in events:
        if raw["type"] == "step_started":
            steps[raw["dossier_id"]].append(raw)
    decided = [d for d in dossiers.values() if d.clock_end is not None]
    counts = Counter(len(steps[d.dossier_id]) for d in decided)
    # Each decided dossier had 2–4 steps, bar the few decided within minutes of the receipt
    # (a same-day procedure) that had no time for two.
    assert set(counts) <= {0, 1, 2, 3, 4}
    assert sum(counts[n] for n in (2, 3, 4)) / len(decided) > 0.9
    crossing = [did for did, started in steps.items() if any("agency" in s for s in started)]
    assert 0.07 < len(crossing) / len(steps) < 0.13
    for did in crossing:
        own = dossiers[did].agency
        assert all(s.get("agency", own) != own for s in steps[did] if "agency" in s)
        assert all(s["department"].startswith(s.get("agency", own) + ".") for s in steps[did])


def _index_fields(config: SimulationConfig) -> tuple[Counter[str], list[dict[str, Any]]]:
    """Event counts by type (each dossier's paid and rated once at most), and the receipts
    old enough (3 days before now) for their payment to have happened."""
    kinds: Counter[str] = Counter()
    once: set[tuple[str, str]] = set()
    receipts = []
    for raw in generate(config):
        event_from_dict(raw, now=NOW)  # every one meets the contract
        kinds[raw["type"]] += 1
        if raw["type"] in ("paid", "rated"):
            assert (raw["dossier_id"], raw["type"]) not in once
            once.add((raw["dossier_id"], raw["type"]))
        if raw["type"] == "received":
            receipts.append(raw)
    old = NOW - timedelta(days=3)
    paid = {d for d, kind in once if kind == "paid"}
    assert all(r["dossier_id"] in paid for r in receipts if r.get("fee_due") and _t(r) < old)
    return kinds, receipts


def _t(raw: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(raw["occurred_at"])


def test_index_fields_and_ratings_follow_their_rates() -> None:
    everything = IndexRates(**{name: 1.0 for name in IndexRates.__dataclass_fields__})
    kinds, receipts = _index_fields(
        SimulationConfig(dossiers=300, seed=5, now=NOW, index=everything)
    )
    assert all(r["fee_due"] is True and r["components_digitised"] >= 1 for r in receipts)
    assert len(receipts) == 300 and 0 < kinds["paid"] <= 300
    assert 0 < kinds["rated"] <= kinds["returned"]
    nothing = IndexRates(reported=0.0)
    kinds, receipts = _index_fields(SimulationConfig(dossiers=300, seed=5, now=NOW, index=nothing))
    assert not any("fee_due" in r or "components" in r for r in receipts)  # unknown, not false
    assert kinds["paid"] == kinds["rated"] == 0


def test_index_fields_leave_the_clock_events_unchanged() -> None:
    # They draw from their own random stream: the same seed gives the same clock.
    def clock(index: IndexRates) -> list[tuple[str, str, str]]:
        config = SimulationConfig(dossiers=200, seed=9, now=NOW, index=index)
        return [
            (e["dossier_id"], e["type"], e["occurred_at"])
            for e in generate(config)
            if e["type"] not in ("paid", "rated")
        ]

    assert clock(IndexRates()) == clock(IndexRates(reported=0.0))


def test_index_rates_parse_with_one_line_errors() -> None:
    assert IndexRates.parse("fee=0.5, rated=0.1") == IndexRates(fee=0.5, rated=0.1)
    assert IndexRates.parse("") == IndexRates()
    for text, words in (
        ("fees=1", "unknown index rate"),
        ("fee=x", "not a number"),
        ("fee=2", "[0, 1]"),
    ):
        with pytest.raises(SimulationError, match=re.escape(words)):
            IndexRates.parse(text)
