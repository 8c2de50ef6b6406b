"""Recovery, apart from live delivery: a partition is caught up from the log before it counts.

- on assignment every partition, kept or new, is checked against the broker: the store's
  applied offset against the group's committed offset and the log's end; what another member
  handled meanwhile is read from the log (as history: its dead letters and status messages
  were sent) before the partition counts;
- while running, the committed offsets are checked every few seconds: a partition another
  member advanced (this worker was fenced and has not heard yet) stops counting until caught
  up, even with no new message, and readiness lapses when no check has passed lately;
- a live batch that failed is read again from the log until it is saved (`repair`);
- a partition that cannot be counted (its oldest events deleted, a catch-up that keeps
  failing) waits with the reason, and no total is served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from service.state.catch_up_helper import CatchUpHelpers, HelperFailed
from service.state.ledger import Ledger
from service.state.log_applier import LogApplier
from service.state.log_reader import LogReader, LogTruncated
from service.state.store import PartitionMeta, StoreError, meta_key
from service.state.worker_state import WorkerState

log = logging.getLogger(__name__)

# Seconds before trying a failed catch-up or repair again (times the attempt, up to 30 s).
RETRY_S = 2.0
# Seconds to wait for the group's committed offsets; past it the check failed (not ready).
CHECK_TIMEOUT_S = 5.0
# A broker check is trusted for this many check intervals: a worker paused longer (a GC
# pause, a frozen VM, a cut network) serves nothing until it has asked the broker again.
CHECKS_TRUSTED = 5
# Seconds a partition may hold records newer than its store, none of them delivered, before
# it is not counted: a consumer that stopped fetching but still heartbeats (faust #175) keeps
# its partitions and commits nothing new, so the committed-offset check alone passes while
# the sums fall behind the log. A busy worker delivers every few seconds; this is a stall.
STALLED_AFTER_S = 60.0


@dataclass
class Recovery:
    """Catch-up, checks against the broker and repairs, one task per partition."""

    state: WorkerState
    reader: LogReader
    applier: LogApplier
    stop: Callable[[str], None]
    accept_truncated_log: bool = False
    # Seconds between checks of the group's committed offsets (None: no check, for tools and
    # tests that drive the keeper by hand).
    check_every: float | None = None
    tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    releases: set[asyncio.Future[None]] = field(default_factory=set)
    # Helper processes for partitions whose store is empty (None: none).
    helpers: CatchUpHelpers | None = None
    # Partitions a helper failed: their next attempts run here.
    helper_failed: set[int] = field(default_factory=set)
    _turns: Turns = field(init=False)
    _checker: asyncio.Task[None] | None = None
    _check_failing: bool = False
    # Per partition: the applied offset and log end last seen, and since when records past
    # that end have waited undelivered (None: none waiting). Held ones, by the reason given.
    _delivery: dict[int, tuple[int, int, float | None]] = field(default_factory=dict)
    _stalled: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._turns = Turns(self.helpers.helpers if self.helpers is not None else 0)
        if self.check_every is not None:
            self.ledger.check_max_age = self.check_every * CHECKS_TRUSTED

    @property
    def ledger(self) -> Ledger:
        return self.state.ledger

    def start(self, partitions: list[int]) -> None:
        """Catch `partitions` up (kept ones first: their check is one request), and start
        the periodic check against the broker if it is not running."""
        for partition in partitions:
            self.tasks[partition] = asyncio.ensure_future(self.catch_up(partition))
        if self.check_every is not None and self._checker is None:
            self._checker = asyncio.ensure_future(self.check_committed_forever())

    def cancel(self) -> None:
        """A revocation: stop every catch-up and repair (the next owner does them)."""
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()
        self._delivery.clear()  # watched afresh from the next assignment
        self._stalled.clear()

    def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            self._checker = None
        self.cancel()
        if self.helpers is not None:
            self.helpers.kill_all()

    def running(self, partition: int) -> asyncio.Task[None] | None:
        task = self.tasks.get(partition)
        return task if task is not None and not task.done() else None

    async def check_committed_forever(self) -> None:
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
            if offset is None or partition not in ledger.partitions or partition in self.blocked:
                continue
            if self.running(partition):
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
                self.tasks[partition] = asyncio.ensure_future(self.catch_up(partition))
        ends = await self.reader.ends(sorted(assignment))
        if ledger.assignment != assignment:
            return
        self._check_delivery(ends, asked_at)
        ledger.checked_at = asked_at

    def _check_delivery(self, ends: dict[int, int], now: float) -> None:
        """Hold a partition whose log has grown past its store with nothing delivered for
        STALLED_AFTER_S (see there); release it once its store moves again. A transaction's
        commit marker is never delivered and may land after its records were: one offset
        past the store is no stall, nor an end that did not grow."""
        ledger = self.ledger
        for partition, end in ends.items():
            if partition not in ledger.partitions or partition in self.blocked:
                continue
            applied = self.state.meta(partition).applied
            seen = self._delivery.get(partition)
            if seen is None or seen[0] != applied or self.running(partition):
                self._delivery[partition] = (applied, end, None)
                reason = self._stalled.pop(partition, None)
                if reason is not None and ledger.waiting.get(partition) == reason:
                    log.info("partition %d: delivered again (offset %d)", partition, applied)
                    ledger.release(partition)
                continue
            since = seen[2]
            if since is None:
                if end > seen[1] and end > applied + 2:  # new records, the store still
                    self._delivery[partition] = (applied, end, now)
                continue
            if now - since >= STALLED_AFTER_S and partition not in self._stalled:
                reason = (
                    f"the log holds offsets past {applied} that were not delivered for "
                    f"{now - since:.0f} s: the consumer may be stuck"
                )
                log.warning("partition %d: %s; not counted until it moves", partition, reason)
                self._stalled[partition] = reason
                ledger.hold(partition, reason)

    async def wait_caught_up(self, timeout: float | None = None) -> None:
        """Until every assigned partition is caught up or given up (for tools and tests)."""
        tasks = [t for t in self.tasks.values() if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def catch_up(self, partition: int) -> None:
        """Catch up until it works: a broker that does not answer now may answer later, and
        the partition stays not counted (with the reason) meanwhile."""
        attempt = 0
        while not await self._caught_up_in_turn(partition):
            attempt += 1
            await asyncio.sleep(min(30.0, RETRY_S * attempt))

    async def _caught_up_in_turn(self, partition: int) -> bool:
        may_help = (
            self.helpers is not None
            and partition not in self.helper_failed
            and partition not in self.ledger.partitions
            and self.state.meta(partition).applied == -1
        )
        helper = await self._turns.take(may_help)
        try:
            return await self._catch_up_once(partition, helper=helper)
        finally:
            self._turns.give_back(helper)

    async def _catch_up_once(self, partition: int, *, helper: bool = False) -> bool:
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
            if not self.applier.still_assigned(partition):
                return True  # revoked while asking the broker: the next owner catches up
            meta = state.meta(partition)
            if meta.applied == -1 and not kept:
                # Nothing applied, so nothing stored: records under such a meta are a helper's
                # store half taken in when the worker died (_take_in), and are dropped.
                state.forget(partition)
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
            async with self.applier.writer(partition):
                if (
                    helper
                    and self.helpers is not None
                    and meta.applied == -1
                    and not kept
                    and not dead_letters
                    and self.helpers.worth_it(target - first)
                ):
                    read = await self._read_in_helper(partition, first, target)
                else:
                    read = await self.applier.read_range(
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
                if not self.applier.still_assigned(partition):
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
        except LogTruncated as exc:
            # Retention deleted records while they were read (the bounds asked before the
            # read still had them): the next attempt finds the log's new beginning and gives
            # the partition up, or counts from there (MOTCUA_ACCEPT_TRUNCATED_LOG).
            log.error("partition %d: catch-up stopped: %s (deleted from the log)", partition, exc)
            self.ledger.wait(partition, "its log lost its beginning")
            return False
        except Exception as exc:  # never serve a partition whose catch-up failed
            why = f"{type(exc).__name__}: {str(exc)[:200]}"
            log.error("partition %d: catch-up failed, trying again: %s", partition, why)
            self.ledger.wait(partition, f"catch-up failed, trying again: {why}")
            return False

    async def _read_in_helper(self, partition: int, first: int, stop: int) -> int | None:
        """Offsets first..stop-1 read by a helper process into its own store, then taken
        into the worker's; None if the partition was revoked meanwhile. A helper's failure
        is the attempt's, and the next attempt reads here."""
        helpers = self.helpers
        assert helpers is not None
        log.info(
            "partition %d: offsets %d..%d read by a catch-up helper process",
            partition,
            first,
            stop - 1,
        )
        try:
            folder, read = await helpers.catch_up(partition, first, stop)
        except HelperFailed:
            self.helper_failed.add(partition)
            raise
        try:
            if not self.applier.still_assigned(partition):
                return None
            if self.state.meta(partition).applied != first - 1:
                raise HelperFailed(f"partition {partition}: the store moved while a helper read")
            taken = await self._take_in(partition, folder)
            if taken and self.state.meta(partition).applied != stop - 1:
                self.state.forget(partition)
                raise HelperFailed(f"partition {partition}: the helper's store stops short")
            return read if taken else None
        except HelperFailed:
            self.helper_failed.add(partition)
            raise
        finally:
            helpers.discard(folder)

    async def _take_in(self, partition: int, folder: Path) -> bool:
        """A helper's store written into the worker's, chunk by chunk with the event loop
        running between, and the meta last: until the meta is written the partition's meta
        says it holds nothing (applied -1), and a catch-up that finds records under such a
        meta (a crash in the middle of this) drops them first. False if revoked meanwhile;
        on any failure nothing of it stays."""
        assert self.helpers is not None
        state = self.state
        state.forget(partition)
        meta: tuple[bytes, bytes] | None = None
        own_meta = meta_key(partition)
        try:
            for chunk in self.helpers.chunks(folder, partition):
                records = []
                for record in chunk:
                    if record[0] == own_meta:
                        meta = record  # held back: written last
                    else:
                        records.append(record)
                state.take_records(partition, records)
                await asyncio.sleep(0)
                if not self.applier.still_assigned(partition):
                    state.forget(partition)
                    return False
            if meta is None:
                raise HelperFailed(f"partition {partition}: the helper's store has no meta")
            state.take_records(partition, [meta])
        except BaseException:
            with contextlib.suppress(StoreError):
                state.forget(partition)
            raise
        return True

    def _give_up(self, partition: int, first: int, earliest: int) -> None:
        reason = (
            f"the log's offsets {first}..{earliest - 1} of partition {partition} were deleted "
            "(retention) and the local store does not hold them: restore the events, or "
            "accept a fresh start (docs/operations.md)"
        )
        log.error("partition %d not counted: %s", partition, reason)
        self.ledger.wait(partition, reason)
        self.blocked.add(partition)

    def reread(self, stops: dict[int, int], why: str, release: Callable[[], None] | None) -> None:
        """A live batch that was not applied, reaching offset `stop - 1` of each partition in
        `stops`: each partition still held stops counting and reads it again from the log
        (after any task of its own), retrying until it works; then `release` runs."""
        repairs = []
        for partition, stop in stops.items():
            if not self.applier.still_assigned(partition) or partition in self.blocked:
                continue
            self.ledger.hold(partition, f"a batch was not applied ({why}): reading it again")
            previous = self.tasks.get(partition)
            task = asyncio.ensure_future(self.repair(partition, stop, previous))
            self.tasks[partition] = task
            repairs.append(task)
        if release is not None:
            self.releases.add(asyncio.ensure_future(self.release_after(repairs, stops, release)))

    async def repair(self, partition: int, stop: int, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        attempt = 0
        while self.applier.still_assigned(partition):
            try:
                first = self.state.meta(partition).applied + 1
                if await self.applier.read_range(partition, first, stop, live=True) is not None:
                    self.ledger.release(partition)
                return
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                self.stop(str(exc))
                return
            except LogTruncated as exc:
                # The batch's range, or what comes before it, was deleted from the log: a
                # catch-up finds the log's new beginning and gives the partition up (blocked,
                # with the reason), or counts from there (MOTCUA_ACCEPT_TRUNCATED_LOG); then
                # the rest of the batch is read here.
                log.error(
                    "partition %d: re-reading a batch stopped: %s (deleted from the log)",
                    partition,
                    exc,
                )
                self.ledger.wait(partition, "its log lost its beginning")
                await self.catch_up(partition)
                if partition in self.blocked:
                    return
            except Exception as exc:
                attempt += 1
                why = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.error("partition %d: re-reading a batch failed, retrying: %s", partition, why)
                self.ledger.hold(partition, f"re-reading a batch failed, trying again: {why}")
                await asyncio.sleep(min(30.0, RETRY_S * attempt))

    async def release_after(
        self, repairs: list[asyncio.Task[None]], stops: dict[int, int], release: Callable[[], None]
    ) -> None:
        if repairs:
            await asyncio.wait(repairs)
        try:
            # A partition given up (its log lost its beginning) is consumed without being
            # counted, like every message of it faust delivers meanwhile: holding the batch
            # back for it would stop the group's commits of the batch's other partitions.
            if all(
                self.applier.still_assigned(p)
                and (p in self.blocked or self.state.meta(p).applied >= stop - 1)
                for p, stop in stops.items()
            ):
                release()
        finally:
            self.releases.discard(asyncio.current_task())


class Turns:
    """Whose turn it is to catch up: one partition at a time in this process (the work is
    CPU-bound on one thread, so interleaving them only delays the first; readiness needs
    them all anyway), and up to `helpers` at once in helper processes, for partitions that
    may use one (`may_help`: a helper's turn is taken first when one is free)."""

    def __init__(self, helpers: int) -> None:
        self.helpers = helpers
        self.helping = 0
        self.here = False
        self._waiting: list[asyncio.Future[None]] = []

    async def take(self, may_help: bool) -> bool:
        """Wait for a turn: True for a helper's, False for this process's."""
        while True:
            if may_help and self.helping < self.helpers:
                self.helping += 1
                return True
            if not self.here:
                self.here = True
                return False
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(waiter)

    def give_back(self, helper: bool) -> None:
        if helper:
            self.helping -= 1
        else:
            self.here = False
        for waiter in self._waiting:
            if not waiter.done():
                waiter.set_result(None)
