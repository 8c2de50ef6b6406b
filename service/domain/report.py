"""Period reports (báo cáo kết quả giải quyết TTHC theo kỳ) from compact per-dossier facts.

`DossierFacts` condenses one dossier's events (progress.DossierProgress builds them as the
rule engine goes): when it was received, when its clock ended or it was withdrawn, and a
timeline of the due in force between events. From those alone, `period_report` answers any
period in one pass of float comparisons: carried over, new, resolved early / on time / late,
withdrawn, in progress within / past the due at the period's end, and the QĐ 766 timeliness
rate. No I/O.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any

from schemas import Channel
from schemas.events import direct_init
from service.domain.calendar import local_date, start_of_local_day
from service.domain.clock import Outcome
from service.domain.dossier import Dossier
from service.domain.index import (
    IndexFacts,
    IndexFigures,
    index_marks,
    unfinished_keys,
    with_legal_timeliness,
)

# QĐ 766/QĐ-TTg: the timeliness component is worth 20 of the index's 100 points.
TIMELINESS_POINTS = 20

# A timeline segment: (from instant, due in force) as two little-endian doubles. A paused
# dossier's due is frozen into ±inf so that "overdue at E" is always `due < E`:
# +inf = the supplement was requested by the due (within while paused),
# -inf = requested after it (overdue while paused).
SEGMENT = struct.Struct("<dd")
PAUSED_WITHIN = math.inf
PAUSED_OVERDUE = -math.inf
# No due known (rule R11): never overdue, and counted apart from the judged dossiers.
NO_DUE = sys.float_info.max


@direct_init  # built for every touched dossier: slots set directly (schemas/events.py)
@dataclass(frozen=True, slots=True)
class DossierFacts:
    """What any period report needs to know about one received dossier.

    Instants are float epoch seconds (a double resolves 0.24 µs at today's epoch, finer than
    the microseconds events carry, so comparisons keep their order). `timeline` holds the
    segments while the dossier is in progress: from each instant on, the due in force.
    """

    agency: str
    channel: Channel
    received_at: float
    clock_end: float | None  # approved, rejected or returned: the clock stops
    outcome: Outcome | None
    withdrawn_at: float | None  # withdrawn before the clock ended (R4), else None
    timeline: bytes
    index: IndexFacts | None = None  # the national index's facts (service/domain/index.py)

    def segments(self) -> list[tuple[float, float]]:
        """The timeline as (from instant, due in force or ±inf while paused) pairs."""
        return list(SEGMENT.iter_unpack(self.timeline))

    def due_at(self, instant: float) -> float:
        """The due in force just before `instant` (events at `instant` are not yet applied)."""
        segments = SEGMENT.iter_unpack(self.timeline)
        _, due = next(segments)  # the receipt's segment applies from the start
        for start, segment_due in segments:
            if start >= instant:
                break
            due = segment_due
        return due

    def overdue_at(self, instant: float) -> bool:
        """Past its due at `instant`, for a dossier in progress then (paused: frozen verdict)."""
        return self.due_at(instant) < instant


def due_at_receipt(timeline: bytes, dossier: Dossier) -> float:
    """The due in force at the receipt: the timeline's first segment, unless the dossier
    was paused at its receipt's instant (then the due `fold` ended with)."""
    due = SEGMENT.unpack_from(timeline)[1]
    if math.isinf(due):
        assert dossier.due is not None
        return dossier.due.timestamp()
    return due


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class PeriodFigures:
    """The figures of one agency (or the center) for one period."""

    carried_over: int = 0  # kỳ trước chuyển sang
    new: int = 0  # mới tiếp nhận
    resolved_early: int = 0  # đã giải quyết trước hạn
    resolved_on_time: int = 0  # đúng hạn
    resolved_late: int = 0  # quá hạn
    withdrawn: int = 0  # rút hồ sơ
    in_progress_within: int = 0  # đang giải quyết trong hạn
    in_progress_overdue: int = 0  # đang giải quyết quá hạn
    received_direct: int = 0  # of `new`, by channel
    received_online: int = 0
    received_postal: int = 0
    resolved_without_due: int = 0  # R11: resolved, never judged (no due known)
    in_progress_without_due: int = 0  # R11: in progress, never within nor overdue

    @property
    def resolved(self) -> int:
        return (
            self.resolved_early
            + self.resolved_on_time
            + self.resolved_late
            + self.resolved_without_due
        )

    @property
    def in_progress(self) -> int:
        return self.in_progress_within + self.in_progress_overdue + self.in_progress_without_due

    @property
    def judged(self) -> int:
        """Resolved or in progress with a due: the QĐ 766 denominator (R11 leaves out the
        dossiers without a due, which cannot be early, on time or late)."""
        timely = self.resolved_early + self.resolved_on_time + self.in_progress_within
        return timely + self.resolved_late + self.in_progress_overdue

    @property
    def timeliness_rate(self) -> float | None:
        """QĐ 766: (early + on time + in progress within) / judged."""
        timely = self.resolved_early + self.resolved_on_time + self.in_progress_within
        return _share(timely, self.judged)

    @property
    def timeliness_score(self) -> float | None:
        """QĐ 766 component 2 (tiến độ giải quyết): 20 points × the timeliness rate."""
        rate = self.timeliness_rate
        return None if rate is None else TIMELINESS_POINTS * rate

    @property
    def online_share(self) -> float | None:
        return _share(self.received_online, self.new)

    @property
    def postal_share(self) -> float | None:
        return _share(self.received_postal, self.new)

    def add(self, other: PeriodFigures) -> PeriodFigures:
        """Add `other`'s counts into these (in place) and return self, for summing."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def subtract(self, other: PeriodFigures) -> PeriodFigures:
        """Take `other`'s counts out of these (in place) and return self."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) - getattr(other, name))
        return self

    def to_dict(self) -> dict[str, Any]:
        """Counts, then the derived figures (rates are None when undefined)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _COUNTS}
        out.update(
            resolved=self.resolved,
            in_progress=self.in_progress,
            judged=self.judged,
            timeliness_rate=self.timeliness_rate,
            timeliness_score=self.timeliness_score,
            online_share=self.online_share,
            postal_share=self.postal_share,
        )
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeriodFigures:
        """The counts of a `to_dict` (derived figures are recomputed, never summed)."""
        values: dict[str, int] = {}
        for name in _COUNTS:
            value = data.get(name, 0)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r:.40}")
            values[name] = value
        return cls(**values)


_COUNTS: tuple[str, ...] = tuple(f.name for f in fields(PeriodFigures))
# Positions in the per-agency row the hot loop counts into (a list is cheaper than setattr).
_CARRIED, _NEW, _EARLY, _ON_TIME, _LATE, _WITHDRAWN, _WITHIN, _OVERDUE = range(8)
_BY_CHANNEL = {Channel.DIRECT: 8, Channel.ONLINE: 9, Channel.POSTAL: 10}
_RESOLVED_NO_DUE, _IN_PROGRESS_NO_DUE = 11, 12
_BY_OUTCOME = {Outcome.EARLY: _EARLY, Outcome.ON_TIME: _ON_TIME, Outcome.LATE: _LATE}


def period_bounds(start: date, end_inclusive: date) -> tuple[float, float]:
    """[local midnight of `start`, local midnight of the day after `end_inclusive`)."""
    begin = start_of_local_day(start).timestamp()
    end = start_of_local_day(end_inclusive + timedelta(days=1)).timestamp()
    return begin, end


def current_period(kind: str, now: datetime) -> tuple[date, date]:
    """The local calendar month or year containing `now`: the gauges' `period` label."""
    today = local_date(now)
    if kind == "month":
        first = today.replace(day=1)
        return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    if kind == "year":
        return date(today.year, 1, 1), date(today.year, 12, 31)
    raise ValueError(f"period must be month or year, not {kind!r}")


