"""The worker's dossier state: load → apply → save, for every message of its partitions.

A partition's store is always the fold of a prefix of the log (offsets 0..applied): each
batch of messages is applied in offset order and saved as one atomic write with the new
applied offset and the operational counters. From that one rule follows everything else:
- a message at or below the applied offset is already in the store: skipped, never counted
  again, never sent to the dead-letter topic again;
- a partition newly assigned is caught up from the log itself (`LogReader`), up to the
  group's committed offset, before the agent may touch it; what lies beyond is new and goes
  through the agent (dead letters, status messages) as usual;
- a gap in what faust delivers (an offset beyond applied + 1) is read from the log before
  going on, so no faust seek or rebalance quirk can make the store skip an event.
The sums (`Ledger`) are rebuilt from the store when a partition is installed, then kept
up to date event by event.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas import InvalidEvent
from service.domain import Dossier, WorkingCalendar
from service.domain.progress import DossierProgress, Step
from service.domain.report import DossierFacts
from service.state.intake import parse
from service.state.ledger import Ledger, PartitionLedger, StatusChange
from service.state.log_reader import Incoming, LogReader
from service.state.store import DossierStore, PartitionMeta, StoreError

log = logging.getLogger(__name__)

SOURCE_HEADER = "motcua-source"
# Status messages are for what is happening now: an event that occurred, or was published,
# longer ago than this (a worker reading a backlog, a new deployment reading the center's
# history, a center system back-filling last year) changes the sums silently, so citizens
# are never told again about a dossier closed months ago. Changes made by the
# clock (due soon, overdue) are always current and always announced (agents/deadlines.py).
FRESH_FOR_S = 600.0
# Rebuilding a partition's sums yields the event loop this often (dossiers), so /metrics,
# /readyz and heartbeats keep answering while a million dossiers are read back.
REBUILD_SLICE = 20_000

Rejected = tuple[Incoming, InvalidEvent]


@dataclass
class Batch:
    """What applying messages leaves to save and to send."""

    records: dict[tuple[int, bytes], bytes] = field(default_factory=dict)
    metas: dict[int, PartitionMeta] = field(default_factory=dict)
    changes: list[StatusChange] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    applied: int = 0  # messages applied (not skipped)


def source_of(headers: object) -> str:
    """The calling system a message came from (header motcua-source), else 'direct'."""
    if headers:
        for name, value in headers:  # type: ignore[attr-defined]
            if name == SOURCE_HEADER and value:
                return bytes(value)[:64].decode("utf-8", "replace")
    return "direct"


class WorkerState:
    """The store, the partition metas and the ledger, kept in step."""

    def __init__(self, store: DossierStore, ledger: Ledger, calendar: WorkingCalendar) -> None:
        self.store = store
        self.ledger = ledger
        self.calendar = calendar
        self._metas: dict[int, PartitionMeta] = {}

    def meta(self, partition: int) -> PartitionMeta:
        meta = self._metas.get(partition)
        if meta is None:
            meta = self._metas[partition] = self.store.meta(partition)
        return meta

    def forget(self, partition: int) -> None:
        """Drop a partition's store: it will be read again from the log's beginning."""
        self.store.drop(partition)
        self._metas[partition] = PartitionMeta()

    def advance(self, partition: int, offset: int) -> None:
        """The store covers `partition` up to `offset` even where the log has no record
        (offsets taken by transaction markers or compaction)."""
        meta = self.meta(partition)
        if offset > meta.applied:
            meta.applied = offset
            self.store.write({}, {partition: meta})

    def apply(self, messages: list[Incoming], *, live: bool) -> Batch:
        """Fold `messages` (in offset order per partition) into pending records.

        `live`: also update the sums and collect status changes and dead letters; a
        catch-up of history does neither (its messages were handled when first read).
        """
        batch = Batch()
        # Dossiers touched by this batch, unpacked once and packed once at the end.
        touched: dict[tuple[int, bytes], DossierProgress] = {}
        ledger = self.ledger
        calendar = self.calendar
        store = self.store
        wall = datetime.now(UTC)
        fresh_from = wall.timestamp() - FRESH_FOR_S
        for message in messages:
            partition = message.partition
            meta = batch.metas.get(partition)
            if meta is None:
                meta = batch.metas[partition] = self.meta(partition)
            if message.offset <= meta.applied:
                continue  # already in the store
            meta.applied = message.offset
            batch.applied += 1
            try:
                # The message's own timestamp, not the clock: re-reading the log in a year
                # must give the same verdicts (state is a function of the log).
                event = parse(
                    message.value, message.key, datetime.fromtimestamp(message.timestamp, UTC)
                )
                where = (partition, event.dossier_id.encode())
                progress = touched.get(where)
                if progress is None:
                    raw = store.get(*where)
                    progress = touched[where] = (
                        DossierProgress.unpack(event.dossier_id, raw)
                        if raw is not None
                        else DossierProgress.start(event.dossier_id)
                    )
                step = progress.advance(event, calendar)  # the domain core: R6, R7
            except InvalidEvent as exc:
                meta.rejected[exc.reason.value] += 1
                if live:
                    batch.rejected.append((message, exc))
                continue
            if step is Step.DUPLICATE:
                meta.duplicates[source_of(message.headers)] += 1
                continue
            meta.events[event.type.value] += 1
            if live:
                change = ledger.accept(partition, progress.dossier, wall, progress.facts)
                if (
                    change is not None
                    and message.timestamp >= fresh_from
                    and event.occurred_at.timestamp() >= fresh_from
                ):
                    batch.changes.append(change)
        batch.records = {where: progress.pack() for where, progress in touched.items()}
        if live and messages:
            ledger.last_event_timestamp = max(
                ledger.last_event_timestamp or 0.0, _last_timestamp(messages)
            )
        return batch

    def save(self, batch: Batch) -> None:
        """Write the batch's records and metas atomically (raises StoreError)."""
        if batch.records or batch.metas:
            self.store.write(batch.records, batch.metas)

    def stored(self, partition: int) -> Iterator[tuple[Dossier, DossierFacts | None]]:
        """Every stored dossier of `partition`, with its report facts."""
        for key, raw in self.store.dossiers(partition):
            progress = DossierProgress.unpack(key.decode(), raw)  # no replay
            yield progress.dossier, progress.facts

    async def rebuild(self, partition: int) -> PartitionLedger:
        """The partition's sums from its store, yielding the event loop now and then."""
        now = datetime.now(UTC)
        ledger = PartitionLedger(self.calendar, self.meta(partition))
        # A rebuild creates objects that all stay: the cyclic collector would scan them
        # again and again for nothing. Off while rebuilding, then frozen out of its sight.
        gc.disable()
        try:
            for count, (dossier, facts) in enumerate(self.stored(partition), 1):
                if facts is not None:
                    ledger.facts[dossier.dossier_id] = facts
                ledger.apply(dossier, now, notify=False)
                if count % REBUILD_SLICE == 0:
                    await asyncio.sleep(0)
        finally:
            gc.enable()
        gc.freeze()
        return ledger


