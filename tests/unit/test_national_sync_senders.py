"""Both senders' lifecycles, as their source serializes them, count as the center counts.

The bodies and the expected counts per dossier are in tests/sync_senders.py (worked out by
hand); here each post goes through the gateway's pure intake with the source's profile, and
the dossier's events through the domain core. tests/integration/test_gateway.py checks the
same lifecycles on real Kafka against a worker's /metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from sync_senders import (
    DOTNET,
    JUDGED_AT,
    OPENCPS,
    OPENCPS_DSTCODE,
    PII_STRINGS,
    PROCEDURES_CSV,
    SOURCES_TOML_TEMPLATE,
    UNITS_CSV,
    Lifecycle,
    at,
    dotnet_body,
    opencps_body,
)

from schemas import DossierEvent
from service.domain import WorkingCalendar, contribution, fold
from service.ingest.gateway import intake
from service.ingest.gateway.intake import Accepted
from service.ingest.gateway.procedures import ProceduresFile
from service.ingest.gateway.sources import SourcesFile
from service.ingest.gateway.tokens import token_hash
from service.ingest.gateway.units import UnitsFile

CAL = WorkingCalendar()
FAMILIES = {
    "received",
    "completed",
    "completed_without_due",
    "withdrawn",
    "became_overdue",
    "open",
    "overdue_held",
    "overdue_without_apology",
}


@pytest.fixture
def reference(tmp_path: Path) -> tuple[UnitsFile, ProceduresFile, SourcesFile]:
    (tmp_path / "units.csv").write_text(UNITS_CSV, encoding="utf-8")
    (tmp_path / "procedures.csv").write_text(PROCEDURES_CSV, encoding="utf-8")
    (tmp_path / "sources.toml").write_text(
        SOURCES_TOML_TEMPLATE.format(dstcode_sha256=token_hash(OPENCPS_DSTCODE)), encoding="utf-8"
    )
    units = UnitsFile(tmp_path / "units.csv")
    procedures = ProceduresFile(tmp_path / "procedures.csv")
    sources = SourcesFile(tmp_path / "sources.toml")
    for reference_file in (units, procedures, sources):
        reference_file.load()
    return units, procedures, sources


def posted_events(
    lifecycle: Lifecycle,
    build: Callable[..., Any],
    source: str,
    reference: tuple[UnitsFile, ProceduresFile, SourcesFile],
) -> list[DossierEvent]:
    units, procedures, sources = reference
    profile = sources.profile(source).sync
    events: list[DossierEvent] = []
    for when, state in lifecycle.posts:
        body = orjson.dumps(
            build(lifecycle.number, state, lifecycle.unit, lifecycle.online, lifecycle.procedure)
        )
        items = intake.read_sync_items(body, "application/json", 100)
        (outcome,) = intake.map_snapshots(items, units, at(when), profile, procedures)
        assert isinstance(outcome, Accepted), (lifecycle.number, when, outcome)
        events.extend(outcome.events)
    return events


def counted(dossier_id: str, events: list[DossierEvent]) -> frozenset[tuple[str, ...]]:
    dossier = fold(dossier_id, events, CAL)
    return frozenset(k for k in contribution(dossier, JUDGED_AT, CAL) if k[0] in FAMILIES)


@pytest.mark.parametrize("lifecycle", DOTNET, ids=[lc.number for lc in DOTNET])
def test_dotnet_lifecycles_count_as_the_center_counts(
    lifecycle: Lifecycle, reference: tuple[UnitsFile, ProceduresFile, SourcesFile]
) -> None:
    events = posted_events(lifecycle, dotnet_body, "dotnet-test", reference)
    assert counted(lifecycle.number, events) == lifecycle.expected


@pytest.mark.parametrize("lifecycle", OPENCPS, ids=[lc.number for lc in OPENCPS])
def test_opencps_lifecycles_count_as_the_center_counts(
    lifecycle: Lifecycle, reference: tuple[UnitsFile, ProceduresFile, SourcesFile]
) -> None:
    events = posted_events(lifecycle, opencps_body, "opencps-test", reference)
    assert counted(lifecycle.number, events) == lifecycle.expected


def test_resends_give_the_same_ids_and_no_personal_data_passes(
    reference: tuple[UnitsFile, ProceduresFile, SourcesFile],
) -> None:
    for family, build, source in (
        (DOTNET, dotnet_body, "dotnet-test"),
        (OPENCPS, opencps_body, "opencps-test"),
    ):
        for lifecycle in family:
            first = posted_events(lifecycle, build, source, reference)
            again = posted_events(lifecycle, build, source, reference)
            assert [e.event_id for e in first] == [e.event_id for e in again]
            text = b"".join(e.to_json() for e in first).decode()
            assert not [s for s in PII_STRINGS if s in text]


def test_without_the_profile_the_dotnet_rewrite_and_opencps_channel_are_refused(
    reference: tuple[UnitsFile, ProceduresFile, SourcesFile],
) -> None:
    # What a source without a profile gets: the national meaning of every code.
    units = reference[0]
    paused = DOTNET[4]  # local 8 sent as "9" without an end
    body = orjson.dumps(dotnet_body(paused.number, paused.posts[1][1], paused.unit, False, "x"))
    (outcome,) = intake.map_snapshots(
        intake.read_sync_items(body, "application/json", 10), units, at("202611121000")
    )
    assert getattr(outcome, "reason", None) == "missing_date"
    first = OPENCPS[0]
    body = orjson.dumps(opencps_body(first.number, first.posts[0][1], first.unit, False, "x"))
    (outcome,) = intake.map_snapshots(
        intake.read_sync_items(body, "application/json", 10), units, at("202611021000")
    )
    assert getattr(outcome, "reason", None) == "bad_channel"
