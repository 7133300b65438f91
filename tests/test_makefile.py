"""The Makefile is the pipeline: its DAG and knob stamps, checked with make's dry and touch modes.

Nothing is trained here. ``make -t`` marks a target tree as built (and writes the knob stamps);
``make -n`` then shows what a knob change would rebuild.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import copy_sources

ROOT = Path(__file__).resolve().parents[1]
KNOBS = ["PYTHON=python3", "DATA=data"]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


@pytest.fixture()
def tree(tmp_path):
    """A copy of the sources only: no .venv, models/ or outputs/ (a clean clone)."""
    dst = copy_sources(tmp_path / "repo", ROOT)
    # `make -t` touches files but creates no folders (the real recipes create their own)
    for folder in ("models/fine_tuned/bert_agnews", "models/pruned/bert_agnews_20pct", "models/pruned/bert_agnews_30pct",
                   "models/shrunk/pruned20", "models/shrunk/pruned30", "models/onnx", "models/quantized",
                   "outputs/metrics/properties"):
        (dst / folder).mkdir(parents=True)
    return dst


def make(tree: Path, *args: str) -> str:
    res = subprocess.run(["make", "--no-print-directory", *args, *KNOBS], cwd=tree, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "warning" not in res.stderr, res.stderr  # e.g. a stamp reading a variable defined further down
    return res.stdout


def stages(dry_run: str) -> list[str]:
    """The python modules a dry run would execute, in order."""
    return re.findall(r"-m ([a-z_.]+)", dry_run)


def test_onnx_export_of_pruned20_builds_the_chain_and_nothing_else(tree):
    assert stages(make(tree, "-n", "models/onnx/pruned20.onnx")) == [
        "train.fine_tuning.run_fine_tune_bert_agnews",
        "train.pruning.run_structural_pruning",
        "tools.apply_shrink_to_model",
        "export_onnx.export_onnx",
    ]
    # a dry run never writes knob stamps
    assert not (tree / "models" / ".knobs").exists()


def test_int8_of_any_pruning_percentage_prunes_at_that_percentage(tree):
    """pruned45_int8.onnx also matches pruned%.onnx with the stem `45_int8` (make prefers the shortest stem):
    the pruned%_int8/_static rules make it prune at 45, whether 45 is in PRUNE_PCTS or not."""
    for target, mode in (("models/onnx/pruned45_int8.onnx", "--int8 --output"), ("models/onnx/pruned45_static.onnx",
                                                                                  "--mode static")):
        plan = make(tree, "-n", target)
        assert stages(plan) == ["train.fine_tuning.run_fine_tune_bert_agnews", "train.pruning.run_structural_pruning",
                                "tools.apply_shrink_to_model", "export_onnx.export_onnx", "export_onnx.export_onnx"]
        assert "--sparsity 45 " in plan and "45_int8pct" not in plan and "45_staticpct" not in plan
        assert "--model models/onnx/pruned45.onnx --int8" in plan and mode in plan


def test_knob_changes_rebuild_exactly_what_they_affect(tree):
    target = "models/onnx/pruned20.onnx"
    make(tree, "-t", target)
    assert stages(make(tree, "-n", target)) == []
    assert stages(make(tree, "-n", target, "PRUNE_EPOCHS=5")) == [
        "train.pruning.run_structural_pruning", "tools.apply_shrink_to_model", "export_onnx.export_onnx"]
    assert stages(make(tree, "-n", target, "EPOCHS=5"))[0] == "train.fine_tuning.run_fine_tune_bert_agnews"
    # the dry runs left the stamps as they were
    assert stages(make(tree, "-n", target)) == []


def test_evaluation_and_report_lists_follow_their_knobs(tree):
    metrics = "outputs/metrics/pruned20.json"
    make(tree, "-t", metrics, "outputs/metrics/properties/properties.md")
    assert stages(make(tree, "-n", metrics)) == []
    assert stages(make(tree, "-n", metrics, "THREADS=1")) == ["inference.run_inference_on_model"]
    # LIME explains the graphs that ship (not the masked intermediates) by default
    assert ("LIME_VARIANTS=base_onnx base_onnx_int8 pruned20_onnx pruned30_onnx pruned20_onnx_int8 pruned30_onnx_int8 "
            "base_onnx_static pruned20_onnx_static pruned30_onnx_static") in (tree / "models/.knobs/lists").read_text()
    # dropping a variant from the list rebuilds the table over the remaining ones
    assert stages(make(tree, "-n", "outputs/metrics/properties/properties.md", "PRUNE_PCTS=20")) == [
        "analysis.model_properties.run_model_properties"]


def test_help_lists_every_knob(tree):
    text = make(tree, "help")
    knobs = re.findall(r"^([A-Z_]+) \?=", (tree / "Makefile").read_text(), flags=re.M)
    assert len(knobs) > 20
    for knob in knobs:
        assert re.search(rf"^\s+{knob}\s", text, flags=re.M), knob


def test_half_on_cpu_reaches_the_benchmark_and_reruns_it(tree):
    summary = "outputs/metrics/summary.csv"
    plan = make(tree, "-n", summary, "OPTIMUM_PEER=0")
    assert "inference.run_onnx_benchmark" in plan and "--half-on-cpu" not in plan
    make(tree, "-t", summary, "OPTIMUM_PEER=0")
    assert stages(make(tree, "-n", summary, "OPTIMUM_PEER=0")) == []
    plan = make(tree, "-n", summary, "OPTIMUM_PEER=0", "HALF_ON_CPU=1")
    assert stages(plan) == ["inference.run_onnx_benchmark"] and "--half-on-cpu" in plan


def test_head_ffn_ratio_reaches_pruning_and_only_a_non_default_ratio_rebuilds(tree):
    """Models pruned before the knobs existed (ratio 1, logits recipe) stay built: those values are not stamped."""
    target = "models/pruned/bert_agnews_20pct/manifest.json"
    old = ("PRUNE_HEAD_FFN_RATIO=1", "PRUNE_RECIPE=logits")
    make(tree, "-t", target, *old)
    stamp = (tree / "models/.knobs/prune").read_text()
    assert "PRUNE_HEAD_FFN_RATIO" not in stamp and "PRUNE_RECIPE" not in stamp
    assert stages(make(tree, "-n", target, *old)) == []
    plan = make(tree, "-n", target, "PRUNE_HEAD_FFN_RATIO=0.5", "PRUNE_RECIPE=logits")
    assert stages(plan) == ["train.pruning.run_structural_pruning"] and "--head-ffn-ratio 0.5 " in plan


def test_function_recipe_is_the_default_and_its_knobs_reach_pruning(tree):
    target = "models/pruned/bert_agnews_20pct/manifest.json"
    plan = make(tree, "-n", target)
    assert "--recipe function --perturb-copies 3 --perturb-loss kl --hidden-weight 0 " in plan
    assert "--head-ffn-ratio 0.5 " in plan
    make(tree, "-t", target)
    assert stages(make(tree, "-n", target)) == []
    for knob, flag in (("PERTURB_COPIES=5", "--perturb-copies 5 "), ("PERTURB_LOSS=mse", "--perturb-loss mse "),
                       ("HIDDEN_WEIGHT=1", "--hidden-weight 1 ")):
        plan = make(tree, "-n", target, knob)
        assert stages(plan) == ["train.pruning.run_structural_pruning"] and flag in plan, knob
    legacy = make(tree, "-n", target, "PRUNE_RECIPE=logits")
    assert "--recipe logits " in legacy and "--perturb-copies" not in legacy


def test_refit_control_is_a_make_target_that_prunes_nothing(tree):
    """The second positive control: base re-fine-tuned with the same recipe and 0 % pruned, exported like the rest."""
    plan = make(tree, "-n", "refit-control")
    assert stages(plan) == ["train.fine_tuning.run_fine_tune_bert_agnews", "train.pruning.run_structural_pruning",
                            "tools.apply_shrink_to_model", "export_onnx.export_onnx", "export_onnx.export_openvino",
                            "export_onnx.export_onnx"]
    prune_line = next(line for line in plan.splitlines() if "run_structural_pruning" in line)
    assert "--sparsity 0 " in prune_line and "--output models/pruned/bert_agnews_0pct" in prune_line
    assert "--recipe function" in plan
    assert "models/onnx/pruned0_ov_int8.xml" in plan and "models/onnx/pruned0_int8.onnx" in plan