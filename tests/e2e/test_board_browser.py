"""The center's board in a real browser (Debian's Chromium through its chromedriver).

Two real workers share the input topic on the real broker, fed by the simulator; a real
`motcua board` process gathers them; Chromium loads the page. The test reads what the page
shows and compares it with what the workers' /metrics and /api/report say, summed here, and
with the domain core for the queue. Then new events arrive (figures change without a
reload), the language and period switch, and a worker is killed (the page says the figures
are incomplete and which partitions are missing, and gives no total).

Screenshots go to $MOTCUA_ARTIFACTS (default var/artifacts); with MOTCUA_SCREENSHOTS=1 they
also replace the ones under docs/.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import WorkerProcess, free_port, parse_metrics, produce_events, wait_exact, wait_for
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from schemas import event_from_dict
from service.domain import DEFAULT_CALENDAR, LOCAL_TZ, OpenState, fold, open_state
from service.domain.calendar import local_date
from service.domain.index import GROUPS, INDICATORS, NOT_MEASURED
from service.tools.simulate import SimulationConfig, catalog, generate

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 8
QUEUE_SIZE = 25
WAIT_S = 90.0
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
# The seeds' targets, as the board uses them by default (service/outputs/board/targets.py).
TARGETS = {"early": 0.90, "timely": 1.0, "overdue_share": 0.10, "online": 0.25, "postal": 0.15}
COUNTS = (
    "carried_over",
    "new",
    "resolved_early",
    "resolved_on_time",
    "resolved_late",
    "withdrawn",
    "in_progress_within",
    "in_progress_overdue",
    "received_direct",
    "received_online",
    "received_postal",
)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Debian Chromium with a fresh profile; never a downloaded browser."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(
            "chromium / chromedriver not found: install Debian's chromium and chromium-driver "
            "packages (./run test does)",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1920,1080")
    # An explicit driver path: Selenium Manager never looks for (or downloads) one.
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    session.set_page_load_timeout(30)
    yield session
    session.quit()


class BoardProcess:
    """`motcua board` in its own process, on a free port."""

    def __init__(self, workers: list[WorkerProcess], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        urls = ",".join(f"http://{w.host_port}" for w in workers)
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "service", "board", "--workers", urls),
                *("--port", str(self.port), "--interval", "1"),
                *("--partitions", str(PARTITIONS), "--queue-size", str(QUEUE_SIZE)),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.log = log
        if not wait_for(lambda: self.status("/api/board") == 200, 60):
            pytest.fail(f"the board did not start:\n{log.read_text()[-3000:]}", pytrace=False)

    def status(self, path: str) -> int:
        if self.process.poll() is not None:
            pytest.fail(f"the board exited:\n{self.log.read_text()[-3000:]}", pytrace=False)
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(10)
        self._log.close()


@pytest.fixture
def board_factory(tmp_path: Path) -> Iterator[Callable[[list[WorkerProcess]], BoardProcess]]:
    started: list[BoardProcess] = []

    def start(workers: list[WorkerProcess]) -> BoardProcess:
        board = BoardProcess(workers, tmp_path / f"board-{len(started)}.log")
        started.append(board)
        return board

    yield start
    for board in started:
        board.stop()


# The agency table's region: [the width its content takes, the width it shows].
AGENCIES_WIDTHS = (
    "const region = document.getElementById('agencies').parentElement;"
    "return [region.scrollWidth, region.clientWidth];"
)


def assert_agencies_fit(browser: WebDriver) -> None:
    """A wall screen does not scroll: the agency table fits the width it is given."""
    wide, shown = browser.execute_script(AGENCIES_WIDTHS)
    assert wide <= shown, f"the agency table takes {wide} px of the {shown} px it is given"


def save_screenshot(driver: WebDriver, name: str, full_page: bool = True) -> Path:
    """The page as PNG under the artifacts directory, and under docs/img when asked to."""
    artifacts = Path(os.environ.get("MOTCUA_ARTIFACTS") or ROOT / "var" / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    path = artifacts / name
    if full_page:  # the whole page, not just the window (Chrome DevTools Protocol)
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        path.write_bytes(base64.b64decode(shot["data"]))
    else:
        assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    if os.environ.get("MOTCUA_SCREENSHOTS") == "1":
        shutil.copyfile(path, ROOT / "docs" / "img" / name)
    return path


# -- what the workers say, summed here --------------------------------------------------


def get_json(worker: WorkerProcess, path: str) -> dict[str, Any]:
    status, body = worker.get(path)
    assert status == 200, f"{worker.host_port}{path}: HTTP {status} {body[:200]!r}"
    return orjson.loads(body)


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def expected_rows(workers: list[WorkerProcess], period: str) -> dict[str, dict[str, Any]]:
    """Per agency, each column of the board's table, from the workers' own answers."""
    today = local_date(datetime.now(UTC))
    sums: dict[str, dict[str, Counter[str]]] = {
        "today": defaultdict(Counter),
        "month": defaultdict(Counter),
    }
    for worker in workers:
        for name, start in (("today", today), ("month", today.replace(day=1))):
            data = get_json(worker, f"/api/report?from={start}&to={today}")
            for agency, figures in data["agencies"].items():
                sums[name][agency].update({key: figures[key] for key in COUNTS})
    open_: dict[str, Counter[str]] = defaultdict(Counter)
    for worker in workers:
        for (name, labels), value in parse_metrics(worker.get("/metrics")[1].decode()).items():
            label = dict(labels)
            if name == "motcua_dossiers_open":
                open_[label["agency"]][label["state"]] += int(value)
            elif name == "motcua_overdue_without_apology":
                open_[label["agency"]]["no_apology"] += int(value)
    rows = {}
    for agency in set(sums["today"]) | set(sums["month"]) | set(open_):
        p = sums[period][agency]
        resolved = p["resolved_early"] + p["resolved_on_time"] + p["resolved_late"]
        in_progress_period = p["in_progress_within"] + p["in_progress_overdue"]
        timely = p["resolved_early"] + p["resolved_on_time"]
        handled = resolved + in_progress_period
        now = open_[agency]
        in_progress = now["in_time"] + now["due_soon"] + now["overdue"] + now["paused"]
        score = share(timely + p["in_progress_within"], handled)
        rows[agency] = {
            "received_today": sums["today"][agency]["new"],
            "received_month": sums["month"][agency]["new"],
            "resolved": resolved,
            "early": share(p["resolved_early"], resolved),
            "timely": share(timely, resolved),
            "late": share(p["resolved_late"], resolved),
            "in_progress": in_progress,
            "overdue": now["overdue"],
            "overdue_share": share(now["overdue"], in_progress),
            "overdue_without_apology": now["no_apology"],
            "score": None if score is None else 20 * score,
            "online": share(p["received_online"], p["new"]),
            "postal": share(p["received_postal"], p["new"]),
        }
    return rows


DEPARTMENT_METRICS = {
    "motcua_dossiers_overdue_held": 0,
    "motcua_steps_open": 1,  # state overdue only
    "motcua_steps_completed_total": 2,  # late; on time is 3
}


def expected_departments(workers: list[WorkerProcess]) -> list[tuple[str, str, list[int]]]:
    """Per agency and department, the step figures summed over the workers' /metrics, in
    the board's order (most overdue dossiers held first); only places where something is
    late (held overdue, a step overdue or completed late)."""
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for worker in workers:
        for (name, labels), value in parse_metrics(worker.get("/metrics")[1].decode()).items():
            label = dict(labels)
            if name not in DEPARTMENT_METRICS or not value:
                continue
            column = DEPARTMENT_METRICS[name]
            if name == "motcua_steps_open" and label["state"] != "overdue":
                continue
            if name == "motcua_steps_completed_total" and label["outcome"] == "on_time":
                column = 3
            sums[(label["agency"], label["department"])][column] += int(value)
    rows = [(a, d, figures) for (a, d), figures in sums.items() if any(figures[:3])]
    return sorted(rows, key=lambda r: (-r[2][0], -r[2][1], r[0], r[1]))


def departments_mismatch(driver: WebDriver, workers: list[WorkerProcess], lang: str) -> str:
    want = expected_departments(workers)
    shown = [
        (agency, department, [int(parse_figure(text, lang) or 0) for text in cells])
        for agency, department, cells in driver.execute_script(READ_DEPARTMENTS)
    ]
    return "" if shown == want else f"page {shown[:5]} != workers {want[:5]}"


def wait_departments_match(driver: WebDriver, workers: list[WorkerProcess], lang: str) -> None:
    problem = "never compared"
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        problem = departments_mismatch(driver, workers, lang)
        if not problem:
            return
        time.sleep(1)
    pytest.fail(f"the department table differs from the workers: {problem}", pytrace=False)


def met(column: str, value: float) -> bool | None:
    if column not in TARGETS:
        return None
    if column == "overdue_share":
        return value < TARGETS[column]
    return value >= TARGETS[column]


# -- what the page shows ----------------------------------------------------------------

READ_TABLE = """
return [...document.querySelectorAll('#agencies tbody tr')].map(tr => [
  tr.dataset.agency,
  Object.fromEntries([...tr.querySelectorAll('td')].map(td => [td.dataset.col, [
    td.querySelector('.v') ? td.querySelector('.v').textContent : null,
    td.querySelector('.st') ? td.querySelector('.st').textContent : null,
    td.className]]))]);