def period_report(
    facts: Iterable[DossierFacts],
    start: date,
    end_inclusive: date,
    agency: str | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, PeriodFigures]:
    """Figures per agency for the local dates start..end_inclusive, in one pass.

    An event exactly at the end instant belongs to the next period. `now`, for a period that
    has not ended yet, is when in-progress dossiers are judged (the end would call dossiers
    due later this month overdue); membership still uses the period's bounds.
    """
    begin, end = period_bounds(start, end_inclusive)
    judged_at = end if now is None else min(end, now.timestamp())
    rows: dict[str, list[int]] = {}
    for f in facts:
        received = f.received_at
        if received >= end:
            continue  # received after the period: not in it
        if agency is not None and f.agency != agency:
            continue
        clock_end = f.clock_end
        ended = clock_end if clock_end is not None else f.withdrawn_at
        if ended is not None and ended < begin:
            continue  # finished before the period started
        row = rows.get(f.agency)
        if row is None:
            row = rows[f.agency] = [0] * len(_COUNTS)
        if received < begin:
            row[_CARRIED] += 1
        else:
            row[_NEW] += 1
            row[_BY_CHANNEL[f.channel]] += 1
        if ended is None or ended >= end:
            due = f.due_at(judged_at)
            if due == NO_DUE:
                row[_IN_PROGRESS_NO_DUE] += 1
            else:
                row[_OVERDUE if due < judged_at else _WITHIN] += 1
        elif clock_end is not None:
            outcome = f.outcome
            row[_BY_OUTCOME[outcome] if outcome is not None else _RESOLVED_NO_DUE] += 1
        else:
            row[_WITHDRAWN] += 1
    return {code: PeriodFigures(*row) for code, row in rows.items()}


