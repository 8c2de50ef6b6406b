"""The domain path per event in a plain loop, in memory: no Kafka, no faust, no I/O.

Parse, validate, merge into the dossier, derive its contribution, update the ledger: what
the worker does for every message once it has the bytes. Two paths run side by side on the
same messages, each with fresh state:
- `before`: `intake.parse`, `intake.merge` on the stored record (decode, replay of all its
  events, encode) and `Ledger.accept`, as `WorkerState.apply` does today;
- `after`: the same parse, then `DossierProgress` (service/domain/progress.py): unpacked
  from the store, advanced by the event, packed back once per batch of BATCH events (the
  worker's write batch), and `Ledger.accept` with its cached dossier and facts.
CPU time is `time.process_time`; the messages are built before the clock starts.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas import InvalidEvent
from service.domain import DEFAULT_CALENDAR, WorkingCalendar, contribution
from service.domain.progress import DossierProgress, Step
from service.state.intake import merge, parse
from service.state.ledger import Ledger
from service.state.records import encode
from service.state.store import PartitionMeta
from service.tools.simulate import SimulationConfig, generate

PARTITIONS = 8
BATCH = 1000  # events per store write, as the worker's batches
SOURCE = "direct"

# (key, value, timestamp in epoch seconds) as a consumer hands them over; a bare value is
# read as (None, value, None): no key check, the clock at the start as its timestamp.
Message = tuple[bytes | None, bytes, float | None]
Path = Callable[[Sequence[Message], int, int, WorkingCalendar], dict[str, Any]]


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


def _metas(ledger: Ledger, partitions: int) -> list[PartitionMeta]:
    return [ledger.partitions[p].meta for p in range(partitions)]


def run_before(
    messages: Sequence[Message], partitions: int, batch: int, calendar: WorkingCalendar
) -> dict[str, Any]:
    """Today's path: a stored record per dossier, merged and replayed for every event."""
    ledger = Ledger.counting(calendar, range(partitions))
    metas = _metas(ledger, partitions)
    store: dict[tuple[int, bytes], bytes] = {}
    started = time.process_time()
    for first in range(0, len(messages), batch):
        wall = datetime.now(UTC)
        pending: dict[tuple[int, bytes], bytes] = {}
        for key, value, stamp in messages[first : first + batch]:
            partition = _partition(key, value) % partitions
            meta = metas[partition]
            try:
                event = parse(value, key, datetime.fromtimestamp(stamp, UTC))  # type: ignore[arg-type]
                where = (partition, event.dossier_id.encode())
                stored = pending.get(where)
                if stored is None:
                    stored = store.get(where)
                merged = merge(event, stored, partition, calendar)
            except InvalidEvent as exc:
                meta.rejected[exc.reason.value] += 1
                continue
            pending[where] = encode(merged.record)
            if merged.duplicate:
                meta.duplicates[SOURCE] += 1
                continue
            meta.events[event.type.value] += 1
            ledger.accept(partition, merged.dossier, wall, merged.facts)
        store.update(pending)
    cpu = time.process_time() - started
    return _figures(len(messages), cpu, ledger, [len(v) for v in store.values()])


def run_after(
    messages: Sequence[Message],
    partitions: int,
    batch: int,
    calendar: WorkingCalendar,
    with_ledger: bool = True,
) -> dict[str, Any]:
    """The resumable replay: unpack, advance, pack once per batch. Without the ledger, the
    contribution is still derived (what is left is `Ledger.accept`'s own bookkeeping)."""
    ledger = Ledger.counting(calendar, range(partitions))
    metas = _metas(ledger, partitions)
    stores: list[dict[str, bytes]] = [{} for _ in range(partitions)]
    started = time.process_time()
    for first in range(0, len(messages), batch):
        wall = datetime.now(UTC)
        live: dict[tuple[int, str], DossierProgress] = {}
        for key, value, stamp in messages[first : first + batch]:
            partition = _partition(key, value) % partitions
            meta = metas[partition]
            try:
                event = parse(value, key, datetime.fromtimestamp(stamp, UTC))  # type: ignore[arg-type]
                dossier_id = event.dossier_id
                progress = live.get((partition, dossier_id))
                if progress is None:
                    raw = stores[partition].get(dossier_id)
                    progress = (
                        DossierProgress.unpack(dossier_id, raw)
                        if raw is not None
                        else DossierProgress.start(dossier_id)
                    )
                    live[(partition, dossier_id)] = progress
                step = progress.advance(event, calendar)
            except InvalidEvent as exc:
                meta.rejected[exc.reason.value] += 1
                continue
            if step is Step.DUPLICATE:
                meta.duplicates[SOURCE] += 1
                continue
            meta.events[event.type.value] += 1
            if with_ledger:
                ledger.accept(partition, progress.dossier, wall, progress.facts)
            else:
                contribution(progress.dossier, wall, calendar)
                progress.facts  # noqa: B018 (the report facts the ledger would keep)
        for (partition, dossier_id), progress in live.items():
            stores[partition][dossier_id] = progress.pack()
    cpu = time.process_time() - started
    sizes = [len(raw) for store in stores for raw in store.values()]
    out = _figures(len(messages), cpu, ledger, sizes)
    if with_ledger:
        out["restart_cpu_us_per_dossier"] = _restart_cost(stores, calendar)
    return out


