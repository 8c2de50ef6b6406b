"""Status changes (became overdue, due soon, closed) for notification systems."""

from __future__ import annotations

import orjson

from service.app import status_topic
from service.state.ledger import StatusChange


async def publish_status(change: StatusChange) -> None:
    await status_topic.send(
        key=change.dossier_id.encode(),
        value=orjson.dumps(
            {
                "dossier_id": change.dossier_id,
                "agency": change.agency,
                "status": change.status,
                "at": change.at.isoformat(),
                "due_at": change.due.isoformat() if change.due else None,
            }
        ),
    )
