"""House rule: no import circles between the files of the package (imports inside functions count)."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "analogmed"


def import_graph(root: Path = PKG) -> dict[str, set[str]]:
    """module -> modules of the package it imports (package ``__init__`` files are not nodes)."""
    mods = {".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in root.rglob("*.py")}
    files = {m for m, p in mods.items() if p.name != "__init__.py"}

    def resolve(name: str) -> str | None:
        parts = name.split(".")
        for i in range(len(parts), 1, -1):
            if ".".join(parts[:i]) in files:
                return ".".join(parts[:i])
        return None

    graph: dict[str, set[str]] = {m: set() for m in files}
    for m in files:
        p = mods[m]
        base = m.split(".")[:-1]
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                pre = base[:len(base) - node.level + 1] if node.level else []
                mod = ".".join(pre + ([node.module] if node.module else []))
                names = [mod] + [f"{mod}.{a.name}" for a in node.names]
            for n in names:
                t = resolve(n)
                if t and t != m:
                    graph[m].add(t)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_finds_a_planted_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_package_has_no_import_circles():
    g = import_graph()
    assert len(g) > 50 and "analogmed.study.runner" in g
    assert "analogmed.plots.study" not in g["analogmed.study.runner"]
    assert circles(g) == []
