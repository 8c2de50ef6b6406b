"""Importing any module builds nothing and reads nothing: `build_worker(settings)` and
`build_gateway(settings)` do it all when `motcua worker` or `motcua gateway` runs.

Each check imports every module of the project in a fresh interpreter whose environment
would break a module that read it (numbers that are not numbers, files that do not exist),
and watches what the imports do: environment variables read from project code, files opened
(audit hook), scrypt hashing, Prometheus collectors and registries, faust apps, aiohttp
applications, and what the gateway's modules leave in their globals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MISSING_UNITS = "/nonexistent/motcua-units.csv"

# Runs in the child. Everything it needs from the project is imported only after the
# watches are in place.
_CHILD = r"""
OPTIONAL = ("service.tools.bench.peer_quix",)
import gc, hashlib, importlib, json, os, pkgutil, sys, types
ROOT, EXTRA = sys.argv[1], sys.argv[2:]  # EXTRA: a directory and a module to import too
SOURCES = (ROOT + "/service", ROOT + "/schemas", ROOT + "/agents", *EXTRA[:1])
PROJECT = tuple(os.path.join(d, "") for d in SOURCES)
if EXTRA:
    sys.path.insert(0, EXTRA[0])
report = {"env": [], "opened": [], "scrypt": 0}

def project_frame():
    # The nearest caller that is neither this watcher nor the interpreter's own glue.
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(("<frozen", "<string")):
        frame = frame.f_back
    return frame is not None and frame.f_code.co_filename.startswith(PROJECT)

class WatchedEnviron(type(os.environ)):
    def __getitem__(self, key):
        if project_frame():
            report["env"].append(key)
        return super().__getitem__(key)

os.environ.__class__ = WatchedEnviron

def on_audit(event, args):
    if event == "open" and args[0] is not None:
        path = os.fsdecode(args[0]) if not isinstance(args[0], int) else ""
        code = path.endswith((".py", ".pyc", ".so")) or "__pycache__" in path
        if not code and (path.startswith(PROJECT) or "motcua" in path):
            report["opened"].append(path)

real_scrypt = hashlib.scrypt
def counting_scrypt(*args, **kwargs):
    report["scrypt"] += 1
    return real_scrypt(*args, **kwargs)
hashlib.scrypt = counting_scrypt

import prometheus_client
from aiohttp import web
before = set(prometheus_client.REGISTRY._names_to_collectors)
registries = sum(isinstance(o, prometheus_client.CollectorRegistry) for o in gc.get_objects())
sys.addaudithook(on_audit)

names = []
for package in ("schemas", "service", "agents"):
    module = importlib.import_module(package)
    names.append(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        # __main__ runs the CLI; the optional extra `peers` is not installed by the tests.
        if not info.name.endswith("__main__") and info.name not in OPTIONAL:
            importlib.import_module(info.name)
            names.append(info.name)
names += EXTRA[1:]
for name in EXTRA[1:]:
    importlib.import_module(name)
import faust

report["modules"] = names
report["collectors"] = sorted(set(prometheus_client.REGISTRY._names_to_collectors) - before)
report["registries"] = (
    sum(isinstance(o, prometheus_client.CollectorRegistry) for o in gc.get_objects())
    - registries
)
report["applications"] = sum(isinstance(o, web.Application) for o in gc.get_objects())
report["faust_apps"] = sum(isinstance(o, faust.App) for o in gc.get_objects())

# Module globals: only values that cannot change (constants, read-only mappings, frozen
# dataclasses of such), or the module's logger.
import dataclasses, enum, logging, pathlib, re, datetime, typing
IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, range, enum.Enum, pathlib.PurePath,
             re.Pattern, datetime.tzinfo, typing.TypeVar, web.AppKey, logging.Logger)

