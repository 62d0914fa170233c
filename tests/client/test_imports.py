"""The client's modules import one another without cycles, the shared
ones never import a UI, and the line rules need no prompt_toolkit."""

from __future__ import annotations

import ast
from pathlib import Path

import client

FOLDER = Path(client.__file__).parent
UIS = {"repl", "tui", "cli"}
#: Modules that must not import prompt_toolkit or the connection.
SANS_UI = {"lines"}


def imports_of(module: str) -> set[str]:
    """Every module name `client/<module>.py` imports (top level or not)."""
    tree = ast.parse((FOLDER / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "client":
                found.update(f"client.{alias.name}" for alias in node.names)
    return found


def client_graph() -> dict[str, set[str]]:
    modules = {p.stem for p in FOLDER.glob("*.py") if p.stem != "__init__"}
    return {
        m: {i.split(".")[1] for i in imports_of(m) if i.startswith("client.")} & modules
        for m in modules
    }


def test_client_imports_have_no_cycles():
    graph = client_graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, "import cycle: " + " -> ".join([*path, module])
        if module in done:
            return
        for other in sorted(graph[module]):
            visit(other, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_client_shared_modules_import_no_ui():
    for module, imported in client_graph().items():
        if module not in UIS:
            assert not imported & UIS, f"client/{module}.py imports {imported & UIS}"


def test_client_line_rules_need_no_prompt_toolkit():
    for module in SANS_UI:
        imported = imports_of(module)
        assert not {i for i in imported if i.startswith(("prompt_toolkit", "client", "asyncio"))}
