"""Partitions come and go, batches arrive: the worker's state layer as the agents see it.

- an assignment hands every partition to recovery (service/state/recovery.py), which checks
  it against the broker and catches it up from the log before it counts;
- a live batch from the agent waits for its partitions' recovery; a partition whose
  delivered offsets do not follow on from its store without a hole is read from the log
  instead, from the store's next offset to the last one delivered (no seek or rebalance
  quirk can make the store skip an event); the batch is saved in the one commit order
  (service/state/log_applier.py);
- a live batch that failed is `abandon`ed: its partitions stop counting and recovery reads
  it again from the log until it is saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from service.state.catch_up_helper import CatchUpHelpers
from service.state.ledger import Ledger
from service.state.log_applier import LogApplier, Sender, SideEffectFailed
from service.state.log_reader import Incoming, LogReader
from service.state.recovery import Recovery
from service.state.worker_state import WorkerState

log = logging.getLogger(__name__)

__all__ = ["GapNotFilled", "PartitionKeeper", "SideEffectFailed"]


class GapNotFilled(RuntimeError):
    """Offsets faust did not deliver could not be read from the log for a partition this
    worker holds: the batch fails and is read again (never acknowledged as done)."""


@dataclass
class PartitionKeeper:
    """Partition assignment and live batches over a WorkerState, with recovery beside them.

    `send_dead_letters` and `announce` (status messages) run before a batch is saved: a
    crash in between sends them again on the next read (at least once, never lost). `stop`
    ends the worker when its store fails: counting on without it would serve numbers that a
    restart cannot give back.
    """

    state: WorkerState
    reader: LogReader
    send_dead_letters: Sender
    announce: Sender
    stop: Callable[[str], None]
    accept_truncated_log: bool = False
    # Seconds between checks of the group's committed offsets (None: no check, for tools and
    # tests that drive the keeper by hand). Readiness needs a recent one (recovery.py).
    check_every: float | None = None
    # Helper processes that catch up partitions whose store is empty (catch_up_helper.py).
    helpers: CatchUpHelpers | None = None
    applier: LogApplier = field(init=False)
    recovery: Recovery = field(init=False)
    _assigned: asyncio.Event = field(default_factory=asyncio.Event)
    # The consumer's member id in the group at the last assignment: a new one means it was
    # fenced (expelled after a pause) and trusts nothing it kept.
    _member: str | None = None

    def __post_init__(self) -> None:
        self.applier = LogApplier(
            self.state, self.reader, self.send_dead_letters, self.announce, self._still_assigned
        )
        self.recovery = Recovery(
            self.state,
            self.reader,
            self.applier,
            self.stop,
            accept_truncated_log=self.accept_truncated_log,
            check_every=self.check_every,
            helpers=self.helpers,
        )

    @property
    def ledger(self) -> Ledger:
        return self.state.ledger

    def on_revoked(self) -> None:
        self._assigned.clear()
        self.ledger.revoke()
        self.recovery.cancel()

    def on_assigned(self, partitions: Iterable[int], member: str | None = None) -> None:
        """A new assignment. Every partition, kept or new, is checked against the broker
        (the store's applied offset against the group's committed offset and the log's end)
        before it counts: another member may have advanced a kept one meanwhile."""
        assigned = set(partitions)
        if member is not None:
            if self._member is not None and member != self._member and self.ledger.partitions:
                log.warning(
                    "this worker rejoined the group as a new member (it was fenced, e.g. after "
                    "a pause longer than the session timeout): the sums it kept are dropped and "
                    "every partition is checked and caught up from its store and the log"
                )
                self.ledger.partitions.clear()
                self.state.drop_caches()
            self._member = member
        kept = set(self.ledger.partitions) & assigned
        self.ledger.assign(assigned)
        for partition in kept:
            self.ledger.hold(partition, "checking the store against the group's committed offset")
        self.recovery.blocked &= assigned
        # Kept partitions first: their check is one request, a new one may read for minutes.
        waiting = sorted(self.ledger.waiting, key=lambda p: (p not in kept, p))
        self.recovery.start(waiting)
        log.info(
            "assigned partitions %s (%d kept, checked against the broker before they count; "
            "%d to catch up)",
            sorted(assigned),
            len(kept),
            len(waiting) - len(kept),
        )
        self._assigned.set()

    async def close(self) -> None:
        """Stop recovering and close the log reader (the worker is shutting down)."""
        self.recovery.close()
        self.on_revoked()
        await self.reader.stop()
        self.state.store.close()

    async def wait_caught_up(self, timeout: float | None = None) -> None:
        """Until every assigned partition is caught up or given up (for tools and tests)."""
        await self.recovery.wait_caught_up(timeout)

    async def check_committed(self) -> None:
        """One check of the committed offsets against the store (recovery.py)."""
        await self.recovery.check_committed()

    def _still_assigned(self, partition: int) -> bool:
        assignment = self.ledger.assignment
        return assignment is not None and partition in assignment

    async def deliver(self, messages: list[Incoming]) -> None:
        """A live batch from the agent: wait for catch-ups, fill gaps, apply, send, save.

        Ownership is checked again after every await: a partition revoked meanwhile is left
        to its next owner (its messages are not applied here). Raises on any failure, with
        nothing of the batch saved; the caller then `abandon`s it.
        """
        await self._assigned.wait()
        await self._wait_for_tasks({m.partition for m in messages})
        wanted = self._owned(messages)
        async with contextlib.AsyncExitStack() as held:
            for partition in sorted({m.partition for m in wanted}):
                await held.enter_async_context(self.applier.writer(partition))
            # What a catch-up saved while this batch waited is skipped by `apply`; what it
            # did not reach is a gap like any other.
            wanted = self._owned(wanted)
            gaps = self._gaps(wanted)
            for partition, (first, stop) in gaps.items():
                log.warning(
                    "partition %d: offsets %d..%d were not all delivered; reading them from "
                    "the log instead",
                    partition,
                    first,
                    stop - 1,
                )
                await self.applier.read_range(partition, first, stop, live=True, locked=True)
            if gaps:
                # Read from the log in their place. A partition revoked meanwhile is left to
                # its next owner (the store stays a prefix of the log); one still held that
                # did not reach the last offset delivered is never acknowledged as done: the
                # batch fails and is read again (abandon).
                for partition, (first, stop) in gaps.items():
                    if (
                        self._still_assigned(partition)
                        and partition not in self.recovery.blocked
                        and self.state.meta(partition).applied < stop - 1
                    ):
                        raise GapNotFilled(
                            f"partition {partition}: offsets {first}..{stop - 1} were not all "
                            "read from the log"
                        )
                wanted = [m for m in self._owned(wanted) if m.partition not in gaps]
            # Revoked while sending: the store may still save the batch (it stays a prefix
            # of the log), but the sums of a partition no longer counted are not touched.
            await self.applier.save(self.state.apply(wanted, live=True))

    async def _wait_for_tasks(self, partitions: set[int]) -> None:
        """Until no catch-up or repair of `partitions` is running. A task cancelled by a
        revocation ends the wait without raising: the partition is then either not assigned
        any more (its messages are dropped) or assigned again with a new task, awaited in
        turn."""
        while True:
            await self._assigned.wait()
            running = [task for p in partitions if (task := self.recovery.running(p))]
            if not running:
                return
            await asyncio.wait(running)

    def _owned(self, messages: list[Incoming]) -> list[Incoming]:
        owned = self.ledger.owned() - self.recovery.blocked
        return [m for m in messages if m.partition in owned]

    def _gaps(self, messages: list[Incoming]) -> dict[int, tuple[int, int]]:
        """Per partition whose delivered offsets past the store do not follow on from it
        without a hole (a seek or rebalance quirk; transaction markers, compaction), the
        range from the store's next offset to the last one delivered: it is read from the
        log instead, so that every offset is applied once, in order."""
        expected: dict[int, int] = {}
        first: dict[int, int] = {}
        holes: list[int] = []
        for message in messages:
            partition = message.partition
            offset = message.offset
            following = expected.get(partition)
            if following is None:
                following = first[partition] = self.state.meta(partition).applied + 1
            if offset >= following:
                if offset > following:
                    holes.append(partition)
                expected[partition] = offset + 1
        return {partition: (first[partition], expected[partition]) for partition in holes}

    def abandon(
        self, messages: list[Incoming], why: str, release: Callable[[], None] | None = None
    ) -> None:
        """A live batch that was not applied (a send not acknowledged, a bug, the agent
        cancelled): its partitions stop counting and read it again from the log, with the
        same transactions, retrying until it works. `release` (acknowledge the batch to
        faust) runs once every partition of the batch has it saved."""
        stops: dict[int, int] = {}
        for message in messages:
            stops[message.partition] = max(stops.get(message.partition, 0), message.offset + 1)
        self.recovery.reread(stops, why, release)
