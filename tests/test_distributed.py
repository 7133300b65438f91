"""Fine-tuning under PyTorch's own launcher: ``torchrun --nproc_per_node 2`` with gloo on CPU.

The same stage command as a single-process run, launched as two CPU ranks (DDP through the HF Trainer,
``ddp_backend="gloo"`` on CPU), must learn the separable toy task, split the global batch over the
ranks, write one manifest from rank 0 recording ``world_size`` 2, and resume after an interruption.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO, make_tiny_bert

# Same toy recipe as tests/test_finetune.py: 144 train rows, global batch 16 -> 9 steps per epoch.
TOY_ARGS = ["--epochs", "12", "--learning-rate", "3e-3", "--batch-size", "16", "--max-len", "32",
            "--device", "cpu", "--validation-fraction", "0.1", "--seed", "0"]
STEPS = 9 * 12


def _torchrun(tiny, data, out, *extra, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "train.fine_tuning.run_fine_tune_bert_agnews", "--base-model", str(tiny), "--data", str(data),
           "--output", str(out), *TOY_ARGS, *extra]
    # One thread per rank: two ranks on a 2-core machine, no oversubscription.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"torchrun failed ({res.returncode}):\n{res.stderr[-6000:]}"
    return res


def test_fine_tune_under_torchrun_two_cpu_ranks(tmp_path, toy_data):
    tiny = make_tiny_bert(tmp_path / "tiny")
    out = tmp_path / "ft"
    _torchrun(tiny, toy_data, out)
    manifest = json.loads((out / "manifest.json").read_text())
    training, metrics = manifest["training"], manifest["metrics"]
    assert training["world_size"] == 2 and training["device"] == "cpu"
    # The global batch (16) is split over the ranks (8 each), so an epoch is still 9 optimiser steps.
    assert training["train_config"]["batch_size"] == 16
    assert training["completed"] and training["global_step"] == training["max_steps"] == STEPS
    assert metrics["accuracy"] > 0.8, metrics  # chance is 0.25
    assert metrics["n_test"] == 80
    assert not (tmp_path / "ft.checkpoints").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ft")], "a temporary sibling was left behind"


def test_interrupted_torchrun_resumes_from_checkpoint(tmp_path, toy_data):
    tiny = make_tiny_bert(tmp_path / "tiny")
    out = tmp_path / "ft"
    _torchrun(tiny, toy_data, out, "--save-steps", "5", "--max-steps-this-run", "10")
    assert not out.exists(), "an interrupted run must not leave a finished-looking output"
    checkpoints = tmp_path / "ft.checkpoints"
    assert (checkpoints / "checkpoint-10").is_dir()
    # Both ranks' RNG states are saved so the resumed ranks continue the same data order.
    assert {p.name for p in (checkpoints / "checkpoint-10").glob("rng_state_*.pth")} == {"rng_state_0.pth",
                                                                                      "rng_state_1.pth"}
    _torchrun(tiny, toy_data, out, "--save-steps", "5")
    training = json.loads((out / "manifest.json").read_text())["training"]
    assert training["resumed_from"].endswith("checkpoint-10")
    assert training["world_size"] == 2 and training["global_step"] == training["max_steps"] == STEPS
    assert json.loads((out / "manifest.json").read_text())["metrics"]["accuracy"] > 0.8
