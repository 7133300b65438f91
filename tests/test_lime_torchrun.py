"""LIME under torchrun: 2 CPU ranks write the same CSV bytes as one process (same seed)."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def test_two_rank_torchrun_matches_single_process(tmp_path, tiny_bert, toy_data):
    def args(output):
        return ["-m", "generate_outputs.generate_lime_csv.run_lime_on_model", "--model", str(tiny_bert),
                "--variant", "tiny", "--n-instances", "7", "--num-samples", "50", "--seed", "3", "--output",
                str(output), "--data", str(toy_data), "--max-len", "64", "--threads", "1",
                "--reference-model", str(tiny_bert)]

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    single, multi = tmp_path / "single" / "lime.csv", tmp_path / "multi" / "lime.csv"
    subprocess.run([sys.executable] + args(single), cwd=REPO, env=env, check=True, capture_output=True, timeout=300)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
                            + args(multi), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert multi.read_bytes() == single.read_bytes()
    assert sorted(p.name for p in multi.parent.iterdir() if not p.name.startswith(".reference")) == \
        ["lime.csv", "lime.manifest.json"]  # rank parts merged and removed
    import json

    assert json.loads((multi.parent / "lime.manifest.json").read_text())["metrics"]["world_size"] == 2
