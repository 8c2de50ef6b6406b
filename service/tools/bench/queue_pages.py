"""How long a page of the per-dossier queue takes at a million open dossiers (`motcua bench`).

Builds the partitions' due indexes as the ledger does (`DueIndex.update` per dossier), with
open dossiers shaped like the simulated center (22 agencies, ~1,700 procedures, dues from a
month past to two months ahead, some paused, ready or with an apology), then times
`dossiers_page` plus the JSON encoding, as `GET /api/dossiers` runs them on the loop.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from schemas import Channel
from service.domain import DEFAULT_CALENDAR, Dossier
from service.domain.calendar import end_of_local_day, local_date
from service.outputs.queue import PartitionView, QueueQuery, dossiers_page, parse_query
from service.state.due_index import DueIndex, due_key
from service.tools.simulate import catalog

if TYPE_CHECKING:
    from service.tools.bench.run import Run

PARTITIONS = 8
CHANNELS = (Channel.DIRECT,) * 14 + (Channel.ONLINE,) * 5 + (Channel.POSTAL,)


def build(open_dossiers: int, now: datetime, seed: int = 7) -> list[PartitionView]:
    """`open_dossiers` open dossiers spread over the partitions, indexed."""
    rng = random.Random(seed)
    procedures = catalog()
    today = local_date(now)
    # Shared due instants, as the ledger's dossiers share their events' datetimes.
    dues = [end_of_local_day(today + timedelta(days=d)) for d in range(-30, 61)]
    indexes = [DueIndex() for _ in range(PARTITIONS)]
    opens: list[dict[str, Dossier]] = [{} for _ in range(PARTITIONS)]
    for n in range(open_dossiers):
        procedure = procedures[rng.randrange(len(procedures))]
        due = dues[rng.randrange(len(dues))]
        received = due - timedelta(days=rng.randrange(1, 40))
        roll = rng.random()
        dossier = Dossier(
            f"HS-{n:09d}",
            agency=procedure.agency,
            procedure=procedure.code,
            channel=CHANNELS[n % len(CHANNELS)],
            received_at=received,
            due=due,
            paused_at=received + timedelta(days=1) if roll < 0.05 else None,
            clock_end=received + timedelta(days=2) if 0.05 <= roll < 0.12 else None,
            apology_at=received if due < now and rng.random() < 0.6 else None,
            supplements=1 if roll < 0.05 else 0,
        )
        partition = n % PARTITIONS
        indexes[partition].update(dossier, None)
        opens[partition][dossier.dossier_id] = dossier
    return [PartitionView(p, indexes[p], opens[p]) for p in range(PARTITIONS)]


def _timed(run: Callable[[], Any], repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
        "max_ms": round(times[-1], 2),
    }


def _update_cost(view: PartitionView, count: int) -> dict[str, float]:
    """µs per `DueIndex.update` on the per-event path: a dossier whose place is unchanged (an
    appraisal, a timer tick) and one that moves (a new due, a pause, an apology)."""
    dossiers = list(view.open.values())[:count]
    moved = [replace(d, due=d.due + timedelta(days=3)) for d in dossiers if d.due is not None]
    out = {}
    for name, pairs in (
        ("unchanged", [(replace(d), d) for d in dossiers]),
        ("moved", list(zip(moved, dossiers, strict=True))),
    ):
        started = time.perf_counter()
        for new, old in pairs:
            view.index.update(new, old)
        out[f"{name}_us"] = round((time.perf_counter() - started) / len(pairs) * 1e6, 2)
        if name == "moved":
            for new, old in pairs:
                view.index.update(old, new)  # back where they were
    return out


def bench_queue(open_dossiers: int = 1_000_000, repeat: int = 200) -> dict[str, Any]:
    """p50/p99 ms of a page of 100: the first page, pages deep in the queue (cursor), the
    overdue page, and filtered pages (agency + apology, one procedure)."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    views = build(open_dossiers, now)
    build_s = time.perf_counter() - started
    gc.collect()
    gc.freeze()  # as the worker does after a rebuild: a million dossiers out of the GC's sight
    cal = DEFAULT_CALENDAR
    rng = random.Random(3)
    ids = [dossier_id for view in views for dossier_id in list(view.open)[:2000]]
    by_id = {dossier_id: view.open[dossier_id] for view in views for dossier_id in view.open}

    def page(query: QueueQuery) -> Callable[[], Any]:
        return lambda: orjson.dumps(dossiers_page(views, query, now, cal))

    def deep() -> Any:
        after = due_key(by_id[ids[rng.randrange(len(ids))]])
        return orjson.dumps(dossiers_page(views, QueueQuery(after=after), now, cal))

    some = by_id[ids[0]]
    agency_query = parse_query([("state", "overdue"), ("apology", "no"), ("agency", "SXD")])
    procedure_query = parse_query([("procedure", some.procedure or "")])
    cases = {
        "first_page": page(QueueQuery()),
        "deep_page": deep,
        "overdue_page": page(QueueQuery(state=parse_query([("state", "overdue")]).state)),
        "agency_overdue_no_apology": page(agency_query),
        "procedure_page": page(procedure_query),
    }
    results = {name: _timed(run, repeat) for name, run in cases.items()}
    update = _update_cost(views[0], min(20_000, len(views[0].open)))
    return {
        "open_dossiers": open_dossiers,
        "partitions": PARTITIONS,
        "page_size": 100,
        "index_build_us_per_dossier": round(build_s / open_dossiers * 1e6, 2),
        "index_update_us": update,
        "pages": results,
        "queue_p50_ms": results["first_page"]["p50_ms"],
        "queue_p99_ms": max(r["p99_ms"] for r in results.values()),
    }


def measure(run: Run) -> None:
    """The bench step: pages at the plan's largest open-dossier size (a million in full)."""
    from service.tools.bench.base import progress

    size = max(run.plan.open_sizes)
    progress(f"queue pages: {size:,} open dossiers in {PARTITIONS} partitions, in memory")
    result = bench_queue(size)
    pages = result["pages"]
    run.results.update(
        queue_open_dossiers=size,
        queue_p50_ms=result["queue_p50_ms"],
        queue_p99_ms=result["queue_p99_ms"],
        queue_filtered_p99_ms=pages["agency_overdue_no_apology"]["p99_ms"],
        queue_procedure_p99_ms=pages["procedure_page"]["p99_ms"],
        queue_index_update_us=result["index_update_us"]["moved_us"],
    )


def rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    if "queue_p99_ms" not in r:
        return []
    return [
        (
            f"/api/dossiers page of 100 at {r['queue_open_dossiers']:,} open (p50 / p99)",
            f"{r['queue_p50_ms']} / {r['queue_p99_ms']} ms",
            "p99 ≤ 50 ms",
        ),
        (
            "  filtered: agency + overdue + no apology / one procedure (p99)",
            f"{r['queue_filtered_p99_ms']} / {r['queue_procedure_p99_ms']} ms",
            "",
        ),
        (
            "  due index update per event, dossier moved",
            f"{r['queue_index_update_us']} µs",
            "≈ 2 µs",
        ),
    ]


if __name__ == "__main__":
    print(orjson.dumps(bench_queue(), option=orjson.OPT_INDENT_2).decode())
