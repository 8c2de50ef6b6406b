"""The gateway's ingestion routes, each as what only it knows: how its body is read into
items, how an item becomes contract events, and what an accepted item's result says.

Authentication, body limits, rate limiting, producing and every answer are the one pipeline
in app.py; a route here never answers a request itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.ingest.gateway import intake
from service.ingest.gateway.intake import Accepted, Outcome
from service.ingest.gateway.openapi import EVENTS_ROUTE, SYNC_ROUTE
from service.ingest.gateway.procedures import ProceduresFile
from service.ingest.gateway.units import DepartmentsFile, UnitsFile
from service.ingest.national_progress import PROGRESS_ROUTE, map_progress_rows, read_progress_items
from service.ingest.national_sync import SyncProfile


@dataclass(frozen=True)
class References:
    """The reference files a mapping reads (each re-read when it changes)."""

    units: UnitsFile
    procedures: ProceduresFile
    departments: DepartmentsFile


Reader = Callable[[bytes, str | None, int], list[Any]]
Mapper = Callable[[Sequence[Any], References, SyncProfile, datetime], list[Outcome]]


@dataclass(frozen=True)
class Route:
    """One ingestion route.

    `label`: the metrics' route label. `via`: the motcua-via header of what it produces.
    `read`: body → items (raises intake.BodyError). `map`: items → outcomes.
    `profiled`: the source's profile applies (its answer shape, its OpenCPS session form);
    otherwise the route answers in motcua's shape whoever calls.
    `accepted`: the result entry of an accepted item, beside its index and status.
    """

    label: str
    path: str
    via: bytes
    read: Reader
    map: Mapper
    profiled: bool
    accepted: Callable[[Accepted], dict[str, Any]]


def _events(items: Sequence[Any], refs: References, _: SyncProfile, now: datetime) -> list[Outcome]:
    return intake.validate_events(items, now)


def _dossiers(
    items: Sequence[Any], refs: References, profile: SyncProfile, now: datetime
) -> list[Outcome]:
    return intake.map_snapshots(items, refs.units, now, profile, refs.procedures)


def _progress(
    items: Sequence[Any], refs: References, _: SyncProfile, now: datetime
) -> list[Outcome]:
    return map_progress_rows(items, refs.departments.content, now)


def _event_result(outcome: Accepted) -> dict[str, Any]:
    return {"event_id": outcome.events[0].event_id}


def _dossier_result(outcome: Accepted) -> dict[str, Any]:
    return {"dossier_id": outcome.dossier_id, "event_ids": [e.event_id for e in outcome.events]}


EVENTS = Route(
    "events",
    EVENTS_ROUTE,
    b"gateway-events",
    intake.read_event_items,
    _events,
    profiled=False,
    accepted=_event_result,
)
DOSSIERS = Route(
    "national_sync",
    SYNC_ROUTE,
    b"gateway-national-sync",
    intake.read_sync_items,
    _dossiers,
    profiled=True,
    accepted=_dossier_result,
)
PROGRESS = Route(
    "national_progress",
    PROGRESS_ROUTE,
    b"gateway-national-progress",
    read_progress_items,
    _progress,
    profiled=True,
    accepted=_dossier_result,
)
ROUTES = (EVENTS, DOSSIERS, PROGRESS)
