"""The national service index (QĐ 766/QĐ-TTg) beyond timeliness, from compact dossier facts.

`IndexFacts` holds what the indicators need of one dossier (flags and instants; an
`IndexTrack` gathers the part its events give, following the rule engine's transitions).
`index_marks` turns those into marks, (instant, key) pairs that each
add 1 to a numerator or denominator at an instant, so a period's indicator is a count of
the marks inside it (plus what unfinished dossiers add, judged at its end:
`unfinished_keys`). `IndexFigures` holds a period's counts and scores them under the
rules transcribed from the portal's formula documents (report.index_report builds them).
The formulas, their sources and which are verified against the portal's own scores:
docs/report.md. No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from schemas import Channel, DossierEvent, EventType, PaymentMethod, Rating
from schemas.events import direct_init
from service.domain.building import builder
from service.domain.clock import Outcome
from service.domain.dossier import Dossier
from service.domain.rules import CLOSED, DUE_SET, ENDED, PAUSED, RESUMED

# The transitions the track keeps something of (see IndexTrack.follow).
_FOLLOWED = CLOSED | PAUSED | RESUMED | ENDED | DUE_SET

VERIFIED = "verified"  # the rule reproduces the portal's published scores (qd766 M0 fit)
TRANSCRIBED = "transcribed"  # taken from the formula documents; not checked against scores

# The two readings of every indicator (docs/report.md "Unknown, and the two figures"):
# PORTAL divides by what the portal divides by, reads an unreported field as absent and
# gives 0 for an empty denominator; MOTCUA counts only the dossiers whose answer the
# reported facts decide, and has no figure (None) for an empty denominator.
PORTAL = "portal"
MOTCUA = "motcua"
RULES: tuple[str, ...] = (PORTAL, MOTCUA)
# The portal's denominators: every dossier received in the period, except payment's.
RECEIVED = "received"


@dataclass(frozen=True, slots=True)
class Indicator:
    """One scored indicator: its ratio's meaning, its maximum and its scoring rule.

    `target` None: linear, max × ratio. A target t: full points from t on, else
    max × ratio / t ("T t%" in the formula document).
    """

    code: str  # the metric label
    ref: str  # the formula document's number
    group: str
    maximum: float
    target: float | None
    status: str  # VERIFIED or TRANSCRIBED
    title: str
    # False: the portal's weight for this indicator is a guess (3.3); its points are shown,
    # marked, and kept out of the totals compared with the portal.
    weight_verified: bool = True
    # The mark key whose count is the portal's denominator (RECEIVED: every dossier
    # received in the period); None: not a portal indicator (the legal timeliness).
    portal_denominator: str | None = RECEIVED

    def points(self, ratio: float) -> float:
        scale = self.target or 1.0
        return min(self.maximum, self.maximum * ratio / scale)


@dataclass(frozen=True, slots=True)
class NotMeasured:
    """An indicator motcua cannot compute: it needs the procedure catalogue or other data."""

    ref: str
    group: str
    maximum: float | None  # None: the portal's weight is not known
    title: str
    needs: str
    title_vi: str  # the board shows it in Vietnamese mode
    needs_vi: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "group": self.group,
            "maximum": self.maximum,
            "title": self.title,
            "needs": self.needs,
            "title_vi": self.title_vi,
            "needs_vi": self.needs_vi,
        }


# The six groups and their maxima as the portal shows them (docs/metrics.m0.json).
GROUPS: dict[str, float] = {
    "transparency": 18,
    "timeliness": 20,
    "online_service": 12,
    "online_payment": 10,
    "digitisation": 22,
    "satisfaction": 18,
}

TIMELINESS_PORTAL = Indicator(
    "timeliness_portal",
    "2.1",
    "timeliness",
    20,
    None,
    VERIFIED,
    "dossiers on time or in time by the portal's rules ÷ dossiers received",
    portal_denominator="timeliness_portal:den",  # its own marks: every dossier received
)
TIMELINESS_LEGAL = Indicator(
    "timeliness",
    "2.1",
    "timeliness",
    20,
    None,
    VERIFIED,
    "dossiers early, on time or in progress within the legal due ÷ dossiers handled",
    portal_denominator=None,
)
INDICATORS: tuple[Indicator, ...] = (
    TIMELINESS_PORTAL,
    Indicator(
        "online_share",
        "3.3",
        "online_service",
        12,
        0.5,
        TRANSCRIBED,
        "dossiers received online ÷ dossiers received",
        weight_verified=False,
    ),
    Indicator(
        "online_payment",
        "3.6 (A)",
        "online_payment",
        6,
        None,
        VERIFIED,
        "dossiers with a fee paid online ÷ dossiers with a fee",
        portal_denominator="online_payment:den",  # the portal leaves out dossiers without a fee
    ),
    Indicator(
        "e_result",
        "4.1",
        "digitisation",
        6,
        None,
        VERIFIED,
        "returned dossiers with an electronic result ÷ returned dossiers reporting it",
    ),
    Indicator(
        "digitised",
        "4.2",
        "digitisation",
        4,
        None,
        VERIFIED,
        "returned dossiers with a digitised component and an electronic result ÷ returned "
        "dossiers reporting enough to say",
    ),
    Indicator(
        "reuse",
        "4.3",
        "digitisation",
        2,
        0.8,
        VERIFIED,
        "dossiers with at least one component reusing digitised data ÷ dossiers reporting it",
    ),
    Indicator(
        "data_store",
        "4.4",
        "digitisation",
        4,
        None,
        TRANSCRIBED,
        "dossiers with a component from the personal data store ÷ dossiers reporting it",
    ),
    Indicator(
        "population_data",
        "4.5b",
        "digitisation",
        2,
        None,
        VERIFIED,
        "dossiers using population data (VNeID or the data store) ÷ dossiers reporting enough "
        "to say",
    ),
    Indicator(
        "dossier_satisfaction",
        "5.4",
        "satisfaction",
        6,
        0.9,
        VERIFIED,
        "100% − dossiers late by the portal's rules or rated dissatisfied ÷ dossiers received",
        portal_denominator="dossier_satisfaction:den",  # its own marks: every one received
    ),
)
BY_CODE: dict[str, Indicator] = {i.code: i for i in (*INDICATORS, TIMELINESS_LEGAL)}
# The indicators whose points are compared with the portal's (3.3's weight is a guess).
COMPARED: tuple[Indicator, ...] = tuple(i for i in INDICATORS if i.weight_verified)

NOT_MEASURED: tuple[NotMeasured, ...] = (
    NotMeasured(
        *("1.1", "transparency", 6, "procedures published on time", "procedure catalogue"),
        *("Thủ tục hành chính được công khai đúng hạn", "danh mục thủ tục hành chính"),
    ),
    NotMeasured(
        *("1.2", "transparency", 4, "procedures updated on time", "procedure catalogue"),
        *("Thủ tục hành chính được cập nhật đúng hạn", "danh mục thủ tục hành chính"),
    ),
    NotMeasured(
        *("1.3", "transparency", 2, "procedures with complete content", "catalogue"),
        *("Thủ tục hành chính có đầy đủ nội dung", "danh mục thủ tục hành chính"),
    ),
    NotMeasured(
        *("1.4", "transparency", 6, "dossiers synced to the portal", "the portal's counts"),
        *("Hồ sơ được đồng bộ lên Cổng Dịch vụ công quốc gia", "số liệu của Cổng"),
    ),
    NotMeasured(
        *("3.1", "online_service", None, "procedures offered online", "service catalogue"),
        *("Thủ tục cung cấp dịch vụ công trực tuyến", "danh mục dịch vụ công"),
    ),
    NotMeasured(
        *("3.2", "online_service", None, "online services with dossiers", "catalogue"),
        *("Dịch vụ công trực tuyến có phát sinh hồ sơ", "danh mục dịch vụ công"),
    ),
    NotMeasured(
        *("3.5 (C)", "online_payment", 2, "fee procedures synced", "procedure catalogue"),
        *("Thủ tục thu phí, lệ phí được đồng bộ", "danh mục thủ tục hành chính"),
    ),
    NotMeasured(
        *("3.5b (B)", "online_payment", 2, "procedures paid online", "procedure catalogue"),
        *("Thủ tục có thanh toán trực tuyến", "danh mục thủ tục hành chính"),
    ),
    NotMeasured(
        *("4.x", "digitisation", 2, "communes certifying e-copies", "commune data"),
        *("Xã thực hiện chứng thực bản sao điện tử", "dữ liệu cấp xã"),
    ),
    NotMeasured(
        *("4.5a", "digitisation", 2, "procedures using population data", "catalogue"),
        *("Thủ tục khai thác dữ liệu dân cư", "danh mục thủ tục hành chính"),
    ),
    NotMeasured(
        *("5.2", "satisfaction", 6, "petitions handled on time", "petition system"),
        *("Phản ánh, kiến nghị được xử lý đúng hạn", "hệ thống phản ánh, kiến nghị"),
    ),
    NotMeasured(
        *("5.3", "satisfaction", 6, "satisfaction with petitions", "petition system"),
        *("Mức độ hài lòng về xử lý phản ánh, kiến nghị", "hệ thống phản ánh, kiến nghị"),
    ),
)

_ONLINE_METHODS = frozenset({PaymentMethod.NATIONAL_PORTAL, PaymentMethod.PROVINCIAL_GATEWAY})
# Enum members as module constants: an Enum class attribute is a slower lookup.
_ONLINE = Channel.ONLINE
_RETURNED = EventType.RETURNED
_PAID = EventType.PAID
_RATED = EventType.RATED
_DISSATISFIED = Rating.DISSATISFIED
_LATE = Outcome.LATE


@direct_init  # built for every event: slots set directly (schemas/events.py)
@dataclass(frozen=True, slots=True)
class IndexFacts:
    """What the indicators need of one received dossier. Instants are float epoch seconds;
    a None flag is unknown (the field was not reported), never false."""

    agency: str
    received_at: float
    online: bool
    fee_due: bool | None  # a paid event with fee_due unreported counts as a fee due
    paid_online: bool | None  # None only from a stored track that says unknown (codec.py)
    digitised: bool | None  # at least one digitised component
    reused: bool | None
    from_data_store: bool | None
    population_data: bool | None  # VNeID-verified or a component from the data store
    returned_at: float | None
    e_result: bool | None  # of the return; None if not returned or not reported
    resolved_at: float | None  # the legal clock's end (approved, rejected, returned)
    late: bool  # the legal outcome is late
    dissatisfied: bool | None  # a rating "dissatisfied" was given (None: as paid_online)
    ended_at: float | None  # the portal's end: the clock's end, else the withdrawal
    portal_due: float  # the appointment as the portal sees it (NgayHenTra)
    first_request_at: float | None  # the first supplement request that paused the clock
    first_back_at: float | None  # when that supplement came back
    second_request_at: float | None  # a second request: the portal then calls it overdue
    judged: bool = True  # the legal clock ended with an outcome (R11: not without a due)

    def portal_on_time(self, instant: float) -> bool:
        """The portal's verdict judged at `instant` (the period's end or now), rule 2.1 of
        the formula document: more than one supplement request is overdue; waiting on the
        only request, the clock ended at the request; otherwise the end (or `instant`)
        less the time the citizen took to supplement, against the appointment."""
        end = self.ended_at if self.ended_at is not None and self.ended_at < instant else instant
        second = self.second_request_at
        if second is not None and second < end:
            return False
        first = self.first_request_at
        if first is not None and first < end:
            back = self.first_back_at
            if back is None or back >= end:
                return first <= self.portal_due  # waiting: the request ends the clock
            end -= back - first
        return end <= self.portal_due


# Built with a dossier's facts, for every changed dossier (building.py).
_build_index_facts = builder(IndexFacts)


def _flag(count: int | None) -> bool | None:
    return None if count is None else count >= 1


def _either(a: bool | None, b: bool | None) -> bool | None:
    """Three-valued or: known true if either is, known false only if both are."""
    if a or b:
        return True
    if a is None or b is None:
        return None
    return False


def _both(a: bool | None, b: bool | None) -> bool | None:
    """Three-valued and: known false if either is, known true only if both are."""
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


class IndexTrack:
    """What the index needs of a dossier's events beyond its `fold` state, gathered one
    event at a time in R6 order from the receipt on (progress.DossierProgress keeps one).
    Pauses, resumes, the clock's end and the close are the rule engine's (rules.take);
    `paid` and `rated` count even after the close (they usually follow the return)."""

    __slots__ = (
        "back",
        "closed",
        "digitised",
        "dissatisfied",
        "e_result",
        "ended",
        "fee_due",
        "first",
        "from_data_store",
        "identity_verified",
        "new_due",
        "paid",
        "paid_online",
        "paused",
        "receipt_due",
        "reused",
        "second",
    )

    def __init__(self, receipt: DossierEvent) -> None:
        self.fee_due = receipt.fee_due
        self.digitised = _flag(receipt.components_digitised)
        self.reused = _flag(receipt.components_reused)
        self.from_data_store = _flag(receipt.components_from_data_store)
        self.identity_verified = receipt.identity_verified
        # Known here, but the stored form keeps every flag three-valued (codec.py): a track
        # read back holds None where its bytes say unknown.
        self.paid: bool | None = False
        self.paid_online: bool | None = False
        self.dissatisfied: bool | None = False
        self.e_result: bool | None = None
        self.new_due: float | None = None  # a new appointment that replaced NgayHenTra
        # NgayHenTra as the receipt set it (epoch seconds; NO_DUE for none), set by the
        # dossier that took the receipt: only it knows the calendar. None: not recorded
        # (derived from the timeline instead).
        self.receipt_due: float | None = None
        self.first: float | None = None
        self.back: float | None = None
        self.second: float | None = None
        self.paused: bool | None = False
        self.ended: bool | None = False
        self.closed: bool | None = False

    def follow(self, event: DossierEvent, change: int) -> bool:
        """Follow the next event after the receipt through `change`, the transitions
        `rules.take` made for it; True if anything here changed."""
        kind = event.type
        if kind is _PAID:
            self.paid = True
            self.paid_online = self.paid_online or event.method in _ONLINE_METHODS
            return True
        if kind is _RATED:
            self.dissatisfied = self.dissatisfied or event.rating is _DISSATISFIED
            return True
        if not change & _FOLLOWED:
            return False  # an appraisal, a step: nothing the track keeps
        if change & CLOSED:
            self.closed = True
            if kind is _RETURNED:
                self.e_result = event.e_result
        if change & PAUSED:
            self.paused = True
            if self.first is None:
                self.first = event.occurred_at.timestamp()
            elif self.second is None:
                self.second = event.occurred_at.timestamp()
        elif change & RESUMED:
            self.paused = False
            if self.back is None:
                self.back = event.occurred_at.timestamp()
        if change & DUE_SET:
            # A new appointment, with the supplement or while the clock runs: the portal
            # judges against the new NgayHenTra (docs/report.md, its timeliness, row 5).
            assert event.due_at is not None
            self.new_due = event.due_at.timestamp()
        if change & ENDED:
            self.ended = True
        return True

    def facts(
        self,
        dossier: Dossier,
        received_at: float,
        clock_end: float | None,
        closed_at: float | None,
        receipt_due: float,
    ) -> IndexFacts:
        """The index facts, with the dossier's `fold` state and its instants as epoch
        seconds (the caller has them); `receipt_due`: the due in force at the receipt (the
        portal's NgayHenTra until a new appointment replaces it)."""
        assert dossier.agency is not None
        fee_due = self.fee_due
        if fee_due is None and self.paid:
            fee_due = True  # a payment proves a fee was due
        return _build_index_facts(
            dossier.agency,
            received_at,
            dossier.channel is _ONLINE,
            fee_due,
            self.paid_online,
            self.digitised,
            self.reused,
            self.from_data_store,
            _either(self.identity_verified, self.from_data_store),
            closed_at if dossier.closed_by is _RETURNED else None,
            self.e_result,
            clock_end,
            dossier.outcome is _LATE,
            self.dissatisfied,
            clock_end if clock_end is not None else closed_at,
            self.new_due if self.new_due is not None else receipt_due,
            self.first,
            self.back,
            self.second,
            dossier.outcome is not None,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IndexTrack):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable


# -- marks ---------------------------------------------------------------------------------

Mark = tuple[float, str]


def index_marks(facts: IndexFacts) -> list[Mark]:
    """The marks one dossier adds: (instant, "indicator:part"), part `den`, `num` (or, for
    dossier_satisfaction, `negative`). A period's count of a key is the number of its marks
    at instants in the period (the dossier's agency is `facts.agency`).

    The portal counts every dossier indicator over the dossiers **received** in the period
    (its published denominators all equal its timeliness `totalReceived`; docs/report.md),
    so the index's marks are at the receipt; a finished dossier's verdict is final. The
    legal timeliness keeps this project's period rules (docs/report.md "The figures"): its
    marks are at the clock's end. A dossier's marks are a function of its events: replace
    the old ones when it changes (a payment or rating may come after the close). Dossiers
    not yet finished add `unfinished_keys` to a period instead of their verdicts.
    """
    received = facts.received_at
    out: list[Mark] = [(received, "online_share:den")]
    if facts.online:
        out.append((received, "online_share:num"))
    if facts.fee_due:
        out.append((received, "online_payment:den"))
        if facts.paid_online:
            out.append((received, "online_payment:num"))
    # The keys written out (not formatted): every closed dossier's marks are made again.
    for den, num, flag in (
        ("reuse:den", "reuse:num", facts.reused),
        ("data_store:den", "data_store:num", facts.from_data_store),
        ("population_data:den", "population_data:num", facts.population_data),
    ):
        if flag is not None:
            out.append((received, den))
            if flag:
                out.append((received, num))
    if facts.returned_at is not None:
        # One rule for unknown (three-valued logic): a dossier is in a denominator when its
        # reported facts decide the indicator's question, whichever facts those are.
        for den, num, answer in (
            ("e_result:den", "e_result:num", facts.e_result),
            ("digitised:den", "digitised:num", _both(facts.digitised, facts.e_result)),
        ):
            if answer is not None:
                out.append((received, den))
                if answer:
                    out.append((received, num))
    if facts.ended_at is not None:
        on_time = facts.portal_on_time(math.inf)
        out.append((received, "timeliness_portal:den"))
        out.append((received, "dossier_satisfaction:den"))
        if on_time:
            out.append((received, "timeliness_portal:num"))
        if not on_time or facts.dissatisfied:
            out.append((received, "dossier_satisfaction:negative"))
    resolved = facts.resolved_at
    if resolved is not None and facts.judged:  # R11: resolved without a due is not judged
        out.append((resolved, "timeliness:den"))
        if not facts.late:
            out.append((resolved, "timeliness:num"))
    return out


def unfinished_keys(
    facts: IndexFacts, legal_overdue: bool | None, begin: float, end: float, judged_at: float
) -> list[str]:
    """What a dossier not finished adds to the period [begin, end), judged at `judged_at`
    (the period's end, or now for the current period):
    - the portal's timeliness and 5.4, if it was received in the period and has not ended
      at all: its clock is taken to end at `judged_at` (rule 2.1);
    - the legal timeliness, if received before `end` and its clock had not ended by then
      (`legal_overdue`: the legal verdict at `judged_at`, report.DossierFacts.overdue_at)."""
    out: list[str] = []
    ended = facts.ended_at
    if begin <= facts.received_at < end and ended is None:
        on_time = facts.portal_on_time(judged_at)
        out += ["timeliness_portal:den", "dossier_satisfaction:den"]
        if on_time:
            out.append("timeliness_portal:num")
        if not on_time or facts.dissatisfied:
            out.append("dossier_satisfaction:negative")
    # legal_overdue None: no due in force (R11), neither within nor overdue: not judged.
    if facts.received_at < end and (ended is None or ended >= end) and legal_overdue is not None:
        out.append("timeliness:den")
        if not legal_overdue:
            out.append("timeliness:num")
    return out


# -- period figures --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    """One indicator's figure under one rule (PORTAL or MOTCUA)."""

    numerator: int
    denominator: int
    ratio: float | None  # None: motcua's figure of an empty denominator (unknown)
    points: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "numerator": self.numerator,
            "denominator": self.denominator,
            "ratio": self.ratio,
            "points": self.points,
        }


