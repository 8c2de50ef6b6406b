"""Catch-up helpers: another process reads a partition's history into a store of its own.

A worker that takes over partitions with an empty store (a new machine, a lost disk) reads
their whole history before they count, and that work keeps one core busy. A helper process
does the same for one partition at a time on another core, with the same code: a
`LogApplier` over a `WorkerState`, in a fresh RocksDB under the worker's data directory,
with no side effect (history's dead letters and status messages were sent when first read).
The worker then writes the helper's records into its own store, chunk by chunk with the
partition's meta last (recovery.py `_take_in`: until the meta is written the partition holds
nothing, and a catch-up drops records found under an empty meta), rebuilds the sums from them
as after its own catch-up, and deletes the helper's store. So the worker's store stays the
fold of a prefix of the log.

The worker holds the partition's writer throughout, and the partition is not counted until
its sums are installed. A helper that fails, is killed, or hands back a store that does not
reach the offset asked for changes nothing: the attempt fails and the worker reads the
partition itself. A helper exits when the worker goes (its stdin closes), and a worker
clears what helpers left behind when it starts.

The job goes to the helper on its stdin (a length, then a pickle: the credentials never
appear on a command line); the result comes back as one JSON line on its stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import itertools
import logging
import os
import pickle
import shutil
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from service.domain import WorkingCalendar
from service.kafka_security import KafkaSecurity
from service.state.ledger import Ledger
from service.state.log_applier import LogApplier
from service.state.log_reader import LogReader
from service.state.recent import RecentDossiers
from service.state.store import DossierStore, StoreError
from service.state.worker_state import WorkerState, tune_collector

log = logging.getLogger(__name__)

# The helpers' stores, under the worker's data directory (beside the worker's own store, on
# the same disk: a full disk fails a helper, never the worker's store).
FOLDER = "catch-up"
# Records of a helper's store written to the worker's at a time (the event loop runs between).
TAKE_CHUNK = 20_000


@dataclass(frozen=True)
class HelperJob:
    """What a helper reads, and where it writes."""

    bootstrap: str
    topic: str
    security: KafkaSecurity
    calendar: WorkingCalendar
    recent_dossiers: int
    partition: int
    first: int  # the first offset to read
    stop: int  # read up to, not including, this offset
    folder: Path


class HelperFailed(RuntimeError):
    """A helper that did not hand back a whole catch-up: nothing of it is taken."""


@dataclass
class CatchUpHelpers:
    """Starts helper processes and collects their stores (the worker's side)."""

    bootstrap: str
    topic: str
    security: KafkaSecurity
    calendar: WorkingCalendar
    data_dir: Path
    helpers: int = 1
    # A helper only for ranges at least this long (a process start is not free).
    min_events: int = 50_000
    recent_dossiers: int = 20_000
    running: set[asyncio.subprocess.Process] = field(default_factory=set)

    @property
    def root(self) -> Path:
        return self.data_dir / FOLDER

    def clear(self) -> None:
        """Remove what helpers of an earlier run left (a worker killed while they ran)."""
        if self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)

    def worth_it(self, events: int) -> bool:
        return self.helpers > 0 and events >= self.min_events

    async def catch_up(self, partition: int, first: int, stop: int) -> tuple[Path, int]:
        """Run a helper over offsets first..stop-1 of `partition`: the folder of its store,
        which reaches offset stop - 1, and the number of records it read. The caller takes
        the store in and removes it (`discard`).
        Raises HelperFailed; cancelled, the helper is killed and its store removed."""
        folder = self.root / f"{partition}-{uuid.uuid4().hex[:12]}"
        job = HelperJob(
            self.bootstrap,
            self.topic,
            self.security,
            self.calendar,
            self.recent_dossiers,
            partition,
            first,
            stop,
            folder,
        )
        payload = pickle.dumps(job)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                __name__,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        except OSError as exc:  # no process to be had (limits, memory)
            raise HelperFailed(f"no helper process: {exc}") from None
        self.running.add(process)
        whole = False
        try:
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(len(payload).to_bytes(8, "big") + payload)
                await process.stdin.drain()
                # The helper's stdin stays open: it exits if the worker goes.
                out = await process.stdout.read()
            except OSError as exc:  # it died before reading its job, or its pipe broke
                raise HelperFailed(f"the helper's pipe failed: {exc}") from None
            code = await process.wait()
            if code != 0:
                raise HelperFailed(f"the helper exited with status {code}")
            try:
                result = orjson.loads(out.strip().splitlines()[-1])
            except (IndexError, orjson.JSONDecodeError):
                raise HelperFailed(f"the helper's answer cannot be read: {out[-200:]!r}") from None
            if result.get("applied") != stop - 1:
                raise HelperFailed(
                    f"the helper reached offset {result.get('applied')}, not {stop - 1}"
                )
            whole = True
            return folder, int(result.get("read", 0))
        finally:
            self.running.discard(process)
            if process.returncode is None:  # cancelled, or its answer failed: killed first
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                with contextlib.suppress(Exception):
                    await asyncio.shield(process.wait())
            if process.stdin is not None:
                process.stdin.close()
            if not whole:
                self.discard(folder)

    @staticmethod
    def discard(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def kill_all(self) -> None:
        """The worker stops: its helpers go with it."""
        for process in list(self.running):
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()

    def chunks(self, folder: Path, partition: int) -> Iterator[list[tuple[bytes, bytes]]]:
        """The records of `partition` in a helper's store, whole keys, in chunks of
        TAKE_CHUNK; HelperFailed if the store cannot be opened or read whole."""
        try:
            store = DossierStore(folder, self.topic)
        except StoreError as exc:
            raise HelperFailed(f"the helper's store cannot be opened: {exc}") from None
        try:
            records = store.partition_records(partition)
            while True:
                try:
                    chunk = list(itertools.islice(records, TAKE_CHUNK))
                except StoreError as exc:
                    raise HelperFailed(f"the helper's store cannot be read whole: {exc}") from None
                if not chunk:
                    return
                yield chunk
        finally:
            store.close()


# The helper's side: a process of its own, started by `CatchUpHelpers.catch_up`.


async def _refuse(_transaction: Any) -> None:
    # History's side effects were done when first read; a catch-up of history makes none.
    raise RuntimeError("a catch-up helper sends nothing")


async def read_into_store(job: HelperJob, reader: LogReader) -> dict[str, int]:
    """The helper's work: the job's range read from `reader` into a fresh store, by the
    worker's own transactions; the number read and the offset its store reaches."""
    store = DossierStore(job.folder, job.topic)
    try:
        state = WorkerState(
            store, Ledger(job.calendar), job.calendar, RecentDossiers(job.recent_dossiers)
        )
        if state.meta(job.partition).applied != -1:
            raise HelperFailed(f"the helper's store {job.folder} is not empty")
        applier = LogApplier(state, reader, _refuse, _refuse, lambda _partition: True)
        read = await applier.read_range(
            job.partition, job.first, job.stop, live=False, dead_letters=False
        )
        applied = state.meta(job.partition).applied
        log.info("partition %d: read %d records, up to offset %d", job.partition, read, applied)
        return {"read": read or 0, "applied": applied}
    finally:
        store.close()


async def _read(job: HelperJob) -> dict[str, int]:
    reader = LogReader(job.bootstrap, job.topic, None, **job.security.aiokafka_kwargs())
    try:
        return await read_into_store(job, reader)
    finally:
        # A consumer with no group has nothing to leave: its stop is not waited for long.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.stop(), 5.0)


def _exit_when_the_worker_goes() -> None:
    # The worker keeps the helper's stdin open; it closes when the worker exits, however.
    sys.stdin.buffer.read()
    os._exit(3)


def main() -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s catch-up helper %(process)d %(levelname)s %(message)s",
    )
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: where it is, on stderr
    size = int.from_bytes(sys.stdin.buffer.read(8), "big")
    job: HelperJob = pickle.loads(sys.stdin.buffer.read(size))
    threading.Thread(target=_exit_when_the_worker_goes, daemon=True).start()
    tune_collector()
    try:
        # Not asyncio.run: its shutdown waits for every task the Kafka client left, and
        # the process ends right after this anyway (os._exit below).
        result = asyncio.new_event_loop().run_until_complete(_read(job))
    except Exception as exc:
        log.error("partition %d: catch-up failed: %s: %s", job.partition, type(exc).__name__, exc)
        return 1
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Not through the interpreter's shutdown: the thread blocked on stdin would hold it up.
    os._exit(code)
