"""The package's layers import downwards only (antq/__init__.py lists them), with no circles.

Every import is counted, the lazy ones inside functions too (only ``if TYPE_CHECKING:`` blocks are
not imports): ``core`` imports nothing above it and nothing but numpy outside the standard library;
``driver`` never reaches ``emu``; two layers of the same rank never import each other.
"""

import ast
import sys
from pathlib import Path

import antq
import pytest

PACKAGE = Path(antq.__file__).resolve().parent
RANK = {"core": 0, "toolchain": 1, "model": 2, "driver": 2, "emu": 3, "run": 4, "top": 5}
"""Layer -> rank. A module may import its own layer and layers of lower rank, nothing else."""
NUMPY_ONLY = {"antq.core", "antq.model.graph", "antq.model.hostops", "antq.model.configs",
              "antq.model.baselines", "antq.model.datasets"}
"""Modules the board runs without torch: standard library, numpy, scipy (erf), sklearn (digits) only."""
ALLOWED_THIRD_PARTY = {"numpy", "scipy", "sklearn", "tqdm"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> str:
    """``antq.<layer>...``; the package root, ``antq.cli`` and ``antq.__main__`` are the top layer."""
    parts = module.split(".")
    return "top" if len(parts) == 1 or parts[1] in ("cli", "__main__") else parts[1]


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, lazy ones included."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = [f"{mod}.{a.name}" for a in node.names]
            subs = [s for s in subs if (PACKAGE.parent / Path(*s.split("."))).with_suffix(".py").exists()
                    or (PACKAGE.parent / Path(*s.split("."))).is_dir()]
            # `from . import x` imports the submodule x; `from .m import name` imports m
            out.extend((node.lineno, s) for s in subs) if len(subs) == len(node.names) else \
                out.append((node.lineno, mod))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return out


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
GRAPH = {_module_name(p): [(line, m) for line, m in _imports(p)] for p in SOURCES}


def violations(me: str, imports: list[tuple[int, str]]) -> list[str]:
    """What is wrong with module ``me`` importing ``imports`` ((line, module) pairs)."""
    bad = []
    for line, target in imports:
        top = target.split(".")[0]
        if top == "antq":
            if target == "antq" and me != "antq":
                bad.append(f"line {line}: imports the package root `antq` (import the module it needs)")
                continue
            mine, theirs = _layer(me), _layer(target)
            if mine != theirs and RANK[theirs] >= RANK[mine]:
                bad.append(f"line {line}: {me} ({mine}, rank {RANK[mine]}) imports {target} "
                           f"({theirs}, rank {RANK[theirs]})")
        elif any(me == m or me.startswith(m + ".") for m in NUMPY_ONLY):
            if top not in ALLOWED_THIRD_PARTY and top not in sys.stdlib_module_names and top != "__future__":
                bad.append(f"line {line}: {me} must run without torch or pynq, but imports {target}")
    return bad


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path):
    bad = violations(_module_name(path), GRAPH[_module_name(path)])
    assert not bad, "\n".join(bad)


def test_no_import_circles():
    edges = {m: {t for _, t in deps if t.startswith("antq.") and t in GRAPH and t != m}
             for m, deps in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (cycle := dfs(t)):
                return cycle
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(edges):
        if m not in state and (cycle := dfs(m)):
            pytest.fail("import circle: " + " -> ".join(cycle))


def test_the_checker_catches_what_it_must():
    """The walk finds lazy relative imports, and the rules flag driver -> emu, model <-> driver,
    core -> anything above, torch in a board module and imports of the package root."""
    imports = {m for _, m in _imports(PACKAGE / "run" / "backends.py")}
    assert {"antq.emu", "antq.driver", "antq.core.regmap"} <= imports  # `from .. import emu` is lazy
    assert violations("antq.driver.overlay", [(1, "antq.emu.device")])
    assert violations("antq.model.export", [(1, "antq.driver")])
    assert violations("antq.core.pack", [(1, "antq.toolchain.paths")])
    assert violations("antq.model.graph", [(1, "torch")])
    assert violations("antq.run.demo", [(1, "antq")])
    assert not violations("antq.run.demo", [(1, "antq.model.zoo"), (2, "torch")])


def test_one_home_for_paths():
    """Only the paths modules locate files from the package's own position: antq.core.paths (the
    checkout and build folder, which core's g++ kernel needs) and antq.toolchain.paths (the rest)."""
    homes = {PACKAGE / "core" / "paths.py", PACKAGE / "toolchain" / "paths.py"}
    offenders = [str(p.relative_to(PACKAGE)) for p in SOURCES
                 if p not in homes and ("parents[" in p.read_text() or "__file__" in p.read_text())]
    assert offenders == []
