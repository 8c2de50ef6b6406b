"""Departments from the units file, and the step metrics that name them (rules R12–R17)."""

from __future__ import annotations

import logging
import unicodedata
from datetime import datetime
from pathlib import Path

import pytest
from ledger_tools import accept

from schemas import Channel, DossierEvent, EventType
from service.domain import WorkingCalendar
from service.domain.progress import fold_with_facts
from service.ingest.gateway.units import parse_units
from service.outputs.metrics import LedgerCollector
from service.reference import Departments, DepartmentsError, fold_name, parse_departments
from service.state.ledger import Ledger

CAL = WorkingCalendar()
UNITS = """unit,agency,department
"Sở Xây dựng",SXD,
"Phòng Quản lý xây dựng",SXD,SXD.QLXD
"Phòng Đất đai",STNMT,STNMT.DD
"""


def T(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_the_department_column_is_optional() -> None:
    assert parse_departments(UNITS) == {
        "phòng quản lý xây dựng": ("SXD", "SXD.QLXD"),
        "phòng đất đai": ("STNMT", "STNMT.DD"),
    }
    assert parse_departments('unit,agency\n"Sở Xây dựng",SXD\n') == {}
    # The gateway's agency lookup reads the same file, department column and all.
    assert parse_units(UNITS)["sở xây dựng"] == "SXD"
    assert parse_units(UNITS)["phòng đất đai"] == "STNMT"


def test_a_bad_header_or_a_department_listed_twice_is_refused() -> None:
    with pytest.raises(DepartmentsError, match="header"):
        parse_departments("unit,agency,phong\n")
    with pytest.raises(DepartmentsError, match="line 3"):
        parse_departments('unit,agency,department\n"P",SXD,A\n"P",SXD,B\n')


def test_unknown_departments_count_as_other_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "units.csv"
    path.write_text(UNITS, encoding="utf-8")
    departments = Departments.load(path)
    assert len(departments) == 2
    assert departments.find("  phòng  ĐẤT đai ") == ("STNMT", "STNMT.DD")
    assert departments.find("Phòng Tài chính") is None
    with caplog.at_level(logging.WARNING, logger="service.reference"):
        assert departments.label("SXD", "SXD.QLXD") == "SXD.QLXD"
        assert departments.label("SXD", "STNMT.DD") == "other"  # listed, for another agency
        assert departments.label("SXD", "STNMT.DD") == "other"
        assert departments.label("SXD", "none") == "none"
    assert len(caplog.records) == 1
    assert Departments.load(None).label("SXD", "SXD.QLXD") == "other"


def _dossier(did: str, due: str, *steps: tuple[str, str, str, str]) -> list[DossierEvent]:
    """Received Mon 2 Mar 2026 09:00 at SXD; steps (at, step, department, agency) of one
    working day each."""
    events = [
        DossierEvent(
            f"{did}-r",
            did,
            EventType.RECEIVED,
            T("2026-03-02T09:00:00+07:00"),
            "SXD",
            "1.000948",
            Channel.DIRECT,
            T(due),
        )
    ]
    for i, (at, step, department, agency) in enumerate(steps):
        events.append(
            DossierEvent(
                f"{did}-s{i}",
                did,
                EventType.STEP_STARTED,
                T(at),
                agency,
                step=step,
                department=department,
                step_days=1,
            )
        )
    return events


def test_step_metrics_sum_the_dossiers_by_agency_and_department(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text(UNITS, encoding="utf-8")
    now = T("2026-03-05T12:00:00+07:00")  # Thu 5 Mar
    dossiers = {
        # SXD.QLXD's step (due Tue 3) closed late by STNMT's; STNMT's (due Thu 5) open, due
        # soon; the dossier (due Wed 4 17:00) is overdue, held by STNMT.DD.
        "A": _dossier(
            "A",
            "2026-03-04T17:00:00+07:00",
            ("2026-03-02T10:00:00+07:00", "S1", "SXD.QLXD", "SXD"),
            ("2026-03-04T10:00:00+07:00", "S2", "STNMT.DD", "STNMT"),
        ),
        # A department the file does not list: `other`; its step (due Wed 4) is overdue,
        # the dossier (due Mon 16) in time.
        "B": _dossier(
            "B",
            "2026-03-16T17:00:00+07:00",
            ("2026-03-03T10:00:00+07:00", "S1", "SXD.KHAC", "SXD"),
        ),
        # Overdue with no step: held by the receiving agency, department none.
        "C": _dossier("C", "2026-03-03T17:00:00+07:00"),
    }
    ledger = Ledger.counting(CAL, {0, 1})
    for n, (did, events) in enumerate(sorted(dossiers.items())):
        dossier, facts = fold_with_facts(did, events, CAL)
        accept(ledger, n % 2, dossier, now, facts)
    samples = {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in LedgerCollector(ledger, Departments.load(path)).collect()
        for sample in family.samples
        if sample.name.startswith(("motcua_steps", "motcua_dossiers_overdue_held")) and sample.value
    }
    assert samples == {
        ("motcua_steps_completed_total", ("SXD", "SXD.QLXD", "late")): 1.0,
        ("motcua_steps_open", ("STNMT", "STNMT.DD", "due_soon")): 1.0,
        ("motcua_steps_open", ("SXD", "other", "overdue")): 1.0,
        ("motcua_dossiers_overdue_held", ("STNMT", "STNMT.DD")): 1.0,
        ("motcua_dossiers_overdue_held", ("SXD", "none")): 1.0,
    }


@pytest.mark.parametrize(
    "typed",
    [
        "Phòng Đất đai",  # NFC, as written in the file
        unicodedata.normalize("NFD", "Phòng Đất đai"),
        unicodedata.normalize("NFD", "PHÒNG  ĐẤT ĐAI "),
        "phÒng đẤt ĐAI",
    ],
)
def test_a_department_is_found_whatever_its_normal_form_case_and_spaces(typed: str) -> None:
    departments = Departments(parse_departments(UNITS))
    assert departments.find(typed) == ("STNMT", "STNMT.DD")


def test_one_folding_for_every_name() -> None:
    nfc = "Sở Lao động – Thương binh và Xã hội"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    assert fold_name(nfd) == fold_name(nfc) == fold_name(f" {nfc.upper()}  ")
    assert fold_name(nfd) == unicodedata.normalize("NFC", fold_name(nfd))
    # The file's own names fold the same way, whichever form the file was saved in.
    units = parse_units(f"unit,agency\n{nfd},SLDTBXH\n")
    assert units == {fold_name(nfc): "SLDTBXH"}
    assert fold_name("Sở Tư pháp") != fold_name("Sở Tư Pháp x")
