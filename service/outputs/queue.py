"""The per-dossier queue (`GET /api/dossiers`): open dossiers, most overdue first.

A page is read from each partition's due index (service/state/due_index.py): the cells a
query asks for are merged by (due, dossier id) from where the state's due bounds and the
cursor fall, so a page costs a few bisects per cell plus its own items, never a scan of the
open dossiers. The `procedure`, `department` and `held_by` filters instead go through the
dossiers they may match (a procedure's own set; for the other two, every open dossier of the
partitions: the due index has no department cells). Working days overdue or remaining come
from the working calendar. The answer carries codes and times only.
"""

from __future__ import annotations

import base64
import binascii
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sortedcontainers import SortedList

from service.domain import LOCAL_TZ, Dossier, OpenState, WorkingCalendar
from service.domain.calendar import local_date, start_of_local_day
from service.domain.dossier import held_by, open_state
from service.state.due_index import (
    KINDS,
    NO_DUE,
    PAUSED,
    READY,
    RUNNING,
    WIDTH,
    DueIndex,
    DueKey,
    clock_kind,
    due_key,
    due_prefix,
    key_dossier_id,
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_PARAM = 64
MAX_CURSOR = 400
PARAMS = ("state", "agency", "procedure", "department", "held_by", "apology", "limit", "after")
SCOPE = "this worker's partitions; motcua board merges all workers"


class BadQuery(ValueError):
    """A query parameter the queue cannot use (answered with 400 and this sentence)."""


@dataclass(frozen=True)
class QueueQuery:
    """A validated `/api/dossiers` query."""

    state: OpenState | None = None
    agency: str | None = None
    procedure: str | None = None
    department: str | None = None  # the department holding its open step
    held_by: str | None = None  # the agency holding it: its open step's, else the receiver
    apology: bool | None = None
    limit: int = DEFAULT_LIMIT
    after: DueKey | None = None

    def params(self) -> dict[str, str]:
        """The query string that asks for this query (the cursor included)."""
        out: dict[str, str] = {}
        if self.state is not None:
            out["state"] = self.state.value
        if self.agency is not None:
            out["agency"] = self.agency
        if self.procedure is not None:
            out["procedure"] = self.procedure
        if self.department is not None:
            out["department"] = self.department
        if self.held_by is not None:
            out["held_by"] = self.held_by
        if self.apology is not None:
            out["apology"] = "yes" if self.apology else "no"
        out["limit"] = str(self.limit)
        if self.after is not None:
            out["after"] = encode_cursor(self.after)
        return out


@dataclass(frozen=True)
class PartitionView:
    """What a page reads of one partition: its due index and its open dossiers."""

    partition: int
    index: DueIndex
    open: Mapping[str, Dossier]


# -- parameters --------------------------------------------------------------------------


def encode_cursor(key: DueKey) -> str:
    """An opaque `next`/`after` token for a position (due, dossier id) in the queue."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> DueKey:
    bad = BadQuery("after must be a `next` value from an earlier page of this API")
    if len(text) > MAX_CURSOR:
        raise bad
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, ValueError):
        raise bad from None
    if len(key) <= WIDTH or not (key[:WIDTH].isascii() and key[:WIDTH].isdigit()):
        raise bad
    return key


def _text(name: str, value: str) -> str:
    if not value or len(value) > MAX_PARAM or not value.isprintable():
        raise BadQuery(f"{name} must be 1–{MAX_PARAM} printable characters")
    return value


def parse_query(pairs: Iterable[tuple[str, str]]) -> QueueQuery:
    """Validate the query string's (name, value) pairs; BadQuery says what is wrong."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in PARAMS:
            raise BadQuery(f"unknown parameter {name[:MAX_PARAM]!r}; use {', '.join(PARAMS)}")
        if name in values:
            raise BadQuery(f"{name} is given more than once")
        values[name] = value
    state = None
    if "state" in values:
        try:
            state = OpenState(values["state"])
        except ValueError:
            names = ", ".join(s.value for s in OpenState)
            raise BadQuery(f"state must be one of {names}") from None
    apology = None
    if "apology" in values:
        if values["apology"] not in ("yes", "no"):
            raise BadQuery("apology must be yes or no")
        apology = values["apology"] == "yes"
    limit = DEFAULT_LIMIT
    if "limit" in values:
        raw = values["limit"]
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 5 and 1 <= int(raw) <= MAX_LIMIT):
            raise BadQuery(f"limit must be an integer 1–{MAX_LIMIT}")
        limit = int(raw)
    return QueueQuery(
        state=state,
        agency=_text("agency", values["agency"]) if "agency" in values else None,
        procedure=_text("procedure", values["procedure"]) if "procedure" in values else None,
        department=_text("department", values["department"]) if "department" in values else None,
        held_by=_text("held_by", values["held_by"]) if "held_by" in values else None,
        apology=apology,
        limit=limit,
        after=decode_cursor(values["after"]) if "after" in values else None,
    )


