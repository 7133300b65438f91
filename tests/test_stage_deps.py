"""Stage prerequisites come from the stages' real imports (tools/stage_deps.py), so `make` rebuilds exactly
what an edit affects. Nothing is trained: ``make -t`` marks the tree built, ``make -n -d`` says what is stale."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_makefile import KNOBS, ROOT, make, tree  # noqa: F401  (tree is a fixture)

from tools.stage_deps import ImportGraph, stage_scripts

REPORT_FOLDERS = ("outputs/lime", "outputs/reports", "outputs/sp_lime_sets", "outputs/intermediate_data", "models/mlp",
                  "models/fine_tuned/bert_agnews_seed43",
                  "outputs/deletion")
ARTEFACT = re.compile(r"^((?:models|outputs)/[^:\s]+): ?(.*)$")


def database(repo: Path) -> dict[str, list[str]]:
    """target -> prerequisites, for every artefact `make report` would consider (make's own database)."""
    res = subprocess.run(["make", "--no-print-directory", "-p", "-q", "report", *KNOBS], cwd=repo,
                         capture_output=True, text=True, timeout=120)
    out = {}
    for line in res.stdout.splitlines():
        match = ARTEFACT.match(line)
        if match and not match.group(1).endswith("/") and "%" not in match.group(1):
            out[match.group(1)] = match.group(2).split()
    return out


def python_prerequisites(prereqs: list[str], scripts) -> tuple[set[str], set[str]]:
    """(stage scripts, other Python files) among a rule's prerequisites."""
    py = {p for p in prereqs if p.endswith(".py")}
    stages = py & set(scripts)
    return stages, py - stages


def test_the_generator_sees_lazy_imports_plugins_and_the_imports_hand_lists_missed():
    graph = ImportGraph()
    deps = {s.as_posix(): set(graph.stage_files(s)) for s in stage_scripts(graph)}
    # the two drifts the hand-kept lists had
    assert "common/metrics.py" in deps["train/fine_tuning/run_fine_tune_bert_agnews.py"]
    assert "common/metrics.py" in deps["train/pruning/run_structural_pruning.py"]
    assert "common/explain/similarity.py" in deps["train_mlp_models/evaluate_mlp_models.py"]
    # loader plugins named by string in common/models/classifier.py are followed
    lime = deps["generate_outputs/generate_lime_csv/run_lime_on_model.py"]
    assert {"common/models/onnx_graph.py", "common/models/torch_int8.py", "common/models/mlp_student.py"} <= lime
    # ... but only what is imported: the report does not depend on the models' code
    assert "common/compress/training.py" not in deps["generate_outputs/report/build_report.py"]
    assert "common/mlp/evaluation.py" not in lime


def test_the_generator_covers_every_import_python_actually_makes():
    """Independent check: the repository modules in sys.modules after importing a stage module (top-level
    imports only) are a subset of what the generator lists for it."""
    graph = ImportGraph()
    for script in ("generate_outputs/report/build_report.py", "analysis/nltk/nltk_analyze_all_models.py",
                   "generate_outputs/lime_similarity_pipeline/run_lime_similarity.py",
                   "train/fine_tuning/run_fine_tune_bert_agnews.py"):
        module = script[:-3].replace("/", ".")
        code = ("import importlib, sys; importlib.import_module(%r); "
                "print('\\n'.join(m for m in sys.modules if m.split('.')[0] in %r))"
                % (module, sorted({name.split('.')[0] for name in graph.modules})))
        res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert res.returncode == 0, res.stderr
        imported = {graph.modules[m].as_posix() for m in res.stdout.split() if m in graph.modules}
        listed = set(graph.stage_files(Path(script))) | {script}
        assert imported and imported <= listed, (script, imported - listed)


def test_every_rule_lists_exactly_its_stages_imports(tree):
    graph = ImportGraph(tree)
    deps = {s.as_posix(): set(graph.stage_files(s)) for s in stage_scripts(graph)}
    rules = database(tree)
    checked = 0
    for target, prereqs in rules.items():
        stages, modules = python_prerequisites(prereqs, deps)
        if not stages:
            continue
        assert modules == set().union(*(deps[s] for s in stages)), target
        checked += 1
    assert checked > 40  # every model, metrics, LIME, report... rule of `make report`


def test_touching_a_module_rebuilds_exactly_the_artefacts_whose_stages_import_it(tree):
    for folder in REPORT_FOLDERS:  # `make -t` creates no folders
        (tree / folder).mkdir(parents=True, exist_ok=True)
    make(tree, "-t", "report")
    assert "-m " not in make(tree, "-n", "report")  # all built
    rules = database(tree)
    modules = sorted(p.relative_to(tree).as_posix() for p in (tree / "common").rglob("*.py"))
    assert len(modules) > 20
    future = time.time() + 3600
    for module in modules:
        path = tree / module
        before = path.stat().st_mtime
        os.utime(path, (future, future))
        try:
            debug = subprocess.run(["make", "--no-print-directory", "-n", "-d", "report", *KNOBS], cwd=tree,
                                   capture_output=True, text=True, timeout=120).stdout
        finally:
            os.utime(path, (before, before))
        stale = set(re.findall(rf"Prerequisite '{re.escape(module)}' is newer than target '([^']+)'", debug))
        considered = set(re.findall(r"Considering target file '([^']+)'", debug))  # the DAG of `report`
        expected = {target for target, prereqs in rules.items() if module in prereqs and target in considered}
        assert stale == expected, (module, sorted(stale ^ expected))


@pytest.mark.parametrize("module,must,must_not", [
    ("common/report/build.py", {"outputs/reports/report.md"}, {"models/fine_tuned/bert_agnews/manifest.json"}),
    ("common/explain/pos.py", {"outputs/reports/pos_analysis.md"}, {"outputs/lime/base.csv"}),
    ("common/metrics.py", {"models/fine_tuned/bert_agnews/manifest.json", "models/pruned/bert_agnews_20pct/manifest.json"},
     set()),
    ("common/explain/similarity.py", {"outputs/reports/mlp.md"}, {"models/onnx/base.onnx"}),
])
def test_known_edges(tree, module, must, must_not):
    rules = database(tree)
    affected = {target for target, prereqs in rules.items() if module in prereqs}
    assert must <= affected and not (must_not & affected), (module, sorted(affected))