def immutable(value, depth=0):
    if depth > 20:
        return False
    if isinstance(value, IMMUTABLE):
        return True
    if isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)):
        return True
    if type(value).__module__ in ("typing", "__future__"):  # annotations, aliases
        return True
    if isinstance(value, (types.UnionType, types.GenericAlias)):
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(immutable(v, depth + 1) for v in value)
    if isinstance(value, types.MappingProxyType):
        return all(immutable(k, depth + 1) and immutable(v, depth + 1) for k, v in value.items())
    if dataclasses.is_dataclass(value) and type(value).__dataclass_params__.frozen:
        return all(immutable(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
    return False

# The gateway's modules and any probe; the worker's keep memo tables of pure functions
# (interned contributions, time zones), which hold no worker state.
mutable = []
for name in (n for n in names if n.startswith("service.ingest") or n in EXTRA[1:]):
    for key, value in vars(sys.modules[name]).items():
        if key.startswith("__") and key.endswith("__"):
            continue
        if not immutable(value):
            mutable.append(f"{name}.{key}: {type(value).__name__}")
report["mutable"] = mutable
print(json.dumps(report))
"""


def _import_everything(*extra: str) -> dict[str, object]:
    env = {
        **os.environ,
        "MOTCUA_GATEWAY_PORT": "not-a-number",
        "MOTCUA_UNITS_FILE": MISSING_UNITS,
        "MOTCUA_GATEWAY_SOURCES_FILE": "/nonexistent/motcua-sources.toml",
        "MOTCUA_GATEWAY_TOKENS_FILE": "/nonexistent/motcua-tokens",
        "MOTCUA_GATEWAY_TRUSTED_PROXIES": "not-a-network",
        "MOTCUA_PARTITIONS": "not-a-number",
        "MOTCUA_WEB_PORT": "not-a-port",
        "MOTCUA_CALENDAR_FILE": "/nonexistent/motcua-calendar.toml",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(ROOT), *extra],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_any_module_builds_and_reads_nothing() -> None:
    report = _import_everything()
    modules = report["modules"]
    assert isinstance(modules, list)
    # Every module was imported: all but service.__main__ and the optional peers module.
    assert {"service.ingest.gateway.server", "service.app", "agents.lifecycle"} <= set(modules)
    python_files = [p for d in ("schemas", "service", "agents") for p in (ROOT / d).rglob("*.py")]
    assert len(modules) == len(python_files) - 2
    assert report["env"] == [], "read the environment at import"
    assert report["opened"] == [], "opened a file at import"
    assert report["scrypt"] == 0, "hashed a password at import"
    assert report["collectors"] == [], "registered Prometheus collectors at import"
    assert report["registries"] == 0, "made a Prometheus registry at import"
    assert report["applications"] == 0, "built an aiohttp application at import"
    assert report["faust_apps"] == 0, "built a faust app at import"
    assert report["mutable"] == [], "module-global mutable state"


def test_the_watch_sees_a_module_that_reads_at_import(tmp_path: Path) -> None:
    # The same child, with one more module that does what the rule forbids: the report must
    # name each thing, so the check above can fail.
    (tmp_path / "import_probe.py").write_text(
        "import os\n"
        "from prometheus_client import Counter\n"
        "from service.ingest.gateway.credentials import hash_password\n"
        "PORT = os.environ['MOTCUA_GATEWAY_PORT']\n"
        "SEEN: list[str] = []\n"
        "LINE = hash_password('x')\n"
        f"TEXT = open({str(tmp_path / 'motcua-units.csv')!r}).read()\n"
        "REQUESTS = Counter('motcua_import_probe', 'probe')\n",
        encoding="utf-8",
    )
    (tmp_path / "motcua-units.csv").write_text("unit,agency\n", encoding="utf-8")
    report = _import_everything(str(tmp_path), "import_probe")
    assert report["env"] == ["MOTCUA_GATEWAY_PORT"]
    assert report["opened"] == [str(tmp_path / "motcua-units.csv")]
    assert report["scrypt"] == 1
    assert report["collectors"] == [
        "motcua_import_probe",
        "motcua_import_probe_created",
        "motcua_import_probe_total",
    ]
    mutable = report["mutable"]
    assert isinstance(mutable, list) and "import_probe.SEEN: list" in mutable
