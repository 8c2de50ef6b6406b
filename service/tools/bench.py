"""`motcua bench`: how fast and how big the worker is, against a real Kafka broker.

Five measurements — throughput against a raw consumer, end-to-end latency, overdue detection
lag, scale and memory, a year's replay — each on real `python -m service worker` processes.
A table for people, Markdown on request, and ONE line of JSON last on stdout; progress goes
to stderr. The broker is the one MOTCUA_BROKER names, else a local one started here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from service.domain.calendar import LOCAL_TZ
from service.outputs.metrics import TIMELINESS_MAX_AGE_S
from service.tools.simulate import AGENCIES, SimulationConfig, catalog, generate

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 8
SOON_DOSSIERS = 1_000
# Agencies in the scale test: the simulator's 22 and 8 district desks (invented codes).
EXTRA_AGENCIES = tuple(f"UBND-H{n:02d}" for n in range(1, 9))
SCRAPE_INTERVAL = 0.1  # seconds between /metrics reads while timing latency and lag

Message = tuple[bytes, bytes]
# agents/recovery.py logs how long rebuilding the sums took.
REBUILT = re.compile(r"sums rebuilt for partitions \[[^\]]*\] in ([0-9.]+)s")


class BenchError(RuntimeError):
    """A measurement could not finish; str(e) is one line for the report."""


@dataclass(frozen=True)
class Plan:
    """The sizes of one run."""

    mode: str
    throughput_events: int
    latency_rate: int
    latency_seconds: int
    open_sizes: tuple[int, ...]  # open dossiers at which lag, RSS and render time are taken
    overdue_lead: float  # seconds between publishing the due-soon dossiers and their due
    replay_dossiers_per_day: int | None  # None: the throughput run stands in for the replay
    replay_dossiers: int = 0


QUICK = Plan("quick", 20_000, 500, 15, (2_000, 20_000), 4.0, None)
FULL = Plan("full", 200_000, 500, 60, (100_000, 1_000_000), 8.0, 1_000, 260_000)


# -- a worker process ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Counted:
    """How a worker got through a known number of events (monotonic seconds, CPU seconds)."""

    first: float  # counting first seen under way
    done: float  # every event accounted for
    head: int  # events already counted at `first`
    cpu_first: float
    cpu_done: float

    def rate(self, target: int) -> float:
        return (target - self.head) / (self.done - self.first)

    def cpu_us_per_event(self, target: int) -> float:
        return 1e6 * (self.cpu_done - self.cpu_first) / (target - self.head)


@dataclass
class BenchWorker:
    """One `python -m service worker` with its own consumer group, topic and data dir.

    Like a process supervisor, it starts the worker again if it dies on its own (at most
    MAX_CRASHES times) and keeps the log tail of each crash for the report.
    """

    MAX_CRASHES = 2

    bootstrap: str
    app_id: str
    topic: str
    data_dir: Path
    web_port: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    crashes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "worker.log"

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._spawn()

    def _spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            MOTCUA_BROKER=self.bootstrap,
            MOTCUA_APP_ID=self.app_id,
            MOTCUA_TOPIC=self.topic,
            MOTCUA_PARTITIONS=str(PARTITIONS),
            MOTCUA_DATA_DIR=str(self.data_dir),
            MOTCUA_WEB_PORT=str(self.web_port),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            PYTHONUNBUFFERED="1",
        )
        with self.log_path.open("ab") as log:
            # The default log level, as in production: faust's --loglevel warning turns on
            # a progress spinner that makes every library debug() call build a LogRecord.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "worker"],
                cwd=self.data_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, timeout: float = 60.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def check_alive(self) -> None:
        """Restart a worker that died by itself, or give up after MAX_CRASHES."""
        if self.process is None or self.process.poll() is None:
            return
        tail = self.log_tail()
        self.crashes.append(tail)
        if len(self.crashes) > self.MAX_CRASHES:
            raise BenchError(f"worker {self.app_id} keeps exiting; last log line: {tail}")
        progress(f"  worker exited with {self.process.returncode} ({tail}); starting it again")
        self._spawn()

    def log_tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return lines[-1][:200] if lines else "no log"

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def metrics_text(self) -> str:
        status, body = self.get("/metrics")
        return body.decode() if status == 200 else ""

    def wait_ready(self, timeout: float) -> float:
        """Seconds from process start until /readyz says the sums are rebuilt."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.get("/readyz", timeout=2)[0] == 200:
                return time.monotonic() - self.started_at
            time.sleep(0.1)
        raise BenchError(f"worker {self.app_id} not ready after {timeout:.0f} s")

    def wait_processed(self, target: int, timeout: float, every: float = 0.5) -> Counted:
        """Poll /metrics every `every` seconds until the counters account for `target`."""
        first: tuple[float, int, float] | None = None
        deadline = time.monotonic() + timeout
        count, shown = 0, 0.0
        while time.monotonic() < deadline:
            self.check_alive()
            count = processed(self.metrics_text())
            now, cpu = time.monotonic(), self.cpu_seconds()
            if count > 0 and first is None:
                first = (now, count, cpu)
            if count >= target:
                assert first is not None
                return Counted(first[0], now, first[1], first[2], cpu)
            if now >= shown + (1.0 if sys.stderr.isatty() else 15.0):
                progress(f"  {count:,}/{target:,} events counted", end="\r")
                shown = now
            time.sleep(every)
        raise BenchError(f"worker counted {count:,} of {target:,} events in {timeout:.0f} s")

    def _proc(self, name: str) -> str:
        assert self.process is not None
        try:
            return Path(f"/proc/{self.process.pid}/{name}").read_text()
        except OSError:
            raise BenchError(f"cannot read /proc/{self.process.pid}/{name} (Linux only)") from None

    def rss_mib(self) -> float:
        for line in self._proc("status").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise BenchError("no VmRSS in /proc/<pid>/status")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker process so far."""
        fields = self._proc("stat").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- reading /metrics ---------------------------------------------------------------------------


_PROCESSED = (
    "motcua_events_total",
    "motcua_events_duplicate_total",
    "motcua_events_rejected_total",
)


def sample_sum(text: str, names: Iterable[str], label: str = "") -> float:
    """Sum of the samples named `names` (and whose labels contain `label`), read line by line:
    cheap enough to scrape twenty times a second."""
    wanted = tuple(names)
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(wanted) or line.startswith("#"):
            continue
        name_end = min(i for i in (line.find("{"), line.find(" ")) if i >= 0)
        if line[:name_end] in wanted and label in line[name_end : line.rfind(" ")]:
            total += float(line.rsplit(" ", 1)[1])
    return total


def processed(text: str) -> int:
    """Events the worker has accounted for: accepted + duplicates + rejected."""
    return int(sample_sum(text, _PROCESSED))


def open_overdue(text: str) -> int:
    return int(sample_sum(text, ("motcua_dossiers_open",), 'state="overdue"'))


def open_dossiers(text: str) -> int:
    return int(sample_sum(text, ("motcua_dossiers_open",)))


# -- Kafka --------------------------------------------------------------------------------------


def create_topic(bootstrap: str, name: str, partitions: int = PARTITIONS) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="motcua-bench")
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Remove what a run left on a shared broker: its topics and changelogs."""
    from kafka.admin import KafkaAdminClient

    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="motcua-bench")
        try:
            names = [t for t in admin.list_topics() if t.startswith(prefix)]
            if names:
                admin.delete_topics(names)
        finally:
            admin.close()


