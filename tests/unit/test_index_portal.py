"""The index as the portal scores it beside motcua's reading (service/domain/index.py,
`IndexFigures.figure`): one published month of the portal reproduced through events, the
one rule for unknown, and the invariants between the two figures."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_properties import event_sets

from schemas import Channel, DossierEvent, EventType, PaymentMethod, Rating
from service.domain import WorkingCalendar
from service.domain.index import COMPARED, INDICATORS, MOTCUA, PORTAL, IndexFigures
from service.domain.progress import fold_with_facts
from service.domain.report import DossierFacts, index_report

CAL = WorkingCalendar()
AGENCY = "H44.03"
SEPTEMBER = (date(2026, 9, 1), date(2026, 9, 30))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00")


def dossier(n: int, *, returned: str | None, e_result: bool | None = None, **fields: Any) -> Any:
    """One dossier of H44.03 received Mon 7 Sep 2026 09:00, 5 working days (due Mon 14 Sep
    23:59:59; 1–2 Sep are the National Day holidays), returned at `returned` or still open."""
    did = f"{AGENCY}-{n}"
    base: dict[str, Any] = {
        "agency": AGENCY,
        "procedure": "1.000948",
        "channel": Channel.DIRECT,
        "processing_days": 5,
        "identity_verified": True,
    }
    events = [
        DossierEvent(
            f"{did}-r", did, EventType.RECEIVED, at("2026-09-07T09:00:00"), **(base | fields)
        )
    ]
    if fields.get("fee_due"):
        events.append(
            DossierEvent(
                f"{did}-p",
                did,
                EventType.PAID,
                at("2026-09-07T10:00:00"),
                method=PaymentMethod.NATIONAL_PORTAL,
            )
        )
    if returned is not None:
        kind = EventType.RETURNED
        extra = {} if e_result is None else {"e_result": e_result}
        events.append(DossierEvent(f"{did}-t", did, kind, at(returned), **extra))
        events.append(
            DossierEvent(f"{did}-s", did, EventType.RATED, at(returned), rating=Rating.SATISFIED)
        )
    facts = fold_with_facts(did, events, CAL)[1]
    assert facts is not None
    return facts


ON_TIME, LATE = "2026-09-10T15:00:00", "2026-09-16T15:00:00"
DIGITISED = {"components": 2, "components_digitised": 1, "components_reused": 0}


def h44_03_september() -> list[DossierFacts]:
    """588 dossiers that give the portal's published numerators of agency H44.03 (Ban quản
    lý các khu công nghiệp, Phú Thọ), one month, ChippedTopaz/qd766 tests/fixtures:
    dvc-progress-tree/month-all.json 486 on time of 588 received; dossier-digitized/
    month-all.json 385 e-results, 312 digitised, 0 reused, 0 from the data store, 588 using
    population data; formality-online-payment-tree/month-all.json 7 of 7 paid online. The
    centre system leaves fields out on some, as real ones do."""
    out: list[DossierFacts] = []

    def add(count: int, **kwargs: Any) -> None:
        out.extend(dossier(len(out) + i, **kwargs) for i in range(count))

    # On time (486): e-result with a digitised component (312, 7 of them paid online) ...
    add(7, returned=ON_TIME, e_result=True, fee_due=True, **DIGITISED, components_from_data_store=0)
    add(305, returned=ON_TIME, e_result=True, **DIGITISED, components_from_data_store=0)
    # ... e-result, no digitised component (73), no fee ...
    add(73, returned=ON_TIME, e_result=True, components=1, components_digitised=0, fee_due=False)
    # ... a paper result, components not reported (61); nothing said of the result (40).
    add(61, returned=ON_TIME, e_result=False)
    add(40, returned=ON_TIME)
    # Not on time (102): returned late, the result not reported (60); open at the month's end
    # and overdue then (42).
    add(60, returned=LATE)
    add(42, returned=None)
    assert len(out) == 588
    return out


# The portal's published scores (two decimals) for H44.03 that month, from the files above
# and handling-satisfaction/month-all.json (5.4: 486 of 588 without a negative signal).
PUBLISHED = {
    "timeliness_portal": (486, 588, 16.53),
    "dossier_satisfaction": (486, 588, 5.51),
    "online_payment": (7, 7, 6.0),  # the 6A part of 7.67 = 6 + min(2, 2.5 × 2/3) + 2.5 × 0
    "e_result": (385, 588, 3.93),
    "digitised": (312, 588, 2.12),
    "reuse": (0, 588, 0.0),
    "data_store": (0, 588, 0.0),
    "population_data": (588, 588, 2.0),
}


@pytest.fixture(scope="module")
def september() -> IndexFigures:
    return index_report(h44_03_september(), *SEPTEMBER)[AGENCY]


@pytest.mark.parametrize("code", sorted(PUBLISHED))
def test_the_portals_published_month_through_events(september: IndexFigures, code: str) -> None:
    numerator, denominator, score = PUBLISHED[code]
    figure = september.figure(code, PORTAL)
    assert figure is not None
    assert (figure.numerator, figure.denominator) == (numerator, denominator)
    assert figure.points == pytest.approx(score, abs=0.005)


def test_the_compared_total_is_the_sum_of_the_eight_published_scores(
    september: IndexFigures,
) -> None:
    # 16.53 + 5.51 + 6 + 3.93 + 2.12 + 0 + 0 + 2, each rounded by the portal.
    assert september.total_points(PORTAL) == pytest.approx(36.09, abs=0.02)
    assert september.total_maximum(PORTAL) == 20 + 6 + 6 + 6 + 4 + 2 + 4 + 2
    assert "online_share" not in {i.code for i in COMPARED}


def test_motcuas_reading_of_the_same_month(september: IndexFigures) -> None:
    # 4.1: 385 e-results of the 446 returned dossiers that said (312 + 73 + 61):
    # 6 × 385 / 446 = 5.18 against the portal's 3.93.
    e_result = september.figure("e_result", MOTCUA)
    assert e_result is not None and (e_result.numerator, e_result.denominator) == (385, 446)
    assert e_result.points == pytest.approx(6 * 385 / 446)
    # 4.2: the 61 paper results decide it (no) although their components are unknown;
    # the 73 without a digitised component too: 312 of 446, 4 × 312 / 446 = 2.80.
    digitised = september.figure("digitised", MOTCUA)
    assert digitised is not None and (digitised.numerator, digitised.denominator) == (312, 446)
    # 4.3, 4.4: only the 312 that reported their components.
    assert september.denominator("reuse") == september.denominator("data_store") == 312
    # Payment and the portal-clock indicators have the same denominator under both rules.
    for code in ("online_payment", "timeliness_portal", "dossier_satisfaction"):
        assert september.figure(code, MOTCUA) == september.figure(code, PORTAL)


def test_an_agency_that_reports_nothing_scores_zero_on_the_portal_and_null_here() -> None:
    silent = index_report([dossier(0, returned=ON_TIME)], *SEPTEMBER)[AGENCY]
    for code in ("e_result", "digitised", "reuse", "data_store", "online_payment"):
        portal, motcua = silent.figure(code, PORTAL), silent.figure(code, MOTCUA)
        assert portal is not None and motcua is not None
        assert (portal.ratio, portal.points) == (0.0, 0.0), code
        assert (motcua.ratio, motcua.points) == (None, None), code
    # VNeID-verified: population data is known, and used.
    assert silent.figure("population_data", MOTCUA).ratio == 1.0  # type: ignore[union-attr]


# -- one rule for unknown -------------------------------------------------------------------


def _marks(**fields: Any) -> dict[str, int]:
    f = dossier(0, **fields)
    return index_report([f], *SEPTEMBER)[AGENCY].counts


@pytest.mark.parametrize(
    ("fields", "den", "num"),
    [
        # 4.2 = digitised and e-result. Either known false decides it; both true counts.
        ({"e_result": False}, 1, 0),
        ({"e_result": True, "components": 1, "components_digitised": 0}, 1, 0),
        ({"components": 1, "components_digitised": 0}, 1, 0),  # e-result not said
        ({"e_result": True, "components": 1, "components_digitised": 1}, 1, 1),
        ({"e_result": True}, 0, 0),  # components unknown: undecided
        ({}, 0, 0),
    ],
)
def test_digitised_is_decided_by_any_known_false(
    fields: dict[str, Any], den: int, num: int
) -> None:
    counts = _marks(returned=ON_TIME, **fields)
    assert (counts.get("digitised:den", 0), counts.get("digitised:num", 0)) == (den, num)


@pytest.mark.parametrize(
    ("fields", "den", "num"),
    [
        # 4.5b = VNeID or the data store. Either known true decides it; both false counts.
        ({"identity_verified": None, "components": 1, "components_from_data_store": 1}, 1, 1),
        ({"identity_verified": False, "components": 1, "components_from_data_store": 0}, 1, 0),
        ({"identity_verified": False}, 0, 0),  # the data store not said: undecided
    ],
)
def test_population_data_follows_the_same_rule(fields: dict[str, Any], den: int, num: int) -> None:
    counts = _marks(returned=None, **fields)
    assert (counts.get("population_data:den", 0), counts.get("population_data:num", 0)) == (
        den,
        num,
    )


# -- properties -----------------------------------------------------------------------------


@st.composite
def dossiers(draw: st.DrawFn) -> list[DossierFacts]:
    out = []
    for n in range(draw(st.integers(1, 5))):
        events = [replace(e, dossier_id=f"D{n}") for e in draw(event_sets())]
        facts = fold_with_facts(f"D{n}", events, CAL)[1]
        if facts is not None:
            out.append(facts)
    return out


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(dossiers(), st.dates(date(2025, 1, 1), date(2027, 12, 1)), st.integers(0, 90))
def test_the_portal_reading_is_never_kinder_than_motcuas(
    facts: list[DossierFacts], first: date, days: int
) -> None:
    last = date.fromordinal(first.toordinal() + days)
    for figures in index_report(facts, first, last).values():
        # The portal's own denominators of 2.1 and 5.4 are every dossier received.
        assert figures.denominator("timeliness_portal") == figures.received()
        assert figures.denominator("dossier_satisfaction") == figures.received()
        for indicator in INDICATORS:
            portal = figures.figure(indicator.code, PORTAL)
            motcua = figures.figure(indicator.code, MOTCUA)
            assert portal is not None and motcua is not None
            assert portal.denominator >= motcua.denominator
            assert portal.numerator == motcua.numerator <= motcua.denominator
            assert portal.points is not None and portal.points >= 0
            if motcua.points is not None:
                assert portal.points <= motcua.points + 1e-9
        assert figures.total_points(PORTAL) <= figures.total_maximum(PORTAL)
