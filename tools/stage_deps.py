"""Each stage script's Python prerequisites, read from its real imports, as Make variables.

The Makefile runs this at parse time (stdlib only, ~0.1 s) and includes what it writes, so a
stage's prerequisites are the repository modules it imports, transitively, and cannot drift from
the code the way hand-kept lists do. Counted as an import of a repository module:

* ``import a.b``, ``from a import b`` (``b`` a module or a name in ``a``), ``from a.b import c``,
  at any depth of the file (imports inside functions count: most are lazy here);
* a string constant that is exactly a repository module's dotted name, e.g. the loader plugins
  ``common.models.classifier`` imports by name (``"common.models.onnx_graph"``), so plugins are followed too
  (dotted names only: a bare folder name such as ``"train"`` is not an import).

A package's ``__init__.py`` is a prerequisite of every module under it (Python runs it first).

Output: one line per stage script, ``DEPS_<script path> := <sorted module files>`` (the script itself
excluded: rules name it explicitly).
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Folders holding stage scripts (entry points) and the shared library.
STAGE_DIRS = ("train", "inference", "export_onnx", "tools", "generate_outputs", "analysis", "train_mlp_models")
# Top-level folders that hold no importable code of ours (``models/`` is the artefact folder; common/models/
# is code, so these are skipped at the top only), and folders skipped at any depth.
SKIP_TOP_DIRS = {".venv", ".git", "tests", "models", "outputs", ".deps", "docker"}
SKIP_DIRS = {"__pycache__"}


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the repository (packages by __init__)."""
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        skip = SKIP_DIRS | (SKIP_TOP_DIRS if rel == Path(".") else set())
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("."))
        for name in filenames:
            if not name.endswith(".py"):
                continue
            parts = list(rel.parts) + ([] if name == "__init__.py" else [name[:-3]])
            if parts:
                out[".".join(parts)] = rel / name
    return out


class ImportGraph:
    def __init__(self, root: Path = ROOT):
        self.root = root
        self.modules = module_files(root)
        self.by_file = {path: name for name, path in self.modules.items()}

    def _with_packages(self, dotted: str) -> set[str]:
        """``dotted`` and every enclosing package that exists in the repository."""
        parts = dotted.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in self.modules}

    @lru_cache(maxsize=None)
    def direct(self, name: str) -> frozenset[str]:
        path = self.root / self.modules[name]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found |= self._with_packages(alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                found |= self._with_packages(base)
                for alias in node.names:
                    found |= self._with_packages(f"{base}.{alias.name}" if base else alias.name)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value \
                    and node.value in self.modules:
                found |= self._with_packages(node.value)
        found |= self._with_packages(name)
        found.discard(name)
        return frozenset(found)

    def closure(self, name: str) -> set[str]:
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            todo.extend(self.direct(current) - seen)
        return seen

    def stage_files(self, script: Path) -> list[str]:
        """Repository files ``script`` imports, transitively, itself excluded (POSIX paths, sorted)."""
        name = self.by_file[script]
        return sorted(self.modules[m].as_posix() for m in self.closure(name) if m != name)


def stage_scripts(graph: ImportGraph) -> list[Path]:
    return sorted(path for path in graph.by_file if path.parts[0] in STAGE_DIRS and path.name != "__init__.py")


def render(graph: ImportGraph) -> str:
    lines = ["# Generated by tools/stage_deps.py from the stages' imports: do not edit."]
    for script in stage_scripts(graph):
        lines.append(f"DEPS_{script.as_posix()} := {' '.join(graph.stage_files(script))}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the Make variables here (atomically); default: stdout")
    args = parser.parse_args(argv)
    text = render(ImportGraph())
    if not args.output:
        sys.stdout.write(text)
        return 0
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.exists() and output.read_text() == text:
        return 0
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
