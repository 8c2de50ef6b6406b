"""The house rules a reader relies on: data flows one way through the layout, and no module
imports itself back round a cycle (even for type checking). That importing a module does no
work is tests/unit/test_import_time.py's.

Stages, in the order an event travels: the contract (schemas), the pure domain core and shared
reference (settings, security), the sources (ingest), state, outputs, then what assembles and
runs them (the app, agents, the worker, tools, the CLI). A module may import its own stage and
earlier ones only.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "service", "agents")
STAGES = [
    ("schemas", 0),
    ("service.domain", 1),
    ("service.reference", 1),
    ("service.settings", 1),
    ("service.kafka_security", 1),
    ("service.ingest", 2),
    ("service.state", 3),
    ("service.outputs", 4),
    ("service.faust_fixes", 5),
    ("service.app", 5),
    ("agents", 6),
    ("service.worker", 7),
    ("service.tools", 8),
    ("service.cli", 9),
    ("service.__main__", 9),
    ("service", 0),  # the package itself: nothing in it
]


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports() -> dict[str, set[str]]:
    """Every project module each module imports: at the top, in functions, and under
    TYPE_CHECKING alike."""
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join([*package, base] if base else package)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    edges[name].add(target)
    return edges


def stage(name: str) -> int:
    for prefix, number in STAGES:
        if name == prefix or name.startswith(prefix + "."):
            return number
    raise AssertionError(f"{name}: in no stage of the layout (add it to STAGES)")


def test_no_module_imports_a_later_stage() -> None:
    wrong = [
        f"{name} ({stage(name)}) imports {target} ({stage(target)})"
        for name, targets in sorted(imports().items())
        for target in sorted(targets)
        if stage(target) > stage(name)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_even_under_type_checking() -> None:
    edges = imports()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(edges.get(name, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(modules()):
        if name not in state:
            visit(name)
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_checks_see_imports_under_type_checking_and_in_functions() -> None:
    """The two checks above would pass vacuously if the scan missed these forms."""
    edges = imports()
    assert "service.app" in edges["agents.lifecycle"]  # a top-level import
    assert "service.tools.demo" in edges["service.cli"]  # inside a command function
    assert "service.tools.bench.run" in edges["service.tools.bench.queue_pages"]  # TYPE_CHECKING
