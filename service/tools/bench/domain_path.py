"""The domain path per event, in one process: no Kafka, no faust, no network.

What the worker does for every message once it has the bytes, timed on the code that runs
in production: `WorkerState.apply` then `WorkerState.commit` (parse, validate, advance the
dossier, the write buffer, the atomic RocksDB write, the sums) over a temporary store, one
transaction per BATCH messages as the agent's batches. Beside it, `parse` alone (the part
every path shares). The variants are warmed on a slice first, then run alternately, each
with fresh state, and the median of the rounds is reported: on a shared, noisy machine a
single run of one then the other measures the machine as much as the code.
CPU time is `time.process_time`; the messages are built before the clock starts.

`--instructions` counts instead of timing: the CPU instructions of `apply` per event, by
valgrind's cachegrind, as the difference of two runs under it (the messages built and the
path warmed, then the same plus one full `apply`), with a fixed hash seed, a fixed
simulated history (ending at COUNT_AT unless --at) and the transactions' clock pinned a
second after its end. The count of the same code and input is the same on a loaded machine
and on any day, so two commits can be compared on a shared one where the µs of one run
swing by a fifth.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from schemas import InvalidEvent
from service.domain import DEFAULT_CALENDAR, WorkingCalendar
from service.domain.progress import DossierProgress
from service.state import transaction as transaction_module
from service.state.intake import parse
from service.state.ledger import Ledger
from service.state.log_applier import LIVE_BATCH_EVENTS
from service.state.log_reader import Incoming
from service.state.store import DossierStore
from service.state.worker_state import WorkerState, tune_collector
from service.tools.simulate import SimulationConfig, generate

PARTITIONS = 8
BATCH = LIVE_BATCH_EVENTS  # events per transaction, as the agent's batches
WARM_EVENTS = 5_000
# The simulation's end for instruction counts: fixed, so that counts of different days
# compare (a Wednesday, 15:00 local: dossiers running, due soon and overdue).
COUNT_AT = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)

# (key, value, timestamp in epoch seconds) as a consumer hands them over; a bare value is
# read as (None, value, None): no key check, the clock at the start as its timestamp.
Message = tuple[bytes | None, bytes, float | None]
Variant = Callable[[Sequence[Message], int, int, WorkingCalendar], dict[str, Any]]


def simulated_messages(events: int, seed: int = 11, now: datetime | None = None) -> list[Message]:
    """The first `events` messages of a simulated center's history (2% re-sent), stamped
    as a producer sending 100,000 a second would (millisecond timestamps)."""
    config = SimulationConfig(
        dossiers=max(events // 2, 1), seed=seed, now=now, duplicate_ratio=0.02
    )
    assert config.now is not None
    start = config.now.timestamp()
    out: list[Message] = []
    for i, event in enumerate(itertools.islice(generate(config), events)):
        stamp = round(start + i / 100_000, 3)
        out.append((event["dossier_id"].encode(), orjson.dumps(event), stamp))
    return out


def _normalised(messages: Iterable[bytes | Message]) -> list[Message]:
    clock = time.time()
    out: list[Message] = []
    for message in messages:
        if isinstance(message, bytes | bytearray):
            out.append((None, bytes(message), clock))
        else:
            key, value, stamp = message
            out.append((key, value, clock if stamp is None else stamp))
    return out


def _partition(key: bytes | None, value: bytes) -> int:
    # Any stable spread of dossiers over partitions will do for sums per partition.
    return zlib.crc32(key if key is not None else value) % PARTITIONS


def _incoming(messages: Sequence[Message], partitions: int) -> list[Incoming]:
    """Messages as the consumer hands them to the state layer: spread over partitions by
    key (as Kafka's partitioner would, stably), offsets in order within each."""
    offsets = [0] * partitions
    out: list[Incoming] = []
    for key, value, stamp in messages:
        partition = _partition(key, value) % partitions
        out.append(Incoming(partition, offsets[partition], key, value, stamp or 0.0, None))
        offsets[partition] += 1
    return out


def run_apply(
    messages: Sequence[Message], partitions: int, batch: int, calendar: WorkingCalendar
) -> dict[str, Any]:
    """`WorkerState.apply` + `commit`, live, over a fresh temporary RocksDB store."""
    incoming = _incoming(messages, partitions)
    folder = Path(tempfile.mkdtemp(prefix="motcua-bench-domain-"))
    try:
        ledger = Ledger.counting(calendar, range(partitions))
        state = WorkerState(DossierStore(folder / "store", "bench"), ledger, calendar)
        started = time.process_time()
        for first in range(0, len(incoming), batch):
            state.commit(state.apply(incoming[first : first + batch], live=True))
        cpu = time.process_time() - started
        open_dossiers = sum(len(p.open) for p in ledger.partitions.values())
        state.store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "events": len(messages),
        "cpu_seconds": round(cpu, 3),
        "events_per_s": round(len(messages) / cpu) if cpu else None,
        "cpu_us_per_event": round(1e6 * cpu / len(messages), 2) if messages else None,
        "open_dossiers": open_dossiers,
        "totals": sum(ledger.totals().values()),
    }


