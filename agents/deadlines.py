"""Time passes: dossiers turn due-soon and overdue with no event at all.

Every worker runs this timer for the partitions it holds; the ledger's due-time heap
hands back only the dossiers whose state can have changed, so a tick costs nothing
when nothing is due.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agents.status import publish_status
from service.app import app, ledger

TICK_SECONDS = 1.0


@app.timer(interval=TICK_SECONDS)
async def watch_deadlines() -> None:
    if not ledger.ready:
        return
    changes = ledger.tick(datetime.now(UTC))
    if changes:
        await publish_status(changes)
