"""`motcua bench`: the broker to measure against, the steps in order, the table and the
final JSON line."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.tools.bench.base import BenchError, progress
from service.tools.bench.peers import require_quixstreams
from service.tools.bench.plan import FULL, QUICK
from service.tools.bench.report import machine, rows, table, to_markdown
from service.tools.bench.run import Run
from service.tools.bench.steps import STEPS, Step
from service.tools.bench.topics import delete_topics


@contextlib.contextmanager
def broker_for_bench(work_dir: Path) -> Iterator[tuple[str, str]]:
    """(bootstrap, description): MOTCUA_BROKER if set and answering, else a local broker."""
    from service.tools import broker

    named = os.environ.get("MOTCUA_BROKER")
    if named:
        bootstrap = named.split("://", 1)[-1].replace(";", ",")
        if not broker.reachable(bootstrap):
            raise BenchError(f"MOTCUA_BROKER={named} does not answer")
        yield bootstrap, f"MOTCUA_BROKER ({bootstrap})"
        return
    progress("starting a local Kafka broker")
    local = broker.LocalBroker(broker.free_port(), work_dir / "kafka")
    local.start()
    try:
        yield local.bootstrap, f"local Apache Kafka {local.version} (single node, KRaft)"
    finally:
        local.stop()


@contextlib.contextmanager
def stopping_on_sigterm(stopped: threading.Event) -> Iterator[None]:
    """SIGTERM (a CI job's timeout, `timeout`, `kill`) unwinds the bench as Ctrl-C does, so
    its workers and broker, in sessions of their own, are stopped instead of left running;
    `stopped` is set, so the exit says so whatever the unwinding ran into."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread (an in-process caller's business)
        return

    def interrupted(signum: int, frame: object) -> None:
        stopped.set()
        raise KeyboardInterrupt  # raised where the bench was: it unwinds as Ctrl-C does

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_bench(
    quick: bool,
    markdown: Path | None,
    steps: Sequence[Step] = STEPS,
    peers: bool = False,
    only: Sequence[str] | None = None,
) -> int:
    """`motcua bench [--quick] [--markdown FILE] [--peers] [--only STEPS]`: the table, then
    one line of JSON."""
    plan = dataclasses.replace(QUICK if quick else FULL, peers=peers)
    if only:
        steps = [step for step in steps if step.name in only]
    if peers:
        # Before any broker or worker starts: a missing optional package is one line.
        try:
            require_quixstreams()
        except BenchError as exc:
            print(exc, file=sys.stderr)
            return 1
    started = time.monotonic()
    work_dir = Path(tempfile.mkdtemp(prefix="motcua-bench-"))
    results: dict[str, Any] = {"mode": plan.mode}
    code = 0
    stopped = threading.Event()
    try:
        with stopping_on_sigterm(stopped), broker_for_bench(work_dir) as (bootstrap, description):
            run = Run(plan, bootstrap, work_dir, results=results)
            results["broker"] = description
            try:
                for step in steps:
                    if step.runs_in(plan):
                        step.measure(run)
            finally:
                run.stop_workers()
                crashes = [tail for worker in run.workers for tail in worker.crashes]
                results["worker_crashes"] = len(crashes)
                if crashes:
                    results["worker_crash_logs"] = crashes
                if os.environ.get("MOTCUA_BROKER"):
                    delete_topics(bootstrap, run.stamp)
    except BaseException as exc:
        from service.tools.broker import BrokerError

        if stopped.is_set():
            # Stopped by SIGTERM: the workers and broker were stopped on the way out; what
            # the unwinding ran into (a part already gone) is said, the exit is Ctrl-C's.
            if not isinstance(exc, KeyboardInterrupt):
                progress(f"motcua bench: while stopping: {type(exc).__name__}: {exc}")
            raise KeyboardInterrupt from None
        if not isinstance(exc, BenchError | BrokerError):
            raise
        results["error"] = str(exc)
        code = 1
    finally:
        if not os.environ.get("MOTCUA_BENCH_KEEP"):
            shutil.rmtree(work_dir, ignore_errors=True)
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    host = machine()
    results["machine"] = host
    if code == 0:
        lines = rows(results, [step.rows for step in steps])
        print(table(lines))
        if markdown is not None:
            markdown.write_text(to_markdown(results, host, lines), encoding="utf-8")
            progress(f"markdown written to {markdown}")
    else:
        progress(f"motcua bench: {results['error']}")
    print(json.dumps(results, separators=(",", ":")))
    return code