@dataclass
class IndexFigures:
    """The counts behind one agency's (or the center's) indicators for one period."""

    counts: dict[str, int] = field(default_factory=dict)

    def add_key(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def add(self, other: IndexFigures) -> IndexFigures:
        for key, n in other.counts.items():
            self.add_key(key, n)
        return self

    def received(self) -> int:
        """Dossiers received in the period: every one has an `online_share:den` mark."""
        return self.counts.get("online_share:den", 0)

    def denominator(self, code: str) -> int:
        return self.counts.get(f"{code}:den", 0)

    def numerator(self, code: str) -> int:
        if code == "dossier_satisfaction":
            return self.denominator(code) - self.counts.get(f"{code}:negative", 0)
        return self.counts.get(f"{code}:num", 0)

    def ratio(self, code: str) -> float | None:
        """motcua's ratio: None when no dossier's reported facts decide it (unknown)."""
        den = self.denominator(code)
        return self.numerator(code) / den if den else None

    def points(self, code: str) -> float | None:
        ratio = self.ratio(code)
        return None if ratio is None else BY_CODE[code].points(ratio)

    def portal_denominator(self, code: str) -> int:
        base = BY_CODE[code].portal_denominator
        if base is None:
            raise ValueError(f"{code} is not scored by the portal")
        return self.received() if base == RECEIVED else self.counts.get(base, 0)

    def figure(self, code: str, rule: str) -> Figure | None:
        """The indicator under `rule`; None for the portal's reading of the legal
        timeliness, which the portal does not score. The numerator is the same under both
        rules (dossiers known to count: an unreported field is not a yes); the portal
        divides by its own denominator and gives 0 when it is empty."""
        indicator = BY_CODE[code]
        if rule == MOTCUA:
            return Figure(
                self.numerator(code), self.denominator(code), self.ratio(code), self.points(code)
            )
        if rule != PORTAL:
            raise ValueError(f"rule must be portal or motcua, not {rule!r}")
        if indicator.portal_denominator is None:
            return None
        den = self.portal_denominator(code)
        num = self.numerator(code)
        ratio = num / den if den else 0.0
        return Figure(num, den, ratio, indicator.points(ratio))

    def measured(self) -> list[Indicator]:
        """The index's indicators with data this period (the legal timeliness is beside the
        index, not in it: the portal scores its own clock)."""
        return [i for i in INDICATORS if self.denominator(i.code)]

    def total_points(self, rule: str = MOTCUA) -> float:
        """The points compared with the portal's: 3.3 (weight unverified) left out; under
        MOTCUA, only the indicators measured."""
        return sum((self.figure(i.code, rule) or _NONE).points or 0.0 for i in self._total(rule))

    def total_maximum(self, rule: str = MOTCUA) -> float:
        return sum(i.maximum for i in self._total(rule))

    def _total(self, rule: str) -> list[Indicator]:
        if rule == PORTAL:
            return list(COMPARED)
        return [i for i in COMPARED if self.denominator(i.code)]

    def to_dict(self) -> dict[str, Any]:
        """Counts, then per indicator its figure under each rule (the portal's first), then
        the totals compared with the portal."""
        indicators = {}
        for indicator in (*INDICATORS, TIMELINESS_LEGAL):
            code = indicator.code
            portal = self.figure(code, PORTAL)
            indicators[code] = {
                "ref": indicator.ref,
                "group": indicator.group,
                "maximum": indicator.maximum,
                "rule": "linear" if indicator.target is None else f"T {indicator.target:.0%}",
                "status": indicator.status,
                "weight_verified": indicator.weight_verified,
                PORTAL: None if portal is None else portal.to_dict(),
                MOTCUA: (self.figure(code, MOTCUA) or _NONE).to_dict(),
            }
        return {
            "counts": dict(sorted(self.counts.items())),
            "indicators": indicators,
            "totals": {
                rule: {"points": self.total_points(rule), "maximum": self.total_maximum(rule)}
                for rule in RULES
            },
            "total_excludes": [i.code for i in INDICATORS if not i.weight_verified],
        }

    @classmethod
    def from_dict(cls, data: Any) -> IndexFigures:
        """The counts of a `to_dict` (indicators and points are recomputed, never summed)."""
        counts = data.get("counts") if isinstance(data, dict) else None
        if not isinstance(counts, dict):
            raise ValueError("the index has no counts")
        known = set(iter_keys())
        for key, value in counts.items():
            if key not in known:
                raise ValueError(f"unknown index count {key!r:.60}")
            if type(value) is not int or value < 0:
                raise ValueError(f"{key} must be a non-negative integer, got {value!r:.40}")
        return cls(dict(counts))


_NONE = Figure(0, 0, None, None)


def iter_keys() -> Iterator[str]:
    """Every mark key, in a fixed order (for exporting counters with zeros)."""
    for indicator in (TIMELINESS_LEGAL, *INDICATORS):
        yield f"{indicator.code}:den"
        part = "negative" if indicator.code == "dossier_satisfaction" else "num"
        yield f"{indicator.code}:{part}"


def index_of_keys(counts: Iterable[tuple[tuple[str, str], int]]) -> dict[str, IndexFigures]:
    """Per agency figures from ((agency, mark key), count) pairs."""
    out: dict[str, IndexFigures] = {}
    for (agency, key), count in counts:
        if count:
            out.setdefault(agency, IndexFigures()).add_key(key, count)
    return out


def add_index(into: dict[str, IndexFigures], more: dict[str, IndexFigures]) -> None:
    for agency, figures in more.items():
        into.setdefault(agency, IndexFigures()).add(figures)


def with_legal_timeliness(
    index: dict[str, IndexFigures], timely: dict[str, tuple[int, int]]
) -> dict[str, IndexFigures]:
    """The legal timeliness (2.1 by the law) taken from the period report itself, per agency
    (timely, judged): exactly `period_report`'s rate, closed dossiers' in-progress states at
    a past period's end and dossiers without a due (R11) included."""
    for agency, (num, den) in timely.items():
        figures = index.setdefault(agency, IndexFigures())
        figures.counts.pop("timeliness:num", None)
        figures.counts.pop("timeliness:den", None)
        if den:
            figures.counts["timeliness:den"] = den
            if num:
                figures.counts["timeliness:num"] = num
    for agency in [a for a in index if a not in timely]:
        index[agency].counts.pop("timeliness:num", None)
        index[agency].counts.pop("timeliness:den", None)
    return index