def index_report(
    facts: Iterable[DossierFacts],
    start: date,
    end_inclusive: date,
    agency: str | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, IndexFigures]:
    """The national index's counts per agency for the local dates start..end_inclusive:
    each dossier's marks inside the period, plus what unfinished dossiers add, judged at
    the end (or `now`, as `period_report`)."""
    begin, end = period_bounds(start, end_inclusive)
    judged_at = end if now is None else min(end, now.timestamp())
    out: dict[str, IndexFigures] = {}
    for f in facts:
        index = f.index
        if index is None or f.received_at >= end or (agency is not None and f.agency != agency):
            continue
        ended = index.ended_at
        if ended is not None and ended < begin and f.received_at < begin:
            continue  # received and finished before the period: no mark can fall in it
        figures = out.get(f.agency) or IndexFigures()
        counted = False
        for instant, key in index_marks(index):
            if begin <= instant < end:
                figures.add_key(key)
                counted = True
        if index.ended_at is None or index.ended_at >= end:
            due = f.due_at(judged_at)
            overdue = None if due == NO_DUE else due < judged_at
            for key in unfinished_keys(index, overdue, begin, end, judged_at):
                figures.add_key(key)
                counted = True
        if counted:
            out[f.agency] = figures
    return out


def with_period_timeliness(
    index: dict[str, IndexFigures], figures: dict[str, PeriodFigures]
) -> dict[str, IndexFigures]:
    """The index with its legal timeliness (2.1) set from the period's figures, so both
    reports give one rate (see `index.with_legal_timeliness`)."""
    timely = {
        agency: (f.resolved_early + f.resolved_on_time + f.in_progress_within, f.judged)
        for agency, f in figures.items()
    }
    return with_legal_timeliness(index, timely)


def total(figures: Iterable[PeriodFigures]) -> PeriodFigures:
    """The sum of several agencies' (or workers') figures: the center total."""
    out = PeriodFigures()
    for item in figures:
        out.add(item)
    return out
