"""The import rules of docs/ARCHITECTURE.md, read from the code itself: every import statement of every module in
indexer/, search/ and web/ (parsed with `ast`, inside functions too; `if TYPE_CHECKING:` blocks never run and are
left out), and `lint-imports` on the contracts in pyproject.toml."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("web", "search", "indexer")  # each may import only those after it
INFERENCE, TRAINING = "indexer.model", "indexer.model.training"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool

    def __str__(self) -> str:
        where = "inside a function" if self.in_function else "module level"
        return f"{self.importer} -> {self.imported} ({self.importer.replace('.', '/')}.py:{self.line}, {where})"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    found = {_module_name(p): p for layer in LAYERS for p in (ROOT / layer).rglob("*.py")}
    assert set(LAYERS) <= set(found) and len(found) > 30, sorted(found)
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, name: str, is_package: bool) -> list[str]:
    """The project modules an import statement loads: `from a import b` is module a.b when there is one, else a."""
    known = modules()
    if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = name if is_package else name.rpartition(".")[0]
            anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{anchor}.{base}" if base else anchor
        candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    targets = []
    for candidate in candidates:
        while candidate and candidate not in known:  # `import a.b.C`-style names: the longest module prefix
            candidate = candidate.rpartition(".")[0]
        if candidate and candidate not in targets:
            targets.append(candidate)
    return targets


def _walk(node: ast.AST, name: str, is_package: bool, in_function: bool, out: list[Import]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                _walk(other, name, is_package, in_function, out)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            out.extend(Import(name, target, child.lineno, in_function)
                       for target in _targets(child, name, is_package) if target != name)
        _walk(child, name, is_package, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                          ast.Lambda)), out)


@cache
def imports() -> tuple[Import, ...]:
    """Every import of one project module by another."""
    out: list[Import] = []
    for name, path in sorted(modules().items()):
        _walk(ast.parse(path.read_text(encoding="utf-8"), str(path)), name, path.name == "__init__.py", False, out)
    return tuple(out)


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _cycles(edges: list[Import]) -> list[str]:
    """Each strongly connected component of the graph (Tarjan's algorithm): its modules and one cycle in it."""
    graph: dict[str, dict[str, Import]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, {}).setdefault(edge.imported, edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [f"{', '.join(sorted(c))}; e.g. " + " ; ".join(map(str, _cycle_in(graph, c))) for c in components]


def _cycle_in(graph: dict[str, dict[str, Import]], component: set[str]) -> list[Import]:
    """A shortest cycle through the component's smallest module (breadth-first back to itself)."""
    start = min(component)
    came_from: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt, edge in sorted(graph.get(node, {}).items()):
                if nxt not in component or nxt in came_from:
                    continue
                came_from[nxt] = edge
                if nxt == start:
                    path = [edge]
                    while path[0].importer != start:
                        path.insert(0, came_from[path[0].importer])
                    return path
                following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def _report(title: str, findings: list) -> str:
    return title + "\n" + "\n".join(f"  {item}" for item in findings)


def test_the_walker_sees_the_imports_that_are_there():
    found = {(i.importer, i.imported) for i in imports()}
    assert ("indexer.pipeline", "indexer.ingest") in found  # `from indexer.ingest import ...`
    assert ("web.cli", "indexer.config") in found
    assert any(i.in_function for i in imports())


def test_layers_import_only_downwards():
    """web -> search -> indexer: no indexer module imports search or web, no search module imports web."""
    upward = [i for i in imports() if _layer(i.imported) < _layer(i.importer)]
    assert not upward, _report("imports against the one-way rule web -> search -> indexer:", upward)


def test_inference_never_reaches_training():
    """Loading the model to encode never loads training code, not even through another module."""
    reach: dict[str, Import] = {}
    frontier = [m for m in modules() if _within(m, INFERENCE) and not _within(m, TRAINING)]
    seen = set(frontier)
    while frontier:
        following = []
        for edge in (i for i in imports() if i.importer in frontier and i.imported not in seen):
            seen.add(edge.imported)
            reach[edge.imported] = edge
            following.append(edge.imported)
        frontier = following
    chains = []
    entries = [m for m, edge in reach.items() if _within(m, TRAINING) and not _within(edge.importer, TRAINING)]
    for module in sorted(entries):
        chain = [reach[module]]
        while chain[0].importer in reach:
            chain.insert(0, reach[chain[0].importer])
        chains.append(" then ".join(map(str, chain)))
    assert not chains, _report(f"{INFERENCE} reaches {TRAINING}:", chains)


def test_no_import_cycles():
    """No module imports itself again through others, at module level or inside functions (a cycle hidden in a
    function is still two modules that cannot be understood, tested or moved apart)."""
    cycles = _cycles(list(imports()))
    assert not cycles, _report("modules in import cycles:", cycles)


def test_import_linter_contracts_are_kept():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "lint-imports is missing: install the test extras (pip install -e '.[test]')"
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
