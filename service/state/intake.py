"""One incoming message: `parse` validates it (or says why not, for the dead-letter topic)
against the message's own timestamp."""

from __future__ import annotations

from datetime import datetime

from schemas import DossierEvent, parse_event


def parse(value: bytes | None, key: bytes | None, now: datetime) -> DossierEvent:
    """Validate a message; the key must be the dossier_id so a dossier stays in one partition."""
    return parse_event(value or b"", now=now, key=key or b"")
