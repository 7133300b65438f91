"""Shrunk folders load in plain transformers, without the toolkit (issue 14).

A subprocess with a clean PYTHONPATH, its cwd outside the repository and without the toolkit's editable
install (``-S``: no site processing, so no ``.pth`` finder; site-packages put on ``sys.path`` by hand), so
``import common`` fails - asserted - loads both kinds of shrunk folder (``save_pretrained`` and ``torch_save``) with
``AutoModelForSequenceClassification.from_pretrained(..., trust_remote_code=True)`` and through
``pipeline``; its logits must match ``load_classifier``'s within 1e-5.
"""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.models.classifier import load_classifier
from common.models.modeling import REMOTE_CODE_FILE, load_model_folder, save_model_folder
from common.models.pruning_spec import LayerSpec, PruningSpec
from tests.conftest import make_tiny_bert, toy_texts
from tools.apply_shrink_to_model import main as shrink_main

ATOL = 1e-5
# Uneven per-layer shapes: layer 0 keeps 1 head of 4 and 5 neurons, layer 1 keeps 3 heads and 30 neurons.
SPEC_LAYERS = [LayerSpec([2], [0, 3, 8, 20, 36]), LayerSpec([0, 1, 3], list(range(2, 32)))]

PLAIN_LOADER = r"""
import json, sys
sys.path[:0] = json.loads(sys.argv.pop(1))  # the venv's packages, but not the .pth that installs the toolkit
try:
    import common  # noqa: F401
except ImportError:
    toolkit = False
else:
    toolkit = True
import numpy as np, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

folder, texts = sys.argv[1], json.loads(sys.argv[2])
model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(folder)
with torch.no_grad():
    logits = [model(**tokenizer(t, return_tensors="pt")).logits[0].tolist() for t in texts]
classify = pipeline("text-classification", model=folder, trust_remote_code=True, top_k=None)
scores = [{d["label"]: d["score"] for d in row} for row in classify(texts)]
print(json.dumps({"toolkit_importable": toolkit, "logits": logits, "pipeline": scores,
                  "class": type(model).__name__}))
"""


def clean_env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_", "TRANSFORMERS_"))}
    # The remote-code module cache goes to tmp, not to the user's ~/.cache.
    env.update(HF_HOME=str(tmp / "hf_home"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return env


def load_in_plain_transformers(folder: Path, texts: list[str], cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-S", "-c", PLAIN_LOADER, json.dumps(site.getsitepackages()), str(folder), json.dumps(texts)], cwd=cwd,
                          env=clean_env(cwd), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def shrunk_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf_interop")
    tiny = make_tiny_bert(root / "tiny", seed=3)
    model, tokenizer, _ = load_model_folder(tiny)
    spec = PruningSpec(4, 8, 37, SPEC_LAYERS)
    pruned = root / "pruned"
    save_model_folder(model, tokenizer, pruned, spec)
    folders = {}
    for method in ("save_pretrained", "torch_save"):
        folders[method] = root / f"shrunk_{method}"
        assert shrink_main(["--model_path", str(pruned), "--output_path_shrunk_model", str(folders[method]),
                            "--save_method", method, "--check-samples", "8"]) == 0
    return folders


@pytest.mark.parametrize("method", ["save_pretrained", "torch_save"])
def test_shrunk_folder_loads_in_plain_transformers(shrunk_folders, method, tmp_path):
    folder = shrunk_folders[method]
    texts = toy_texts(6, seed=5)[0] + ["a much longer text about the election and the striker and the chip " * 3]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    got = load_in_plain_transformers(folder, texts, outside)
    assert got["toolkit_importable"] is False
    assert got["class"] == "ShrunkBertForSequenceClassification"

    classifier = load_classifier(folder)
    expected = classifier.predict_logits(texts)
    assert np.abs(np.array(got["logits"]) - expected).max() <= ATOL
    # The pipeline gives the same probabilities, under the config's label names.
    proba = classifier.predict_proba(texts)
    pipeline_proba = np.array([[row[name] for name in classifier.label_names] for row in got["pipeline"]])
    assert np.abs(pipeline_proba - proba).max() <= 1e-5


def test_shrunk_config_carries_the_per_layer_shapes(shrunk_folders):
    for method, folder in shrunk_folders.items():
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == "bert"  # AutoConfig needs no remote code, the toolkit neither
        assert config["auto_map"]["AutoModelForSequenceClassification"].startswith(Path(REMOTE_CODE_FILE).stem + ".")
        assert config["shrunk_heads_per_layer"] == [1, 3] and config["shrunk_intermediate_sizes"] == [5, 30]
        source = (folder / REMOTE_CODE_FILE).read_text()
        imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
        assert {name.split(".")[0] for name in imports} <= {"torch", "transformers"}, imports
    assert (shrunk_folders["torch_save"] / "pytorch_model.bin").is_file()
    assert isinstance(torch.load(shrunk_folders["torch_save"] / "pytorch_model.bin", weights_only=True), dict)


def test_plain_transformers_without_remote_code_fails_loudly(shrunk_folders, tmp_path):
    """The planted negative: without trust_remote_code the stock BERT class cannot take the shapes."""
    script = ("import sys\nfrom transformers import AutoModelForSequenceClassification as A\n"
              "A.from_pretrained(sys.argv[1])\n")
    done = subprocess.run([sys.executable, "-c", script, str(shrunk_folders["save_pretrained"])], cwd=tmp_path,
                          env=clean_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
