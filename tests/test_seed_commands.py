"""The seed project's own commands work verbatim, at their documented paths (issue 14).

Every seed script runs as a file (``python path/to/script.py --help``) from outside the repository; the
seed's SP-LIME command runs for real on a tiny model with its ``--output_prefix`` folder taken as given;
``inference/inference.sh`` without arguments passes the knob stamps of the last build to ``make bench``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from common.knobs import KnobConflict, parse_stamp, read_stamps
from tests.conftest import REPO, make_tiny_bert

# path -> flags its --help must show (the seed's spelling where the seed documented one)
SEED_SCRIPTS = {
    "train/fine_tuning/run_fine_tune_bert_agnews.py": ["--base-model"],
    "train/pruning/run_structural_pruning.py": ["--sparsity"],
    "train/quantization/run_dynamic_quantization.py": ["--model"],
    "tools/apply_shrink_to_model.py": ["--model_path", "--output_path_shrunk_model", "--save_method"],
    "export_onnx/save_shrunk_pytorch_model.py": ["--model_path", "--output_path_shrunk_model", "--save_method"],
    "export_onnx/export_onnx.py": ["--int8"],
    "inference/run_inference_on_model.py": ["--model"],
    "inference/evaluate_agnews_quantized_16bit.py": ["--dtype"],
    "inference/run_onnx_benchmark.py": ["--variant"],
    "generate_outputs/generate_lime_csv/run_sp_lime_hf_model.py": ["--model_dir", "--output_prefix"],
    "generate_outputs/generate_lime_csv/run_sp_lime_torch_loaded_model.py": ["--model_dir", "--output_prefix"],
    "generate_outputs/generate_lime_csv/run_lime_on_model.py": ["--model"],
    "generate_outputs/generate_lime_csv/generate_bert_token_explanations_for_mlp.py": ["--n-instances"],
    "generate_outputs/lime_similarity_pipeline/run_lime_similarity.py": ["--base"],
    "generate_outputs/lime_similarity_pipeline/run_pipeline.sh": ["--base"],
    "analysis/nltk/nltk_analyze_all_models.py": ["--base"],
    "train_mlp_models/train_mlp_vanilla.py": ["--explanations"],
    "train_mlp_models/train_mlp_xai_loss.py": ["--lambda"],
}


def _outside_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHON=sys.executable, OMP_NUM_THREADS="1")
    return env


def _help(script: str, cwd: Path) -> subprocess.CompletedProcess:
    path = REPO / script
    command = ["bash", str(path)] if script.endswith(".sh") else [sys.executable, str(path)]
    return subprocess.run([*command, "--help"], cwd=cwd, env=_outside_env(), capture_output=True, text=True,
                          timeout=300)


def test_every_seed_script_runs_as_a_file_at_its_documented_path(tmp_path):
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(SEED_SCRIPTS, pool.map(lambda s: _help(s, tmp_path), SEED_SCRIPTS)))
    failures = {s: d.stderr[-500:] for s, d in done.items() if d.returncode != 0 or "usage:" not in d.stdout}
    assert not failures, failures
    missing = {s: [f for f in flags if f not in done[s].stdout] for s, flags in SEED_SCRIPTS.items()}
    assert not any(missing.values()), missing


def test_seed_sp_lime_command_takes_the_prefix_folder_as_given(tmp_path):
    model = make_tiny_bert(tmp_path / "models" / "fine_tuned" / "bert_agnews")
    done = subprocess.run(
        [sys.executable, str(REPO / "generate_outputs/generate_lime_csv/run_sp_lime_hf_model.py"),
         "--model_dir", str(model.relative_to(tmp_path)), "--output_prefix", "outputs/sp_lime_sets/base_model_sp_lime",
         "--sample-size", "4", "--num-explanations", "2", "--num-samples", "20", "--max-len", "32", "--device", "cpu"],
        cwd=tmp_path, env=_outside_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "outputs" / "sp_lime_sets"
    picked = pd.read_csv(out / "base_model_sp_lime_picked.csv")
    assert picked.pick_order.nunique() == 2 and picked.word.notna().all()
    assert (out / "base_model_sp_lime_picked.manifest.json").is_file()
    assert (out / "base_model_sp_lime_global_features.png").stat().st_size > 0
    assert not (out / "outputs").exists()  # the old bug: outputs/sp_lime_sets/outputs/sp_lime_sets/...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "outputs"]


def test_bare_prefix_still_goes_into_output_dir():
    from common.explain.sp_lime import SpLimeConfig, split_output_prefix
    from generate_outputs.sp_lime.run_sp_lime_hf_model import main

    def config(argv):
        return SpLimeConfig.from_namespace(main.build_parser().parse_args(argv))

    args = split_output_prefix(config(["--model_dir", "m", "--output_prefix", "base", "--output-dir", "x/y"]))
    assert (args.output_dir, args.output_prefix) == ("x/y", "base")
    args = split_output_prefix(config(["--model_dir", "m", "--output_prefix", "a/b/p"]))
    assert (args.output_dir, args.output_prefix) == ("a/b", "p")


# ----------------------------------------------------------------------------------------------- knob stamps
def test_parse_stamp_keeps_values_with_spaces():
    assert parse_stamp("PRUNE_PCTS=20 30 LIME_VARIANTS=base pruned20 DISTILL=--distill DATA=../x=y C=\n") == {
        "PRUNE_PCTS": "20 30", "LIME_VARIANTS": "base pruned20", "DISTILL": "--distill", "DATA": "../x=y", "C": ""}


def test_read_stamps_rejects_disagreeing_stamps(tmp_path):
    (tmp_path / "train").write_text("DATA=a SEED=1\n")
    (tmp_path / "eval").write_text("DATA=a TEST_SAMPLES=0\n")
    assert read_stamps(tmp_path) == {"DATA": "a", "SEED": "1", "TEST_SAMPLES": "0"}
    (tmp_path / "lime").write_text("DATA=b\n")
    with pytest.raises(KnobConflict, match="DATA"):
        read_stamps(tmp_path)
    assert read_stamps(tmp_path / "absent") == {}


def _inference_sh_dry_run(stamps: Path, *args: str) -> str:
    env = _outside_env() | {"KNOB_STAMPS": str(stamps), "MAKEFLAGS": "n"}
    done = subprocess.run(["bash", str(REPO / "inference/inference.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    commands = done.stdout.replace("\\\n", " ").splitlines()  # join make's continued recipe lines
    (bench,) = [line for line in commands if "inference.run_onnx_benchmark" in line]
    return bench


def test_inference_sh_without_arguments_uses_the_builds_knobs(tmp_path):
    stamps = tmp_path / ".knobs"
    stamps.mkdir()
    (stamps / "train").write_text("BASE_MODEL=minilm DATA=common/demo_data SEED=7 EPOCHS=3 TRAIN_SAMPLES=0 MAX_LEN=64\n")
    (stamps / "eval").write_text("DATA=common/demo_data TEST_SAMPLES=11 MAX_LEN=64 DEVICE=cpu THREADS=1\n")
    bench = _inference_sh_dry_run(stamps)
    assert "--data 'common/demo_data'" in bench and "--test-samples 11" in bench and "--max-len 64" in bench
    assert "--threads 1" in bench and "--device cpu" in bench
    # Given arguments win over the stamps (the planted negative: the stamps' values must then be absent).
    bench = _inference_sh_dry_run(stamps, "DATA=elsewhere", "TEST_SAMPLES=5")
    assert "--data 'elsewhere'" in bench and "--test-samples 5" in bench and "--max-len 128" in bench
