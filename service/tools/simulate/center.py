"""The simulated center: its sample agencies and procedures, how it behaves, and the seeded,
realistic dossier event stream it sends (`generate`).

The agencies, procedures and volumes are SAMPLE DATA shaped like Bắc Giang's center in 2020
(seed 003: 22 agencies, ~1,700 procedures, ~260 dossiers a working day, 70/25/5
direct/online/postal); the agency codes are invented abbreviations and the procedure codes
generated numbers in the national format. None of it is reference data.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from bisect import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from schemas import SCHEMA_VERSION, TYPE_ORDER, Channel, EventType
from service.domain.calendar import (
    CLOSES_AT,
    DEFAULT_CALENDAR,
    LOCAL_TZ,
    OPENS_AT,
    WorkingCalendar,
)

# -- the sample center ----------------------------------------------------------------------


@dataclass(frozen=True)
class Agency:
    """An agency (sở, ngành) with a desk at the center; weights shape the sample."""

    code: str
    name: str
    procedure_weight: float  # share of the center's procedures it owns
    dossier_weight: float  # share of the dossiers it receives


# Sample data: plausible abbreviations, not codes from any reference list.
AGENCIES: tuple[Agency, ...] = (
    Agency("STNMT", "Sở Tài nguyên và Môi trường", 110, 14.0),
    Agency("SGTVT", "Sở Giao thông vận tải", 130, 16.0),
    Agency("SKHDT", "Sở Kế hoạch và Đầu tư", 120, 13.0),
    Agency("STP", "Sở Tư pháp", 150, 12.0),
    Agency("SLDTBXH", "Sở Lao động – Thương binh và Xã hội", 130, 7.0),
    Agency("SXD", "Sở Xây dựng", 60, 5.0),
    Agency("SYT", "Sở Y tế", 170, 5.0),
    Agency("SCT", "Sở Công Thương", 140, 4.0),
    Agency("CT", "Cục Thuế tỉnh", 30, 4.0),
    Agency("SGDDT", "Sở Giáo dục và Đào tạo", 110, 3.0),
    Agency("SNNPTNT", "Sở Nông nghiệp và Phát triển nông thôn", 140, 3.0),
    Agency("STC", "Sở Tài chính", 40, 2.0),
    Agency("SNV", "Sở Nội vụ", 90, 2.0),
    Agency("SVHTTDL", "Sở Văn hóa, Thể thao và Du lịch", 120, 2.0),
    Agency("BQLKCN", "Ban Quản lý các khu công nghiệp", 40, 2.0),
    Agency("CA", "Công an tỉnh", 35, 2.0),
    Agency("BHXH", "Bảo hiểm xã hội tỉnh", 25, 2.0),
    Agency("STTTT", "Sở Thông tin và Truyền thông", 45, 1.5),
    Agency("SKHCN", "Sở Khoa học và Công nghệ", 60, 1.0),
    Agency("SNGV", "Sở Ngoại vụ", 10, 0.3),
    Agency("BDT", "Ban Dân tộc", 5, 0.2),
    Agency("TTR", "Thanh tra tỉnh", 10, 0.2),
)

# Legal time limits in working days and how many procedures have each; 0 = same day (trả
# trong ngày). Mostly 1–20, a few 30–45.
_LIMITS = (
    (0, 4), (1, 6), (2, 5), (3, 10), (5, 14), (7, 10), (10, 14),
    (12, 5), (15, 14), (20, 10), (25, 2), (30, 4), (40, 1), (45, 1),
)  # fmt: skip


@dataclass(frozen=True)
class Procedure:
    """An administrative procedure (thủ tục hành chính) of one agency."""

    code: str
    agency: str
    limit_days: int  # legal time limit in working days; 0 = same day


def _apportion(total: int, weights: list[float], minimum: int = 0) -> list[int]:
    """Split `total` in proportion to `weights` (largest remainder), at least `minimum` each."""
    base = [minimum] * len(weights)
    rest = total - minimum * len(weights)
    scale = sum(weights)
    shares = [rest * w / scale for w in weights]
    counts = [b + math.floor(s) for b, s in zip(base, shares, strict=True)]
    left = total - sum(counts)
    by_fraction = sorted(range(len(weights)), key=lambda i: (math.floor(shares[i]) - shares[i], i))
    for i in by_fraction[:left]:
        counts[i] += 1
    return counts


@lru_cache(maxsize=8)
def catalog(procedures: int = 1700) -> tuple[Procedure, ...]:
    """The sample center's procedures: the same list for every seed, so runs compare."""
    rng = random.Random(f"motcua-catalog-{procedures}")
    counts = _apportion(procedures, [a.procedure_weight for a in AGENCIES], minimum=1)
    numbers = rng.sample(range(1, 13_000), procedures)  # unique, so the codes are unique
    limits, limit_weights = zip(*_LIMITS, strict=True)
    out: list[Procedure] = []
    for agency, count in zip(AGENCIES, counts, strict=True):
        for _ in range(count):
            series = rng.choices((1, 2, 3), (80, 15, 5))[0]
            code = f"{series}.{numbers[len(out)]:06d}"  # "1.000948"-style
            out.append(Procedure(code, agency.code, rng.choices(limits, limit_weights)[0]))
    return tuple(out)


