"""Fail when the packages of lumina_plugin (and lumina_hooks) import each other in a cycle.

A "package" is a top-level module or subpackage of lumina_plugin (``lumina_plugin.catalog``,
``lumina_plugin.engine``...). Every import statement counts, also those inside functions
(a deferred import still makes the two packages depend on each other). Run from the
repository root: ``python .ci/import_cycles.py``; exit 1 lists each cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOTS = {"lumina_plugin": Path("lumina_plugin"), "lumina_hooks": Path("hooks")}


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "lumina_plugin" and len(parts) > 1 else parts[0]


def module_name(root: str, base: Path, path: Path) -> str:
    rel = path.relative_to(base).with_suffix("")
    parts = [root, *rel.parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(root: str, base: Path, path: Path) -> set[str]:
    name = module_name(root, base, path)
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = name.split(".")
                parent = parent if is_pkg else parent[:-1]
                parent = parent[: len(parent) - node.level + 1]
                target = ".".join(parent + ([node.module] if node.module else []))
                if node.module is None:  # from . import x: each x may be a module
                    found.update(f"{target}.{a.name}" for a in node.names)
                found.add(target)
            elif node.module:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] in ROOTS}


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    known: set[str] = set()
    for root, base in ROOTS.items():
        for path in base.rglob("*.py"):
            known.add(module_name(root, base, path))
    for root, base in ROOTS.items():
        for path in sorted(base.rglob("*.py")):
            src = package_of(module_name(root, base, path))
            for mod in imports(root, base, path):
                while mod not in known and "." in mod:  # "from pkg import name" of a non-module
                    mod = mod.rsplit(".", 1)[0]
                dst = package_of(mod)
                if dst != src and mod != "lumina_plugin":
                    edges.setdefault(src, set()).add(dst)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    edges = graph()
    found = cycles(edges)
    for comp in found:
        inner = {s: sorted(d & set(comp)) for s, d in edges.items() if s in comp}
        print("import cycle among packages:", ", ".join(comp))
        for s, ds in sorted(inner.items()):
            print(f"    {s} -> {', '.join(ds)}")
    if not found:
        print(f"no package-level import cycle ({len(edges)} packages with imports)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
