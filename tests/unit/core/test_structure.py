"""The package's shape (issue 12): no import cycles (imports inside functions count), no module over 300
lines, cv2 imported by one module only (capture/opencv.py). The logic is /work/shared/hooks/structure.py's."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PKG = REPO / "rtsp2jpg"
MAX_LINES = 300


def modules(pkg: Path = PKG) -> dict[str, Path]:
    found = {}
    for path in pkg.rglob("*.py"):
        rel = ".".join(path.relative_to(pkg.parent).with_suffix("").parts)
        found[rel[:-9] if rel.endswith(".__init__") else rel] = path
    return found


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = m.split(".") if path.name == "__init__.py" else m.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                names = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
            for target in names:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != m and target != "rtsp2jpg":
                    graph[m].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
                comps.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return comps


def test_no_import_cycles() -> None:
    found = cycles(import_graph(modules()))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_module_over_300_lines() -> None:
    long = {m: n for m, p in modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_cv2_is_imported_by_one_module() -> None:
    pattern = re.compile(r"^\s*(import cv2|from cv2 )", re.M)
    users = sorted(m for m, p in modules().items()
                   if ".demo" not in m and pattern.search(p.read_text(encoding="utf-8")))
    assert users == ["rtsp2jpg.capture.opencv"], users


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """A cycle through an import inside a function is found, and so is a long module."""
    pkg = tmp_path / "rtsp2jpg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from rtsp2jpg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from rtsp2jpg import a\n" + "#\n" * MAX_LINES)
    mods = modules(pkg)
    assert cycles(import_graph(mods)) == [["rtsp2jpg.a", "rtsp2jpg.sub.b"]]
    assert len(mods["rtsp2jpg.sub.b"].read_text().splitlines()) > MAX_LINES