# -- behaviour of the center ----------------------------------------------------------------

# The centers' opening hours (service/domain/calendar.py) as seconds of the local day.
WORK_START = OPENS_AT.hour * 3600 + OPENS_AT.minute * 60
WORK_END = CLOSES_AT.hour * 3600 + CLOSES_AT.minute * 60
_MORNING_END = 11 * 3600 + 30 * 60
_AFTERNOON_START = 13 * 3600
_END_OF_DAY = 86_399  # 23:59:59, the computed due (rule R1)
_SAME_DAY_CUTOFF = 15 * 3600  # same-day receipts after 15:00 are due next morning
_NEXT_MORNING_DUE = 11 * 3600
_MIN_GAP = 600  # seconds between a dossier's consecutive steps
# Working days a dossier can reach past its receipt: 45-day limit, two supplement waits,
# withdrawal, lateness and collection of the result, with room to spare.
_HORIZON_DAYS = 250

_CHANNELS = ((Channel.DIRECT, 0.70), (Channel.ONLINE, 0.95), (Channel.POSTAL, 1.0))
_EXPLICIT_DUE_SHARE = 0.25  # receipts that carry the printed appointment (ngày hẹn trả)
_SUPPLEMENT_SHARE = 0.08
_SECOND_CYCLE_SHARE = 0.2
_NEVER_RESUMED_SHARE = 0.12
_WAIT_DAYS = ((1, 2, 3, 4, 5, 7, 10, 15), (18, 22, 18, 12, 10, 9, 7, 4))
# Withdrawals (~1.5%) come mostly after a supplement request (seed 003).
_WITHDRAW_IF_SUPPLEMENT = 0.10
_WITHDRAW_OTHERWISE = 0.0075
_WITHDRAW_WHILE_PAUSED = 0.7
_REJECT_SHARE = 0.02
_ON_DUE_DAY_SHARE = 0.12  # resolved on the due date (đúng hạn) rather than before it
_LATE_DAYS = ((1, 2, 3, 4, 5, 8), (40, 22, 14, 10, 8, 6))
_APOLOGY_SHARE = 0.85  # late dossiers whose agency apologises before the due
# Working days from the decision to the result handed back (trả kết quả), by channel.
_RETURN_DAYS = {
    Channel.DIRECT: ((0, 1, 2, 3, 5, 10), (35, 30, 15, 10, 5, 5)),
    Channel.ONLINE: ((0, 1, 2), (60, 35, 5)),
    Channel.POSTAL: ((1, 2, 3), (50, 35, 15)),
}
_WEEKDAY_WEIGHT = (1.15, 1.05, 1.0, 1.0, 0.9, 0.6, 0.6)  # Monday first; weekends = make-up days