def _last_timestamp(messages: Iterable[Incoming]) -> float:
    return max((m.timestamp for m in messages), default=0.0)


Sender = Callable[[Batch], Awaitable[None]]


@dataclass
class PartitionKeeper:
    """Partition assignment, catch-up from the log and live batches, over a WorkerState.

    `send_dead_letters` runs before a batch is saved (a crash in between re-sends them on
    the next read: the one at-least-once window left); `announce` runs after (status
    messages for what is stored).
    """

    state: WorkerState
    reader: LogReader
    send_dead_letters: Sender
    announce: Sender
    accept_truncated_log: bool = False
    _tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    _assigned: asyncio.Event = field(default_factory=asyncio.Event)
    _blocked: set[int] = field(default_factory=set)

    @property
    def ledger(self) -> Ledger:
        return self.state.ledger

    def on_revoked(self) -> None:
        self._assigned.clear()
        self.ledger.revoke()
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    def on_assigned(self, partitions: Iterable[int]) -> None:
        held = set(self.ledger.partitions)
        self.ledger.assign(partitions)
        self._blocked &= set(partitions)
        for partition in sorted(self.ledger.waiting):
            self._tasks[partition] = asyncio.ensure_future(self._catch_up(partition))
        log.info(
            "assigned partitions %s (%d kept counted, %d to catch up)",
            sorted(partitions),
            len(held & set(partitions)),
            len(self._tasks),
        )
        self._assigned.set()

    async def wait_caught_up(self, timeout: float | None = None) -> None:
        """Until every assigned partition is caught up or given up (for tools and tests)."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _catch_up(self, partition: int) -> None:
        """Catch up until it works: a broker that does not answer now may answer later, and
        the partition stays not counted (with the reason) meanwhile."""
        attempt = 0
        while not await self._catch_up_once(partition):
            attempt += 1
            await asyncio.sleep(min(30.0, 2.0 * attempt))

    async def _catch_up_once(self, partition: int) -> bool:
        """One attempt; False when it should be tried again."""
        started = time.monotonic()
        state = self.state
        try:
            await self.reader.start()
            (earliest, end) = (await self.reader.bounds([partition]))[partition]
            committed = await self.reader.committed(partition)
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
                state.forget(partition)
                meta = state.meta(partition)
            first = meta.applied + 1
            if first < earliest:
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
                meta = state.meta(partition)
                meta.applied, meta.start = earliest - 1, earliest
                state.store.write({}, {partition: meta})
            # History: what the group already handled (dead letters sent, statuses told).
            target = committed if committed is not None else first
            read = 0
            async for chunk in self.reader.read(partition, first, target):
                state.save(state.apply(chunk, live=False))
                read += len(chunk)
                await asyncio.sleep(0)
            state.advance(partition, target - 1)
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
        except StoreError:
            raise  # the worker stops (agents/lifecycle.py): it cannot count without a store
        except Exception as exc:  # never serve a partition whose catch-up failed
            why = f"{type(exc).__name__}: {str(exc)[:200]}"
            log.error("partition %d: catch-up failed, trying again: %s", partition, why)
            self.ledger.wait(partition, f"catch-up failed, trying again: {why}")
            return False

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
        """A live batch from the agent: wait for catch-ups, fill gaps, apply, send, save."""
        await self._assigned.wait()
        partitions = {m.partition for m in messages}
        for partition in partitions:
            task = self._tasks.get(partition)
            if task is not None and not task.done():
                await asyncio.shield(task)
        assignment = self.ledger.assignment or frozenset()
        wanted = [
            m for m in messages if m.partition in assignment and m.partition not in self._blocked
        ]
        await self._fill_gaps(wanted)
        batch = self.state.apply(wanted, live=True)
        if batch.rejected:
            await self.send_dead_letters(batch)
        self.state.save(batch)
        if batch.changes:
            await self.announce(batch)

    async def _fill_gaps(self, messages: list[Incoming]) -> None:
        """Read from the log whatever lies between the store and what faust delivered."""
        expected: dict[int, int] = {}
        gaps: dict[int, tuple[int, int]] = {}
        for message in messages:
            partition = message.partition
            if partition not in expected:
                expected[partition] = self.state.meta(partition).applied + 1
            if message.offset > expected[partition] and partition not in gaps:
                gaps[partition] = (expected[partition], message.offset)
            expected[partition] = max(expected[partition], message.offset + 1)
        for partition, (first, stop) in gaps.items():
            log.warning(
                "partition %d: offsets %d..%d were not delivered; reading them from the log",
                partition,
                first,
                stop - 1,
            )
            await self.reader.start()
            async for chunk in self.reader.read(partition, first, stop):
                batch = self.state.apply(chunk, live=True)
                if batch.rejected:
                    await self.send_dead_letters(batch)
                self.state.save(batch)
                if batch.changes:
                    await self.announce(batch)
            self.state.advance(partition, stop - 1)