def run_parse(
    messages: Sequence[Message], partitions: int, batch: int, calendar: WorkingCalendar
) -> dict[str, Any]:
    """Parsing and validating alone (the part every path shares)."""
    started = time.process_time()
    for key, value, stamp in messages:
        with contextlib.suppress(InvalidEvent):
            parse(value, key, datetime.fromtimestamp(stamp, UTC))  # type: ignore[arg-type]
    cpu = time.process_time() - started
    return {"cpu_us_per_event": round(1e6 * cpu / max(len(messages), 1), 2)}


def progress_memory(messages: Sequence[Message], calendar: WorkingCalendar) -> dict[str, Any]:
    """Bytes per dossier held in memory as a DossierProgress (after unpack, as a cache of
    open dossiers would hold it), measured with tracemalloc over the messages' dossiers."""
    stores: dict[str, DossierProgress] = {}
    now = datetime.now(UTC)
    for key, value, stamp in messages:
        try:
            event = parse(value, key, datetime.fromtimestamp(stamp or now.timestamp(), UTC))
        except InvalidEvent:
            continue
        progress = stores.get(event.dossier_id)
        if progress is None:
            progress = stores[event.dossier_id] = DossierProgress.start(event.dossier_id)
        progress.add(event, calendar)
    packed = {dossier_id: p.pack() for dossier_id, p in stores.items() if p.dossier.is_open}
    del stores
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = [DossierProgress.unpack(dossier_id, raw) for dossier_id, raw in packed.items()]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    count = len(held)
    return {
        "open_dossiers": count,
        "packed_bytes_per_open_dossier": round(sum(map(len, packed.values())) / count, 1)
        if count
        else None,
        "memory_bytes_per_open_progress": round((after - before) / count, 1) if count else None,
    }


VARIANTS: dict[str, Variant] = {"apply": run_apply, "parse": run_parse}


def measure_domain(
    messages: Iterable[bytes | Message],
    *,
    partitions: int = PARTITIONS,
    batch: int = BATCH,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
    variants: Sequence[str] = ("apply", "parse"),
    rounds: int = 3,
    memory: bool = False,
) -> dict[str, Any]:
    """Each variant over `messages`, warmed, then `rounds` times alternately with fresh
    state; per variant the round with the median CPU µs per event (see the module doc)."""
    tune_collector()  # the collector's settings of a worker process
    prepared = _normalised(messages)
    out: dict[str, Any] = {
        "events": len(prepared),
        "partitions": partitions,
        "batch": batch,
        "rounds": rounds,
    }
    for name in variants:  # warm: imports, caches, the allocator, the calendar's years
        VARIANTS[name](prepared[:WARM_EVENTS], partitions, batch, calendar)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name in variants:
            gc.collect()
            runs[name].append(VARIANTS[name](prepared, partitions, batch, calendar))
    for name, results in runs.items():
        median = statistics.median_low(r["cpu_us_per_event"] for r in results)
        out[name] = next(r for r in results if r["cpu_us_per_event"] == median)
        out[name]["rounds_cpu_us_per_event"] = [r["cpu_us_per_event"] for r in results]
    if memory:
        out["memory"] = progress_memory(prepared, calendar)
    return out


