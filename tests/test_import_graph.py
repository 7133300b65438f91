"""The import graph of ``common/`` is acyclic and visible to a tool: every import is an explicit
``import``/``from`` statement (at module level or inside a function), none goes through
``importlib.import_module`` or ``__import__``, so no loader plugin is hidden from the reader or from
``tools/stage_deps.py``."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def package_modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file, for every module of ``package`` under ``root`` (a package by its __init__)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """module -> the package's modules it imports (explicit statements at any depth of the file).

    ``from a import b`` is an edge to ``a.b`` when that is a module, else to ``a``. Importing a module
    also runs its enclosing packages, so they are edges too, except the importer's own ancestors
    (Python has already started them: a package whose ``__init__`` imports its submodules is no cycle).
    """
    modules = package_modules(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        own_package = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = own_package.split(".")[:len(own_package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in modules else base)
        edges = set()
        for target in targets:
            for candidate in [*_ancestors(target), target]:
                if candidate in modules and candidate != name and candidate not in _ancestors(name):
                    edges.add(candidate)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def dynamic_imports(root: Path, package: str) -> list[str]:
    """``file:line`` of every ``importlib.import_module(...)``, ``import_module(...)`` or ``__import__(...)``."""
    found = []
    for path in package_modules(root, package).values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called in ("import_module", "__import__"):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def _write_package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


# ----------------------------------------------------------------------------------------------- the checker
def test_the_checker_finds_a_planted_cycle_through_a_function_level_import(tmp_path):
    _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/base.py": "X = 1\n",
        "pkg/loader.py": "from pkg.base import X\n\ndef load():\n    from pkg import registry\n    return registry\n",
        "pkg/registry.py": "import pkg.loader\n",
    })
    cycle = find_cycle(import_graph(tmp_path, "pkg"))
    assert cycle is not None and set(cycle) == {"pkg.loader", "pkg.registry"} and cycle[0] == cycle[-1]


def test_the_checker_finds_a_cycle_through_a_subpackage_init_and_a_relative_import(tmp_path):
    _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/classifier.py": "def load():\n    from pkg.sub.model import Model\n",
        "pkg/sub/__init__.py": "from .helpers import helper\n",
        "pkg/sub/helpers.py": "from ..classifier import load\n",
        "pkg/sub/model.py": "class Model: ...\n",
    })
    cycle = find_cycle(import_graph(tmp_path, "pkg"))
    assert cycle is not None and "pkg.classifier" in cycle and "pkg.sub" in cycle


def test_the_checker_passes_an_acyclic_package_with_a_registry_that_imports_its_loaders(tmp_path):
    _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/base.py": "REGISTRY = {}\n",
        "pkg/onnx.py": "from pkg.base import REGISTRY\n",
        "pkg/quant.py": "from pkg import base\n",
        "pkg/loader.py": "from pkg import onnx, quant\nfrom pkg.base import REGISTRY\n",
        "pkg/sub/__init__.py": "from pkg.sub.model import Model\n",  # a package importing its own submodule
        "pkg/sub/model.py": "from pkg.base import REGISTRY\nclass Model: ...\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.loader"] == {"pkg.onnx", "pkg.quant", "pkg.base"}
    assert find_cycle(graph) is None


def test_the_dynamic_import_scan_finds_planted_ones(tmp_path):
    _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "import importlib\n\ndef f():\n    return importlib.import_module('pkg.b')\n",
        "pkg/b.py": "def g():\n    return __import__('pkg.a')\n",
        "pkg/c.py": "import importlib.metadata\nVERSION = importlib.metadata.version\n",
    })
    assert sorted(dynamic_imports(tmp_path, "pkg")) == ["pkg/a.py:4", "pkg/b.py:2"]


# ----------------------------------------------------------------------------------------------- the code
def test_common_has_no_import_cycle():
    graph = import_graph(ROOT, "common")
    assert "common.models.classifier" in graph and graph["common.models.classifier"] >= {
        "common.models.onnx_graph", "common.models.torch_int8", "common.models.mlp_student"}, "the loaders are imported explicitly"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_common_imports_nothing_by_name():
    assert dynamic_imports(ROOT, "common") == []


@pytest.mark.parametrize("loader", ["common.models.onnx_graph", "common.models.torch_int8", "common.models.mlp_student"])
def test_loaders_import_the_base_not_the_loader_registry(loader):
    assert "common.models.classifier" not in import_graph(ROOT, "common")[loader]