"""
READ_DEPARTMENTS = """
return [...document.querySelectorAll('#departments tbody tr')].map(tr => [
  tr.dataset.agency, tr.dataset.department,
  [...tr.querySelectorAll('td')].slice(1).map(td => td.textContent)]);
"""
READ_QUEUE = """
return [...document.querySelectorAll('#q-' + arguments[0] + ' tbody tr')]
  .map(tr => tr.dataset.dossier);
"""


def parse_figure(text: str, lang: str) -> float | None:
    """A figure as the page writes it: 1.234 / 12,5% in Vietnamese, 1,234 / 12.5% in English."""
    if text == "–":
        return None
    thousands, decimal = (".", ",") if lang == "vi" else (",", ".")
    number = text.removesuffix("%").replace(thousands, "").replace(decimal, ".")
    value = float(number)
    return value / 100 if text.endswith("%") else value


def page_mismatches(
    driver: WebDriver, workers: list[WorkerProcess], lang: str, period: str
) -> list[str]:
    """Differences between the page's table and the workers' answers (empty: equal)."""
    want = expected_rows(workers, period)
    shown = dict(driver.execute_script(READ_TABLE))
    words = {"vi": ("✓ đạt", "✗ chưa đạt"), "en": ("✓ met", "✗ below target")}[lang]
    problems = []
    if set(shown) != set(want):
        return [f"agencies shown {sorted(shown)} != {sorted(want)}"]
    for agency, columns in want.items():
        for column, value in columns.items():
            text, status, cls = shown[agency][column]
            got = parse_figure(text, lang)
            if value is None or got is None:
                ok = value is None and got is None
            elif column in ("score",):
                ok = abs(got - value) <= 0.005 + 1e-9
            elif isinstance(value, float) or column in TARGETS or column in ("late",):
                ok = abs(got - value) <= 0.0005 + 1e-9  # shown to 0.1 percentage point
            else:
                ok = got == value
            if not ok:
                problems.append(f"{agency}.{column}: page {text!r}, workers {value!r}")
                continue
            target = met(column, value) if value is not None else None
            want_status = None if target is None else words[0] if target else words[1]
            want_class = "" if target is None else "met" if target else "missed"
            if status != want_status or cls != want_class:
                problems.append(f"{agency}.{column}: status {status!r}/{cls!r} for {value!r}")
    return problems


def wait_page_matches(
    driver: WebDriver, workers: list[WorkerProcess], lang: str = "vi", period: str = "month"
) -> None:
    problems: list[str] = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        problems = page_mismatches(driver, workers, lang, period)
        if not problems:
            return
        time.sleep(1)
    pytest.fail("the page differs from the workers:\n" + "\n".join(problems[:30]), pytrace=False)


READ_INDEX = """
return [...document.querySelectorAll('#index tbody tr, #index tfoot tr')]
  .filter(tr => tr.dataset.rule)
  .map(tr => [tr.dataset.agency + '/' + tr.dataset.rule,
    Object.fromEntries([...tr.querySelectorAll('td')].map(td => [td.dataset.col,
      [td.querySelector('.v').textContent, (td.querySelector('.st') || {}).textContent || '']]))]);