# Processing steps (bước xử lý) by how many a dossier has, and the department suffix of each
# (một cửa desk, chuyên môn specialists, lãnh đạo sign-off): sample data like the agencies.
_STEPS = {
    1: ("THAM_DINH",),
    2: ("THAM_DINH", "PHE_DUYET"),
    3: ("TIEP_NHAN", "THAM_DINH", "PHE_DUYET"),
    4: ("TIEP_NHAN", "THAM_DINH", "XAC_MINH", "PHE_DUYET"),
}
_STEP_DEPARTMENT = {"TIEP_NHAN": "MC", "THAM_DINH": "CM", "XAC_MINH": "CM", "PHE_DUYET": "LD"}
DEPARTMENT_NAMES = {"MC": "Bộ phận một cửa", "CM": "Phòng chuyên môn", "LD": "Lãnh đạo"}
_STEP_ENDS = frozenset((EventType.APPROVED, EventType.REJECTED, EventType.WITHDRAWN))
_DECISIONS = frozenset((EventType.APPROVED, EventType.REJECTED))
_CROSSING_SHARE = 0.1  # liên thông: one step at another agency


class SimulationError(ValueError):
    """Bad simulation arguments; str(e) is one line for the CLI."""


@dataclass(frozen=True)
class IndexRates:
    """How often the simulated center reports the national index's fields (issue 18), each a
    share in [0, 1]. Sample behaviour, not measured data."""

    reported: float = 0.8  # receipts carrying the index fields (the rest: unknown)
    fee: float = 0.4  # of those, dossiers with a fee due
    paid_online: float = 0.5  # fees paid on the national portal or provincial gateway
    digitised: float = 0.7  # dossiers with a digitised component
    reused: float = 0.3  # with a component reusing digitised data
    data_store: float = 0.1  # with a component from the personal data store
    identity_verified: float = 0.5  # of online dossiers, VNeID-verified accounts
    full_online: float = 0.6  # of online dossiers, toàn trình
    e_result: float = 0.6  # returned dossiers with an electronic result
    rated: float = 0.3  # returned dossiers the citizen rates
    dissatisfied: float = 0.05  # of those, "dissatisfied"

    def __post_init__(self) -> None:
        for item in dataclass_fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise SimulationError(f"index rate {item.name} must be in [0, 1], got {value!r}")

    @classmethod
    def parse(cls, text: str) -> IndexRates:
        """`name=share,...` (e.g. "fee=0.5,rated=0.1"); unnamed rates keep their default."""
        values: dict[str, float] = {}
        names = {item.name for item in dataclass_fields(cls)}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, raw = part.partition("=")
            if name.strip() not in names:
                raise SimulationError(
                    f"unknown index rate {name.strip()!r}; one of {sorted(names)}"
                )
            try:
                values[name.strip()] = float(raw)
            except ValueError:
                raise SimulationError(
                    f"index rate {name.strip()} is not a number: {raw!r}"
                ) from None
        return cls(**values)