async def produce(bootstrap: str, topic: str, messages: Iterable[Message]) -> int:
    """Send as fast as the broker takes them and wait for every acknowledgement."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    sent = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for key, value in messages:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                sent += len(pending)
                pending = []
        await asyncio.gather(*pending)
        sent += len(pending)
    finally:
        await producer.stop()
    return sent


async def raw_consume(bootstrap: str, topic: str, expected: int) -> tuple[float, float]:
    """The ceiling: aiokafka `getmany` from the start of every partition, JSON decode only.

    (wall seconds, CPU seconds of this process) from the first fetch until `expected`
    records are decoded.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        count = 0
        started, cpu = time.monotonic(), time.process_time()
        while count < expected and time.monotonic() < started + 300:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                count += len(records)
        if count < expected:
            raise BenchError(f"raw consumer read {count:,} of {expected:,} events")
        return time.monotonic() - started, time.process_time() - cpu
    finally:
        await consumer.stop()


# -- events -------------------------------------------------------------------------------------


def encoded(events: Iterable[dict[str, Any]]) -> Iterator[Message]:
    for event in events:
        yield event["dossier_id"].encode(), orjson.dumps(event)


def simulated(events: int, seed: int, now: datetime | None = None) -> list[Message]:
    """The first `events` events of a simulated center's history (2% re-sent)."""
    config = SimulationConfig(
        dossiers=max(events // 2, 1), seed=seed, now=now, duplicate_ratio=0.02
    )
    out = list(itertools.islice(encoded(generate(config)), events))
    if len(out) < events:
        raise BenchError(f"the simulator gave {len(out):,} events, fewer than {events:,}")
    return out


def _local(instant: datetime) -> str:
    return instant.astimezone(LOCAL_TZ).isoformat(timespec="seconds")


def open_receipts(count: int, first: int, due: datetime, tag: str) -> Iterator[Message]:
    """`received` events of `count` dossiers with an explicit due (the printed appointment),
    spread over 30 agencies and their procedures."""
    procedures: dict[str, list[str]] = {}
    for procedure in catalog():
        procedures.setdefault(procedure.agency, []).append(procedure.code)
    for n, agency in enumerate(EXTRA_AGENCIES):
        procedures[agency] = [f"2.{n:02d}{k:04d}" for k in range(40)]
    desks = [(agency, codes) for agency, codes in procedures.items()]
    received = _local(datetime.now(UTC) - timedelta(hours=1))
    due_at = _local(due)
    channels = ("direct", "online", "postal")
    for n in range(first, first + count):
        agency, codes = desks[n % len(desks)]
        dossier_id = f"{tag}-{n:08d}"
        event = {
            "schema_version": 1,
            "event_id": f"{dossier_id}-1",
            "dossier_id": dossier_id,
            "type": "received",
            "occurred_at": received,
            "agency": agency,
            "procedure": codes[(n // len(desks)) % len(codes)],
            "channel": channels[n % 7 % 3],
            "due_at": due_at,
        }
        yield dossier_id.encode(), orjson.dumps(event)


# -- the measurements ---------------------------------------------------------------------------


def progress(text: str, end: str = "\n") -> None:
    """A line on stderr; `end="\\r"` lines overwrite each other on a terminal only."""
    if end == "\r" and not sys.stderr.isatty():
        end = "\n"
    print(f"{text:<70}", end=end, file=sys.stderr, flush=True)


@dataclass
class Run:
    """One bench run: where it talks to, what it has started, what it found."""

    plan: Plan
    bootstrap: str
    work_dir: Path
    stamp: str = field(default_factory=lambda: f"bench-{os.getpid()}-{int(time.time())}")
    workers: list[BenchWorker] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    def worker(self, name: str, topic: str) -> BenchWorker:
        from service.tools.broker import free_port

        worker = BenchWorker(
            self.bootstrap,
            f"{self.stamp}-{name}",
            topic,
            self.work_dir / name,
            free_port(),
        )
        self.workers.append(worker)
        return worker

    def topic(self, name: str) -> str:
        topic = f"{self.stamp}-{name}"
        create_topic(self.bootstrap, topic)
        return topic

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()


def measure_throughput(run: Run) -> BenchWorker:
    """(1) the same pre-loaded topic read by a raw consumer and by the worker; (5) in quick mode
    the worker's run is also the replay figure."""
    n = run.plan.throughput_events
    progress(f"throughput: simulating {n:,} events")
    messages = simulated(n, seed=11)
    topic = run.topic("throughput")
    asyncio.run(produce(run.bootstrap, topic, messages))
    del messages
    progress("throughput: raw aiokafka getmany + orjson.loads (median of 3 reads)")
    reads = sorted(asyncio.run(raw_consume(run.bootstrap, topic, n)) for _ in range(3))
    raw_wall, raw_cpu = reads[1]
    progress(f"throughput: worker on the same {n:,} events")
    worker = run.worker("throughput", topic)
    worker.start()
    counted = worker.wait_processed(n, timeout=max(300.0, n / 100), every=0.5)
    worker_rate = counted.rate(n)
    raw_rate = n / raw_wall
    raw_cpu_us = 1e6 * raw_cpu / n
    worker_cpu_us = counted.cpu_us_per_event(n)
    run.results.update(
        throughput_events=n,
        raw_events_per_s=round(raw_rate),
        worker_events_per_s=round(worker_rate),
        throughput_ratio=round(worker_rate / raw_rate, 4),
        # CPU time per event, which a busy shared machine disturbs less than wall time.
        raw_cpu_us_per_event=round(raw_cpu_us, 1),
        worker_cpu_us_per_event=round(worker_cpu_us, 1),
        throughput_ratio_cpu=round(raw_cpu_us / worker_cpu_us, 4),
    )
    if run.plan.replay_dossiers_per_day is None:
        elapsed = counted.done - worker.started_at
        run.results.update(
            replay_events=n,
            replay_s=round(elapsed, 2),
            replay_events_per_s=round(n / elapsed),
            replay_source="the throughput run (simulated history, seed 11)",
        )
    return worker


def measure_latency(run: Run, worker: BenchWorker) -> None:
    """(2) publish at a steady rate; an event is reflected when /metrics has counted it."""
    plan = run.plan
    count = plan.latency_rate * plan.latency_seconds
    progress(f"latency: {plan.latency_rate} events/s for {plan.latency_seconds} s")
    messages = simulated(count, seed=12)
    latencies = asyncio.run(_paced_latency(run.bootstrap, worker, messages, plan.latency_rate))
    latencies.sort()
    run.results.update(
        latency_events=count,
        latency_rate=plan.latency_rate,
        latency_p50_s=round(latencies[len(latencies) // 2], 4),
        latency_p99_s=round(latencies[math.ceil(0.99 * len(latencies)) - 1], 4),
        latency_max_s=round(latencies[-1], 4),
        latency_resolution_s=SCRAPE_INTERVAL,
    )


async def _paced_latency(
    bootstrap: str, worker: BenchWorker, messages: list[Message], rate: int
) -> list[float]:
    """Send time of event i vs the first scrape whose processed count reaches i + 1.

    Every partition is consumed in order and events spread evenly over partitions, so the
    i-th event counted is the i-th sent up to cross-partition reordering; the read time of
    the scrape (after the response) is used, so the figure errs on the slow side.
    """
    import aiohttp
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    sent_at = [0.0] * len(messages)
    seen: list[tuple[float, int]] = []
    async with aiohttp.ClientSession() as session:

        async def count() -> int:
            async with session.get(worker.url + "/metrics") as resp:
                return processed(await resp.text())

        base = await count()

        async def publish() -> None:
            start = time.monotonic()
            for i, (key, value) in enumerate(messages):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at[i] = time.monotonic()
                await producer.send(worker.topic, value, key=key)
            await producer.flush()

        async def scrape() -> None:
            deadline = time.monotonic() + len(messages) / rate + 60
            while time.monotonic() < deadline:
                counted = await count() - base
                seen.append((time.monotonic(), counted))
                if counted >= len(messages):
                    return
                await asyncio.sleep(SCRAPE_INTERVAL)
            raise BenchError(f"latency: counted {seen[-1][1]:,} of {len(messages):,} events")

        try:
            await asyncio.gather(publish(), scrape())
        finally:
            await producer.stop()
    latencies = []
    at = 0
    for i, sent in enumerate(sent_at):
        while seen[at][1] < i + 1:
            at += 1
        latencies.append(seen[at][0] - sent)
    return latencies


def measure_scale(run: Run) -> None:
    """(3) overdue detection lag and (4) RSS and /metrics render time at each size, then the
    restart of a worker holding the largest store."""
    topic = run.topic("scale")
    worker = run.worker("scale", topic)
    worker.start()
    worker.wait_ready(timeout=120)
    rss_empty = worker.rss_mib()
    stages = []
    loaded = 0
    far = datetime.now(UTC) + timedelta(days=90)
    for size in run.plan.open_sizes:
        bulk = size - loaded - SOON_DOSSIERS
        progress(f"scale: loading {bulk:,} open dossiers (due in 90 days)")
        before = processed(worker.metrics_text())
        started = time.monotonic()
        asyncio.run(produce(run.bootstrap, topic, open_receipts(bulk, loaded, far, run.stamp)))
        counted = worker.wait_processed(before + bulk, timeout=max(300.0, bulk / 100))
        load_rate = bulk / (counted.done - started)
        loaded += bulk
        lag, first = _overdue_lag(run, worker, topic, loaded)
        loaded += SOON_DOSSIERS
        text = worker.metrics_text()
        if open_dossiers(text) != loaded:
            raise BenchError(f"scale: {open_dossiers(text):,} open dossiers, expected {loaded:,}")
        # At the largest size, read for longer than the collector caches its period report,
        # so the slow scrape that rebuilds it is among the reads.
        last = size == run.plan.open_sizes[-1]
        render = _render_ms(
            worker, int(TIMELINESS_MAX_AGE_S) + 2 if last else 5, 1.0 if last else 0.2
        )
        stage = {
            "open": loaded,
            "overdue_lag_s": round(lag, 3),
            "overdue_first_s": round(first, 3),
            "rss_mib": round(worker.rss_mib(), 1),
            "load_events_per_s": round(load_rate),
            "metrics_render_ms": render[0],
            "metrics_render_max_ms": render[1],
            "metrics_collector_max_ms": render[2],
            "metrics_bytes": len(text),
        }
        stages.append(stage)
        progress(f"scale: {stage}")
    progress(f"scale: restarting the worker with {loaded:,} dossiers in its store")
    worker.stop()
    worker.start()
    ready = worker.wait_ready(timeout=600)
    rebuilds = REBUILT.findall(worker.log_path.read_text(errors="replace"))
    counted = open_dossiers(worker.metrics_text())
    if counted != loaded:
        raise BenchError(f"restart: {counted:,} open dossiers after recovery, expected {loaded:,}")
    by_size = {s["open"]: s for s in stages}
    rss_stage = by_size.get(100_000, stages[-1])
    run.results.update(
        overdue_lag_s=max(s["overdue_lag_s"] for s in stages),
        rss_mib_empty=round(rss_empty, 1),
        rss_mib_100k=rss_stage["rss_mib"],
        rss_dossiers=rss_stage["open"],
        rss_mib_1m=by_size[1_000_000]["rss_mib"] if 1_000_000 in by_size else None,
        metrics_render_ms=stages[-1]["metrics_render_ms"],
        metrics_render_max_ms=stages[-1]["metrics_render_max_ms"],
        metrics_collector_max_ms=stages[-1]["metrics_collector_max_ms"],
        metrics_agencies=len(AGENCIES) + len(EXTRA_AGENCIES),
        restart_ready_s=round(ready, 2),
        # Of which: the ledger's sums rebuilt from the store (the worker's own log line).
        restart_rebuild_s=float(rebuilds[-1]) if rebuilds else None,
        restart_dossiers=loaded,
        rss_mib_after_restart=round(worker.rss_mib(), 1),
        scale_stages=stages,
    )
    worker.stop()


def _overdue_lag(run: Run, worker: BenchWorker, topic: str, first: int) -> tuple[float, float]:
    """Publish SOON_DOSSIERS dossiers due `overdue_lead` seconds ahead; seconds from their due
    until the overdue gauge counts all of them (and until it counts the first)."""
    base = open_overdue(worker.metrics_text())
    due = math.ceil(time.time() + run.plan.overdue_lead)
    soon = open_receipts(SOON_DOSSIERS, first, datetime.fromtimestamp(due, UTC), run.stamp)
    asyncio.run(produce(run.bootstrap, topic, soon))
    seen_first: float | None = None
    while time.time() < due + 120:
        counted = open_overdue(worker.metrics_text()) - base
        now = time.time()
        if counted > 0 and seen_first is None:
            seen_first = now - due
        if counted >= SOON_DOSSIERS:
            assert seen_first is not None
            return now - due, seen_first
        time.sleep(SCRAPE_INTERVAL)
    raise BenchError("overdue: the gauge did not count the due dossiers within 120 s")


def _render_ms(worker: BenchWorker, reads: int, every: float) -> tuple[float, float, float]:
    """Wall time of whole GETs of /metrics (motcua and faust series, HTTP included), one
    every `every` seconds: (median ms, max ms, max ms of the motcua_ collector alone)."""
    times, collector = [], []
    for _ in range(reads):
        started = time.perf_counter()
        status, body = worker.get("/metrics")
        times.append(time.perf_counter() - started)
        if status == 200:
            collector.append(sample_sum(body.decode(), ("motcua_metrics_render_seconds",)))
        time.sleep(every)
    return (
        round(statistics.median(times) * 1000, 2),
        round(max(times) * 1000, 2),
        round(max(collector, default=0.0) * 1000, 2),
    )


def measure_replay(run: Run) -> None:
    """(5) a year of a large province from an empty worker to final counters."""
    plan = run.plan
    assert plan.replay_dossiers_per_day is not None
    config = SimulationConfig(
        dossiers=plan.replay_dossiers,
        seed=2026,
        dossiers_per_day=plan.replay_dossiers_per_day,
        duplicate_ratio=0.01,
    )
    topic = run.topic("replay")
    progress(f"replay: simulating {plan.replay_dossiers:,} dossiers and publishing them")
    n = asyncio.run(produce(run.bootstrap, topic, encoded(generate(config))))
    progress(f"replay: worker on {n:,} events")
    worker = run.worker("replay", topic)
    worker.start()
    counted = worker.wait_processed(n, timeout=max(600.0, n / 100), every=1.0)
    elapsed = counted.done - worker.started_at
    run.results.update(
        replay_events=n,
        replay_s=round(elapsed, 1),
        replay_events_per_s=round(n / elapsed),
        replay_source=(
            f"{plan.replay_dossiers:,} dossiers at {plan.replay_dossiers_per_day:,} a working day"
            " (seed 2026)"
        ),
    )
    worker.stop()


# -- reporting ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0.0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) / 1024 / 1024
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor() or platform.machine(),
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:,.3f}".rstrip("0").rstrip(".") if value < 100 else f"{value:,.0f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, target) lines of the report, in the issue's order."""
    r = results
    out = [
        ("raw aiokafka getmany + JSON decode", _fmt(r["raw_events_per_s"], "events/s"), ""),
        ("worker until counters account for all", _fmt(r["worker_events_per_s"], "events/s"), ""),
        (
            "CPU per event: raw consumer / worker",
            f"{_fmt(r['raw_cpu_us_per_event'])} / {_fmt(r['worker_cpu_us_per_event'])} µs",
            f"ratio {_fmt(r['throughput_ratio_cpu'])}",
        ),
        (
            f"throughput ratio ({r['throughput_events']:,} events)",
            _fmt(r["throughput_ratio"]),
            "≥ 0.5",
        ),
        (
            f"latency p50 ({r['latency_rate']}/s, {r['latency_events']:,} events)",
            _fmt(r["latency_p50_s"], "s"),
            "",
        ),
        ("latency p99", _fmt(r["latency_p99_s"], "s"), "≤ 1 s"),
        ("latency max", _fmt(r["latency_max_s"], "s"), ""),
    ]
    for stage in r["scale_stages"]:
        n = _fmt(stage["open"])
        out += [
            (
                f"overdue lag, all {SOON_DOSSIERS:,} counted ({n} open)",
                _fmt(stage["overdue_lag_s"], "s"),
                "≤ 3 s, flat",
            ),
            (f"overdue lag, first counted ({n} open)", _fmt(stage["overdue_first_s"], "s"), ""),
            (
                f"worker RSS ({n} open)",
                _fmt(stage["rss_mib"], "MiB"),
                "≤ 1,536 MiB at 1M" if stage["open"] >= 1_000_000 else "",
            ),
            (f"bulk load of open dossiers ({n})", _fmt(stage["load_events_per_s"], "events/s"), ""),
        ]
    out += [
        ("worker RSS, empty store", _fmt(r["rss_mib_empty"], "MiB"), ""),
        (
            f"GET /metrics, {r['metrics_agencies']} agencies (median)",
            _fmt(r["metrics_render_ms"], "ms"),
            "≤ 50 ms",
        ),
        ("GET /metrics, slowest read", _fmt(r["metrics_render_max_ms"], "ms"), ""),
        ("  slowest motcua_ collector", _fmt(r["metrics_collector_max_ms"], "ms"), ""),
        (
            f"restart to ready ({r['restart_dossiers']:,} dossiers stored)",
            _fmt(r["restart_ready_s"], "s"),
            "≤ 60 s",
        ),
        ("  of which sums rebuilt from the store", _fmt(r.get("restart_rebuild_s"), "s"), ""),
        ("worker RSS after that restart", _fmt(r["rss_mib_after_restart"], "MiB"), ""),
        (
            f"replay: {r['replay_source']}",
            _fmt(r["replay_events_per_s"], "events/s"),
            f"{_fmt(r['replay_events'])} events in {_fmt(r['replay_s'], 's')}",
        ),
    ]
    if r.get("worker_crashes"):
        out.append(("worker crashes (restarted by the bench)", _fmt(r["worker_crashes"]), ""))
    return out


def table(results: dict[str, Any]) -> str:
    lines = rows(results)
    width = max(len(m) for m, _, _ in lines)
    value_width = max(len(v) for _, v, _ in lines)
    head = f"{'measure':<{width}}  {'value':>{value_width}}  target"
    body = [f"{m:<{width}}  {v:>{value_width}}  {t}".rstrip() for m, v, t in lines]
    return "\n".join([head, "-" * len(head), *body])


def to_markdown(results: dict[str, Any], host: dict[str, Any]) -> str:
    mode = results["mode"]
    command = "motcua bench" + (" --quick" if mode == "quick" else "")
    lines = [
        f"### `{command}` — {results['finished_at']}",
        "",
        f"Machine: {host['cpus']} CPUs ({host['cpu_model']}), {host['memory_gib']} GiB memory,"
        f" {host['os']}, Python {host['python']}; broker: {results['broker']}."
        f" Run took {results['duration_s']:.0f} s.",
        "",
        "| measure | value | target / note |",
        "|---|---:|---|",
        *(f"| {m} | {v} | {t} |" for m, v, t in rows(results)),
        "",
    ]
    return "\n".join(lines)


# -- the command --------------------------------------------------------------------------------


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


def run_bench(quick: bool, markdown: Path | None) -> int:
    """`motcua bench [--quick] [--markdown FILE]`: the table, then one line of JSON."""
    plan = QUICK if quick else FULL
    started = time.monotonic()
    work_dir = Path(tempfile.mkdtemp(prefix="motcua-bench-"))
    results: dict[str, Any] = {"mode": plan.mode}
    code = 0
    try:
        with broker_for_bench(work_dir) as (bootstrap, description):
            run = Run(plan, bootstrap, work_dir, results=results)
            results["broker"] = description
            try:
                worker = measure_throughput(run)
                measure_latency(run, worker)
                worker.stop()
                measure_scale(run)
                if plan.replay_dossiers_per_day is not None:
                    measure_replay(run)
            finally:
                run.stop_workers()
                crashes = [tail for worker in run.workers for tail in worker.crashes]
                results["worker_crashes"] = len(crashes)
                if crashes:
                    results["worker_crash_logs"] = crashes
                if os.environ.get("MOTCUA_BROKER"):
                    delete_topics(bootstrap, run.stamp)
    except Exception as exc:
        from service.tools.broker import BrokerError

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
        print(table(results))
        if markdown is not None:
            markdown.write_text(to_markdown(results, host), encoding="utf-8")
            progress(f"markdown written to {markdown}")
    else:
        progress(f"motcua bench: {results['error']}")
    print(json.dumps(results, separators=(",", ":")))
    return code
