"""Layering of the central system (DESIGN.md, issue 13): no import cycle between its modules, and neither
``backend_stub.domain``, ``backend_stub.web`` nor ``backend_stub.ocpi`` imports ``backend_stub.ocpp`` (only it knows
OCPP versions; OCPI sits on the domain, never on OCPP frames)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import backend_stub

ROOT = Path(backend_stub.__file__).parent
PACKAGE = "backend_stub"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, source: str) -> set[str]:
    """The backend_stub modules ``source`` (module ``name``) imports anywhere, TYPE_CHECKING and functions included."""
    is_package = name in MODULES and MODULES[name].name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # `from backend_stub import api` imports the module backend_stub.api
            targets = [
                f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in MODULES
            ]
            targets.append(module)
        for target in targets:
            # the deepest backend_stub module the name points into (a name inside a module counts as the module)
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE + ".") and target != name and MODULES[target].name != "__init__.py":
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the backend_stub modules it imports (package __init__ files, which hold no code, left out)."""
    return {name: _imports(name, path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_layers_exist() -> None:
    for package in ("ocpp", "domain", "web", "store", "testing", "ocpi"):
        assert f"{PACKAGE}.{package}" in MODULES or any(
            m.startswith(f"{PACKAGE}.{package}.") for m in MODULES
        )


def test_no_import_cycle_between_central_system_modules() -> None:
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("layer", ["domain", "web", "ocpi"])
def test_layer_does_not_import_ocpp(layer: str) -> None:
    prefix = f"{PACKAGE}.{layer}."
    bad = {
        name: sorted(t for t in targets if t.startswith(f"{PACKAGE}.ocpp."))
        for name, targets in import_graph().items()
        if name.startswith(prefix)
    }
    assert {name: targets for name, targets in bad.items() if targets} == {}


def test_only_the_command_line_and_compatibility_names_import_testing() -> None:
    """The production server carries no test knobs: ocpp/, domain/, web/, the store and app.py never import them."""
    allowed = {f"{PACKAGE}.__main__", f"{PACKAGE}.ocpp_server"}
    bad = [
        (n, t)
        for n, ts in import_graph().items()
        if n not in allowed and not n.startswith(f"{PACKAGE}.testing.")
        for t in ts
        if t.startswith(f"{PACKAGE}.testing.")
    ]
    assert bad == []


def test_domain_and_web_do_not_import_ocpi() -> None:
    """OCPI is an adapter on the domain: the domain tells it changes through observers, never by import."""
    bad = [
        (n, t)
        for n, ts in import_graph().items()
        if n.startswith((f"{PACKAGE}.domain.", f"{PACKAGE}.web.", f"{PACKAGE}.store."))
        for t in ts
        if t.startswith(f"{PACKAGE}.ocpi.")
    ]
    assert bad == []


def test_domain_does_not_import_web() -> None:
    graph = import_graph()
    bad = [
        (n, t)
        for n, ts in graph.items()
        if n.startswith(f"{PACKAGE}.domain.")
        for t in ts
        if ".web." in f"{t}."
    ]
    assert bad == []


def test_checker_sees_cycles_and_every_kind_of_import() -> None:
    """The checker finds a cycle, and sees function-level, TYPE_CHECKING and `from package import module` imports."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from backend_stub.domain.central import Central\n"
        "def f():\n"
        "    from backend_stub.ocpp import server\n"
        "from . import pricing\n"
    )
    assert _imports("backend_stub.domain.sessions", source) == {
        "backend_stub.domain.central",
        "backend_stub.ocpp.server",
        "backend_stub.domain.pricing",
    }
