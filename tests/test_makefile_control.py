"""The positive control in the Makefile: built for the drift report, switched off by CONTROL=0, keyed by
CONTROL_SEED, and handed to the similarity stage with both controls marked."""
from __future__ import annotations

from tests.test_makefile import make, stages, tree  # noqa: F401 (the fixture, reused)

SIM = "outputs/reports/lime_similarity.md"
CONTROL_CHAIN = ["train.fine_tuning.run_fine_tune_bert_agnews", "export_onnx.export_onnx",
                 "generate_outputs.generate_lime_csv.run_lime_on_model"]


def test_drift_report_builds_and_marks_the_controls(tree):  # noqa: F811
    dry = make(tree, "-n", SIM)
    assert "--output models/fine_tuned/bert_agnews_seed43" in dry and "--seed 43 --data-seed 42" in dry
    assert "--output models/onnx/control_seed43.onnx" in dry
    assert "--variant control_seed43" in dry and "--seed 42 --output outputs/lime/control_seed43.csv" in dry
    assert "--negative-control base_onnx" in dry
    assert "--variant outputs/lime/control_seed43.csv --positive-control control_seed43" in dry
    off = make(tree, "-n", SIM, "CONTROL=0")
    assert "seed43" not in off and "--positive-control" not in off and "--negative-control base_onnx" in off


def test_control_seed_rebuilds_the_control_chain_only(tree):  # noqa: F811
    (tree / "models/fine_tuned/bert_agnews_seed43").mkdir(parents=True)
    (tree / "outputs/lime").mkdir(parents=True)
    (tree / "outputs/reports").mkdir(parents=True)
    target = "outputs/lime/control_seed43.csv"
    make(tree, "-t", target)
    assert stages(make(tree, "-n", target)) == []
    # another control seed is another folder: the whole control chain, and the report that reads it
    other = make(tree, "-n", "outputs/lime/control_seed44.csv", "CONTROL_SEED=44")
    assert stages(other) == CONTROL_CHAIN and "--seed 44 --data-seed 42" in other
    # the base model is not retrained for the control
    assert "--output models/fine_tuned/bert_agnews " not in other


def test_a_control_seed_equal_to_seed_is_refused(tree):  # noqa: F811
    import subprocess

    res = subprocess.run(["make", "-n", SIM, "PYTHON=python3", "DATA=data", "CONTROL_SEED=42"], cwd=tree,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "CONTROL_SEED must differ from SEED (42)" in res.stderr
    assert "seed42" not in make(tree, "-n", SIM, "CONTROL_SEED=42", "CONTROL=0")