"""
READ_INDEX_LABELS = """
return [...document.querySelectorAll('#index tbody tr')]
  .map(tr => tr.querySelector('th.rule').textContent);
"""


Cell = tuple[float, float] | None  # (points, maximum), None: not measured here
READINGS = ("portal", "motcua")


def expected_index(workers: list[WorkerProcess]) -> dict[str, dict[str, Cell]]:
    """Per agency and for the center, both rows of the Index view (key "agency/reading"),
    from the workers' month series, summed here and scored with the transcribed rules: the
    portal's reading from motcua_index_portal_numerator / _denominator (every indicator of
    an agency with dossiers, 0 when empty), motcua's from motcua_index_numerator /
    _denominator (only what some dossier decides)."""
    names = {
        "motcua_index_portal_numerator": ("portal", 0),
        "motcua_index_portal_denominator": ("portal", 1),
        "motcua_index_numerator": ("motcua", 0),
        "motcua_index_denominator": ("motcua", 1),
    }
    counts: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(dict)
    for worker in workers:
        for (name, labels), value in parse_metrics(worker.get("/metrics")[1].decode()).items():
            label = dict(labels)
            if label.get("period") != "month" or name not in names:
                continue
            reading, part = names[name]
            for agency in (label["agency"], "__total__"):
                pair = counts[agency, reading].setdefault(label["indicator"], [0, 0])
                pair[part] += int(value)
    agencies = {agency for agency, reading in counts if reading == "motcua"}

    def cell(reading_counts: dict[str, list[int]], indicators: list[Any]) -> Cell:
        if not indicators:
            return None
        points = 0.0
        for i in indicators:
            num, den = reading_counts.get(i.code, [0, 0])
            points += i.points(num / den if den else 0.0)
        return points, sum(i.maximum for i in indicators)

    rows: dict[str, dict[str, Cell]] = {}
    for agency in agencies:
        motcua, portal = counts[agency, "motcua"], counts[agency, "portal"]
        measured = [i for i in INDICATORS if motcua.get(i.code, [0, 0])[1]]
        mine = {g: cell(motcua, [i for i in measured if i.group == g]) for g in GROUPS}
        # Both totals leave 3.3 out; the portal's counts every verified one (0 when empty).
        mine["total"] = cell(motcua, [i for i in measured if i.weight_verified])
        theirs = {
            g: cell(
                portal,
                [i for i in INDICATORS if i.group == g and (i.weight_verified or i in measured)],
            )
            for g in GROUPS
        }
        theirs["total"] = cell(portal, [i for i in INDICATORS if i.weight_verified])
        rows[f"{agency}/motcua"], rows[f"{agency}/portal"] = mine, theirs
    return rows


def parse_index_cell(text: str) -> Cell:
    """ "17,50 / 20" -> (17.5, 20.0); "chưa đo ở đây" -> None."""
    if text == "chưa đo ở đây":
        return None
    points, maximum = text.split(" / ")
    return parse_figure(points, "vi") or 0.0, parse_figure(maximum, "vi") or 0.0


def index_mismatches(driver: WebDriver, workers: list[WorkerProcess]) -> list[str]:
    want = expected_index(workers)
    shown = dict(driver.execute_script(READ_INDEX))
    if set(shown) != set(want):
        return [f"rows shown {sorted(shown)} != {sorted(want)}"]
    problems = []
    for row, cells in want.items():
        for column, value in cells.items():
            text, mark = shown[row].get(column, ["?", ""])
            got = parse_index_cell(text)
            if value is None or got is None:
                ok = value is None and got is None
            else:  # points shown to 0.01
                ok = abs(got[0] - value[0]) <= 0.005 + 1e-9 and got[1] == value[1]
            # 3.3's weight is a guess: its group says so wherever it has points.
            unverified = column == "online_service" and value is not None
            ok = ok and (mark == "⚠ 3.3: trọng số chưa kiểm chứng") == unverified
            if not ok:
                problems.append(f"{row}.{column}: page {shown[row].get(column)!r}, {value}")
    return problems


def wait_index_matches(driver: WebDriver, workers: list[WorkerProcess]) -> None:
    problems: list[str] = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        problems = index_mismatches(driver, workers)
        if not problems:
            return
        time.sleep(1)
    pytest.fail("the Index view differs from the metrics:\n" + "\n".join(problems[:30]))


HAND = "HW.766"


def hand_worked_events(now: datetime) -> list[dict[str, Any]]:
    """Four dossiers of agency HW.766 received this month, each silent about something,
    for the Index view's figures worked by hand (see the test):
    1 online, a fee paid on the national portal, VNeID-verified, 2 components (1 digitised,
    none reused or from the data store), returned with an electronic result;
    2 direct, not VNeID-verified, components not reported, returned with a paper result;
    3 direct, nothing reported, still open (due in 10 working days);
    4 direct, nothing reported, returned without saying what result."""
    month_start = datetime.combine(local_date(now).replace(day=1), datetime.min.time(), LOCAL_TZ)
    at = max(now - timedelta(minutes=4), month_start + timedelta(seconds=1))
    base = {"agency": HAND, "procedure": "1.000948", "processing_days": 10}

    def event(n: int, kind: str, seconds: int, **fields: Any) -> dict[str, Any]:
        when = (at + timedelta(seconds=seconds)).isoformat()
        return {
            "event_id": f"{HAND}-{n}-{kind}",
            "dossier_id": f"{HAND}-{n}",
            "type": kind,
            "occurred_at": when,
            **fields,
        }

    first = {
        "components": 2,
        "components_digitised": 1,
        "components_reused": 0,
        "components_from_data_store": 0,
        "identity_verified": True,
        "fee_due": True,
    }
    return [
        event(1, "received", 0, **base, channel="online", **first),
        event(1, "paid", 1, method="national_portal"),
        event(1, "returned", 2, e_result=True),
        event(2, "received", 0, **base, channel="direct", identity_verified=False),
        event(2, "returned", 2, e_result=False),
        event(3, "received", 0, **base, channel="direct"),
        event(4, "received", 0, **base, channel="direct"),
        event(4, "returned", 2),
    ]


def queue_truth(events: list[dict[str, Any]], now: datetime) -> dict[str, list[str]]:
    """The three queues by the domain core: fold every dossier, take its state at `now`."""
    by_dossier: dict[str, list[Any]] = defaultdict(list)
    for raw in events:
        event = event_from_dict(raw, now=now)
        by_dossier[event.dossier_id].append(event)
    keyed: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for dossier_id, history in by_dossier.items():
        dossier = fold(dossier_id, history, DEFAULT_CALENDAR)
        state = open_state(dossier, now, DEFAULT_CALENDAR)
        if state is OpenState.OVERDUE:
            name = "overdue_with_apology" if dossier.apology_at else "overdue_without_apology"
        elif state is OpenState.DUE_SOON:
            name = "due_soon"
        else:
            continue
        assert dossier.due is not None
        keyed[name].append((dossier.due, dossier_id))
    return {name: [i for _, i in sorted(keyed[name])[:QUEUE_SIZE]] for name in keyed}


def wait_queues_match(driver: WebDriver, events: list[dict[str, Any]]) -> dict[str, list[str]]:
    got: dict[str, list[str]] = {}
    want: dict[str, list[str]] = {}
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        want = queue_truth(events, datetime.now(UTC))
        names = ("overdue_without_apology", "overdue_with_apology", "due_soon")
        got = {name: driver.execute_script(READ_QUEUE, name) for name in names}
        if all(got[name] == want.get(name, []) for name in names):
            return got
        time.sleep(1)
    assert got == want, "queues on the page differ from the domain core"
    return got


def not_measured_titles(driver: WebDriver) -> list[str]:
    """The titles of the "not measured here" list, in the page's language."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#index-not-measured tbody tr')]"
        ".map(tr => tr.cells[1].textContent)"
    )


