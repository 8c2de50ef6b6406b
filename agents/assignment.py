"""Rebalances: partitions revoked and assigned are handed to the state layer.

The catch-up from the log runs in its own task, so faust's rebalance callback returns at
once; the agent waits for a partition's catch-up before it applies that partition's events.
"""

from __future__ import annotations

from typing import Any

from service import app as worker
from service import faust_fixes


@worker.app.on_partitions_revoked.connect
async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
    if worker.keeper is not None:
        worker.keeper.on_revoked()


@worker.app.on_partitions_assigned.connect
async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
    worker.pipeline.rebalances += 1
    if worker.keeper is not None:
        topic = worker.settings.topic
        worker.keeper.on_assigned(
            {tp.partition for tp in assigned if tp.topic == topic},
            member=faust_fixes.member_id(worker.app),
        )


@worker.app.on_before_shutdown.connect
async def on_shutdown(sender: Any, **kwargs: Any) -> None:
    if worker.keeper is not None:
        await worker.keeper.close()
