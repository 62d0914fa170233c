"""The layers of docs/architecture.md, read from the source: which folder of
the server may import which, what each may never import, and no import
cycle anywhere in the project."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("reactor", "client", "loadgen", "visualizer", "benchmarks", "classroom", "harness")

#: Layer of each part of the server, bottom first. A module may import its
#: own layer and those below, and never a sibling: the chat core and the I/O
#: models meet only in the wiring.
LAYERS = {
    "base": {"base"},
    "sync": {"base", "sync"},
    "tracing": {"base", "sync", "tracing"},
    "chat": {"base", "sync", "tracing", "chat"},
    "net": {"base", "sync", "tracing", "net"},
    "cluster": {"base", "sync", "tracing", "chat", "cluster"},
    "wiring": {"base", "sync", "tracing", "chat", "net", "cluster", "wiring"},
}
#: The one layer that may import more than the standard library: the
#: cluster's drivers, an optional extra (`pip install 'reactor-chat[cluster]'`).
DRIVERS = {"cluster": {"psycopg", "psycopg_pool", "redis"}}
WIRING = {"reactor.server", "reactor.cli", "reactor.__main__"}

#: Standard-library modules a layer must never import.
FORBIDDEN = {
    "base": {"socket", "selectors", "ssl"},
    "sync": {"socket", "selectors", "ssl"},
    "tracing": {"socket", "selectors", "ssl"},
    "chat": {"socket", "selectors", "ssl"},
    "cluster": {"selectors", "ssl"},
}
SANS_IO = ("reactor.protocol", "reactor.net.outqueue", "reactor.net.intake")


def layer_of(module: str) -> str:
    if module in WIRING:
        return "wiring"
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in ("chat", "net", "sync", "tracing", "cluster"):
        return parts[1]
    return "base"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str) -> set[str]:
    """Every module `source` imports, anywhere in it (functions and
    TYPE_CHECKING blocks too: a lazy import is still a dependency)."""
    found: set[str] = set()
    package = module if module.count(".") == 0 else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def sources(package: str) -> dict[str, str]:
    return {
        module_name(p): p.read_text(encoding="utf-8")
        for p in sorted((ROOT / package).rglob("*.py"))
    }


def project_modules() -> dict[str, str]:
    out: dict[str, str] = {}
    for package in PACKAGES:
        if (ROOT / package).is_dir():
            out.update(sources(package))
    return out


def layer_violations(modules: dict[str, str]) -> list[str]:
    """What breaks the layer rules, one line each (empty: none)."""
    problems = []
    for module, source in modules.items():
        if not module.startswith("reactor"):
            continue
        mine = layer_of(module)
        for target in imports_of(source, module):
            top = target.split(".")[0]
            if top == "reactor" and target in modules:
                theirs = layer_of(target)
                if theirs not in LAYERS[mine]:
                    problems.append(f"{module} ({mine}) imports {target} ({theirs})")
            elif top != "reactor" and top != "__future__":
                if top not in sys.stdlib_module_names and top not in DRIVERS.get(mine, ()):
                    problems.append(f"{module} imports {target}: the server is stdlib only")
                if top in FORBIDDEN.get(mine, ()):
                    problems.append(f"{module} ({mine}) imports {top}")
                if module.startswith(SANS_IO) and top in ("socket", "selectors", "threading"):
                    problems.append(f"{module} is sans-IO but imports {top}")
    return problems


def cycles(modules: dict[str, str]) -> list[list[str]]:
    """Import cycles among `modules` (Tarjan's strongly connected components)."""
    graph = {
        m: {t for t in imports_of(s, m) if t in modules and t != m} for m, s in modules.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_layers_server_imports_point_down_only():
    assert layer_violations(project_modules()) == []


def test_layers_no_import_cycle_in_any_package():
    assert cycles(project_modules()) == []


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("reactor.chat.commands", "import socket\n", "imports socket"),
        ("reactor.chat.commands", "from reactor.net.loop import Reactor\n", "(net)"),
        ("reactor.net.loop", "from reactor.chat.pool import Pool\n", "(chat)"),
        ("reactor.sync.locks", "from reactor.tracing.recorder import Tracer\n", "(tracing)"),
        ("reactor.protocol.framing", "import threading\n", "sans-IO"),
        ("reactor.chat.storage", "import psycopg\n", "stdlib only"),
        ("reactor.cluster.feed", "import numpy\n", "stdlib only"),
        ("reactor.cluster.feed", "from reactor.net.loop import Reactor\n", "(net)"),
        ("reactor.chat.commit", "from reactor.cluster.feed import ClusterFeed\n", "(cluster)"),
    ],
)
def test_layers_checker_catches_a_wrong_import(module, source, why):
    modules = project_modules()
    modules[module] = modules.get(module, "") + source
    assert any(why in p for p in layer_violations(modules))


def test_layers_cycle_checker_catches_a_cycle():
    modules = {"a.x": "import a.y\n", "a.y": "from a import x\n", "a": ""}
    assert cycles(modules) == [["a.x", "a.y"]]