def banner(driver: WebDriver) -> tuple[str, str]:
    element = driver.find_element(By.ID, "status")
    return element.text, element.get_attribute("class") or ""


def ranges(partitions: list[int]) -> str:
    """0,1,2,5 -> "0–2, 5", as the page writes a list of partitions."""
    out: list[list[int]] = []
    for p in partitions:
        if out and out[-1][1] == p - 1:
            out[-1][1] = p
        else:
            out.append([p, p])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in out)


# -- the scenario -----------------------------------------------------------------------


def start_center(
    kafka_broker: Any,
    worker_factory: Callable[..., WorkerProcess],
    board_factory: Callable[[list[WorkerProcess]], BoardProcess],
    browser: WebDriver,
    dossiers: int,
) -> tuple[WorkerProcess, WorkerProcess, list[dict[str, Any]], BoardProcess]:
    """Two workers splitting the partitions, fed by the simulator until their /metrics equal
    the domain core's; a board over both, open in the browser."""
    first = worker_factory()
    second = worker_factory(like=first)

    def split() -> bool:
        held = [
            get_json(w, "/readyz")["partitions"] if w.get("/readyz")[0] == 200 else []
            for w in (first, second)
        ]
        return all(held) and sorted(held[0] + held[1]) == list(range(PARTITIONS))

    assert wait_for(split, WAIT_S), "the two workers never split the partitions"
    now = datetime.now(UTC) - timedelta(seconds=5)
    config = SimulationConfig(dossiers=dossiers, seed=21, now=now, overdue_ratio=0.1)
    events = [*generate(config), *hand_worked_events(now)]
    produce_events(kafka_broker.bootstrap, first.topic, events)
    got, want = wait_exact([first, second], events, timeout=WAIT_S)
    assert got == want, "the workers' /metrics differ from the domain core"
    board = board_factory([first, second])
    browser.get(board.url + "/")
    return first, second, events, board


