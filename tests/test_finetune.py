"""Fine-tuning end to end through main([...]): learns a separable toy task, resumes, skips, errors."""
from __future__ import annotations

import json
import os

import pytest

from tests.conftest import make_tiny_bert
from train.fine_tuning.run_fine_tune_bert_agnews import main

TOY_ARGS = ["--epochs", "24", "--learning-rate", "3e-3", "--batch-size", "16", "--max-len", "32",
            "--device", "cpu", "--validation-fraction", "0.1", "--seed", "0"]


def _run(tiny, data, out, *extra):
    return main(["--base-model", str(tiny), "--data", str(data), "--output", str(out), *TOY_ARGS, *extra])


def test_fine_tune_learns_toy_task_and_writes_manifest(tmp_path, toy_data):
    tiny = make_tiny_bert(tmp_path / "tiny")
    out = tmp_path / "ft"
    assert _run(tiny, toy_data, out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    metrics = manifest["metrics"]
    assert metrics["accuracy"] > 0.8, metrics  # chance is 0.25
    assert metrics["n_test"] == 80 and len(metrics["confusion_matrix"]) == 4
    for key in ("arguments", "seed", "versions", "git_commit", "wall_time_s", "train_samples_per_s", "data"):
        assert key in manifest
    assert manifest["data"]["content_hash"] and manifest["seed"] == 0
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "World", "1": "Sports", "2": "Business", "3": "Sci/Tech"}
    assert not (tmp_path / "ft.checkpoints").exists()
    # Same arguments again: nothing is retrained.
    before = (out / "model.safetensors").stat().st_mtime_ns
    assert _run(tiny, toy_data, out) == 0
    assert (out / "model.safetensors").stat().st_mtime_ns == before


def test_same_seed_same_model(tmp_path, toy_data):
    tiny = make_tiny_bert(tmp_path / "tiny")
    for name in ("a", "b"):
        _run(tiny, toy_data, tmp_path / name, "--epochs", "2")
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())["metrics"]
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())["metrics"]
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_interrupted_run_resumes_from_checkpoint(tmp_path, toy_data, caplog):
    tiny = make_tiny_bert(tmp_path / "tiny")
    out = tmp_path / "ft"
    # 144 train rows / batch 16 = 9 steps per epoch; stop after 10 (a checkpoint is written there).
    _run(tiny, toy_data, out, "--save-steps", "5", "--max-steps-this-run", "10")
    assert not out.exists(), "an interrupted run must not leave a finished-looking output"
    assert any(p.name.startswith("checkpoint-10") for p in (tmp_path / "ft.checkpoints").iterdir())
    caplog.set_level("INFO")
    _run(tiny, toy_data, out, "--save-steps", "5")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training"]["resumed_from"].endswith("checkpoint-10")
    assert manifest["training"]["global_step"] == manifest["training"]["max_steps"] == 9 * 24
    assert manifest["metrics"]["accuracy"] > 0.8


def test_checkpoints_from_other_arguments_are_not_resumed(tmp_path, toy_data):
    tiny = make_tiny_bert(tmp_path / "tiny")
    out = tmp_path / "ft"
    _run(tiny, toy_data, out, "--save-steps", "5", "--max-steps-this-run", "5")
    _run(tiny, toy_data, out, "--save-steps", "5", "--epochs", "1")
    assert json.loads((out / "manifest.json").read_text())["training"]["resumed_from"] is None


@pytest.mark.slow
def test_minilm_fine_tune_on_shared_rows(tmp_path, ag_news_dir):
    """MiniLM on 400 real AG News rows for one epoch beats chance clearly on 400 test rows."""
    out = tmp_path / "minilm"
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    assert main(["--data", str(ag_news_dir), "--output", str(out), "--train-samples", "400", "--epochs", "1",
                 "--max-len", "64", "--device", "cpu", "--save-steps", "1000"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["n_test"] == 7600
    assert manifest["metrics"]["accuracy"] > 0.6, manifest["metrics"]
