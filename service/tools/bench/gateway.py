"""The gateway's figures for `motcua bench` (issue 12, item 9), against a real broker.

`measure_gateway(bootstrap)` runs, in one go and on the same events:
- `motcua publish`-style direct produce (DossierPublisher, acks=all, idempotent), by the
  same number of clients as the gateway gets, connected before the clock starts, as the
  running gateway is: both windows run from the first send to the last acknowledgement;
- the gateway (a real `motcua gateway` process) fed 100-event JSON Lines bodies by a few
  concurrent clients, as several center systems would; the ratio of the two is the figure;
- single-event POSTs at a fixed rate (open loop: each request leaves at its scheduled time,
  so a slow answer does not hide the queueing it causes), p50 and p99 latency;
- the gateway process's CPU time per event during the throughput phase.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from service.ingest.publisher import DossierPublisher
from service.tools.simulate import SimulationConfig, generate

BODY_EVENTS = 100
CLIENTS = 4
_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _free_port() -> int:
    from service.tools.broker import free_port

    return free_port()


def _create_topic(bootstrap: str, name: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="motcua-bench-gateway")
    try:
        admin.create_topics([NewTopic(name, 8, 1)])
    finally:
        admin.close()


def _events(count: int, seed: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for event in generate(SimulationConfig(dossiers=max(10, count // 3), seed=seed)):
        out.append(event)
        if len(out) == count:
            break
    return out


class _GatewayProcess:
    def __init__(self, bootstrap: str, topic: str, work_dir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(
            os.environ,
            MOTCUA_BROKER=bootstrap,
            MOTCUA_TOPIC=topic,
            MOTCUA_WEB_HOST="127.0.0.1",
            MOTCUA_GATEWAY_RATE="0",
        )
        env.pop("MOTCUA_GATEWAY_TOKENS_FILE", None)
        self.log = work_dir / "bench-gateway.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "gateway", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the gateway did not become ready; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def _post_bodies(url: str, bodies: list[bytes]) -> None:
    import aiohttp

    queue = list(reversed(bodies))
    headers = {"Content-Type": "application/x-ndjson"}

    async def client(session: aiohttp.ClientSession) -> None:
        while queue:
            body = queue.pop()
            async with session.post(f"{url}/v1/events", data=body, headers=headers) as response:
                if response.status != 200:
                    raise RuntimeError(
                        f"gateway answered {response.status}: {await response.text()}"
                    )
                await response.read()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))


async def _paced_singles(url: str, events: list[dict[str, Any]], rate: float) -> list[float]:
    import aiohttp

    latencies: list[float] = []
    headers = {"Content-Type": "application/json"}

    async def one(session: aiohttp.ClientSession, body: bytes) -> None:
        started = time.perf_counter()
        async with session.post(f"{url}/v1/events", data=body, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"gateway answered {response.status}")
        latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = []
        start = time.perf_counter()
        for i, event in enumerate(events):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, orjson.dumps(event))))
        await asyncio.gather(*tasks)
    return latencies


def _publish_directly(bootstrap: str, topic: str, batch: list[dict[str, Any]]) -> float:
    """`motcua publish`'s path measured as the gateway is: CLIENTS publishers, connected
    before the clock starts, each sending its share at once; seconds until the last
    acknowledgement."""
    from concurrent.futures import ThreadPoolExecutor

    shares = [batch[n::CLIENTS] for n in range(CLIENTS)]
    publishers = [DossierPublisher(bootstrap, topic) for _ in range(CLIENTS)]
    try:
        for publisher in publishers:  # connected, as the running gateway is
            publisher.publish_many([])
        with ThreadPoolExecutor(CLIENTS) as pool:
            started = time.perf_counter()
            reports = list(
                pool.map(
                    lambda pair: pair[0].publish_many(pair[1]), zip(publishers, shares, strict=True)
                )
            )
            seconds = time.perf_counter() - started
    finally:
        for publisher in publishers:
            publisher.close()
    for report in reports:
        if not report.ok:
            raise RuntimeError(f"direct publish failed: {report.summary()}")
    return seconds


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure_gateway(
    bootstrap: str,
    *,
    events: int = 20_000,
    latency_rate: float = 200.0,
    latency_seconds: float = 15.0,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """The gateway's figures against the broker at `bootstrap` (keys are the bench's JSON)."""
    stamp = f"bench-gateway-{os.getpid()}-{int(time.time())}"
    work = work_dir or Path(tempfile.mkdtemp(prefix="motcua-bench-gateway-"))
    direct_topic, gateway_topic = f"{stamp}-direct", f"{stamp}-gateway"
    for topic in (direct_topic, gateway_topic):
        _create_topic(bootstrap, topic)
    batch = _events(events, seed=91)

    direct_s = _publish_directly(bootstrap, direct_topic, batch)

    gateway = _GatewayProcess(bootstrap, gateway_topic, work)
    try:
        bodies = [
            b"".join(orjson.dumps(e) + b"\n" for e in batch[i : i + BODY_EVENTS])
            for i in range(0, len(batch), BODY_EVENTS)
        ]
        cpu_before = _cpu_seconds(gateway.process.pid)
        started = time.perf_counter()
        asyncio.run(_post_bodies(gateway.url, bodies))
        gateway_s = time.perf_counter() - started
        cpu_used = _cpu_seconds(gateway.process.pid) - cpu_before

        singles = _events(int(latency_rate * latency_seconds), seed=92)
        latencies = asyncio.run(_paced_singles(gateway.url, singles, latency_rate))
    finally:
        gateway.stop()

    direct_rate = len(batch) / direct_s
    gateway_rate = len(batch) / gateway_s
    return {
        "gateway_events": len(batch),
        "gateway_body_events": BODY_EVENTS,
        "gateway_clients": CLIENTS,
        "gateway_events_per_s": round(gateway_rate),
        "publish_events_per_s": round(direct_rate),
        "gateway_vs_publish": round(gateway_rate / direct_rate, 3),
        "gateway_cpu_us_per_event": round(cpu_used / len(batch) * 1e6, 1),
        "gateway_single_rate": latency_rate,
        "gateway_single_requests": len(latencies),
        "gateway_single_p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "gateway_single_p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        # Latency on a shared machine says as much about the neighbours as about the gateway.
        "gateway_load_average": round(os.getloadavg()[0], 1),
    }


def measure(run: Any) -> None:
    """The bench step (service/tools/bench/steps.py): the figures join the final JSON line."""
    run.results.update(
        measure_gateway(
            run.bootstrap,
            events=run.plan.throughput_events,
            latency_rate=200.0,
            latency_seconds=15.0,
            work_dir=run.work_dir,
        )
    )


def rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The figures as (what, value, target) rows of the bench report."""
    if "gateway_events_per_s" not in r:
        return []
    return [
        (
            f"gateway, {r['gateway_body_events']}-event JSON Lines bodies"
            f" ({r['gateway_clients']} clients)",
            f"{r['gateway_events_per_s']:,} events/s",
            "",
        ),
        (
            f"motcua publish, same events ({r['gateway_clients']} clients, same window)",
            f"{r['publish_events_per_s']:,} events/s",
            "",
        ),
        ("gateway ÷ publish", f"{r['gateway_vs_publish']:.2f}", "≥ 0.5"),
        ("gateway CPU per event", f"{r['gateway_cpu_us_per_event']} µs", ""),
        (
            f"single-event POST at {r['gateway_single_rate']:g}/s, p50",
            f"{r['gateway_single_p50_ms']} ms",
            "",
        ),
        (
            f"single-event POST at {r['gateway_single_rate']:g}/s, p99",
            f"{r['gateway_single_p99_ms']} ms",
            "≤ 50 ms",
        ),
    ]
