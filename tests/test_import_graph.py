"""The import graph of ``common/`` is acyclic, layered and visible to a tool.

* Every import is an explicit ``import``/``from`` statement (at module level or inside a function), none goes
  through ``importlib.import_module`` or ``__import__``, so no loader plugin is hidden from the reader or from
  ``tools/stage_deps.py``.
* The packages form layers (:data:`LAYERS`, lowest first; ``common/README.md`` draws them): a module imports
  from its own package or from a lower layer, never upward or sideways.
* A module of another package is imported only if that package's ``__init__`` lists it in ``__all__``, and no
  module imports another's ``_private`` name (stage scripts and tools included; tests may reach inside).
* ``common/`` keeps at most :data:`MAX_TOP_MODULES` modules at its top and no module over :data:`MAX_LINES`.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> layer; the top-level modules of ``common`` are the package "common".
LAYERS = {"common": 0, "common.models": 1, "common.compress": 2, "common.quantize": 2, "common.export": 3,
          "common.bench": 4, "common.explain": 4, "common.mlp": 5, "common.report": 5}
# Folders whose code imports ``common`` as a client (stage scripts, tools, lab code); tests are not clients.
CLIENT_DIRS = ("train", "inference", "export_onnx", "tools", "generate_outputs", "analysis", "train_mlp_models")
MAX_TOP_MODULES = 15
MAX_LINES = 450


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


# ----------------------------------------------------------------------------------------------- layers
def package_of(module: str, layers: dict[str, int]) -> str | None:
    """The layered package ``module`` belongs to (the longest prefix in ``layers``), None outside them."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in layers and (prefix != parts[0] or i == len(parts) or len(parts) == 2):
            return prefix
    return None


def layering_violations(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """``a -> b`` for every import of a module ``b`` of another package that is not in a lower layer."""
    out = []
    for source, targets in sorted(graph.items()):
        own = package_of(source, layers)
        for target in sorted(targets):
            other = package_of(target, layers)
            if own is None or other is None or other == own or target == other.split(".")[0]:
                continue  # the root package's __init__ (constants) is below everything
            if target == other and any(t.startswith(other + ".") for t in targets):
                continue  # the package's __init__, run because one of its modules is imported: that edge says it
            if layers[other] >= layers[own]:
                out.append(f"{source} -> {target} ({own}: layer {layers[own]}, {other}: layer {layers[other]})")
    return out


def _declared_public(root: Path, package: str) -> set[str] | None:
    init = root / package.replace(".", "/") / "__init__.py"
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return None


def _client_files(root: Path, package: str, client_dirs) -> dict[str, Path]:
    files = dict(package_modules(root, package))
    for folder in client_dirs:
        if (root / folder).is_dir():
            files.update(package_modules(root, folder))
    return files


def _imports(path: Path, own_package: str):
    """(line, imported module or ``module.name``, names imported from it) of every import statement."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = own_package.split(".")[:len(own_package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            yield node.lineno, base, [alias.name for alias in node.names]


def api_violations(root: Path, package: str, layers: dict[str, int], client_dirs=CLIENT_DIRS) -> list[str]:
    """Imports of another layered package's module that its ``__all__`` does not list, and imports of another
    module's ``_private`` names, in ``package`` and in the client folders."""
    modules = package_modules(root, package)
    out = []
    for name, path in sorted(_client_files(root, package, client_dirs).items()):
        own_pkg = package_of(name, layers)
        own_package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for line, base, names in _imports(path, own_package):
            where = f"{path.relative_to(root)}:{line}"
            targets = [f"{base}.{n}" if f"{base}.{n}" in modules else base for n in names] or [base]
            for target, imported in zip(targets, names or [None]):
                if target not in modules:
                    continue
                if imported and imported.startswith("_") and target != name and f"{base}.{imported}" not in modules:
                    out.append(f"{where}: {imported} is private to {target}")
                other = package_of(target, layers)
                if other is None or other == own_pkg or other == package or target == other:
                    continue
                public = _declared_public(root, other) or set()
                first = target[len(other) + 1:].split(".")[0]
                if first not in public:
                    out.append(f"{where}: {target} is not in {other}.__all__")
    return out


def test_the_layer_check_finds_a_planted_upward_and_a_sideways_import(tmp_path):
    _write_package(tmp_path, {
        "pkg/__init__.py": "X = 1\n",
        "pkg/core.py": "from pkg import X\n",
        "pkg/low/__init__.py": "__all__ = ['a']\n",
        "pkg/low/a.py": "from pkg.core import X\n\ndef f():\n    from pkg.high.b import g\n",  # upward, lazy
        "pkg/high/__init__.py": "__all__ = ['b']\n",
        "pkg/high/b.py": "from pkg.low.a import f\nfrom pkg.side.c import h\n",  # down: fine; sideways: not
        "pkg/side/__init__.py": "__all__ = ['c']\n",
        "pkg/side/c.py": "def h(): ...\n",
    })
    layers = {"pkg": 0, "pkg.low": 1, "pkg.high": 2, "pkg.side": 2}
    found = layering_violations(import_graph(tmp_path, "pkg"), layers)
    assert [v.split(" (")[0] for v in found] == ["pkg.high.b -> pkg.side.c", "pkg.low.a -> pkg.high.b"]


def test_the_api_check_finds_a_planted_private_and_an_unlisted_import(tmp_path):
    _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low/__init__.py": "__all__ = ['a']\n",
        "pkg/low/a.py": "_secret = 1\npublic = 2\n",
        "pkg/low/hidden.py": "y = 1\n",
        "pkg/low/sibling.py": "from pkg.low.hidden import y\n",  # its own package: fine
        "pkg/high/__init__.py": "__all__ = []\n",
        "pkg/high/b.py": "from pkg.low.a import _secret, public\nfrom pkg.low import hidden\n",
        "scripts/run.py": "from pkg.low.a import public\nfrom pkg.low.hidden import y\n",
    })
    layers = {"pkg": 0, "pkg.low": 1, "pkg.high": 2}
    found = api_violations(tmp_path, "pkg", layers, client_dirs=("scripts",))
    assert found == ["pkg/high/b.py:1: _secret is private to pkg.low.a",
                     "pkg/high/b.py:2: pkg.low.hidden is not in pkg.low.__all__",
                     "scripts/run.py:2: pkg.low.hidden is not in pkg.low.__all__"]


def test_common_is_layered():
    graph = import_graph(ROOT, "common")
    unplaced = sorted(m for m in graph if package_of(m, LAYERS) is None)
    assert unplaced == [], f"modules in no layer (add their package to LAYERS): {unplaced}"
    assert layering_violations(graph, LAYERS) == []


def test_packages_are_imported_through_their_public_modules_and_no_private_names():
    assert api_violations(ROOT, "common", LAYERS) == []


def test_every_listed_public_module_exists():
    for package in LAYERS:
        if package == "common":
            continue
        public = _declared_public(ROOT, package)
        assert public is not None, f"{package}/__init__.py declares no __all__"
        folder = ROOT / package.replace(".", "/")
        missing = sorted(m for m in public if not (folder / f"{m}.py").is_file() and not (folder / m).is_dir())
        assert missing == [], f"{package}.__all__ names modules that do not exist: {missing}"


def test_common_keeps_a_short_top_and_short_modules():
    top = sorted(p.name for p in (ROOT / "common").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_MODULES, top
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "common").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, long