def board_diagnosis(board: BoardProcess, first: WorkerProcess) -> str:
    """What the board says of each worker (with the reason), and the survivor's log tail."""
    try:
        with urllib.request.urlopen(board.url + "/api/board", timeout=5) as response:
            workers = orjson.loads(response.read()).get("workers")
    except (OSError, ValueError) as exc:
        workers = f"no /api/board ({exc})"
    return f"the board's workers: {workers}\nthe survivor's log:\n{first.tail(40)}"


def stop_and_see_incomplete(
    browser: WebDriver, board: BoardProcess, first: WorkerProcess, second: WorkerProcess
) -> None:
    """kill -9 a worker: the page says the figures are incomplete, names the partitions
    that worker held, and gives no total."""
    lost = get_json(second, "/readyz")["partitions"]
    second.kill()

    def incomplete() -> bool:
        text, cls = banner(browser)
        return "CHƯA ĐẦY ĐỦ" in text and f"thiếu phân vùng {ranges(lost)}" in text and "bad" in cls

    assert wait_for(incomplete, WAIT_S), (
        f"no incomplete-coverage warning: {banner(browser)}\n{board_diagnosis(board, first)}"
    )
    assert second.host_port in banner(browser)[0]
    foot = browser.find_element(By.CSS_SELECTOR, "#agencies tfoot tr")
    assert foot.get_attribute("data-agency") == "__none__"
    assert "Chưa có tổng" in foot.text
    # Every table of summed figures looks partial, not only the agencies'.
    for table in ("agencies", "departments", "index"):
        assert "incomplete" in (browser.find_element(By.ID, table).get_attribute("class") or "")
    queues = browser.find_elements(By.CSS_SELECTOR, "section[id^='q-'] table")
    assert queues
    for queue in queues:
        assert "incomplete" in (queue.get_attribute("class") or "")