@dataclass
class SimulationConfig:
    """What to simulate. `now` defaults to the current time and is filled in on creation, so
    `config.now` is the instant the history ends at."""

    dossiers: int
    seed: int = 1
    overdue_ratio: float = 0.03
    now: datetime | None = None
    duplicate_ratio: float = 0.0  # share of events sent a second time, a little later
    shuffle_window: int = 0  # deliver out of order within chunks of this many events
    live_due_seconds: tuple[float, float] | None = None  # due this long after now, or none
    live_due_count: int = 5
    dossiers_per_day: int = 260
    procedures: int = 1700
    calendar: WorkingCalendar = DEFAULT_CALENDAR
    index: IndexRates = IndexRates()

    def __post_init__(self) -> None:
        if type(self.dossiers) is not int or self.dossiers < 1:
            raise SimulationError(f"dossiers must be at least 1, got {self.dossiers!r}")
        for name in ("overdue_ratio", "duplicate_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise SimulationError(f"{name.replace('_', ' ')} must be in [0, 1], got {value!r}")
        if self.shuffle_window < 0:
            raise SimulationError(f"shuffle window must be >= 0, got {self.shuffle_window}")
        if self.dossiers_per_day < 1:
            raise SimulationError(f"dossiers per day must be >= 1, got {self.dossiers_per_day}")
        if self.procedures < len(AGENCIES):
            raise SimulationError(f"the center needs at least {len(AGENCIES)} procedures")
        if self.live_due_seconds is not None:
            low, high = self.live_due_seconds
            if not 0 <= low <= high or self.live_due_count < 0:
                raise SimulationError("live due seconds must be 0 <= low <= high")
        if self.now is None:
            self.now = datetime.now(UTC)
        elif self.now.utcoffset() is None:
            raise SimulationError("now must be timezone-aware")


# -- generation -----------------------------------------------------------------------------

# A planned event: (epoch seconds, type, fields beyond the common ones).
_Planned = tuple[int, EventType, dict[str, Any]]
# A position in working time: (index into the working-day table, seconds after local midnight).
_Slot = tuple[int, int]
# A heap entry: (epoch, type order, dossier number, event number, the event dict).
_Queued = tuple[int, int, int, int, dict[str, Any]]


class _Center:
    """One simulation run: the working-day table, the receipt schedule, the dossier plans."""

    def __init__(self, config: SimulationConfig) -> None:
        assert config.now is not None
        self.config = config
        self.calendar = config.calendar
        self.now_ts = config.now.timestamp()
        local_now = config.now.astimezone(LOCAL_TZ)
        self.today = local_now.date()
        self.now_sec = local_now.hour * 3600 + local_now.minute * 60 + local_now.second
        self.rng = random.Random(config.seed)
        # Separate streams, so the live dossiers do not change the history around them.
        self.live_rng = random.Random(f"{config.seed}-live")
        # Steps have their own stream too: the other events stay as they were without them.
        self.step_rng = random.Random(f"{config.seed}-steps")
        # The index fields draw from their own stream too: the clock's events stay the same.
        self.index_rng = random.Random(f"{config.seed}-index")
        token = hashlib.blake2b(
            f"{config.seed}|{config.now.isoformat()}".encode(), digest_size=3
        ).hexdigest()
        self.id_prefix = f"SIM-{token}"  # distinct runs never share dossier ids

        procedures = catalog(config.procedures)
        self.agency_cum: list[float] = []
        self.by_agency: list[tuple[list[Procedure], list[float]]] = []
        total = 0.0
        for agency in AGENCIES:
            own = [p for p in procedures if p.agency == agency.code]
            # A few procedures take most of an agency's dossiers (Zipf-like popularity).
            cum, acc = [], 0.0
            for rank in range(len(own)):
                acc += 1.0 / (rank + 1) ** 1.1
                cum.append(acc)
            self.by_agency.append((own, cum))
            total += agency.dossier_weight
            self.agency_cum.append(total)

        self.live_count = (
            min(config.live_due_count, config.dossiers) if config.live_due_seconds else 0
        )
        self.normal_count = config.dossiers - self.live_count
        receipt_days = self._receipt_days(self.normal_count)
        live_day = self._live_receipt_day()
        first = min([d for d, _, _ in receipt_days] + [live_day])
        self.days = self._working_days(first, max([d for d, _, _ in receipt_days] + [live_day]))
        self.day_start = [
            int(datetime.combine(d, datetime.min.time(), LOCAL_TZ).timestamp()) for d in self.days
        ]
        self.day_label = [d.strftime("%y%m%d") for d in self.days]
        index = {d: i for i, d in enumerate(self.days)}
        counts = _apportion(self.normal_count, [w for _, w, _ in receipt_days])
        self.schedule = [
            (index[d], count, latest)
            for (d, _, latest), count in zip(receipt_days, counts, strict=True)
            if count
        ]
        self.live_day = index[live_day]

    # -- the calendar ---------------------------------------------------------------------

    def _receipt_days(self, dossiers: int) -> list[tuple[date, float, int]]:
        """(date, weight, latest receipt second) for the working days the receipts fall on,
        oldest first, ending at now, enough for `dossiers` at the configured daily volume."""
        need = dossiers / self.config.dossiers_per_day
        days: list[tuple[date, float, int]] = []
        got = 0.0
        if dossiers and self.calendar.is_working_day(self.today) and self.now_sec > WORK_START + 60:
            latest = min(self.now_sec, WORK_END)
            weight = (
                _WEEKDAY_WEIGHT[self.today.weekday()]
                * (latest - WORK_START)
                / (WORK_END - WORK_START)
            )
            days.append((self.today, weight, latest))
            got += weight
        day = self.today
        while got < need:
            day = self.calendar.previous_working_day(day)
            # Day-to-day swing of ±15% around the weekday pattern.
            weight = _WEEKDAY_WEIGHT[day.weekday()] * self.rng.uniform(0.85, 1.15)
            days.append((day, weight, WORK_END))
            got += weight
        days.reverse()
        return days

    def _live_receipt_day(self) -> date:
        if self.calendar.is_working_day(self.today) and self.now_sec > WORK_START + 60:
            return self.today
        return self.calendar.previous_working_day(self.today)

    def _working_days(self, first: date, last: date) -> list[date]:
        days, day, after = [], first, 0
        while after < _HORIZON_DAYS:
            if self.calendar.is_working_day(day):
                days.append(day)
                if day > last:
                    after += 1
            day += timedelta(days=1)
        return days

    def _ts(self, slot: _Slot) -> int:
        return self.day_start[slot[0]] + slot[1]

    def _slot(
        self, day: int, after: _Slot, before: int = WORK_END, rng: random.Random | None = None
    ) -> _Slot:
        """A moment in working hours on `day` (before `before`), at least _MIN_GAP after
        `after`; the next working day if that day has no room left."""
        rng = rng or self.rng
        if day <= after[0]:
            day = after[0]
            low = max(after[1] + _MIN_GAP, WORK_START)
        else:
            low = WORK_START
        if low < before:
            return day, rng.randrange(low, before)
        return day + 1, rng.randrange(WORK_START, WORK_END)

    def _slot_before(self, day: int, after: _Slot, due: _Slot) -> _Slot:
        """Like `_slot`, but before the due whenever any room is left before it, so a dossier
        the plan keeps on time is not pushed late by a full afternoon."""
        cap = min(due[1], WORK_END)
        slot = self._slot(day, after, cap if day >= due[0] else WORK_END)
        if slot[0] < due[0] or (slot[0] == due[0] and slot[1] < cap):
            return slot
        return self._slot(due[0], after, cap)

    def _between(self, start: _Slot, end: _Slot) -> int:
        """An epoch strictly between two slots, in working hours when there is room."""
        for day in (self.rng.randint(start[0], end[0]), start[0], end[0]):
            low = start[1] + 60 if day == start[0] else WORK_START
            high = end[1] - 60 if day == end[0] else WORK_END
            if low < high:
                return self.day_start[day] + self.rng.randrange(low, high)
        return (self._ts(start) + self._ts(end)) // 2

    # -- one dossier ----------------------------------------------------------------------

    def _pick(self, rng: random.Random) -> tuple[Procedure, Channel]:
        agency = bisect(self.agency_cum, rng.random() * self.agency_cum[-1])
        own, cum = self.by_agency[agency]
        procedure = own[bisect(cum, rng.random() * cum[-1])]
        draw = rng.random()
        channel = next(c for c, upto in _CHANNELS if draw < upto)
        return procedure, channel

    def _plan(self, day: int, sec: int) -> list[_Planned]:
        """Every event of one dossier received at (day, sec), including those after now."""
        plan = self._plan_clock(day, sec)
        self._add_steps(plan)
        self._add_index(plan)
        return plan

    def _add_steps(self, plan: list[_Planned]) -> None:
        """Two to four processing steps between the receipt and the clock's end (or the
        withdrawal, or a pause that never ends); a tenth of the dossiers pass one step to
        another agency (liên thông). The last step is completed just before the decision."""
        rng = self.step_rng
        received_at, _, receipt = plan[0]
        ends = [(at, kind) for at, kind, _ in plan[1:] if kind in _STEP_ENDS]
        end, end_kind = min(ends) if ends else (plan[-1][0], EventType.SUPPLEMENT_REQUESTED)
        count = rng.randint(2, 4)
        if end - received_at < 120 * count:
            return
        picks = [received_at + 60] + [
            received_at + int((end - received_at) * rng.uniform(0.05, 0.9))
            for _ in range(count - 1)
        ]
        starts = sorted({at for at in map(self._working_moment, picks) if at < end - 60})
        if not starts:
            return
        agency = receipt["agency"]
        days = receipt.get("processing_days") or rng.randint(1, 5)
        other = None
        if rng.random() < _CROSSING_SHARE:
            other = rng.choice([a.code for a in AGENCIES if a.code != agency])
        steps = _STEPS[len(starts)]
        for i, (at, step) in enumerate(zip(starts, steps, strict=True)):
            fields: dict[str, Any] = {"step": step}
            owner = other if other is not None and i == 1 else agency
            fields["department"] = f"{owner}.{_STEP_DEPARTMENT[step]}"
            if owner != agency:
                fields["agency"] = owner
            if step == "TIEP_NHAN":
                fields["step_hours"] = 8
            else:
                fields["step_days"] = max(1, days // len(starts))
            plan.append((at, EventType.STEP_STARTED, fields))
        done = end - 60
        if end_kind in _DECISIONS and done > starts[-1] and self._in_hours(done):
            plan.append((done, EventType.STEP_COMPLETED, {"step": steps[len(starts) - 1]}))

    def _in_hours(self, epoch: int) -> bool:
        day = bisect(self.day_start, epoch) - 1
        return WORK_START <= epoch - self.day_start[day] < WORK_END

    def _working_moment(self, epoch: int) -> int:
        """`epoch`, or the next moment in working hours after it (steps happen at work)."""
        day = bisect(self.day_start, epoch) - 1
        sec = epoch - self.day_start[day]
        if sec >= WORK_END:
            day, sec = day + 1, WORK_START + self.step_rng.randrange(3600)
        elif sec < WORK_START:
            sec = WORK_START + self.step_rng.randrange(3600)
        return self.day_start[min(day, len(self.day_start) - 1)] + sec

    def _add_index(self, plan: list[_Planned]) -> None:
        """The index fields on the receipt and the return, a payment and a rating."""
        rng, rates = self.index_rng, self.config.index
        received_at, _, receipt = plan[0]
        if rng.random() >= rates.reported:
            return
        components = rng.randint(1, 8)
        receipt["components"] = components
        for name, share in (
            ("components_digitised", rates.digitised),
            ("components_reused", rates.reused),
            ("components_from_data_store", rates.data_store),
        ):
            receipt[name] = rng.randint(1, components) if rng.random() < share else 0
        fee_due = rng.random() < rates.fee
        receipt["fee_due"] = fee_due
        online = receipt["channel"] == Channel.ONLINE.value
        receipt["identity_verified"] = online and rng.random() < rates.identity_verified
        if online:
            receipt["online_level"] = "full" if rng.random() < rates.full_online else "partial"
        if fee_due:
            method = (
                rng.choice(("national_portal", "provincial_gateway"))
                if rng.random() < rates.paid_online
                else "counter"
            )
            at = self._slot_of(received_at)
            paid = self._slot(at[0] + rng.randint(0, 1), at, rng=rng)
            plan.append((self._ts(paid), EventType.PAID, {"method": method}))
        returned = next((p for p in plan if p[1] is EventType.RETURNED), None)
        if returned is None:
            return
        returned[2]["e_result"] = rng.random() < rates.e_result
        if rng.random() < rates.rated:
            rating: dict[str, Any] = {"rating": "satisfied"}
            if rng.random() < rates.dissatisfied:
                rating = {"rating": "dissatisfied", "reason": rng.choice(("SLOW", "STAFF", "FEES"))}
            elif rng.random() < 0.5:
                rating["rating"] = "very_satisfied"
            handed = self._slot_of(returned[0])
            rated = self._slot(handed[0], handed, rng=rng)
            plan.append((self._ts(rated), EventType.RATED, rating))

    def _slot_of(self, epoch: int) -> _Slot:
        day = bisect(self.day_start, epoch) - 1
        return day, epoch - self.day_start[day]

    def _plan_clock(self, day: int, sec: int) -> list[_Planned]:
        """The receipt and the events of the dossier's clock, received at (day, sec)."""
        rng, ts, iso = self.rng, self._ts, _iso
        procedure, channel = self._pick(rng)
        limit = procedure.limit_days
        late = rng.random() < self.config.overdue_ratio
        supplement = rng.random() < _SUPPLEMENT_SHARE
        withdraw = rng.random() < (_WITHDRAW_IF_SUPPLEMENT if supplement else _WITHDRAW_OTHERWISE)
        reject = rng.random() < _REJECT_SHARE
        explicit = limit == 0 or rng.random() < _EXPLICIT_DUE_SHARE
        if limit == 0:
            due_day, due_sec = (
                (day, WORK_END) if sec < _SAME_DAY_CUTOFF else (day + 1, _NEXT_MORNING_DUE)
            )
        else:
            # R1: the N-th working day after the receipt; the printed appointment says 17:00.
            due_day, due_sec = day + limit, WORK_END if explicit else _END_OF_DAY
        receipt: dict[str, Any] = {
            "agency": procedure.agency,
            "procedure": procedure.code,
            "channel": channel.value,
        }
        if explicit:
            receipt["due_at"] = iso(ts((due_day, due_sec)))
        else:
            receipt["processing_days"] = limit
        plan: list[_Planned] = [(ts((day, sec)), EventType.RECEIVED, receipt)]
        at: _Slot = (day, sec)

        if supplement:
            for _ in range(2 if rng.random() < _SECOND_CYCLE_SHARE else 1):
                asked = self._slot(at[0] + rng.randint(0, max(0, min(2, due_day - at[0] - 1))), at)
                if asked[0] >= due_day:
                    # Requests come before the due day; it also keeps the resumed clock
                    # (due moved past the resume day) clear of the due.
                    break
                plan.append((ts(asked), EventType.SUPPLEMENT_REQUESTED, {}))
                at = asked
                if withdraw and rng.random() < _WITHDRAW_WHILE_PAUSED:
                    gone = self._slot(asked[0] + rng.randint(1, 15), at)
                    plan.append((ts(gone), EventType.WITHDRAWN, {}))
                    return plan
                if rng.random() < _NEVER_RESUMED_SHARE:
                    return plan  # the citizen never completes the dossier: paused for good
                back = self._slot(asked[0] + rng.choices(*_WAIT_DAYS)[0], at)
                # R2: the due moves by the working days d with date(request) < d <= date(resume).
                due_day += back[0] - asked[0]
                fields = {"due_at": iso(ts((due_day, due_sec)))} if explicit else {}
                plan.append((ts(back), EventType.SUPPLEMENT_RECEIVED, fields))
                at = back

        if withdraw:
            gone = self._slot_before(
                at[0] + rng.randint(0, max(0, due_day - at[0])), at, (due_day, due_sec)
            )
            plan.append((ts(gone), EventType.WITHDRAWN, {}))
            return plan

        if late:
            decided = self._slot(due_day + rng.choices(*_LATE_DAYS)[0], at)
        else:
            span = due_day - at[0]
            if span <= 0 or rng.random() < _ON_DUE_DAY_SHARE:
                target = due_day
            else:  # early (trước hạn), skewed towards the first days
                target = at[0] + min(span - 1, int(rng.betavariate(1.2, 2.5) * span))
            decided = self._slot_before(target, at, (due_day, due_sec))

        if late and rng.random() < _APOLOGY_SHARE:
            apology_day = max(at[0], due_day - rng.randint(0, 2))
            apology = self._slot_before(apology_day, at, (due_day, due_sec))
            if ts(apology) < ts(decided):
                # The new appointment is the decision day's close, which the agency then keeps.
                new_due = iso(ts((decided[0], WORK_END)))
                plan.append((ts(apology), EventType.EXTENDED, {"new_due_at": new_due}))

        plan.append((self._between(at, decided), EventType.APPRAISED, {}))
        plan.append((ts(decided), EventType.REJECTED if reject else EventType.APPROVED, {}))
        if not reject:
            handed = self._slot(decided[0] + rng.choices(*_RETURN_DAYS[channel])[0], decided)
            plan.append((ts(handed), EventType.RETURNED, {}))
        return plan

    def _live_plan(self) -> list[_Planned]:
        """A dossier received shortly before now whose printed appointment falls just after."""
        rng = self.live_rng
        procedure, channel = self._pick(rng)
        assert self.config.live_due_seconds is not None
        low, high = self.config.live_due_seconds
        due = math.ceil(self.now_ts + rng.uniform(low, high))
        latest = min(self.now_sec, WORK_END) if self.days[self.live_day] == self.today else WORK_END
        sec = rng.randrange(max(WORK_START, latest - 7200), latest)
        received = self._ts((self.live_day, sec))
        receipt = {
            "agency": procedure.agency,
            "procedure": procedure.code,
            "channel": channel.value,
            "due_at": _iso(due),
        }
        plan: list[_Planned] = [(received, EventType.RECEIVED, receipt)]
        closing = min(int(self.now_ts), self._ts((self.live_day, WORK_END)))
        if rng.random() < 0.5 and closing - received > 120:  # appraised the same afternoon
            plan.append((rng.randrange(received + 60, closing), EventType.APPRAISED, {}))
        return plan

    def _queue(self, number: int, day: int, plan: list[_Planned]) -> Iterator[_Queued]:
        dossier_id = f"{self.id_prefix}-{self.day_label[day]}-{number:07d}"
        plan.sort(key=lambda p: (p[0], TYPE_ORDER[p[1]]))
        for n, (epoch, kind, fields) in enumerate(plan, 1):
            if epoch > self.now_ts:  # the history ends at now
                return
            event = {
                "schema_version": SCHEMA_VERSION,
                "event_id": f"{dossier_id}-{n}",
                "dossier_id": dossier_id,
                "type": kind.value,
                "occurred_at": _iso(epoch),
                **fields,
            }
            yield epoch, TYPE_ORDER[kind], number, n, event

    def events(self) -> Iterator[dict[str, Any]]:
        """All events up to now in occurred_at order, generated one receipt day at a time."""
        heap: list[_Queued] = []
        for k in range(self.live_count):
            for item in self._queue(self.normal_count + k + 1, self.live_day, self._live_plan()):
                heapq.heappush(heap, item)
        number = 0
        for day, count, latest in self.schedule:
            # Everything from this day on happens after its first opening hour, so what is
            # queued before that is final: the heap holds only dossiers still in progress.
            opening = self.day_start[day] + WORK_START
            while heap and heap[0][0] < opening:
                yield heapq.heappop(heap)[4]
            for sec in sorted(self._receipt_second(latest) for _ in range(count)):
                number += 1
                for item in self._queue(number, day, self._plan(day, sec)):
                    heapq.heappush(heap, item)
        while heap:
            yield heapq.heappop(heap)[4]

    def _receipt_second(self, latest: int) -> int:
        rng = self.rng
        if latest < WORK_END:  # today, up to now
            return rng.randrange(WORK_START, latest)
        if rng.random() < 0.58:  # mornings are busier
            return rng.randrange(WORK_START, _MORNING_END)
        return rng.randrange(_AFTERNOON_START, WORK_END)


def _iso(epoch: int) -> str:
    """Local time with its offset, as center systems send it (e.g. 2025-07-29T08:15:03+07:00)."""
    return datetime.fromtimestamp(epoch, LOCAL_TZ).isoformat()


def _with_duplicates(
    events: Iterable[dict[str, Any]], ratio: float, rng: random.Random
) -> Iterator[dict[str, Any]]:
    """Re-send a share of events 0–50 positions later, as an at-least-once producer would."""
    later: list[tuple[int, int, dict[str, Any]]] = []
    for position, event in enumerate(events, 1):
        while later and later[0][0] < position:
            yield heapq.heappop(later)[2]
        yield event
        if rng.random() < ratio:
            heapq.heappush(later, (position + rng.randint(0, 50), position, dict(event)))
    while later:
        yield heapq.heappop(later)[2]


def _shuffled(
    events: Iterable[dict[str, Any]], window: int, rng: random.Random
) -> Iterator[dict[str, Any]]:
    """Out-of-order delivery: each chunk of `window` events shuffled (displacement < window)."""
    chunk: list[dict[str, Any]] = []
    for event in events:
        chunk.append(event)
        if len(chunk) >= window:
            rng.shuffle(chunk)
            yield from chunk
            chunk = []
    rng.shuffle(chunk)
    yield from chunk


def generate(config: SimulationConfig) -> Iterator[dict[str, Any]]:
    """Contract v1 event dicts of the simulated center, occurred_at ≤ config.now, in order
    unless `shuffle_window`/`duplicate_ratio` ask otherwise. Streams: memory stays flat."""
    stream: Iterator[dict[str, Any]] = _Center(config).events()
    if config.duplicate_ratio > 0:
        dup_rng = random.Random(f"{config.seed}-dup")
        stream = _with_duplicates(stream, config.duplicate_ratio, dup_rng)
    if config.shuffle_window > 1:
        shuffle_rng = random.Random(f"{config.seed}-shuffle")
        stream = _shuffled(stream, config.shuffle_window, shuffle_rng)
    return stream
