"""Fixed inputs of the stored formats' golden-bytes tests (tests/unit/test_codec.py).

Never change these: the golden bytes in the test were written from them by the code that
wrote the stores in use, so a change here would unpin the formats.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import orjson

from schemas import DossierEvent, parse_event
from service.domain.calendar import WorkingCalendar

CALENDAR = WorkingCalendar()
NOW = datetime.fromisoformat("2030-01-01T00:00:00+07:00")  # after every event below


def _event(fields: dict[str, Any]) -> DossierEvent:
    return parse_event(orjson.dumps(fields), now=NOW)


def _receipt(did: str, eid: str, at: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": eid,
        "dossier_id": did,
        "type": "received",
        "occurred_at": at,
        "agency": "SXD",
        "procedure": "1.000948",
        "channel": "direct",
        **extra,
    }


def _of(did: str, eid: str, kind: str, at: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": eid, "dossier_id": did, "type": kind, "occurred_at": at, **extra}


# Each dossier's events in arrival order (a duplicate or a late arrival where it matters).
DOSSIERS: dict[str, list[DossierEvent]] = {
    # The common stored dossier: its receipt only, a computed (local) due, relative ids.
    "HS-1": [_event(_receipt("HS-1", "HS-1-r", "2026-03-02T09:00:00+07:00", processing_days=5))],
    # An orphan: an event before its receipt (R8).
    "HS-2": [_event(_of("HS-2", "HS-2-a", "appraised", "2026-03-03T09:00:00+07:00"))],
    # A whole life with every kind of field; ids without the dossier id; one re-send.
    "HS-3": [
        _event(
            _receipt(
                "HS-3",
                "r",
                "2026-03-02T09:00:00+07:00",
                channel="online",
                due_at="2026-03-10T17:00:00+07:00",
                fee_due=True,
                components=4,
                components_digitised=3,
                components_reused=1,
                components_from_data_store=0,
                identity_verified=True,
                online_level="full",
            )
        ),
        _event(
            _of(
                "HS-3",
                "s1",
                "step_started",
                "2026-03-02T10:00:00+07:00",
                step="TD",
                department="P1",
                step_hours=16,
            )
        ),
        _event(_of("HS-3", "q", "supplement_requested", "2026-03-03T10:00:00+07:00")),
        _event(
            _of(
                "HS-3",
                "b",
                "supplement_received",
                "2026-03-05T10:00:00+07:00",
                due_at="2026-03-13T17:00:00+07:00",
            )
        ),
        _event(_of("HS-3", "s1c", "step_completed", "2026-03-06T10:00:00+07:00", step="TD")),
        _event(
            _of(
                "HS-3",
                "s2",
                "step_started",
                "2026-03-06T11:00:00+07:00",
                step="PD",
                department="P2",
                agency="STC",
                step_days=2,
            )
        ),
        _event(
            _of(
                "HS-3",
                "x",
                "extended",
                "2026-03-13T09:00:00+07:00",
                new_due_at="2026-03-20T17:00:00+07:00",
            )
        ),
        _event(_of("HS-3", "q", "supplement_requested", "2026-03-16T10:00:00+07:00")),  # re-send
        _event(_of("HS-3", "ap", "approved", "2026-03-16T10:00:00+07:00")),
        _event(_of("HS-3", "rt", "returned", "2026-03-17T10:00:00+07:00", e_result=True)),
        _event(_of("HS-3", "p", "paid", "2026-03-17T11:00:00+07:00", method="national_portal")),
        _event(
            _of(
                "HS-3",
                "rate",
                "rated",
                "2026-03-18T11:00:00+07:00",
                rating="dissatisfied",
                criteria={"c1": 2, "c2": 0},
                reason="slow",
            )
        ),
    ],
    # Open and paused with a step open; the step arrives late (a replay), a fixed-offset due.
    "HS-4": [
        _event(
            _receipt(
                "HS-4",
                "HS-4/r",
                "2026-03-02T09:00:00Z",
                channel="postal",
                due_at="2026-03-09T10:00:00Z",
            )
        ),
        _event(_of("HS-4", "HS-4/q", "supplement_requested", "2026-03-04T09:00:00Z")),
        _event(
            _of(
                "HS-4",
                "HS-4/s",
                "step_started",
                "2026-03-03T09:00:00Z",
                step="TD",
                department="P1",
                step_due_at="2026-03-05T09:00:00Z",
            )
        ),
    ],
    # No due (R11), withdrawn while running.
    "HS-5": [
        _event(_receipt("HS-5", "HS-5-r", "2026-03-02T09:00:00+07:00")),
        _event(_of("HS-5", "HS-5-w", "withdrawn", "2026-03-20T09:00:00+07:00")),
    ],
}

# A history page of version 1: one agency's days of one page (days from page 23018 * 32).
PAGE_NUMBER = 23018
PAGE_ROWS: dict[int, dict[str, int]] = {
    PAGE_NUMBER * 32 + 1: {"received.direct": 3, "in_progress.within": 2},
    PAGE_NUMBER * 32 + 2: {"resolved.early": 1, "in_progress.within": -1, "withdrawn": 1},
    PAGE_NUMBER * 32 + 31: {"index:online_share:den": 7, "step\x1fSXD\x1fP1\x1flate": 1},
}
# Version 2: more than 255 keys in a page.
WIDE_PAGE_ROWS: dict[int, dict[str, int]] = {
    PAGE_NUMBER * 32 + 4: {f"k{i:03d}": i - 100 for i in range(300) if i != 100},
}
PAGE_KEY = ("SXD", PAGE_NUMBER)
CLOSED_TOTALS: Counter[tuple[str, ...]] = Counter(
    {
        ("received", "SXD", "direct"): 12,
        ("completed", "SXD", "late"): 2,
        ("steps_completed", "STC", "P2", "on_time"): 5,
        ("withdrawn", "SXD"): 1,
    }
)