def test_the_board_shows_the_workers_figures_and_queue_and_keeps_up(
    kafka_broker: Any,
    worker_factory: Callable[..., WorkerProcess],
    board_factory: Callable[[list[WorkerProcess]], BoardProcess],
    browser: WebDriver,
) -> None:
    first, second, events, board = start_center(
        kafka_broker, worker_factory, board_factory, browser, dossiers=600
    )
    assert browser.execute_script("return document.documentElement.lang") == "vi"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Tình hình giải quyết hồ sơ"

    # 1. Exactly the workers' figures, with the center total, and no warning.
    wait_page_matches(browser, [first, second])
    assert wait_for(lambda: banner(browser)[0] == "", 10), banner(browser)
    total_row = browser.find_element(By.CSS_SELECTOR, "#agencies tfoot tr")
    assert total_row.get_attribute("data-agency") == "__total__"
    # Where late dossiers sit: the department table is the workers' step metrics, summed.
    wait_departments_match(browser, [first, second], "vi")
    assert browser.execute_script(READ_DEPARTMENTS), "the simulated center has steps"

    # 1b. The Index view: each group's points equal the workers' index series, summed and
    # scored here; groups with nothing measured say so; the not-measured indicators listed.
    wait_index_matches(browser, [first, second])
    not_measured = browser.find_elements(By.CSS_SELECTOR, "#index-not-measured tbody tr")
    assert [r.get_attribute("data-ref") for r in not_measured] == [n.ref for n in NOT_MEASURED]
    assert not_measured_titles(browser) == [n.title_vi for n in NOT_MEASURED]
    assert browser.find_element(
        By.CSS_SELECTOR, '#index tfoot td[data-col="transparency"]'
    ).text == ("chưa đo ở đây")
    # HW.766, worked by hand (hand_worked_events): 4 received, all on time (the open one
    # judged now, 10 working days ahead) and none rated: 2.1 20 × 4/4, 5.4 6 (T 90%);
    # 3.6 A: 1 paid online of the 1 with a fee: 6. 3.3: 1 of 4 online, T 50%:
    # 12 × 0.25 / 0.5 = 6 under both readings, marked. Digitisation, the portal dividing by
    # the 4 received: 4.1 6 × 1/4 = 1.5, 4.2 4 × 1/4 = 1, 4.3 0, 4.4 0, 4.5b 2 × 1/4 = 0.5:
    # 3 of 18; motcua dividing by the dossiers whose facts decide: 4.1 1/2 (dossier 4 said
    # nothing) 3, 4.2 1/2 (dossier 2's paper result decides it) 2, 4.3 0/1, 4.4 0/1,
    # 4.5b 1/1 (only dossier 1 decides) 2: 7 of 18. Totals without 3.3: 20 + 6 + 3 + 6 = 35
    # and 20 + 6 + 7 + 6 = 39, of 50.
    hand = dict(browser.execute_script(READ_INDEX))
    mark = "⚠ 3.3: trọng số chưa kiểm chứng"
    assert hand[f"{HAND}/portal"] == {
        "transparency": ["chưa đo ở đây", ""],
        "timeliness": ["20,00 / 20", ""],
        "online_service": ["6,00 / 12", mark],
        "online_payment": ["6,00 / 6", ""],
        "digitisation": ["3,00 / 18", ""],
        "satisfaction": ["6,00 / 6", ""],
        "total": ["35,00 / 50", ""],
    }
    assert hand[f"{HAND}/motcua"] == {
        **hand[f"{HAND}/portal"],
        "digitisation": ["7,00 / 18", ""],
        "total": ["39,00 / 50", ""],
    }
    rows = browser.find_elements(By.CSS_SELECTOR, "#index tbody tr")
    assert [r.get_attribute("data-rule") for r in rows[:2]] == ["portal", "motcua"]
    assert browser.execute_script(READ_INDEX_LABELS)[:2] == [
        "Cổng DVCQG (cách chấm của Cổng)",
        "motcua: dữ kiện đã biết",
    ]
    assert browser.find_element(By.CSS_SELECTOR, "#index thead th:last-child").text == (
        "Tổng so sánh với Cổng (/50, không tính 3.3)"
    )

    # 2. The overdue queue: without apology first, then with, then due soon, each in due order.
    queues = wait_queues_match(browser, events)
    sections = browser.find_elements(By.CSS_SELECTOR, "section.queue > section")
    assert [s.get_attribute("id") for s in sections] == [
        "q-overdue_without_apology",
        "q-overdue_with_apology",
        "q-due_soon",
    ]
    assert any(queues.values()), "the scenario has dossiers to act on"

    # 3. New events: the figures change without a reload.
    browser.execute_script("window.__sameDocument = true;")
    before = expected_rows([first, second], "month")
    agency = "SXD"
    procedure = next(p.code for p in catalog() if p.agency == agency)
    at = datetime.now(UTC).replace(microsecond=0)
    fresh = [
        {
            "event_id": f"BOARD-NEW-{n}-r",
            "dossier_id": f"BOARD-NEW-{n}",
            "type": "received",
            "occurred_at": at.isoformat(),
            "agency": agency,
            "procedure": procedure,
            "channel": "online",
            "processing_days": 10,
        }
        for n in range(3)
    ] + [
        {
            "event_id": f"BOARD-LATE-{n}-r",
            "dossier_id": f"BOARD-LATE-{n}",
            "type": "received",
            "occurred_at": (at - timedelta(days=60 + n)).isoformat(),
            "agency": agency,
            "procedure": procedure,
            "channel": "direct",
            # Printed appointments a week apart: with a computed one-day limit, receipts on a
            # Friday and a Saturday share Monday's due and the order falls to the id.
            "due_at": (at - timedelta(days=30 + 7 * n)).isoformat(),
        }
        for n in range(2)
    ]
    produce_events(kafka_broker.bootstrap, first.topic, fresh)
    events += fresh

    def updated() -> bool:
        rows = dict(browser.execute_script(READ_TABLE))
        shown = rows.get(agency, {})
        received = parse_figure(shown.get("received_today", ["–"])[0] or "–", "vi")
        no_apology = parse_figure(shown.get("overdue_without_apology", ["–"])[0] or "–", "vi")
        return (
            received == before[agency]["received_today"] + 3
            and no_apology == before[agency]["overdue_without_apology"] + 2
        )

    assert wait_for(updated, WAIT_S), "the page did not show the new events"
    wait_page_matches(browser, [first, second])
    queues = wait_queues_match(browser, events)
    assert queues["overdue_without_apology"][:2] == ["BOARD-LATE-1", "BOARD-LATE-0"]
    assert browser.execute_script("return window.__sameDocument === true"), "the page reloaded"
    top = browser.find_element(By.CSS_SELECTOR, "#q-overdue_without_apology tbody tr")
    link = top.find_element(By.CSS_SELECTOR, "a").get_attribute("href")
    assert link is not None
    with urllib.request.urlopen(link, timeout=10) as response:
        linked = orjson.loads(response.read())
    assert [i["dossier_id"] for i in linked["items"]][:2] == ["BOARD-LATE-1", "BOARD-LATE-0"]
    assert linked["complete"] is True
    assert_agencies_fit(browser)
    save_screenshot(browser, "board.png")
    browser.set_window_size(390, 844)  # a phone
    save_screenshot(browser, "board-phone.png", full_page=False)
    browser.set_window_size(1920, 1080)

    # 4. The language switch, and today's figures instead of the month's.
    browser.find_element(By.ID, "lang").click()
    assert wait_for(
        lambda: browser.execute_script("return document.documentElement.lang") == "en", 5
    )
    assert browser.find_element(By.TAG_NAME, "h1").text == "Dossier processing at the center"
    assert browser.find_element(By.ID, "lang").text == "Tiếng Việt"
    assert browser.find_element(By.CSS_SELECTOR, "footer [data-i18n=footer]").text == (
        "Figures from the motcua workers; dossiers carry only codes and times."
    )
    assert browser.find_element(By.ID, "departments-title").text == (
        "Where late dossiers sit (agency, department)"
    )
    wait_page_matches(browser, [first, second], lang="en")
    wait_departments_match(browser, [first, second], "en")
    titles = [n.title for n in NOT_MEASURED]
    assert wait_for(lambda: not_measured_titles(browser) == titles, 5), not_measured_titles(browser)
    assert browser.execute_script(READ_INDEX_LABELS)[:2] == [
        "Cổng DVCQG (portal rule)",
        "motcua: known facts",
    ]
    hand = dict(browser.execute_script(READ_INDEX))
    assert hand[f"{HAND}/portal"]["online_service"] == ["6.00 / 12", "⚠ 3.3: weight unverified"]
    assert hand[f"{HAND}/portal"]["total"] == ["35.00 / 50", ""]
    assert browser.find_element(By.CSS_SELECTOR, "#index thead th:last-child").text == (
        "Total compared with the portal (/50, 3.3 left out)"
    )
    browser.find_element(By.ID, "period-today").click()
    assert browser.find_element(By.ID, "period-today").get_attribute("aria-pressed") == "true"
    wait_page_matches(browser, [first, second], lang="en", period="today")
    assert_agencies_fit(browser)  # at 1920 × 1080, in English too
    save_screenshot(browser, "board-en.png")
    browser.find_element(By.ID, "period-month").click()
    browser.find_element(By.ID, "lang").click()
    assert wait_for(
        lambda: browser.execute_script("return document.documentElement.lang") == "vi", 5
    )
    assert browser.find_element(By.CSS_SELECTOR, "footer [data-i18n=footer]").text == (
        "Số liệu từ các worker motcua; hồ sơ chỉ gồm mã và thời điểm."
    )

    # 5. A worker stops: incomplete, the missing partitions named, no total.
    stop_and_see_incomplete(browser, board, first, second)
    save_screenshot(browser, "board-incomplete.png")
    assert browser.execute_script("return window.__sameDocument === true"), "the page reloaded"


