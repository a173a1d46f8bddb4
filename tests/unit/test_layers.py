"""The import contract: which part of salespulse may import which (README, "Layout").

Layers, lowest first; a module may import its own layer and those below it, never above:

1. **core** — the canonical models, settings sections, directory, calendar, errors, backoff,
   metric names: what every other part shares. Imports none of the others.
2. **data path** — ``ingest`` (bridges onto Kafka), ``processors`` (parsers, the batch pipeline,
   the alert rules: pure logic), ``sinks`` (writes to ClickHouse, alert delivery, dead letters)
   and ``queries`` (reads from ClickHouse). They import the core and not one another, except
   where the data runs from one to the next (``CROSSINGS``).
3. **application** — the processes and what people use: the worker, the alert service, the
   page, reports, the summary, the command line and its commands, the settings as a whole.
4. **development tools** — the local stack, the demo, the traffic generator, the direct loader.
   Nothing of the product imports them; the command line finds their commands as a plugin
   (``salespulse.commands`` entry points).

The layers cut across the folders: ``salespulse/`` holds the core, the application's commands
and the development tools; ``processors/`` the pure logic and the worker around it. The patterns
below say which is which, first match wins, and every module must match one (a new module
cannot slip past the contract). docs/adr/0015-layers.md has the reasons.
"""

from __future__ import annotations

import ast
import fnmatch
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("salespulse", "ingest", "processors", "sinks", "queries")


@dataclass(frozen=True)
class Layer:
    name: str
    rank: int  # higher may import lower
    patterns: tuple[str, ...]


LAYERS: tuple[Layer, ...] = (
    Layer(
        "development tools",
        4,
        (
            "salespulse.stack",
            "salespulse.stack_*",
            "salespulse.demo",
            "salespulse.demo_*",
            "salespulse.dev_commands",
            "ingest.generator",
            "ingest.generator.*",
            "processors.direct_load",
        ),
    ),
    Layer(
        "application",
        3,
        (
            "salespulse.cli",
            "salespulse.__main__",
            "salespulse.settings",
            "salespulse.*_commands",
            "salespulse.worker_process",
            "salespulse.reports",
            "salespulse.reports.*",
            "salespulse.summary",
            "salespulse.history_import",
            "salespulse.source_check",
            "processors.worker",
            "processors.runtime",
            "processors.health",
            "processors.batch_consumer",
            "processors.consumer_lag",
            "processors.alert_service",
            "processors.baseline_keeper",
            "processors.web",
            "processors.web.*",
        ),
    ),
    Layer("ingest", 2, ("ingest", "ingest.*")),
    Layer("processors", 2, ("processors", "processors.*")),
    Layer("sinks", 2, ("sinks", "sinks.*")),
    Layer("queries", 2, ("queries", "queries.*")),
    Layer("core", 1, ("salespulse", "salespulse.*")),
)

# Where the data path runs from one part to the next: (importing layer, imported modules).
CROSSINGS: tuple[tuple[str, str], ...] = (
    # A bridge checks a record with its parser before it sends it (the AMI bridge's CEL
    # grouping, the presence events): the same parsers the worker runs.
    ("ingest", "processors.parsers*"),
    # The ClickHouse sink and the dead-letter topic write the rows the batch pipeline makes.
    ("sinks", "processors.pipeline"),
    # Reads use the ClickHouse connection, table names and metric definitions of the writes.
    ("queries", "sinks.clickhouse*"),
)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def layer_of(module: str) -> Layer | None:
    for layer in LAYERS:
        if any(fnmatch.fnmatchcase(module, pattern) for pattern in layer.patterns):
            return layer
    return None


def _imported(module: str, path: Path) -> set[str]:
    """The project's modules ``module`` imports anywhere in its text (inside functions and
    ``TYPE_CHECKING`` blocks too: a lazy import is still a dependency)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        # The longest known module the name is or lies in (``x.y.Class`` is in ``x.y``).
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


IMPORTS = {module: _imported(module, path) for module, path in MODULES.items()}


def _allowed(importer: Layer, imported_module: str, imported: Layer) -> bool:
    if imported.rank < importer.rank or imported is importer:
        return True
    if imported.rank > importer.rank:
        return False
    return any(
        importer.name == layer and fnmatch.fnmatchcase(imported_module, pattern)
        for layer, pattern in CROSSINGS
    )


def test_every_module_belongs_to_a_layer() -> None:
    assert [module for module in MODULES if layer_of(module) is None] == []


def test_no_module_imports_a_layer_it_may_not() -> None:
    broken = []
    for module, imported in sorted(IMPORTS.items()):
        importer = layer_of(module)
        assert importer is not None
        for target in sorted(imported):
            layer = layer_of(target)
            assert layer is not None
            if not _allowed(importer, target, layer):
                broken.append(f"{module} ({importer.name}) imports {target} ({layer.name})")
    assert broken == []


def _unit(module: str) -> str:
    """A top-level package's direct submodule or subpackage: ``processors.parsers``."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_units() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, imported in IMPORTS.items():
        for target in imported:
            if _unit(target) != _unit(module) and "." in _unit(target):
                edges[_unit(module)].add(_unit(target))
    assert _cycles(edges) == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one unit (Tarjan)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(edges) | {t for targets in edges.values() for t in targets}):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("salespulse.models", "salespulse.errors", True),  # core within core
        ("salespulse.sections", "ingest.raw_producer", False),  # the core imports nothing above
        ("processors.alerting.rules", "sinks.clickhouse.client", False),  # logic is not I/O
        ("ingest.ami", "processors.parsers.asterisk_cel", True),  # a crossing
        ("sinks.clickhouse.sink", "processors.pipeline", True),  # a crossing
        ("sinks.clickhouse.sink", "processors.alerting.rules", False),
        ("processors.worker", "sinks.clickhouse.client", True),  # the application composes
        ("salespulse.cli", "salespulse.stack", False),  # the product never imports dev tools
        ("salespulse.demo", "processors.worker", True),  # dev tools may use the product
    ],
)
def test_the_contract_says_what_the_readme_draws(
    importer: str, imported: str, allowed: bool
) -> None:
    importer_layer, imported_layer = layer_of(importer), layer_of(imported)
    assert importer_layer is not None
    assert imported_layer is not None
    assert _allowed(importer_layer, imported, imported_layer) is allowed
