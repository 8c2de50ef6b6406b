"""Reading the log into transactions, and the order in which a transaction is saved.

The commit order, written once (`save`, as Quix Streams' `Checkpoint.commit`): the
transaction's side effects go first, dead letters then status messages, each acknowledged
by the broker; then its write buffer is written to the store in one atomic write; only then
is it swapped in. A side effect not acknowledged fails the transaction (`SideEffectFailed`)
and nothing is saved. Ownership is checked after every await: what a worker no longer holds
is left to the next owner. Recovery (service/state/recovery.py) and live delivery
(service/state/keeper.py) both save through here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from service.state.log_reader import LogReader
from service.state.transaction import Transaction
from service.state.worker_state import WorkerState

Sender = Callable[[Transaction], Awaitable[None]]
# Events per live batch at most (the agent takes what arrived within 50 ms, up to this).
LIVE_BATCH_EVENTS = 1000
# Events read from the log per transaction: a dossier whose events span the log reader's
# chunks is then read and written once, not once a chunk.
TRANSACTION_EVENTS = 20_000


class SideEffectFailed(RuntimeError):
    """A dead letter or status message the broker did not acknowledge: the batch fails."""


@dataclass
class LogApplier:
    """Transactions over `state`, saved in the one commit order."""

    state: WorkerState
    reader: LogReader
    send_dead_letters: Sender
    announce: Sender
    # Whether this worker holds the partition now (asked after every await).
    still_assigned: Callable[[int], bool]
    # Per partition, one writer at a time: a catch-up started by the committed-offset check
    # may begin while the agent holds a live batch of the same partition.
    writers: dict[int, asyncio.Lock] = field(default_factory=dict)

    async def save(self, transaction: Transaction, partition: int | None = None) -> bool:
        """Side effects, acknowledged, then the atomic write and the swap. With `partition`,
        nothing is saved (False) if it was revoked while the side effects were sent; a live
        batch saves anyway (the store stays a prefix of the log; the sums of a partition no
        longer counted here are not touched: Ledger.commit). Raises with the transaction
        failed."""
        try:
            if transaction.rejected:
                await self.send_dead_letters(transaction)
            if transaction.changes:
                await self.announce(transaction)
        except BaseException:
            transaction.fail()
            raise
        if partition is not None and not self.still_assigned(partition):
            transaction.fail()
            return False
        transaction.commit()
        return True

    async def read_range(
        self,
        partition: int,
        first: int,
        stop: int,
        *,
        live: bool,
        dead_letters: bool | None = None,
        locked: bool = False,
    ) -> int | None:
        """Apply the log's records first <= offset < stop, one transaction a chunk; the
        number read, or None if the partition was revoked meanwhile (checked after every
        await). Raises on any failure: what was committed stays, the rest is not applied."""
        state = self.state
        read = 0
        transaction: Transaction | None = None
        await self.reader.start()
        async with contextlib.AsyncExitStack() as held:
            if not locked:
                await held.enter_async_context(self.writer(partition))
            async for chunk in self.reader.read(partition, first, stop):
                if not self.still_assigned(partition):
                    return None
                transaction = state.apply(
                    chunk, live=live, dead_letters=dead_letters, into=transaction
                )
                read += len(chunk)
                if transaction.applied >= TRANSACTION_EVENTS:
                    if not await self.save(transaction, partition):
                        return None
                    transaction = None
                await asyncio.sleep(0)
            if transaction is not None and not await self.save(transaction, partition):
                return None
            if not self.still_assigned(partition):
                return None
            state.advance(partition, stop - 1)
        return read

    def writer(self, partition: int) -> asyncio.Lock:
        """The lock of `partition`: one writer at a time (a catch-up and a live batch)."""
        lock = self.writers.get(partition)
        if lock is None:
            lock = self.writers[partition] = asyncio.Lock()
        return lock
