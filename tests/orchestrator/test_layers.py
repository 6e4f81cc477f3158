"""The architecture as a contract: which package may import which, only `orchestrator/ray/` imports Ray, and no
module imports another that (directly or not) imports it back. Read from the source (every import, those
inside functions and under TYPE_CHECKING included), so a new arrow that breaks the layering fails here."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers.sweep import REPO

# a layer may import itself and the layers listed for it (the bottom modules everyone may use are in BOTTOM)
ALLOWED = {
    "orchestrator.study": {"orchestrator.study", "trials"},
    "orchestrator.run": {"orchestrator.run", "orchestrator.study", "trials"},
    "orchestrator.ray": {"orchestrator.ray", "orchestrator.run", "orchestrator.study", "trials", "ray"},
    "orchestrator.sweep": {"orchestrator.sweep", "orchestrator.ray", "orchestrator.run", "orchestrator.study",
                           "trials"},
    "orchestrator.cli": {"orchestrator", "trials", "analysis"},
    "orchestrator.docs": {"orchestrator", "trials", "analysis"},
    "trials": {"trials"},
    "analysis": {"analysis", "trials"},
}
BOTTOM = {"orchestrator.errors", "orchestrator.signals", "orchestrator.terminal"}
OURS = ("orchestrator", "trials", "analysis", "ray")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; `from a import b` counts as a.b when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name.split(".")[0] in OURS and name not in OURS}  # not a bare package


def sources() -> dict[str, Path]:
    paths = [*REPO.glob("orchestrator/**/*.py"), *REPO.glob("trials/**/*.py"), *REPO.glob("analysis/*.py")]
    return {module_name(p): p for p in paths}


def layer(name: str) -> str | None:
    return next((layer for layer in sorted(ALLOWED, key=len, reverse=True) if name == layer or
                 name.startswith(layer + ".")), None)


def test_each_layer_imports_only_the_layers_below_it():
    modules = sources()
    wrong = []
    for name, path in modules.items():
        own = layer(name)
        if own is None or name in BOTTOM:
            continue
        for target in imports(path):
            if target in BOTTOM or any(target.startswith(b + ".") for b in BOTTOM):
                continue
            if not any(target == a or target.startswith(a + ".") for a in ALLOWED[own]):
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_only_orchestrator_ray_imports_ray():
    importers = {name for name, path in sources().items()
                 if any(t == "ray" or t.startswith("ray.") for t in imports(path))}
    assert importers and all(name.startswith("orchestrator.ray") for name in importers), importers


def test_no_import_cycles():
    modules = sources()
    graph = {name: {t for t in imports(path) if t in modules and t != name} for name, path in modules.items()}
    for name in graph:  # a package's __init__ is not a dependency of its modules
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" → ".join([*stack[stack.index(target):], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(cycles)


def test_no_private_attribute_of_ray_is_used():
    """Ray renames its internals between releases: decaylab uses its public API only. Ruff's SLF001 catches
    `obj._name`; this catches what it does not, a private module (`ray._private.…`) imported or reached through
    `ray.`. An unavoidable one carries a noqa with its reason on the same line."""
    used = []
    for name, path in sources().items():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            elif isinstance(node, ast.Attribute):
                modules = [ast.unparse(node)]
            else:
                continue
            private = [m for m in modules if m.split(".")[0] == "ray" and any(
                part.startswith("_") and not part.startswith("__") for part in m.split("."))]
            if private and "noqa" not in lines[node.lineno - 1]:
                used.append(f"{name}:{node.lineno}: {private[0]}")
    assert not used, "\n".join(sorted(set(used)))
