"""Partitions come and go: catch-up from the log on assignment, gaps filled, live batches.

- a partition newly assigned is caught up from the log itself (`LogReader`), up to the
  group's committed offset, before the agent may touch it; what lies beyond is new and goes
  through the agent (dead letters, status messages) as usual;
- a gap in what faust delivers (an offset beyond applied + 1) is read from the log before
  going on, so no faust seek or rebalance quirk can make the store skip an event;
- a partition that cannot be counted (its oldest events deleted, a catch-up that keeps
  failing) waits with the reason, and no total is served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from service.state.ledger import Ledger
from service.state.log_reader import Incoming, LogReader
from service.state.store import PartitionMeta, StoreError
from service.state.worker_state import Batch, WorkerState

log = logging.getLogger(__name__)

Sender = Callable[[Batch], Awaitable[None]]
# Events read from the log per transaction: a dossier whose events span the log reader's
# chunks is then read and written once, not once a chunk.
TRANSACTION_EVENTS = 20_000
# Seconds before trying a failed catch-up or repair again (times the attempt, up to 30 s).
RETRY_S = 2.0
# Seconds to wait for the group's committed offsets; past it the check failed (not ready).
CHECK_TIMEOUT_S = 5.0
# A broker check is trusted for this many check intervals: a worker paused longer (a GC
# pause, a frozen VM, a cut network) serves nothing until it has asked the broker again.
CHECKS_TRUSTED = 5


class SideEffectFailed(RuntimeError):
    """A dead letter or status message the broker did not acknowledge: the batch fails."""


@dataclass
class PartitionKeeper:
    """Partition assignment, catch-up from the log and live batches, over a WorkerState.

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
    # tests that drive the keeper by hand). Readiness needs a check younger than
    # CHECKS_TRUSTED of these: a worker that stalled is not ready until it has asked again.
    check_every: float | None = None
    _tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    _assigned: asyncio.Event = field(default_factory=asyncio.Event)
    _blocked: set[int] = field(default_factory=set)
    _releases: set[asyncio.Future[None]] = field(default_factory=set)
    # One partition at a time: the work is CPU-bound on one thread, so interleaving them
    # only delays the first; readiness needs them all anyway.
    _one_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Per partition, one writer at a time: a catch-up started by the committed-offset check
    # may begin while the agent holds a live batch of the same partition.
    _writers: dict[int, asyncio.Lock] = field(default_factory=dict)
    # The consumer's member id in the group at the last assignment: a new one means it was
    # fenced (expelled after a pause) and trusts nothing it kept.
    _member: str | None = None
    _checker: asyncio.Task[None] | None = None
    _check_failing: bool = False

    def __post_init__(self) -> None:
        if self.check_every is not None:
            self.ledger.check_max_age = self.check_every * CHECKS_TRUSTED

    @property
    def ledger(self) -> Ledger:
        return self.state.ledger

    def on_revoked(self) -> None:
        self._assigned.clear()
        self.ledger.revoke()
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

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
        self._blocked &= assigned
        # Kept partitions first: their check is one request, a new one may read for minutes.
        for partition in sorted(self.ledger.waiting, key=lambda p: (p not in kept, p)):
            self._tasks[partition] = asyncio.ensure_future(self._catch_up(partition))
        log.info(
            "assigned partitions %s (%d kept, checked against the broker before they count; "
            "%d to catch up)",
            sorted(assigned),
            len(kept),
            len(self._tasks) - len(kept),
        )
        self._assigned.set()
        if self.check_every is not None and self._checker is None:
            self._checker = asyncio.ensure_future(self._check_committed_forever())

    async def close(self) -> None:
        """Stop catching up and close the log reader (the worker is shutting down)."""
        if self._checker is not None:
            self._checker.cancel()
            self._checker = None
        self.on_revoked()
        await self.reader.stop()
        self.state.store.close()

    async def _check_committed_forever(self) -> None:
        assert self.check_every is not None
        while True:
            try:
                await asyncio.wait_for(self.check_committed(), CHECK_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker unreachable: readiness lapses on its own
                if not self._check_failing:
                    log.warning(
                        "cannot read the group's committed offsets (%s: %s): not ready until "
                        "the broker answers",
                        type(exc).__name__,
                        str(exc)[:200],
                    )
                self._check_failing = True
            else:
                if self._check_failing:
                    log.info("the group's committed offsets can be read again")
                self._check_failing = False
            await asyncio.sleep(self.check_every)

    async def check_committed(self) -> None:
        """Compare each counted partition's applied offset with the group's committed offset.
        One the group committed past what this worker applied was advanced by another member
        (this worker was fenced, or stalled, and has not heard yet): not counted until caught
        up, even if no message arrives. A check that passes renews readiness."""
        ledger = self.ledger
        assignment = ledger.assignment
        if assignment is None:
            return
        asked_at = time.monotonic()
        await self.reader.start()
        committed = {p: await self.reader.committed(p) for p in sorted(assignment)}
        if ledger.assignment != assignment:
            return  # a rebalance meanwhile: its own checks run
        for partition, offset in committed.items():
            task = self._tasks.get(partition)
            if offset is None or partition not in ledger.partitions or partition in self._blocked:
                continue
            if task is not None and not task.done():
                continue  # catching up or repairing: it reads to the committed offset itself
            applied = self.state.meta(partition).applied
            if offset > applied + 1:
                log.warning(
                    "partition %d: the group committed offset %d but this worker applied up to "
                    "%d: another member advanced it; not counted until caught up",
                    partition,
                    offset,
                    applied,
                )
                ledger.hold(partition, f"another member advanced it to offset {offset}")
                self._tasks[partition] = asyncio.ensure_future(self._catch_up(partition))
        ledger.checked_at = asked_at

    async def wait_caught_up(self, timeout: float | None = None) -> None:
        """Until every assigned partition is caught up or given up (for tools and tests)."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _catch_up(self, partition: int) -> None:
        """Catch up until it works: a broker that does not answer now may answer later, and
        the partition stays not counted (with the reason) meanwhile."""
        attempt = 0
        while not await self._caught_up_in_turn(partition):
            attempt += 1
            await asyncio.sleep(min(30.0, RETRY_S * attempt))

    async def _caught_up_in_turn(self, partition: int) -> bool:
        async with self._one_at_a_time:
            return await self._catch_up_once(partition)

    async def _catch_up_once(self, partition: int) -> bool:
        """One attempt; False when it should be tried again. Every batch is a transaction, so
        a failed attempt leaves the saved store and meta as they were: the next attempt
        starts from them."""
        started = time.monotonic()
        state = self.state
        try:
            # Sums kept from an earlier assignment: they stay only if nothing needs reading.
            kept = partition in self.ledger.partitions
            await self.reader.start()
            (earliest, end) = (await self.reader.bounds([partition]))[partition]
            committed = await self.reader.committed(partition)
            if not self._still_assigned(partition):
                return True  # revoked while asking the broker: the next owner catches up
            meta = state.meta(partition)
            if meta.applied >= end:
                # The store goes further than the log: the topic was deleted and made anew.
                log.warning(
                    "partition %d: the local store holds offsets up to %d but the log ends at "
                    "%d (topic re-created?): reading it again from the beginning",
                    partition,
                    meta.applied,
                    end,
                )
                self.ledger.wait(partition, "reading the partition again from the beginning")
                kept = False
                state.forget(partition)
                meta = state.meta(partition)
            first = meta.applied + 1
            if first < earliest:
                self.ledger.wait(partition, "its log lost its beginning")
                kept = False
                if not self.accept_truncated_log:
                    self._give_up(partition, first, earliest)
                    return True
                log.warning(
                    "partition %d: offsets %d..%d were deleted from the log; counting from %d "
                    "on (MOTCUA_ACCEPT_TRUNCATED_LOG)",
                    partition,
                    first,
                    earliest - 1,
                    earliest,
                )
                state.forget(partition)
                state.set_meta(partition, PartitionMeta(applied=earliest - 1, start=earliest))
                meta = state.meta(partition)
            # History: what the group already handled (dead letters sent, statuses told) —
            # unless this partition starts over after its log lost its beginning: a worker
            # that refused to count it may have let faust commit offsets it never handled,
            # so their dead letters are sent now (at least once: consumers dedupe on
            # motcua-offset).
            target = committed if committed is not None else first
            if kept and target <= first:
                self.ledger.release(partition)
                log.info(
                    "partition %d kept: the store holds offsets up to %d, the group committed "
                    "%s: counted",
                    partition,
                    meta.applied,
                    committed,
                )
                return True
            if kept:
                log.warning(
                    "partition %d: offsets %d..%d were handled by another member: its kept "
                    "sums are dropped and rebuilt after reading them",
                    partition,
                    first,
                    target - 1,
                )
                self.ledger.wait(partition, f"reading offsets {first}..{target - 1} from the log")
            dead_letters = meta.start > 0 and meta.applied < meta.start
            # The partition's writer is held until its sums are installed: a live batch that
            # waits for it then lands on the rebuilt sums, not between the store and them.
            async with self._writer(partition):
                read = await self._read_range(
                    partition,
                    meta.applied + 1,
                    target,
                    live=False,
                    dead_letters=dead_letters,
                    locked=True,
                )
                if read is None:
                    return True  # revoked meanwhile
                caught_up = time.monotonic() - started
                try:
                    ledger = await state.rebuild(partition)
                except (ValueError, KeyError, IndexError, struct.error) as exc:
                    # A stored record this code cannot read (corruption, a foreign format): the
                    # store is only a cache of the log, so the partition is read again.
                    log.error(
                        "partition %d: a stored dossier cannot be read (%s); reading the partition "
                        "again from the log",
                        partition,
                        str(exc)[:200],
                    )
                    state.forget(partition)
                    return False
                if not self._still_assigned(partition):
                    return True
                self.ledger.install(partition, ledger)
                log.info(
                    "partition %d ready: %d events read from the log in %.2fs, sums rebuilt in "
                    "%.2fs (%d dossiers, store up to offset %d)",
                    partition,
                    read,
                    caught_up,
                    time.monotonic() - started - caught_up,
                    len(ledger.contributions),
                    state.meta(partition).applied,
                )
                return True
        except asyncio.CancelledError:
            raise
        except StoreError as exc:
            self.stop(str(exc))
            return True
        except Exception as exc:  # never serve a partition whose catch-up failed
            why = f"{type(exc).__name__}: {str(exc)[:200]}"
            log.error("partition %d: catch-up failed, trying again: %s", partition, why)
            self.ledger.wait(partition, f"catch-up failed, trying again: {why}")
            return False

    def _still_assigned(self, partition: int) -> bool:
        assignment = self.ledger.assignment
        return assignment is not None and partition in assignment

    async def _read_range(
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
        batch: Batch | None = None
        await self.reader.start()
        async with contextlib.AsyncExitStack() as held:
            if not locked:
                await held.enter_async_context(self._writer(partition))
            async for chunk in self.reader.read(partition, first, stop):
                if not self._still_assigned(partition):
                    return None
                batch = state.apply(chunk, live=live, dead_letters=dead_letters, into=batch)
                read += len(chunk)
                if batch.applied >= TRANSACTION_EVENTS:
                    if not await self._commit(partition, batch):
                        return None
                    batch = None
                await asyncio.sleep(0)
            if batch is not None and not await self._commit(partition, batch):
                return None
            if not self._still_assigned(partition):
                return None
            state.advance(partition, stop - 1)
        return read

    def _writer(self, partition: int) -> asyncio.Lock:
        lock = self._writers.get(partition)
        if lock is None:
            lock = self._writers[partition] = asyncio.Lock()
        return lock

    async def _commit(self, partition: int, batch: Batch) -> bool:
        """Side effects, then save; False if the partition was revoked meanwhile."""
        await self._side_effects(batch)
        if not self._still_assigned(partition):
            return False
        self.state.commit(batch)
        return True

    async def _side_effects(self, batch: Batch) -> None:
        """Dead letters, then status messages, each acknowledged by the broker, before the
        batch is saved: a failure raises (SideEffectFailed) and nothing is saved."""
        if batch.rejected:
            await self.send_dead_letters(batch)
        if batch.changes:
            await self.announce(batch)

    def _give_up(self, partition: int, first: int, earliest: int) -> None:
        reason = (
            f"the log's offsets {first}..{earliest - 1} of partition {partition} were deleted "
            "(retention) and the local store does not hold them: restore the events, or "
            "accept a fresh start (docs/operations.md)"
        )
        log.error("partition %d not counted: %s", partition, reason)
        self.ledger.wait(partition, reason)
        self._blocked.add(partition)

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
                await held.enter_async_context(self._writer(partition))
            # What a catch-up saved while this batch waited is skipped by `apply`; what it
            # did not reach is a gap like any other.
            wanted = self._owned(wanted)
            gaps = self._gaps(wanted)
            for partition, (first, stop) in gaps.items():
                log.warning(
                    "partition %d: offsets %d..%d were not delivered; reading them from the log",
                    partition,
                    first,
                    stop - 1,
                )
                await self._read_range(partition, first, stop, live=True, locked=True)
            if gaps:
                # A gap left unfilled (revoked while reading it) keeps its partition out: the
                # store must stay a prefix of the log.
                wanted = self._owned(wanted)
                unfilled = self._gaps(wanted)
                wanted = [m for m in wanted if m.partition not in unfilled]
            batch = self.state.apply(wanted, live=True)
            await self._side_effects(batch)
            # Revoked while sending: the store may still save the batch (it stays a prefix
            # of the log), but the sums of a partition this worker no longer counts are not
            # touched (WorkerState.commit asks the ledger what it owns now).
            self.state.commit(batch)

    async def _wait_for_tasks(self, partitions: set[int]) -> None:
        """Until no catch-up or repair of `partitions` is running. A task cancelled by a
        revocation ends the wait without raising: the partition is then either not assigned
        any more (its messages are dropped) or assigned again with a new task, awaited in
        turn."""
        while True:
            await self._assigned.wait()
            running = [
                task
                for p in partitions
                if (task := self._tasks.get(p)) is not None and not task.done()
            ]
            if not running:
                return
            await asyncio.wait(running)

    def _owned(self, messages: list[Incoming]) -> list[Incoming]:
        owned = self.ledger.owned() - self._blocked
        return [m for m in messages if m.partition in owned]

    def _gaps(self, messages: list[Incoming]) -> dict[int, tuple[int, int]]:
        """Per partition, the first range between the store and what faust delivered."""
        expected: dict[int, int] = {}
        gaps: dict[int, tuple[int, int]] = {}
        for message in messages:
            partition = message.partition
            if partition not in expected:
                expected[partition] = self.state.meta(partition).applied + 1
            if message.offset > expected[partition] and partition not in gaps:
                gaps[partition] = (expected[partition], message.offset)
            expected[partition] = max(expected[partition], message.offset + 1)
        return gaps

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
        repairs = []
        for partition, stop in stops.items():
            if not self._still_assigned(partition) or partition in self._blocked:
                continue
            self.ledger.hold(partition, f"a batch was not applied ({why}): reading it again")
            previous = self._tasks.get(partition)
            task = asyncio.ensure_future(self._repair(partition, stop, previous))
            self._tasks[partition] = task
            repairs.append(task)
        if release is not None:
            self._releases.add(asyncio.ensure_future(self._release_after(repairs, stops, release)))

    async def _repair(self, partition: int, stop: int, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        attempt = 0
        while self._still_assigned(partition):
            try:
                first = self.state.meta(partition).applied + 1
                if await self._read_range(partition, first, stop, live=True) is not None:
                    self.ledger.release(partition)
                return
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                self.stop(str(exc))
                return
            except Exception as exc:
                attempt += 1
                why = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.error("partition %d: re-reading a batch failed, retrying: %s", partition, why)
                self.ledger.hold(partition, f"re-reading a batch failed, trying again: {why}")
                await asyncio.sleep(min(30.0, RETRY_S * attempt))

    async def _release_after(
        self, repairs: list[asyncio.Task[None]], stops: dict[int, int], release: Callable[[], None]
    ) -> None:
        if repairs:
            await asyncio.wait(repairs)
        try:
            if all(
                self._still_assigned(p) and self.state.meta(p).applied >= stop - 1
                for p, stop in stops.items()
            ):
                release()
        finally:
            self._releases.discard(asyncio.current_task())  # type: ignore[arg-type]
