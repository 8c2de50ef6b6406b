"""(7) History: a worker's restart and memory with 20,000 open dossiers and more and more
closed ones behind them. Cost must follow open work, not history.

For each size, a local store is written by the production path (`WorkerState.apply` and
`commit`, as a catch-up from the log writes it) with the open dossiers and N closed ones
(received, appraised, returned: 3 events each, spread over two years), then a fresh process
restarts on it as a worker does: it opens the store and rebuilds every partition's sums
(`WorkerState.rebuild`), and reports the seconds to ready and its resident memory. Kafka is
not involved: a restart reads the store, not the log, once the store holds the log's prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from service.domain import DEFAULT_CALENDAR
from service.state.ledger import Ledger
from service.state.log_reader import Incoming
from service.state.store import DossierStore
from service.state.worker_state import WorkerState
from service.tools.bench.base import progress
from service.tools.bench.report import Row, fmt
from service.tools.bench.run import Run

PARTITIONS = 8
OPEN = 20_000
TOPIC = "bench-history"
AGENCIES = tuple(f"S{n:02d}" for n in range(20))
PROCEDURES = tuple(f"1.{n:06d}" for n in range(60))
CHANNELS = ("direct", "online", "postal")
TRANSACTION = 20_000


def _events(open_count: int, closed_count: int, now: datetime) -> Iterator[dict[str, Any]]:
    """Closed dossiers over the two years before the open ones, then the open ones."""
    rng = random.Random(7)
    span = timedelta(days=730).total_seconds()
    first = now - timedelta(days=760)
    for n in range(closed_count):
        received = first + timedelta(seconds=span * n / max(closed_count, 1))
        dossier = f"C{n:08d}"
        yield _received(dossier, received, rng)
        yield _step(dossier, "appraised", received + timedelta(days=1))
        yield _step(dossier, "returned", received + timedelta(days=rng.choice((2, 3, 4, 9))))
    for n in range(open_count):
        received = now - timedelta(days=14) + timedelta(seconds=13 * 86400 * n / open_count)
        yield _received(f"O{n:08d}", received, rng)


def _received(dossier: str, at: datetime, rng: random.Random) -> dict[str, Any]:
    return {
        "event_id": f"{dossier}-r",
        "dossier_id": dossier,
        "type": "received",
        "occurred_at": at.isoformat(),
        "agency": rng.choice(AGENCIES),
        "procedure": rng.choice(PROCEDURES),
        "channel": rng.choice(CHANNELS),
        "processing_days": rng.choice((3, 5, 7, 10, 15)),
    }


def _step(dossier: str, kind: str, at: datetime) -> dict[str, Any]:
    return {"event_id": f"{dossier}-{kind}", "dossier_id": dossier, "type": kind,
            "occurred_at": at.isoformat()}  # fmt: skip


def build_store(path: Path, closed_count: int, open_count: int = OPEN) -> dict[str, Any]:
    """A worker's store holding `open_count` open and `closed_count` closed dossiers, written
    as a catch-up writes it: one transaction per TRANSACTION events."""
    if path.exists():
        shutil.rmtree(path)
    state = WorkerState(DossierStore(path, TOPIC), Ledger(DEFAULT_CALENDAR), DEFAULT_CALENDAR)
    offsets = [0] * PARTITIONS
    stamp = time.time()
    pending: list[Incoming] = []
    batch = None
    events = 0
    for event in _events(open_count, closed_count, datetime.now(UTC)):
        key = event["dossier_id"].encode()
        partition = zlib.crc32(key) % PARTITIONS
        pending.append(
            Incoming(partition, offsets[partition], key, orjson.dumps(event), stamp, None)
        )
        offsets[partition] += 1
        events += 1
        if len(pending) == 2000:
            batch = state.apply(pending, live=False, into=batch)
            pending = []
            if batch.applied >= TRANSACTION:
                state.commit(batch)
                batch = None
    if pending or batch is not None:
        state.commit(state.apply(pending, live=False, into=batch))
    state.store.close()
    return {"events": events, "store_mib": round(_size(path) / 2**20, 1)}


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _restart(path: Path) -> dict[str, Any]:
    """What a worker does at a restart, and what it costs: open, rebuild every partition."""
    started = time.perf_counter()
    cpu = time.process_time()
    ledger = Ledger(DEFAULT_CALENDAR)
    ledger.assign(range(PARTITIONS))
    state = WorkerState(DossierStore(path, TOPIC), ledger, DEFAULT_CALENDAR)
    for partition in range(PARTITIONS):
        ledger.install(partition, await state.rebuild(partition))
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    assert ledger.ready
    gc.collect()
    return {
        "restart_s": round(seconds, 3),
        "restart_cpu_s": round(cpu, 3),
        "rss_mib": round(_rss_kib() / 1024, 1),
        "open": sum(len(p.open) for p in ledger.partitions.values()),
        "counted": sum(ledger.totals().values()),
    }


# Not `-m service.tools.bench.history`: the bench package imports this module first.
_RESTART = "import sys; from service.tools.bench.history import main; sys.exit(main(sys.argv[1:]))"


def restart_in_a_fresh_process(path: Path) -> dict[str, Any]:
    """`_restart` in a new interpreter, so its memory is the restarted worker's alone."""
    done = subprocess.run(
        [sys.executable, "-c", _RESTART, "--restart", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_history(sizes: tuple[int, ...], work_dir: Path) -> dict[str, Any]:
    """Per closed size: store size, restart seconds, RSS after restart."""
    restart_s, rss, store, cpu = [], [], [], []
    for closed in sizes:
        path = work_dir / f"history-{closed}"
        progress(f"history: writing a store with {OPEN:,} open and {closed:,} closed dossiers")
        built = build_store(path, closed)
        progress(f"history: restarting on it ({built['store_mib']} MiB)")
        again = restart_in_a_fresh_process(path)
        assert again["open"] == OPEN, again
        restart_s.append(again["restart_s"])
        cpu.append(again["restart_cpu_s"])
        rss.append(again["rss_mib"])
        store.append(built["store_mib"])
        shutil.rmtree(path, ignore_errors=True)
    out: dict[str, Any] = {
        "history_closed": list(sizes),
        "history_restart_s": restart_s,
        "history_restart_cpu_s": cpu,
        "history_rss_mib": rss,
        "history_store_mib": store,
    }
    if len(sizes) > 1 and sizes[-1] > sizes[0]:
        closed = sizes[-1] - sizes[0]
        out["history_bytes_per_closed"] = round((rss[-1] - rss[0]) * 2**20 / closed, 1)
        out["history_store_bytes_per_closed"] = round((store[-1] - store[0]) * 2**20 / closed, 1)
        out["history_restart_ratio"] = (
            round(restart_s[-1] / restart_s[0], 2) if restart_s[0] else None
        )
    return out


def measure(run: Run) -> None:
    run.results.update(measure_history(run.plan.history_closed, run.work_dir))


def rows(r: dict[str, Any]) -> list[Row]:
    if "history_restart_s" not in r:
        return []
    sizes = r["history_closed"]
    out: list[Row] = [
        (
            f"restart to ready, {OPEN:,} open + {fmt(closed)} closed dossiers",
            f"{fmt(seconds, 's')}, RSS {fmt(rss)} MiB, store {fmt(store)} MiB",
            "≤ 1.3 × the restart with none" if n else "",
        )
        for n, (closed, seconds, rss, store) in enumerate(
            zip(
                sizes,
                r["history_restart_s"],
                r["history_rss_mib"],
                r["history_store_mib"],
                strict=True,
            )
        )
    ]
    if "history_bytes_per_closed" in r:
        out.append(
            (
                "RSS after restart per closed dossier",
                f"{fmt(r['history_bytes_per_closed'])} B",
                "≤ 64 B",
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.tools.bench.history")
    parser.add_argument("--restart", type=Path, help="restart on this store and report (JSON)")
    parser.add_argument("--closed", type=int, nargs="*", default=[0, 200_000])
    parser.add_argument("--work-dir", type=Path, default=Path("var/bench-history"))
    args = parser.parse_args(argv)
    if args.restart is not None:
        print(json.dumps(asyncio.run(_restart(args.restart))))
        return 0
    args.work_dir.mkdir(parents=True, exist_ok=True)
    print(json.dumps(measure_history(tuple(args.closed), args.work_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