def run_after_without_ledger(
    messages: Sequence[Message], partitions: int, batch: int, calendar: WorkingCalendar
) -> dict[str, Any]:
    """`run_after` up to the contribution, without `Ledger.accept`."""
    return run_after(messages, partitions, batch, calendar, with_ledger=False)


def run_parse(
    messages: Sequence[Message], partitions: int, batch: int, calendar: WorkingCalendar
) -> dict[str, Any]:
    """Parsing and validating alone (the part both paths share)."""
    started = time.process_time()
    for key, value, stamp in messages:
        with contextlib.suppress(InvalidEvent):
            parse(value, key, datetime.fromtimestamp(stamp, UTC))  # type: ignore[arg-type]
    cpu = time.process_time() - started
    return {"cpu_us_per_event": round(1e6 * cpu / max(len(messages), 1), 2)}


def _restart_cost(stores: list[dict[str, bytes]], calendar: WorkingCalendar) -> float:
    """CPU µs per stored dossier to unpack it and give its dossier, facts and contribution,
    as a worker rebuilding its sums after a restart does."""
    now = datetime.now(UTC)
    count = 0
    started = time.process_time()
    for store in stores:
        for dossier_id, raw in store.items():
            progress = DossierProgress.unpack(dossier_id, raw)
            contribution(progress.dossier, now, calendar)
            progress.facts  # noqa: B018 (computed for the report facts)
            count += 1
    return round(1e6 * (time.process_time() - started) / max(count, 1), 2)


def _figures(events: int, cpu: float, ledger: Ledger, sizes: list[int]) -> dict[str, Any]:
    return {
        "events": events,
        "cpu_seconds": round(cpu, 3),
        "events_per_s": round(events / cpu) if cpu else None,
        "cpu_us_per_event": round(1e6 * cpu / events, 2) if events else None,
        "dossiers": len(sizes),
        "stored_bytes_per_dossier": round(sum(sizes) / len(sizes), 1) if sizes else None,
        "totals": sum(ledger.totals().values()),
    }


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
        progress.advance(event, calendar)
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


PATHS: dict[str, Path] = {
    "before": run_before,
    "after": run_after,
    "after_without_ledger": run_after_without_ledger,
    "parse": run_parse,
}


def measure_domain(
    messages: Iterable[bytes | Message],
    *,
    partitions: int = PARTITIONS,
    batch: int = BATCH,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
    paths: Sequence[str] = ("before", "after", "after_without_ledger", "parse"),
    memory: bool = False,
) -> dict[str, Any]:
    """Run the domain path over `messages` in memory, once per path in `paths`, each with
    fresh state; CPU µs per event and events/s for each (see the module doc)."""
    prepared = _normalised(messages)
    out: dict[str, Any] = {"events": len(prepared), "partitions": partitions, "batch": batch}
    for name in paths:
        gc.collect()
        out[name] = PATHS[name](prepared, partitions, batch, calendar)
    if memory:
        out["memory"] = progress_memory(prepared, calendar)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.tools.bench.domain_path",
        description="The domain path per event, in memory (before/after DossierProgress).",
    )
    parser.add_argument("--events", type=int, default=240_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--memory", action="store_true", help="also bytes per open dossier")
    args = parser.parse_args(argv)
    if args.events < 1:
        print("domain_path: --events must be at least 1", file=sys.stderr)
        return 2
    print(f"simulating {args.events:,} events (seed {args.seed}) …", file=sys.stderr)
    messages = simulated_messages(args.events, args.seed)
    result = measure_domain(messages, memory=args.memory)
    for name in ("before", "after", "after_without_ledger"):
        if name in result:
            part = result[name]
            print(
                f"{name:>20}: {part['events_per_s']:>9,} events/s  "
                f"{part['cpu_us_per_event']:>7.2f} CPU µs/event  "
                f"{part['stored_bytes_per_dossier']} B stored per dossier",
                file=sys.stderr,
            )
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
