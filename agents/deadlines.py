"""Time passes: dossiers turn due-soon and overdue with no event at all.

Every worker runs this timer for the partitions it holds; the ledger's due-time heap
hands back only the dossiers whose state can have changed, so a tick costs nothing
when nothing is due.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from service.app import Worker
from service.state.ledger import StatusChange
from service.state.log_applier import SideEffectFailed

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0


def register(worker: Worker) -> None:
    """The timer that moves the worker's open dossiers with the clock."""
    ledger = worker.ledger
    # Changes the clock made whose status messages the broker has not acknowledged yet: sent
    # again at the next tick (the sums moved already; the news must not be lost).
    untold: list[StatusChange] = []

    async def watch_deadlines() -> None:
        if not ledger.ready:
            return
        changes = [*untold, *ledger.tick(datetime.now(UTC))]
        untold.clear()
        if not changes:
            return
        try:
            await worker.status.publish(changes)
        except SideEffectFailed as exc:
            untold.extend(changes)
            log.error("status messages not sent, trying again next tick: %s", exc)

    worker.app.timer(interval=TICK_SECONDS, name="agents.deadlines.watch_deadlines")(
        watch_deadlines
    )
