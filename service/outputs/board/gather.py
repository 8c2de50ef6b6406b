"""Ask every worker, then sum and merge their answers into one board, exact or incomplete.

Each worker answers for the input partitions it holds: /readyz names them, /metrics gives
the open dossiers by state now (and where they sit: per agency and department), /api/report
today's and this month's figures, /api/dossiers its queues. A worker counts only if it is
ready and holds the same partitions before and after it is asked (no rebalance in between).
The board is complete when the counted workers hold every partition exactly once; otherwise
it names the missing partitions and gives no total, since a partial sum would look like the
real one.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from service.domain import LOCAL_TZ, OpenState
from service.domain.calendar import local_date
from service.domain.index import (
    COMPARED,
    GROUPS,
    INDICATORS,
    NOT_MEASURED,
    PORTAL,
    Figure,
    IndexFigures,
)
from service.domain.report import PeriodFigures
from service.outputs.coverage import coverage
from service.outputs.queue import QueueQuery, encode_cursor, item_key
from service.outputs.report import ReportError, combine, index_total

TIMEOUT_S = 4.0
MAX_BODY = 16 * 1024 * 1024
# The overdue queue, most urgent first: no apology letter yet, then apologised, then due soon.
QUEUES: tuple[tuple[str, dict[str, str]], ...] = (
    ("overdue_without_apology", {"state": "overdue", "apology": "no"}),
    ("overdue_with_apology", {"state": "overdue", "apology": "yes"}),
    ("due_soon", {"state": "due_soon"}),
)
IN_PROGRESS = (
    OpenState.IN_TIME,
    OpenState.DUE_SOON,
    OpenState.OVERDUE,
    OpenState.PAUSED,
    OpenState.NO_DUE,
)


class WorkerError(Exception):
    """A worker could not be asked, is not ready, or gave an answer the board cannot use."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class WorkerAnswer:
    """One worker's consistent set of answers, or why there is none."""

    url: str
    status: str = "ok"  # ok | unreachable | not_ready | moving | error
    detail: str | None = None
    partitions: list[int] = field(default_factory=list)
    samples: Counter[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=Counter)
    today: dict[str, Any] = field(default_factory=dict)
    month: dict[str, Any] = field(default_factory=dict)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    """(status, body) of a GET; WorkerError("unreachable") when there is no answer."""
    try:
        async with session.get(url) as response:
            # `content.read(n)` returns what has arrived so far, not n bytes: a body larger
            # than one network read came back cut short. Read to the end, within the cap.
            parts: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_any():
                size += len(chunk)
                if size > MAX_BODY:
                    raise WorkerError("error", f"{url}: the answer is larger than {MAX_BODY} bytes")
                parts.append(chunk)
            return response.status, b"".join(parts)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise WorkerError("unreachable", f"{url}: no answer ({type(exc).__name__})") from None


