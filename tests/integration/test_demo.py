"""The README's first command: `motcua demo` brings up a broker, a worker and traffic."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from harness import free_port

from service.tools.broker import reachable
from service.tools.processes import Process

pytestmark = pytest.mark.integration


def start_demo(
    tmp_path: Path,
    app_id: str,
    *args: str,
    own_group: bool = False,
    ports: tuple[int, int] | None = None,
) -> tuple[subprocess.Popen[str], int, int]:
    """`motcua demo ARGS` on free ports (or `ports`: the broker's and the worker's web port);
    (the process, its broker's port, its web port). `own_group`: in a process group of its
    own, as a shell starts a command (a terminal's Ctrl-C then reaches every process of
    that group)."""
    broker_port, web_port = ports or (free_port(), free_port())
    env = dict(
        os.environ,
        MOTCUA_BROKER=f"127.0.0.1:{broker_port}",  # nothing answers there: demo starts one
        MOTCUA_DATA_DIR=str(tmp_path / "var"),
        MOTCUA_APP_ID=app_id,
        # Not the defaults (6070, 6080): a demo a developer runs beside the suite keeps them.
        MOTCUA_GATEWAY_PORT=str(free_port()),
        MOTCUA_BOARD_PORT=str(free_port()),
    )
    demo = subprocess.Popen(
        [sys.executable, "-m", "service", "demo", "--port", str(web_port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        process_group=0 if own_group else None,
    )
    return demo, broker_port, web_port


def wait_and_reap(demo: subprocess.Popen[str], reader: threading.Thread, timeout: float) -> int:
    """The demo's exit code. One that outlives `timeout` is asked to stop (SIGTERM: it
    stops the parts it started, each in a process group of its own), then killed."""
    try:
        return demo.wait(timeout=timeout)
    finally:
        if demo.poll() is None:
            demo.terminate()
            try:
                demo.wait(60)
            except subprocess.TimeoutExpired:
                demo.kill()
        reader.join(10)


def read_until_simulating(
    demo: subprocess.Popen[str],
) -> tuple[list[str], threading.Event, threading.Thread]:
    """A thread collecting the demo's output lines; the event is set once it simulates."""
    lines: list[str] = []
    simulating = threading.Event()

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("simulating "):
                simulating.set()

    reader = threading.Thread(target=read)
    reader.start()
    return lines, simulating, reader


def test_demo_starts_everything_serves_metrics_and_stops_cleanly(tmp_path: Path) -> None:
    demo, broker_port, web_port = start_demo(
        tmp_path, "demo-test", "--dossiers", "80", "--rate", "0", "--duration", "40"
    )
    lines: list[str] = []
    seen_metrics: list[bytes] = []
    metrics_url = f"http://127.0.0.1:{web_port}/metrics"

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if "metrics:" in line and not seen_metrics:
                # Scrape once the worker says it is ready, while the demo is running.
                with urllib.request.urlopen(metrics_url, timeout=10) as response:
                    seen_metrics.append(response.read())

    reader = threading.Thread(target=read)
    reader.start()
    code = wait_and_reap(demo, reader, 300)
    output = "".join(lines)
    assert code == 0, output
    assert metrics_url in output
    assert seen_metrics and b"motcua_ready 1.0" in seen_metrics[0]
    assert re.search(r"simulation finished: .*\d", output), output
    assert output.rstrip().endswith("stopped.")
    assert "Traceback" not in output
    # Everything the demo started is gone: the broker no longer answers.
    assert not reachable(f"127.0.0.1:{broker_port}", timeout=2)