# -- the page ----------------------------------------------------------------------------

# (clock kind, lowest key, key bound): the keys lo <= key < hi of that kind's cells.
Span = tuple[str, str | None, str | None]


def state_spans(state: OpenState | None, now: datetime, calendar: WorkingCalendar) -> list[Span]:
    """Where a state's dossiers lie in due order (rule R9 as bounds on the due)."""
    if state is None:
        return [(kind, None, None) for kind in KINDS]
    if state is OpenState.PAUSED:
        return [(PAUSED, None, None)]
    if state is OpenState.READY:
        return [(READY, None, None)]
    if state is OpenState.NO_DUE:
        return [(NO_DUE, None, None)]
    now_key = due_prefix(now)
    # Due soon: the due's local date is at most the next working day, i.e. the due is
    # before local midnight after that day. Overdue: strictly after the due.
    soon_day = calendar.next_working_day(local_date(now)) + timedelta(days=1)
    soon_key = due_prefix(start_of_local_day(soon_day))
    if state is OpenState.OVERDUE:
        return [(RUNNING, None, now_key)]
    if state is OpenState.DUE_SOON:
        return [(RUNNING, now_key, soon_key)]
    return [(RUNNING, soon_key, None)]


def dossiers_page(
    views: Sequence[PartitionView], query: QueueQuery, now: datetime, calendar: WorkingCalendar
) -> dict[str, Any]:
    """The answer to `query` over `views` at `now`: items, total, truncation and cursor."""
    spans = state_spans(query.state, now, calendar)
    if query.procedure is not None or query.department is not None or query.held_by is not None:
        keys, total = _filtered_keys(views, query, spans)
    else:
        keys, total = _merged_keys(views, query, spans)
    rows: list[tuple[DueKey, dict[str, Any]]] = []
    for key, view in keys:
        dossier = view.open.get(key_dossier_id(key))
        state = open_state(dossier, now, calendar) if dossier is not None else None
        if dossier is None or state is None:
            continue  # the index and the open dossiers are updated together: never expected
        rows.append((key, dossier_item(dossier, state, now, calendar)))
    truncated = len(rows) > query.limit
    rows = rows[: query.limit]
    return {
        "as_of": now.astimezone(LOCAL_TZ).isoformat(),
        "partitions": sorted(view.partition for view in views),
        "scope": SCOPE,
        "query": query.params(),
        "total": total,
        "truncated": truncated,
        "next": encode_cursor(rows[-1][0]) if truncated else None,
        "items": [item for _, item in rows],
    }


def _wanted_cells(view: PartitionView, query: QueueQuery, kind: str) -> Iterable[SortedList]:
    # Without an agency filter, the cells of every agency (agency None): six a partition.
    for (cell_kind, apology, agency), cell in view.index.cells.items():
        if cell_kind != kind or agency != query.agency:
            continue
        if query.apology is not None and apology != query.apology:
            continue
        yield cell


def _merged_keys(
    views: Sequence[PartitionView], query: QueueQuery, spans: list[Span]
) -> tuple[list[tuple[DueKey, PartitionView]], int]:
    """Up to limit + 1 keys after the cursor, merged over every wanted cell; and the total."""
    heads: list[tuple[DueKey, int, int, int]] = []
    ranges: list[tuple[Any, PartitionView]] = []
    total = 0
    for view in views:
        for kind, lo, hi in spans:
            for cell in _wanted_cells(view, query, kind):
                start = cell.bisect_left(lo) if lo is not None else 0
                end = cell.bisect_left(hi) if hi is not None else len(cell)
                total += max(0, end - start)
                after = query.after
                if after is not None and (lo is None or after >= lo):
                    start = cell.bisect_right(after)
                if start < end:
                    heads.append((cell[start], start, end, len(ranges)))
                    ranges.append((cell, view))
    heapq.heapify(heads)
    out: list[tuple[DueKey, PartitionView]] = []
    while heads and len(out) <= query.limit:
        key, pos, end, which = heads[0]
        cell, view = ranges[which]
        out.append((key, view))
        if pos + 1 < end:
            heapq.heapreplace(heads, (cell[pos + 1], pos + 1, end, which))
        else:
            heapq.heappop(heads)
    return out, total