SCROLL_Y = "return window.scrollY"
BANNER_TOP = "return document.getElementById('status').getBoundingClientRect().top"


def see_the_wall_scroll_with_its_banner(browser: WebDriver, board: BoardProcess) -> None:
    """`?wall`: the page goes down to its end by itself and back to the top, and the banner
    (here: a worker does not answer) stays on the screen all the way; then the plain page."""
    browser.get(board.url + "/?wall&speed=4000&pause=3")
    assert browser.execute_script(SCROLL_Y) == 0  # it rests at the top first
    assert wait_for(lambda: banner(browser)[0] != "", WAIT_S), "no banner in wall mode"
    bottom = browser.execute_script(
        "return document.documentElement.scrollHeight - window.innerHeight"
    )
    assert bottom > 0, "the board fits the screen: nothing to scroll"
    assert wait_for(lambda: browser.execute_script(SCROLL_Y) >= bottom - 1, 30), (
        f"the wall never reached the end: at {browser.execute_script(SCROLL_Y)} of {bottom}"
    )
    shown = browser.execute_script(BANNER_TOP)
    assert 0 <= shown < browser.execute_script("return window.innerHeight"), shown
    save_screenshot(browser, "board-wall-end.png", full_page=False)
    assert wait_for(lambda: browser.execute_script(SCROLL_Y) == 0, 30), "never back on top"
    # Reduced motion asked for: a screen at a time, never a glide.
    reduce = [{"name": "prefers-reduced-motion", "value": "reduce"}]
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": reduce})
    try:
        browser.get(board.url + "/?wall&pause=1")
        assert wait_for(lambda: browser.execute_script(SCROLL_Y) > 0, 10, 0.1), "it never moved"
        screen = browser.execute_script("return window.innerHeight")
        moved = browser.execute_script(SCROLL_Y)
        assert abs(moved - 0.9 * screen) <= 1, (moved, screen)  # one screen's step
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    browser.get(board.url + "/")
    time.sleep(2)  # the plain page does not move
    assert browser.execute_script(SCROLL_Y) == 0


def test_the_board_is_whole_again_when_the_other_worker_takes_over(
    kafka_broker: Any,
    worker_factory: Callable[..., WorkerProcess],
    board_factory: Callable[[list[WorkerProcess]], BoardProcess],
    browser: WebDriver,
) -> None:
    """After a worker stops, the group gives its partitions to the other one: the board is
    exact again (with the total), and still warns that a listed worker does not answer."""
    first, second, _, board = start_center(
        kafka_broker, worker_factory, board_factory, browser, dossiers=200
    )
    wait_page_matches(browser, [first, second])
    stop_and_see_incomplete(browser, board, first, second)
    see_the_wall_scroll_with_its_banner(browser, board)

    def complete_again() -> bool:
        text, cls = banner(browser)
        return "CHƯA ĐẦY ĐỦ" not in text and "warn" in cls and second.host_port in text

    assert wait_for(complete_again, 2 * WAIT_S), (
        f"never complete again: {banner(browser)}; the worker left says "
        f"{first.get('/readyz')[1][:600]!r}"
    )
    wait_page_matches(browser, [first])
    foot = browser.find_element(By.CSS_SELECTOR, "#agencies tfoot tr")
    assert foot.get_attribute("data-agency") == "__total__"
