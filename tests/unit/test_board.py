"""The board's sums: exact when the workers hold every partition once, no total otherwise."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.domain.report import PeriodFigures
from service.outputs.board.gather import (
    QUEUES,
    WorkerAnswer,
    board_snapshot,
    coverage,
    department_rows,
    merge_pages,
    parse_samples,
)
from service.outputs.board.server import BoardError, parse_workers
from service.outputs.board.targets import Targets, TargetsError
from service.outputs.queue import decode_cursor, item_key

NOW = datetime(2026, 3, 18, 3, 0, tzinfo=UTC)


def report(partitions: list[int], **agencies: PeriodFigures) -> dict[str, Any]:
    return {
        "partitions": partitions,
        "agencies": {code: figures.to_dict() for code, figures in agencies.items()},
    }


def item(dossier_id: str, due: str) -> dict[str, Any]:
    return {"dossier_id": dossier_id, "due": due}


def page(partitions: list[int], *items: dict[str, Any], total: int | None = None) -> dict:
    return {
        "partitions": partitions,
        "items": list(items),
        "total": len(items) if total is None else total,
        "truncated": total is not None and total > len(items),
    }


METRICS = """\
# TYPE motcua_dossiers_open gauge
motcua_dossiers_open{{agency="SXD",state="in_time"}} {in_time}
motcua_dossiers_open{{agency="SXD",state="overdue"}} {overdue}
motcua_dossiers_open{{agency="SXD",state="paused"}} 1
motcua_dossiers_open{{agency="SXD",state="ready"}} 5
# TYPE motcua_overdue_without_apology gauge
motcua_overdue_without_apology{{agency="SXD"}} {no_apology}
"""


def answer(url: str, partitions: list[int], overdue: int, due: str) -> WorkerAnswer:
    samples = parse_samples(METRICS.format(in_time=10, overdue=overdue, no_apology=overdue - 1))
    month = PeriodFigures(new=8, resolved_early=3, resolved_on_time=1, received_online=2)
    queue = page(partitions, item(f"{url}-1", due))
    return WorkerAnswer(
        url,
        partitions=partitions,
        samples=samples,
        today=report(partitions, SXD=PeriodFigures(new=2, received_postal=1)),
        month=report(partitions, SXD=month),
        queues={name: queue for name, _ in QUEUES},
    )


def test_complete_workers_are_summed_with_a_total() -> None:
    answers = [
        answer("http://a", [0, 1, 2, 3], 4, "2026-03-16T23:59:59+07:00"),
        answer("http://b", [4, 5, 6, 7], 2, "2026-03-13T23:59:59+07:00"),
    ]
    board = board_snapshot(answers, 8, NOW, queue_size=5)
    assert board["complete"] and board["partitions"]["missing"] == []
    (row,) = board["agencies"]
    assert row["agency"] == "SXD"
    assert row["now"]["overdue"] == 6 and row["now"]["overdue_without_apology"] == 4
    assert row["now"]["in_progress"] == 10 + 4 + 1 + 10 + 2 + 1  # ready is not in progress
    assert row["now"]["overdue_share"] == 6 / 28
    assert row["month"]["new"] == 16 and row["month"]["early_share"] == 6 / 8
    assert row["month"]["online_share"] == 4 / 16
    assert row["today"]["postal_share"] == 2 / 4
    assert board["total"] is not None and board["total"]["month"]["resolved"] == 8
    queue = board["queues"]["overdue_without_apology"]
    assert [i["dossier_id"] for i in queue["items"]] == ["http://b-1", "http://a-1"]


def test_a_missing_worker_leaves_no_total_and_names_the_partitions() -> None:
    answers = [
        answer("http://a", [0, 1, 2, 3], 4, "2026-03-16T23:59:59+07:00"),
        WorkerAnswer("http://b", status="unreachable", detail="http://b/readyz: no answer"),
    ]
    board = board_snapshot(answers, 8, NOW, queue_size=5)
    assert not board["complete"]
    assert board["partitions"]["missing"] == [4, 5, 6, 7]
    assert board["total"] is None
    assert board["agencies"][0]["now"]["overdue"] == 4  # shown, marked incomplete by the page
    assert board["workers"][1]["status"] == "unreachable"


def test_partitions_answered_twice_are_not_complete() -> None:
    cover = coverage([[0, 1, 2], [2, 3]], 4)
    assert cover.twice == [2] and not cover.complete
    assert coverage([[0, 1], [2, 3]], 4).complete
    assert coverage([], 2).missing == [0, 1]


def test_partitions_past_the_expected_count_are_not_complete() -> None:
    # The topic has 6 partitions, the board was told 4: a dead worker's 5 goes unseen.
    cover = coverage([[0, 1, 2], [3, 4]], 4)
    assert cover.unexpected == [4] and not cover.missing and not cover.complete
    assert cover.to_dict()["unexpected"] == [4] and cover.to_dict()["complete"] is False
    assert "partitions 4 are beyond the 4 expected" in (cover.problem() or "")


def test_merged_pages_keep_due_order_and_give_a_cursor() -> None:
    a = page([0], item("A1", "2026-03-10T17:00:00+07:00"), item("A2", "2026-03-12T17:00:00+07:00"))
    b = page([1], item("B1", "2026-03-11T17:00:00+07:00"), total=9)
    merged = merge_pages([a, b], 2)
    assert [i["dossier_id"] for i in merged["items"]] == ["A1", "B1"]
    assert merged["total"] == 11 and merged["truncated"]
    assert decode_cursor(merged["next"]) == item_key(merged["items"][-1])


def test_targets_and_worker_addresses_are_checked(tmp_path: Path) -> None:
    good = tmp_path / "targets.toml"
    good.write_text("overdue_max = 0.02\nonline_min = 0.3\n")
    targets = Targets.from_file(good)
    assert targets.overdue_max == 0.02 and targets.postal_min == 0.15
    for text, error in [
        ("overdue_max = 2\n", "share from 0 to 1"),
        ("late_max = 0.1\n", "unknown targets"),
        ("overdue_max = \n", "cannot read"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(TargetsError, match=error):
            Targets.from_file(bad)
    assert parse_workers("http://a:6066/, http://b:6066") == ["http://a:6066", "http://b:6066"]
    for text in ["", "ftp://a", "a:6066", "http://a,http://a"]:
        with pytest.raises(BoardError):
            parse_workers(text)


def test_metric_samples_are_summed_by_name_and_labels() -> None:
    samples = parse_samples(METRICS.format(in_time=1, overdue=2, no_apology=1))
    assert samples[("motcua_dossiers_open", (("agency", "SXD"), ("state", "overdue")))] == 2
    assert isinstance(samples, Counter)


STEP_METRICS = """\
# TYPE motcua_dossiers_overdue_held gauge
motcua_dossiers_overdue_held{{agency="SXD",department="SXD.CM"}} {held_cm}
motcua_dossiers_overdue_held{{agency="SXD",department="none"}} 1
motcua_dossiers_overdue_held{{agency="STNMT",department="STNMT.CM"}} 3
motcua_dossiers_overdue_held{{agency="SXD",department="SXD.LD"}} 0
# TYPE motcua_steps_open gauge
motcua_steps_open{{agency="SXD",department="SXD.CM",state="overdue"}} 2
motcua_steps_open{{agency="SXD",department="SXD.CM",state="in_time"}} 9
motcua_steps_open{{agency="SXD",department="SXD.LD",state="in_time"}} 4
# TYPE motcua_steps_completed counter
motcua_steps_completed_total{{agency="SXD",department="SXD.CM",outcome="late"}} 5
motcua_steps_completed_total{{agency="SXD",department="SXD.CM",outcome="on_time"}} 7
motcua_steps_completed_total{{agency="SXD",department="SXD.MC",outcome="on_time"}} 3
"""


def test_departments_are_summed_over_workers_most_overdue_held_first() -> None:
    samples: Counter[Any] = Counter()
    samples.update(parse_samples(STEP_METRICS.format(held_cm=1)))
    samples.update(parse_samples(STEP_METRICS.format(held_cm=2)))
    # Two workers: every figure doubles, SXD.CM holds 1 + 2. SXD.LD has only in-time steps
    # open and SXD.MC only on-time steps: nothing late there, no row.
    assert department_rows(samples) == [
        {
            "agency": "STNMT",
            "department": "STNMT.CM",
            "overdue_held": 6,
            "steps_overdue": 0,
            "steps_late": 0,
            "steps_on_time": 0,
        },
        {
            "agency": "SXD",
            "department": "SXD.CM",
            "overdue_held": 3,
            "steps_overdue": 4,
            "steps_late": 10,
            "steps_on_time": 14,
        },
        {
            "agency": "SXD",
            "department": "none",
            "overdue_held": 2,
            "steps_overdue": 0,
            "steps_late": 0,
            "steps_on_time": 0,
        },
    ]


def test_the_index_view_sums_the_workers_and_scores_by_group() -> None:
    answers = [
        answer("http://a", [0, 1, 2, 3], 4, "2026-03-16T23:59:59+07:00"),
        answer("http://b", [4, 5, 6, 7], 2, "2026-03-13T23:59:59+07:00"),
    ]
    counts_a = {
        "online_share:den": 10,
        "timeliness_portal:den": 10,
        "timeliness_portal:num": 8,
        "reuse:den": 4,
    }
    counts_b = {
        "online_share:den": 10,
        "timeliness_portal:den": 10,
        "timeliness_portal:num": 10,
        "reuse:num": 2,
        "online_share:num": 5,
    }
    answers[0].month["agencies"]["SXD"]["index"] = {"counts": counts_a}
    answers[1].month["agencies"]["SXD"]["index"] = {"counts": counts_b}
    board = board_snapshot(answers, 8, NOW, queue_size=5)
    (view,) = board["index"]["agencies"]
    groups = {g["group"]: g for g in view["groups"]}
    assert groups["timeliness"]["points"] == pytest.approx(18.0)  # 20 × 18/20
    assert groups["timeliness"]["maximum"] == 20
    assert groups["digitisation"]["points"] == pytest.approx(1.25)  # reuse 2/4, T 80%
    assert groups["digitisation"]["maximum"] == 2  # only reuse is measured of the 22
    assert groups["digitisation"]["group_maximum"] == 22
    assert groups["transparency"]["points"] is None  # not measured here, not zero
    assert groups["online_payment"]["points"] is None
    assert view["points_total"] == pytest.approx(19.25) and view["points_max"] == 22
    assert board["index"]["total"]["points_total"] == pytest.approx(19.25)
    # The portal's reading leads: 20 received; reuse 2 of the 20, T 80%: 2 × 0.1 / 0.8;
    # the other digitisation indicators score 0 of their maxima; 5.4 and payment 0.
    assert groups["timeliness"]["portal_points"] == pytest.approx(18.0)
    assert groups["digitisation"]["portal_points"] == pytest.approx(0.25)
    assert groups["digitisation"]["portal_maximum"] == 6 + 4 + 2 + 4 + 2
    assert groups["online_payment"]["portal_points"] == 0.0
    assert groups["transparency"]["portal_points"] is None
    # 3.3 is measured (5 of 20 online, T 50%: 12 × 0.25 / 0.5 = 6) but its weight is a
    # guess: drawn in its group under both readings, marked, in no total.
    online = groups["online_service"]
    assert online["weight_unverified"] == ["3.3"]
    assert online["portal_points"] is None and online["portal_maximum"] is None
    assert online["portal_unverified_points"] == pytest.approx(6.0)
    assert online["portal_unverified_maximum"] == 12
    assert online["points"] == pytest.approx(6.0) and online["maximum"] == 12
    assert groups["timeliness"]["portal_unverified_points"] is None
    assert groups["timeliness"]["weight_unverified"] == []
    assert view["portal_total"] == pytest.approx(18.25) and view["portal_max"] == 50
    assert view["points_total"] == pytest.approx(19.25)  # still without 3.3's 6 points
    assert board["index"]["total_excludes"] == ["3.3"]
    assert [n["ref"] for n in board["index"]["not_measured"]][:4] == ["1.1", "1.2", "1.3", "1.4"]
    # Incomplete: no center total, as for the other figures.
    board = board_snapshot(answers[:1], 8, NOW, queue_size=5)
    assert board["index"]["total"] is None


async def test_a_worker_answer_sent_in_pieces_is_read_whole_and_a_huge_one_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A /metrics body that arrives over several network reads (a worker holding many
    partitions) is read to its end, not cut at the first read; a body over the cap is
    refused as an error, not parsed."""
    from aiohttp import ClientSession, web

    from service.outputs.board import gather

    piece = b"x" * 70_000

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(int(request.query["pieces"])):
            await response.write(piece)
            await asyncio.sleep(0.02)  # each piece its own network read
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/metrics", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with ClientSession() as session:
            status, body = await gather.get(session, f"http://127.0.0.1:{port}/metrics?pieces=5")
            assert status == 200 and body == piece * 5
            monkeypatch.setattr(gather, "MAX_BODY", 3 * len(piece))
            with pytest.raises(gather.WorkerError, match="larger than") as refused:
                await gather.get(session, f"http://127.0.0.1:{port}/metrics?pieces=5")
            assert refused.value.status == "error"
    finally:
        await runner.cleanup()