def _filtered_keys(
    views: Sequence[PartitionView], query: QueueQuery, spans: list[Span]
) -> tuple[list[tuple[DueKey, PartitionView]], int]:
    """The same for a procedure (its dossiers are few) or a department or holding agency
    (every open dossier is looked at): filter and sort them all."""
    found: list[tuple[DueKey, PartitionView]] = []
    for view in views:
        if query.procedure is not None:
            candidates: Iterable[str] = view.index.by_procedure.get(query.procedure, ())
        else:
            candidates = view.open
        for dossier_id in candidates:
            dossier = view.open.get(dossier_id)
            if dossier is None:
                continue
            if query.procedure is not None and dossier.procedure != query.procedure:
                continue
            if query.agency is not None and dossier.agency != query.agency:
                continue
            if query.department is not None or query.held_by is not None:
                agency, department = held_by(dossier)
                if query.held_by is not None and agency != query.held_by:
                    continue
                if query.department is not None and department != query.department:
                    continue
            if query.apology is not None and (dossier.apology_at is not None) != query.apology:
                continue
            key = due_key(dossier)
            kind = clock_kind(dossier)
            for span_kind, lo, hi in spans:
                if kind == span_kind and (lo is None or lo <= key) and (hi is None or key < hi):
                    found.append((key, view))
                    break
    found.sort(key=lambda pair: pair[0])
    total = len(found)
    if query.after is not None:
        after = query.after
        found = [pair for pair in found if pair[0] > after]
    return found[: query.limit + 1], total


# -- one item ----------------------------------------------------------------------------


@lru_cache(maxsize=16384)
def _working_days(after: date, until: date, calendar: WorkingCalendar) -> int:
    # A page repeats a few (due date, today) pairs; the count walks the days between.
    return calendar.working_days_between(after, until)


def working_days_overdue(due: datetime, now: datetime, calendar: WorkingCalendar) -> int:
    """Working days after the due's local date, up to and including today's.

    0 for a dossier that went overdue today, or on a day off since its last working day.
    """
    return _working_days(local_date(due), local_date(now), calendar)


def working_days_remaining(due: datetime, now: datetime, calendar: WorkingCalendar) -> int:
    """Working days after today up to and including the due's date (0: due today)."""
    return _working_days(local_date(now), local_date(due), calendar)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(LOCAL_TZ).isoformat() if moment is not None else None


def dossier_item(
    dossier: Dossier, state: OpenState, now: datetime, calendar: WorkingCalendar
) -> dict[str, Any]:
    """One queue line: codes and times only."""
    assert dossier.channel is not None
    overdue = remaining = None
    step = dossier.step
    if state is OpenState.OVERDUE and dossier.due is not None:
        overdue = working_days_overdue(dossier.due, now, calendar)
    elif state in (OpenState.DUE_SOON, OpenState.IN_TIME) and dossier.due is not None:
        remaining = working_days_remaining(dossier.due, now, calendar)
    return {
        "dossier_id": dossier.dossier_id,
        "agency": dossier.agency,
        "procedure": dossier.procedure,
        "channel": dossier.channel.value,
        "received_at": _iso(dossier.received_at),
        "due": _iso(dossier.due),
        "new_due_at": _iso(dossier.new_due_at),
        "state": state.value,
        "working_days_overdue": overdue,
        "working_days_remaining": remaining,
        "apology": dossier.apology_at is not None,
        "apology_at": _iso(dossier.apology_at),
        "supplements": dossier.supplements,
        "paused_at": _iso(dossier.paused_at),
        "clock_end": _iso(dossier.clock_end),
        # Who holds it (rules R12–R17): the open step, its department and agency, its due.
        "step": step.step if step is not None else None,
        "department": step.department if step is not None else None,
        "held_by": step.agency if step is not None else dossier.agency,
        "step_due": _iso(step.due) if step is not None else None,
    }


def item_key(item: Mapping[str, Any]) -> DueKey:
    """An item's position in the queue (for merging the pages of several workers)."""
    return due_prefix(datetime.fromisoformat(item["due"])) + item["dossier_id"]