async def get_json(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    status, body = await get(session, url)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise WorkerError("error", f"{url}: HTTP {status}, not JSON") from None
    if status == 503:
        raise WorkerError("not_ready", f"{url}: not ready")
    if status != 200 or not isinstance(data, dict):
        detail = data.get("error") if isinstance(data, dict) else None
        raise WorkerError("error", f"{url}: HTTP {status} {detail or ''}".rstrip())
    return data


def _partitions(data: Mapping[str, Any], url: str) -> list[int]:
    partitions = data.get("partitions")
    if not isinstance(partitions, list) or not all(type(p) is int for p in partitions):
        raise WorkerError("error", f"{url}: the answer names no partitions")
    return sorted(partitions)


def _page(data: dict[str, Any], url: str) -> dict[str, Any]:
    if not isinstance(data.get("items"), list) or type(data.get("total")) is not int:
        raise WorkerError("error", f"{url}: /api/dossiers gave no page of items")
    return data


def parse_samples(text: str) -> Counter[tuple[str, tuple[tuple[str, str], ...]]]:
    out: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # A float into a Counter: typeshed's Counter admits int counts only.
            out[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value  # type: ignore[assignment]
    return out


async def ask_worker(
    session: aiohttp.ClientSession, base: str, today: date, queue_size: int
) -> WorkerAnswer:
    """Everything the board needs from one worker, consistent, or the reason it is absent."""
    base = base.rstrip("/")
    answer = WorkerAnswer(base)
    try:
        before = _partitions(await get_json(session, f"{base}/readyz"), base)
        month_start = today.replace(day=1).isoformat()
        report = f"{base}/api/report?from={{}}&to={today.isoformat()}"
        queue_urls = [
            f"{base}/api/dossiers?" + urlencode({**params, "limit": str(queue_size)})
            for _, params in QUEUES
        ]
        results = await asyncio.gather(
            get(session, f"{base}/metrics"),
            get_json(session, report.format(today.isoformat())),
            get_json(session, report.format(month_start)),
            *(get_json(session, url) for url in queue_urls),
        )
        after = _partitions(await get_json(session, f"{base}/readyz"), base)
        status, metrics = results[0]
        if status != 200:
            raise WorkerError("error", f"{base}/metrics: HTTP {status}")
        answer.today, answer.month = results[1], results[2]
        answer.queues = {
            name: _page(page, base) for (name, _), page in zip(QUEUES, results[3:], strict=True)
        }
        held = [_partitions(data, base) for data in results[1:]]
        if before != after or any(partitions != before for partitions in held):
            raise WorkerError("moving", f"{base}: its partitions moved while it was asked")
        answer.partitions = before
        answer.samples = parse_samples(metrics.decode("utf-8", "replace"))
        for data in (answer.today, answer.month):
            combine([(base, data)])  # raises ReportError on figures that are not counts
    except WorkerError as exc:
        answer.status, answer.detail = exc.status, exc.detail
    except (ReportError, ValueError, KeyError, TypeError) as exc:
        answer.status, answer.detail = "error", f"{base}: {exc}"
    return answer


# -- summing -----------------------------------------------------------------------------


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def period_row(figures: PeriodFigures) -> dict[str, Any]:
    """A period's counts and the shares the board shows (None where undefined)."""
    row = figures.to_dict()
    resolved = figures.resolved
    row.update(
        early_share=_share(figures.resolved_early, resolved),
        on_time_share=_share(figures.resolved_on_time, resolved),
        late_share=_share(figures.resolved_late, resolved),
        timely_share=_share(figures.resolved_early + figures.resolved_on_time, resolved),
    )
    return row


def now_row(samples: Counter[Any], agency: str | None) -> dict[str, Any]:
    """Open dossiers by state now, from summed /metrics samples (agency None: all)."""

    def value(name: str, **labels: str) -> int:
        total = 0.0
        for (sample_name, sample_labels), v in samples.items():
            if sample_name != name:
                continue
            got = dict(sample_labels)
            if agency is not None and got.get("agency") != agency:
                continue
            if all(got.get(k) == want for k, want in labels.items()):
                total += v
        return int(total)

    states = {s.value: value("motcua_dossiers_open", state=s.value) for s in OpenState}
    in_progress = sum(states[s.value] for s in IN_PROGRESS)
    return {
        **states,
        "in_progress": in_progress,
        "overdue_share": _share(states["overdue"], in_progress),
        "overdue_without_apology": value("motcua_overdue_without_apology"),
    }


# Where late dossiers sit: per (agency, department), from the step families of /metrics.
DEPARTMENT_FIGURES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("overdue_held", "motcua_dossiers_overdue_held", {}),
    ("steps_overdue", "motcua_steps_open", {"state": "overdue"}),
    ("steps_late", "motcua_steps_completed_total", {"outcome": "late"}),
    ("steps_on_time", "motcua_steps_completed_total", {"outcome": "on_time"}),
)


_LATE_FIGURES = ("overdue_held", "steps_overdue", "steps_late")


def department_rows(samples: Counter[Any]) -> list[dict[str, Any]]:
    """Per agency and department holding steps: overdue dossiers held now, steps overdue
    now, steps completed late and on time; most overdue held first. Only places where
    something is late are listed (on-time steps alone do not make a row)."""
    names = {name for _, name, _ in DEPARTMENT_FIGURES}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for (name, labels), value in samples.items():
        if name not in names or not value:
            continue
        got = dict(labels)
        place = (got.get("agency", ""), got.get("department", ""))
        for figure, wanted_name, wanted in DEPARTMENT_FIGURES:
            if wanted_name == name and all(got.get(k) == v for k, v in wanted.items()):
                row = rows.setdefault(
                    place,
                    {"agency": place[0], "department": place[1]}
                    | {f: 0 for f, _, _ in DEPARTMENT_FIGURES},
                )
                row[figure] += int(value)
    return sorted(
        (row for row in rows.values() if any(row[f] for f in _LATE_FIGURES)),
        key=lambda r: (-r["overdue_held"], -r["steps_overdue"], r["agency"], r["department"]),
    )


def merge_pages(pages: Sequence[Mapping[str, Any]], limit: int) -> dict[str, Any]:
    """Several workers' pages of one query as one page: the first `limit` by (due, id)."""
    items = sorted((item for page in pages for item in page["items"]), key=item_key)
    truncated = len(items) > limit or any(page["truncated"] for page in pages)
    shown = items[:limit]
    return {
        "total": sum(int(page["total"]) for page in pages),
        "truncated": truncated,
        "next": encode_cursor(item_key(shown[-1])) if truncated and shown else None,
        "items": shown,
    }


def board_snapshot(
    answers: Sequence[WorkerAnswer],
    partition_count: int,
    now: datetime,
    queue_size: int,
) -> dict[str, Any]:
    """The board's JSON: per-agency rows, the center total (only when complete), queues."""
    counted = [a for a in answers if a.ok]
    cover = coverage((a.partitions for a in counted), partition_count)
    today_by, _, _ = combine([(a.url, a.today) for a in counted])
    month_by, _, month_index = combine([(a.url, a.month) for a in counted])
    samples: Counter[Any] = Counter()
    for a in counted:
        samples.update(a.samples)
    agencies = sorted(
        set(today_by)
        | set(month_by)
        | {dict(labels).get("agency", "") for (name, labels) in samples if "agency" in dict(labels)}
    )
    rows = []
    for code in agencies:
        today, month = today_by.get(code, PeriodFigures()), month_by.get(code, PeriodFigures())
        rows.append(
            {
                "agency": code,
                "today": period_row(today),
                "month": period_row(month),
                "now": now_row(samples, code),
            }
        )
    total = None
    if cover.complete:
        total_today, total_month = PeriodFigures(), PeriodFigures()
        for figures in today_by.values():
            total_today.add(figures)
        for figures in month_by.values():
            total_month.add(figures)
        total = {
            "today": period_row(total_today),
            "month": period_row(total_month),
            "now": now_row(samples, None),
        }
    queues = {
        name: merge_pages([a.queues[name] for a in counted], queue_size) for name, _ in QUEUES
    }
    day = local_date(now)
    return {
        "as_of": now.astimezone(LOCAL_TZ).isoformat(timespec="seconds"),
        "today": day.isoformat(),
        "month_from": day.replace(day=1).isoformat(),
        "partitions": cover.to_dict(),
        "complete": cover.complete,
        "workers": [
            {"url": a.url, "status": a.status, "detail": a.detail, "partitions": a.partitions}
            for a in answers
        ],
        "agencies": rows,
        "departments": department_rows(samples),
        "total": total,
        "index": {
            "agencies": [
                {"agency": code, **index_view(month_index[code])} for code in sorted(month_index)
            ],
            "total": index_view(index_total(month_index.values())) if cover.complete else None,
            "not_measured": [n.to_dict() for n in NOT_MEASURED],
            # Shown in their group, marked, and left out of both totals (weight a guess).
            "total_excludes": [i.ref for i in INDICATORS if not i.weight_verified],
        },
        "queues": queues,
    }


def index_view(figures: IndexFigures) -> dict[str, Any]:
    """One agency's (or the center's) national index this month, by group, the portal's
    reading first: `portal_points` of the group's indicators whose weight is verified, as
    the portal scores them (its denominators, 0 when empty), and `points` of the indicators
    measured here under motcua's reading (dossiers whose reported facts decide them); a
    group with none is "not measured here" (null), never zero. docs/report.md."""
    groups = []
    for group, group_max in GROUPS.items():
        measured = [i for i in figures.measured() if i.group == group]
        compared = [i for i in COMPARED if i.group == group]
        portal = [figures.figure(i.code, PORTAL) for i in compared]
        unverified = [i for i in measured if not i.weight_verified]
        portal_unverified = [figures.figure(i.code, PORTAL) for i in unverified]
        groups.append(
            {
                "group": group,
                "group_maximum": group_max,
                "portal_points": sum(f.points or 0.0 for f in portal if f) if compared else None,
                "portal_maximum": sum(i.maximum for i in compared) if compared else None,
                # The portal's reading of the measured indicators whose weight is a guess
                # (3.3): drawn beside the group's figure, marked, in no total.
                "portal_unverified_points": sum(f.points or 0.0 for f in portal_unverified if f)
                if unverified
                else None,
                "portal_unverified_maximum": sum(i.maximum for i in unverified)
                if unverified
                else None,
                "points": sum(figures.points(i.code) or 0.0 for i in measured)
                if measured
                else None,
                "maximum": sum(i.maximum for i in measured) if measured else None,
                "weight_unverified": [i.ref for i in unverified],
                "indicators": [
                    {
                        "code": i.code,
                        "ref": i.ref,
                        "weight_verified": i.weight_verified,
                        "portal": (figures.figure(i.code, PORTAL) or _NO_FIGURE).to_dict(),
                        "numerator": figures.numerator(i.code),
                        "denominator": figures.denominator(i.code),
                        "ratio": figures.ratio(i.code),
                        "points": figures.points(i.code),
                        "maximum": i.maximum,
                    }
                    for i in measured
                ],
            }
        )
    measured_total = [i for i in figures.measured() if i.weight_verified]
    return {
        "groups": groups,
        "portal_total": figures.total_points(PORTAL) if figures.counts else None,
        "portal_max": figures.total_maximum(PORTAL),
        "points_total": figures.total_points() if measured_total else None,
        "points_max": figures.total_maximum() if measured_total else None,
    }


_NO_FIGURE = Figure(0, 0, None, None)


async def merged_dossiers(
    session: aiohttp.ClientSession, workers: Sequence[str], query: QueueQuery, expected: int
) -> dict[str, Any]:
    """`/api/dossiers` over every worker: one merged page, with its coverage."""
    suffix = "/api/dossiers?" + urlencode(query.params())

    async def one(base: str) -> tuple[str, dict[str, Any] | WorkerError]:
        try:
            page = await get_json(session, base.rstrip("/") + suffix)
            _partitions(page, base)
            if not isinstance(page.get("items"), list):
                raise WorkerError("error", f"{base}: the answer has no items")
            return base, page
        except WorkerError as exc:
            return base, exc

    results = await asyncio.gather(*(one(base) for base in workers))
    pages = [page for _, page in results if isinstance(page, dict)]
    cover = coverage((page["partitions"] for page in pages), expected)
    merged = merge_pages(pages, query.limit)
    return {
        "partitions": cover.to_dict(),
        "complete": cover.complete,
        "workers": [
            {"url": base, "status": "ok"}
            if isinstance(r, dict)
            else {"url": base, "status": r.status, "detail": r.detail}
            for base, r in results
        ],
        "query": query.params(),
        **merged,
    }