def test_ctrl_c_while_the_simulation_sends_stops_it_quietly(tmp_path: Path) -> None:
    # Interrupted mid-simulation, the demo closes the simulation's producer while its
    # broker still runs: no traceback from kafka-python's exit hook waiting on a stopped
    # broker (it printed one at every Ctrl-C).
    demo, broker_port, _ = start_demo(
        tmp_path, "demo-interrupt-test", "--dossiers", "5000", "--rate", "100"
    )
    lines, simulating, reader = read_until_simulating(demo)
    if simulating.wait(240):
        time.sleep(5)  # events on their way: a producer with records in flight
        demo.send_signal(signal.SIGINT)  # what Ctrl-C sends
    code = wait_and_reap(demo, reader, 120)
    assert simulating.is_set(), "".join(lines)
    output = "".join(lines)
    assert code == 0, output
    assert re.search(r"simulation stopped: .*events published to .* and acknowledged", output), (
        output
    )
    assert output.rstrip().endswith("stopped.")
    assert "Traceback" not in output and "Exception ignored" not in output, output
    assert not reachable(f"127.0.0.1:{broker_port}", timeout=2)


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_signal_to_the_whole_group_stops_the_parts_in_order(
    tmp_path: Path, signal_number: int
) -> None:
    # A terminal's Ctrl-C goes to the whole foreground process group, not to the demo
    # alone, as `timeout` and a service manager's stop send SIGTERM to all of it: the parts
    # the demo started must not take it themselves, or the broker stops at once and the
    # worker, stopping on a dead broker, hangs until it is killed.
    demo, broker_port, _ = start_demo(
        tmp_path, "demo-group-test", "--dossiers", "5000", "--rate", "100", own_group=True
    )
    lines, simulating, reader = read_until_simulating(demo)
    children: list[str] = []
    groups: list[int] = []
    if simulating.wait(240):
        time.sleep(20)  # the worker busy counting
        children = Path(f"/proc/{demo.pid}/task/{demo.pid}/children").read_text().split()
        groups = [os.getpgid(int(child)) for child in children]
        os.killpg(demo.pid, signal_number)
    code = wait_and_reap(demo, reader, 120)
    output = "".join(lines)
    # The broker, worker, gateway and board: none of them in the demo's process group, and
    # none left running once the demo is gone.
    assert len(children) >= 4, (children, output)
    assert demo.pid not in groups, (demo.pid, groups)
    assert not [child for child in children if Path(f"/proc/{child}").exists()], output
    assert simulating.is_set(), output
    assert code == 0, output
    assert re.search(r"simulation stopped: .*acknowledged", output), output
    assert "killed" not in output, output  # every part stopped by itself
    assert output.rstrip().endswith("stopped.")
    assert "Traceback" not in output, output
    worker_log = (tmp_path / "var" / "demo-worker.log").read_text(encoding="utf-8")
    assert "Traceback" not in worker_log, worker_log[-3000:]
    assert not reachable(f"127.0.0.1:{broker_port}", timeout=2)


def test_the_parts_of_a_demo_killed_outright_are_stopped_by_the_next(tmp_path: Path) -> None:
    # SIGKILL (the OOM killer, `kill -9`) leaves the demo no time to stop its parts, and they
    # run in process groups of their own: the broker kept its port and the worker its web
    # port, and the next `./run demo` failed on them. The next demo stops them first.
    demo, broker_port, web_port = start_demo(
        tmp_path, "demo-killed-test", "--dossiers", "5000", "--rate", "50"
    )
    lines, simulating, reader = read_until_simulating(demo)
    left: dict[str, list[int]] = {}
    try:
        if simulating.wait(240):
            left = orjson.loads((tmp_path / "var" / "demo-parts.json").read_bytes())["parts"]
            demo.kill()
        wait_and_reap(demo, reader, 60)
        assert simulating.is_set(), "".join(lines)
        assert sorted(left) == ["board", "broker", "gateway", "worker"]
        assert all(Process(*pair).alive() for pair in left.values())  # left running
        assert reachable(f"127.0.0.1:{broker_port}", timeout=5)

        again, _, _ = start_demo(
            tmp_path,
            "demo-killed-test",
            "--dossiers",
            "80",
            "--rate",
            "0",
            "--duration",
            "20",
            ports=(broker_port, web_port),
        )
        lines, simulating, reader = read_until_simulating(again)
        code = wait_and_reap(again, reader, 300)
        output = "".join(lines)
        assert code == 0, output
        assert (
            f"an earlier demo (pid {demo.pid}) ended without stopping its board, worker,"
            " gateway, broker; stopping them first"
        ) in output
        assert "killed" not in output, output  # each stopped by itself, the broker last
        assert not [pair for pair in left.values() if Process(*pair).alive()]
        assert re.search(r"simulation finished: .*\d", output), output
        assert output.rstrip().endswith("stopped.")
        assert "Traceback" not in output
        assert not (tmp_path / "var" / "demo-parts.json").exists()
        assert not reachable(f"127.0.0.1:{broker_port}", timeout=2)
    finally:
        for pair in left.values():  # a failed test leaves nothing running
            if Process(*pair).alive():
                os.kill(pair[0], signal.SIGKILL)
