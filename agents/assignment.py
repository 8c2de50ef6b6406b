"""Rebalances: partitions revoked and assigned are handed to the state layer.

The catch-up from the log runs in its own task, so faust's rebalance callback returns at
once; the agent waits for a partition's catch-up before it applies that partition's events.
"""

from __future__ import annotations

from typing import Any

from service import faust_fixes
from service.app import Worker


def register(worker: Worker) -> None:
    """Connect the app's rebalance and shutdown signals to the worker's keeper."""
    app = worker.app
    topic = worker.settings.topic

    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        if worker.keeper is not None:
            worker.keeper.on_revoked()

    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        worker.pipeline.rebalances += 1
        if worker.keeper is not None:
            worker.keeper.on_assigned(
                {tp.partition for tp in assigned if tp.topic == topic},
                member=faust_fixes.member_id(app),
            )

    async def on_shutdown(sender: Any, **kwargs: Any) -> None:
        if worker.keeper is not None:
            await worker.keeper.close()

    # faust's stub types every signal handler as (sender, *args, signal, **kwargs); it calls
    # these as each signal is sent (sender, the partitions if any, signal=...).
    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
    app.on_before_shutdown.connect(on_shutdown)  # type: ignore[arg-type]