def count_instructions(events: int, seed: int, batch: int, at: datetime) -> dict[str, Any]:
    """Instructions of `apply` per event over `events` simulated messages (see the module
    doc); raises OSError if valgrind cannot be run."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise OSError("valgrind is not installed (Debian package valgrind)")
    counts: dict[str, int] = {}
    for stage in ("setup", "apply"):
        command = [
            valgrind,
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "service.tools.bench.domain_path",
            f"--events={events}",
            f"--seed={seed}",
            f"--batch={batch}",
            f"--at={at.isoformat()}",
            f"--stage={stage}",
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
        if done.returncode != 0 or found is None:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise OSError(f"the {stage} run under valgrind failed: {tail[0]}")
        counts[stage] = int(found.group(1).replace(",", ""))
    return {
        "events": events,
        "batch": batch,
        "at": at.isoformat(),
        "instructions_per_event": round((counts["apply"] - counts["setup"]) / events),
        "instructions_setup": counts["setup"],
        "instructions_with_apply": counts["apply"],
    }


class _PinnedClock:
    """`datetime` as the transaction module reads it (`now`, `fromtimestamp`), with `now`
    fixed: a count must not depend on when it runs (which events are fresh news, which
    dossiers are overdue). `fromtimestamp` stays the real one (its results are plain
    datetimes, as the parser's fast path expects)."""

    fromtimestamp = staticmethod(datetime.fromtimestamp)

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self, tz: Any = None) -> datetime:
        return self.at.astimezone(tz)


def _run_stage(events: int, seed: int, batch: int, at: datetime, stage: str) -> None:
    """One side of `count_instructions`, run under valgrind: the messages built and the
    path warmed on a slice (as `measure_domain` warms it), then, for `apply`, one full run.
    The transactions' clock reads a second after the simulation's end, as in a live run
    (every message fresh news)."""
    setattr(transaction_module, "datetime", _PinnedClock(at + timedelta(seconds=1)))  # noqa: B010
    tune_collector()
    messages = _normalised(simulated_messages(events, seed, now=at))
    run_apply(messages[:WARM_EVENTS], PARTITIONS, batch, DEFAULT_CALENDAR)
    if stage == "apply":
        run_apply(messages, PARTITIONS, batch, DEFAULT_CALENDAR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.tools.bench.domain_path",
        description="The domain path per event: WorkerState.apply + commit, and parse alone.",
    )
    parser.add_argument(
        "--events", type=int, default=None, help="default 240,000; with --instructions 20,000"
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--batch", type=int, default=BATCH, help=f"events per transaction (default {BATCH})"
    )
    parser.add_argument("--memory", action="store_true", help="also bytes per open dossier")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count the CPU instructions of apply per event (valgrind) instead of timing",
    )
    parser.add_argument(
        "--at",
        type=datetime.fromisoformat,
        default=None,
        help=f"the simulation's 'now', ISO 8601 (default: now; --instructions: {COUNT_AT})",
    )
    parser.add_argument("--stage", choices=("setup", "apply"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.events is None:
        args.events = 20_000 if args.instructions else 240_000
    if args.events < 1 or args.rounds < 1 or args.batch < 1:
        print("domain_path: --events, --rounds and --batch must be at least 1", file=sys.stderr)
        return 2
    if args.at is not None and args.at.tzinfo is None:
        print("domain_path: --at needs a time zone (2026-12-02T08:00+00:00)", file=sys.stderr)
        return 2
    if args.stage is not None:
        _run_stage(args.events, args.seed, args.batch, args.at, args.stage)
        return 0
    if args.instructions:
        at = args.at or COUNT_AT
        print(f"counting instructions over {args.events:,} events (valgrind) …", file=sys.stderr)
        try:
            counted = count_instructions(args.events, args.seed, args.batch, at)
        except OSError as exc:
            print(f"domain_path: {exc}", file=sys.stderr)
            return 2
        print(f" apply: {counted['instructions_per_event']:,} instructions/event", file=sys.stderr)
        print(orjson.dumps(counted).decode())
        return 0
    print(f"simulating {args.events:,} events (seed {args.seed}) …", file=sys.stderr)
    messages = simulated_messages(args.events, args.seed, now=args.at)
    result = measure_domain(messages, batch=args.batch, rounds=args.rounds, memory=args.memory)
    for name in ("apply", "parse"):
        part = result[name]
        print(
            f"{name:>6}: {part['cpu_us_per_event']:>7.2f} CPU µs/event "
            f"(rounds {part['rounds_cpu_us_per_event']})",
            file=sys.stderr,
        )
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
