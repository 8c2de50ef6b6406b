"""The per-dossier queue: its pages hold exactly the domain core's open states, in due order.

Expected values come from `fold` and `open_state` (the domain core) and from working days
counted here by walking the dates with the `holidays` package, not from the queue's code.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import holidays
import orjson
import pytest

from schemas import Channel, DossierEvent, EventType, parse_event
from service.domain import LOCAL_TZ, Dossier, OpenState, WorkingCalendar, fold, open_state
from service.domain.calendar import local_date
from service.outputs.queue import (
    MAX_LIMIT,
    BadQuery,
    PartitionView,
    QueueQuery,
    decode_cursor,
    dossiers_page,
    encode_cursor,
    item_key,
    parse_query,
)
from service.state.due_index import DueIndex, due_prefix, key_due
from service.state.ledger import PartitionLedger
from service.tools.simulate import SimulationConfig, generate

CAL = WorkingCalendar()
NOW = datetime(2026, 3, 18, 10, 0, tzinfo=LOCAL_TZ)
PARTITIONS = 4


def simulated(count: int, seed: int) -> list[DossierEvent]:
    config = SimulationConfig(dossiers=count, seed=seed, now=NOW, overdue_ratio=0.1)
    return [
        parse_event(orjson.dumps(raw), now=NOW, key=raw["dossier_id"].encode())
        for raw in generate(config)
    ]


def working_days_after(start: date, until: date) -> int:
    """Independent count: weekdays after `start` up to `until` that are not VN holidays
    (no make-up Saturday falls in the simulated months)."""
    off = holidays.country_holidays("VN", years=range(start.year - 1, until.year + 2))
    day, count = start + timedelta(days=1), 0
    while day <= until:
        count += day.weekday() < 5 and day not in off
        day += timedelta(days=1)
    return count


class Center:
    """Ledgers of a few partitions fed event by event, out of order, as a worker is."""

    def __init__(self, events: list[DossierEvent]) -> None:
        self.ledgers = {p: PartitionLedger(CAL) for p in range(PARTITIONS)}
        self.history: dict[str, list[DossierEvent]] = defaultdict(list)
        for event in events:
            self.history[event.dossier_id].append(event)
            dossier = fold(event.dossier_id, self.history[event.dossier_id], CAL)
            self.ledgers[self.partition(event.dossier_id)].count(dossier, NOW, notify=False)

    @staticmethod
    def partition(dossier_id: str) -> int:
        return sum(dossier_id.encode()) % PARTITIONS

    def views(self) -> list[PartitionView]:
        return [PartitionView(p, led.due_index, led.open) for p, led in self.ledgers.items()]

    def truth(self, now: datetime) -> dict[str, tuple[Dossier, OpenState]]:
        out: dict[str, tuple[Dossier, OpenState]] = {}
        for dossier_id, events in self.history.items():
            dossier = fold(dossier_id, events, CAL)
            state = open_state(dossier, now, CAL)
            if state is not None:
                out[dossier_id] = (dossier, state)
        return out

    def all_pages(self, query: QueueQuery, now: datetime) -> tuple[list[dict[str, Any]], int]:
        items: list[dict[str, Any]] = []
        totals = set()
        while True:
            page = dossiers_page(self.views(), query, now, CAL)
            assert len(page["items"]) <= query.limit
            assert page["partitions"] == list(range(PARTITIONS))
            items.extend(page["items"])
            totals.add(page["total"])
            if not page["truncated"]:
                assert page["next"] is None
                break
            assert len(page["items"]) == query.limit
            query = parse_query({**query.params(), "after": page["next"]}.items())
        assert len(totals) == 1  # the total ignores the cursor
        return items, totals.pop()


@pytest.fixture(scope="module")
def center() -> Center:
    events = simulated(1500, seed=13)
    random.Random(13).shuffle(events)  # late events reach stored dossiers out of order
    return Center(events)


def expected_order(pairs: list[tuple[Dossier, OpenState]]) -> list[str]:
    keyed = sorted((d.due.timestamp(), d.dossier_id) for d, _ in pairs if d.due is not None)
    return [dossier_id for _, dossier_id in keyed]


@pytest.mark.parametrize("now_shift", [0, 3, 11])
def test_every_open_dossier_is_listed_once_in_its_state_with_its_working_days(
    center: Center, now_shift: int
) -> None:
    now = NOW + timedelta(days=now_shift, hours=now_shift)  # the clock moves, no event
    truth = center.truth(now)
    states = {state for _, state in truth.values()}
    assert {OpenState.OVERDUE, OpenState.IN_TIME, OpenState.PAUSED} <= states
    for state in [None, *OpenState]:
        wanted = [pair for pair in truth.values() if state is None or pair[1] is state]
        items, total = center.all_pages(QueueQuery(state=state, limit=37), now)
        ids = [item["dossier_id"] for item in items]
        assert len(ids) == len(set(ids)) == total == len(wanted)
        assert ids == expected_order(wanted)  # most overdue first, the id breaks ties
        for item in items:
            dossier, truth_state = truth[item["dossier_id"]]
            assert item["state"] == truth_state.value
            assert item["agency"] == dossier.agency
            assert item["procedure"] == dossier.procedure
            assert item["supplements"] == dossier.supplements
            assert item["apology"] is (dossier.apology_at is not None)
            assert datetime.fromisoformat(item["due"]) == dossier.due
            due_day, today = local_date(dossier.due), local_date(now)
            if truth_state is OpenState.OVERDUE:
                assert item["working_days_overdue"] == working_days_after(due_day, today)
                assert item["working_days_remaining"] is None
            elif truth_state in (OpenState.IN_TIME, OpenState.DUE_SOON):
                assert item["working_days_remaining"] == working_days_after(today, due_day)
                assert item["working_days_overdue"] is None
            else:
                assert item["working_days_overdue"] is item["working_days_remaining"] is None


def test_filters_select_exactly_their_dossiers(center: Center) -> None:
    truth = center.truth(NOW)
    overdue = [pair for pair in truth.values() if pair[1] is OpenState.OVERDUE]
    some = overdue[len(overdue) // 2][0]
    steps = [d.step for d, _ in truth.values() if d.step is not None]
    held = steps[len(steps) // 2]
    crossing, crossing_state = next(
        (d.step, state) for d, state in truth.values() if d.step and d.step.agency != d.agency
    )
    cases: list[tuple[dict[str, str], Any]] = [
        (
            {"state": "overdue", "apology": "no"},
            lambda d, s: s.value == "overdue" and not d.apology_at,
        ),
        (
            {"state": "overdue", "apology": "yes"},
            lambda d, s: s.value == "overdue" and d.apology_at,
        ),
        ({"agency": some.agency}, lambda d, s: d.agency == some.agency),
        ({"procedure": some.procedure}, lambda d, s: d.procedure == some.procedure),
        (
            {"procedure": some.procedure, "state": "overdue", "apology": "no", "agency": "SXD"},
            lambda d, s: (
                d.procedure == some.procedure
                and s.value == "overdue"
                and not d.apology_at
                and d.agency == "SXD"
            ),
        ),
        ({"agency": "NO-SUCH"}, lambda d, s: False),
        # Who holds it: the open step's department and agency (a receiving agency when no
        # step is open; liên thông dossiers are held by another agency than their own).
        (
            {"department": held.department},
            lambda d, s: d.step and d.step.department == held.department,
        ),
        ({"department": "none"}, lambda d, s: d.step is None),
        (
            {"held_by": crossing.agency},
            lambda d, s: (d.step.agency if d.step else d.agency) == crossing.agency,
        ),
        (
            {
                "held_by": crossing.agency,
                "state": crossing_state.value,
                "department": crossing.department,
            },
            lambda d, s: (
                s is crossing_state and d.step and d.step.department == crossing.department
            ),
        ),
    ]
    for params, keep in cases:
        query = parse_query({**params, "limit": "7"}.items())
        items, total = center.all_pages(query, NOW)
        wanted = [pair for pair in truth.values() if keep(*pair)]
        assert [item["dossier_id"] for item in items] == expected_order(wanted), params
        assert total == len(wanted)


def test_the_index_follows_the_open_dossiers(center: Center) -> None:
    for ledger in center.ledgers.values():
        assert len(ledger.due_index) == len(ledger.open)
        assert sum(map(len, ledger.due_index.by_procedure.values())) == len(ledger.open)


def test_closing_pausing_and_apologising_move_a_dossier_between_cells() -> None:
    def event(kind: str, at: str, **fields: Any) -> DossierEvent:
        return DossierEvent(
            event_id=f"{kind}-{at}",
            dossier_id="HS-1",
            type=EventType(kind),
            occurred_at=datetime.fromisoformat(at),
            **fields,
        )

    receipt = event(
        "received",
        "2026-03-02T09:00:00+07:00",
        agency="SXD",
        procedure="1.000948",
        channel=Channel.ONLINE,
        processing_days=10,
    )
    steps = [
        [receipt],
        [event("supplement_requested", "2026-03-03T09:00:00+07:00")],
        [event("supplement_received", "2026-03-05T09:00:00+07:00")],
        [event("supplement_requested", "2026-03-06T09:00:00+07:00")],
        [event("supplement_received", "2026-03-09T09:00:00+07:00")],
        [event("extended", "2026-03-10T09:00:00+07:00", new_due_at=NOW + timedelta(days=9))],
        [event("approved", "2026-03-11T09:00:00+07:00")],
        [event("returned", "2026-03-12T09:00:00+07:00")],
    ]
    ledger, history = PartitionLedger(CAL), []
    cells = []
    for step in steps:
        history.extend(step)
        ledger.count(fold("HS-1", history, CAL), NOW, notify=False)
        cells.append(sorted(ledger.due_index.cells, key=str))
        page = dossiers_page(
            [PartitionView(0, ledger.due_index, ledger.open)], QueueQuery(), NOW, CAL
        )
        assert len(page["items"]) == len(ledger.open) == len(ledger.due_index)
    assert cells[0] == [("running", False, "SXD"), ("running", False, None)]
    assert cells[1] == [("paused", False, "SXD"), ("paused", False, None)]
    assert cells[5] == [("running", True, "SXD"), ("running", True, None)]
    assert cells[6] == [("ready", True, "SXD"), ("ready", True, None)]
    assert cells[7] == [] and ledger.due_index.by_procedure == {}
    assert fold("HS-1", history[:5], CAL).supplements == 2


def test_working_days_overdue_skip_the_lunar_new_year() -> None:
    index, open_ = DueIndex(), {}
    due = datetime(2026, 2, 13, 23, 59, 59, tzinfo=LOCAL_TZ)  # Friday before Tết 2026
    dossier = Dossier(
        "HS-TET",
        agency="STP",
        procedure="2.000001",
        channel=Channel.DIRECT,
        received_at=due - timedelta(days=10),
        due=due,
    )
    index.update(dossier, None)
    open_["HS-TET"] = dossier
    now = datetime(2026, 2, 25, 9, 0, tzinfo=LOCAL_TZ)
    page = dossiers_page([PartitionView(3, index, open_)], QueueQuery(), now, CAL)
    (item,) = page["items"]
    assert item["state"] == "overdue"
    assert item["working_days_overdue"] == working_days_after(due.date(), now.date())
    assert item["working_days_overdue"] < (now.date() - due.date()).days - 4  # not calendar days
    assert page["partitions"] == [3]


@pytest.mark.parametrize(
    ("params", "sentence"),
    [
        ({"state": "late"}, "state must be one of in_time, due_soon, overdue, paused, ready"),
        ({"apology": "true"}, "apology must be yes or no"),
        ({"limit": "0"}, f"limit must be an integer 1–{MAX_LIMIT}"),
        ({"limit": "1001"}, f"limit must be an integer 1–{MAX_LIMIT}"),
        ({"limit": "²"}, f"limit must be an integer 1–{MAX_LIMIT}"),
        ({"after": "not-a-cursor"}, "after must be a `next` value"),
        ({"after": encode_cursor(due_prefix(NOW) + "x")[:-3]}, "after must be a `next` value"),
        ({"after": encode_cursor("12345678901234567890")}, "after must be a `next` value"),
        ({"agency": "x" * 65}, "agency must be 1–64 printable characters"),
        ({"procedure": "a\nb"}, "procedure must be 1–64 printable characters"),
        ({"agnecy": "SXD"}, "unknown parameter 'agnecy'"),
    ],
)
def test_bad_parameters_get_a_sentence(params: dict[str, str], sentence: str) -> None:
    with pytest.raises(BadQuery) as caught:
        parse_query(params.items())
    assert str(caught.value).startswith(sentence)


def test_a_parameter_given_twice_is_refused() -> None:
    with pytest.raises(BadQuery, match="state is given more than once"):
        parse_query([("state", "overdue"), ("state", "paused")])


def test_cursors_round_trip_and_items_know_their_position() -> None:
    key = due_prefix(datetime(2026, 3, 16, 23, 59, 59, tzinfo=LOCAL_TZ)) + "HS-2026-000123"
    assert decode_cursor(encode_cursor(key)) == key
    assert key_due(key) == datetime(2026, 3, 16, 16, 59, 59, tzinfo=UTC)
    item = {"due": "2026-03-16T23:59:59+07:00", "dossier_id": "HS-2026-000123"}
    assert item_key(item) == key
    assert parse_query([]) == QueueQuery()
    assert QueueQuery(limit=5).params() == {"limit": "5"}
    now = datetime.now(UTC)
    assert dossiers_page([], QueueQuery(), now, CAL)["items"] == []


def test_dossiers_without_a_due_have_their_own_cell_oldest_receipt_first() -> None:
    def receipt(number: int, at: str, **due: Any) -> DossierEvent:
        return DossierEvent(
            event_id=f"r-{number}",
            dossier_id=f"HS-{number}",
            type=EventType.RECEIVED,
            occurred_at=datetime.fromisoformat(at),
            agency="SXD",
            procedure="1.000948",
            channel=Channel.DIRECT,
            **due,
        )

    ledger = PartitionLedger(CAL)
    for event in (
        receipt(1, "2026-03-05T09:00:00+07:00"),  # no due (rule R11)
        receipt(2, "2026-03-02T09:00:00+07:00"),  # no due, received earlier
        receipt(3, "2026-03-02T09:00:00+07:00", processing_days=30),
    ):
        ledger.count(fold(event.dossier_id, [event], CAL), NOW, notify=False)
    views = [PartitionView(0, ledger.due_index, ledger.open)]
    page = dossiers_page(views, parse_query([("state", "no_due")]), NOW, CAL)
    assert [(i["dossier_id"], i["state"], i["due"]) for i in page["items"]] == [
        ("HS-2", "no_due", None),
        ("HS-1", "no_due", None),
    ]
    assert page["items"][0]["working_days_remaining"] is None
    everything = dossiers_page(views, QueueQuery(), NOW, CAL)
    assert {i["dossier_id"] for i in everything["items"]} == {"HS-1", "HS-2", "HS-3"}
    assert ("no_due", False, "SXD") in ledger.due_index.cells


def test_items_name_who_holds_them(center: Center) -> None:
    truth = center.truth(NOW)
    items, _ = center.all_pages(parse_query({"limit": "1000"}.items()), NOW)
    assert len(items) == len(truth)
    for item in items:
        dossier, _ = truth[item["dossier_id"]]
        step = dossier.step
        if step is None:
            assert (item["step"], item["department"], item["step_due"]) == (None, None, None)
            assert item["held_by"] == dossier.agency
        else:
            assert (item["step"], item["department"], item["held_by"]) == (
                step.step,
                step.department,
                step.agency,
            )
            assert datetime.fromisoformat(item["step_due"]) == step.due
    assert any(item["department"] for item in items)
