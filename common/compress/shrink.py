"""Physically shrinking a pruned (masked) model folder: one implementation for every entry point.

``tools/apply_shrink_to_model.py`` and ``export_onnx/save_shrunk_pytorch_model.py`` both call
:func:`shrink_folder`. The pruned folder's ``pruning_spec.json`` says which heads and FFN neurons
stay; query/key/value (out-features), the attention output (in-features), the intermediate dense
(out) and the FFN output dense (in) are sliced so nothing masked remains. The shrunk folder gets the
same spec with ``shrunk=true``, which :func:`common.models.modeling.load_model_folder` (and so
``load_classifier``) uses to rebuild the per-layer shapes before loading the weights.

Before anything is written, the shrunk model's logits are compared with the masked model's on
real texts (max |diff| <= 1e-5 in fp32), and again after reloading the written folder.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.cli import UserError
from common.data import load_test_split
from common.manifest import atomic_output_dir, base_manifest, read_manifest, size_on_disk, write_json_atomic
from common.models.modeling import STATE_DICT_FILES, count_parameters, load_model_folder, save_model_folder
from common.models.pruning_spec import SPEC_FILE, apply_mask_hooks, shrink_model, shrunk_spec
from common.stage import StageConfig, flag, shared_flag

log = logging.getLogger(__name__)

PARITY_ATOL = 1e-5
SAVE_METHODS = ("save_pretrained", "torch_save")


class ParityError(RuntimeError):
    """The shrunk model does not compute the masked model's function (a bug, not a user error)."""


@torch.no_grad()
def model_logits(model, tokenizer, texts: list[str], max_len: int = 128, batch_size: int = 32) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_len, padding=True,
                        return_tensors="pt")
        out.append(model(**enc).logits.float().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), dtype=np.float32)


def check_texts(data: str, n: int, seed: int) -> tuple[list[str], str]:
    """``n`` stratified test texts of ``data`` (empty = the shipped demo sample)."""
    split = load_test_split(data, n, seed)
    return split.texts, (data or "common/demo_data (shipped demo sample)")


def shrink_folder(model_path: str | os.PathLike, output: str | os.PathLike, save_method: str = "save_pretrained",
                  data: str = "", check_samples: int = 64, max_len: int = 128, seed: int = 42,
                  args: dict | None = None) -> dict:
    """Shrink a pruned folder into ``output`` (atomically); returns the manifest written there."""
    model_path, output = Path(model_path), Path(output)
    if save_method not in SAVE_METHODS:
        raise UserError(f"--save_method {save_method!r} is not known; use save_pretrained or torch_save.")
    if not model_path.exists():
        raise UserError(f"--model_path {model_path} does not exist; build the pruned model first "
                        f"(`make models/pruned/bert_agnews_20pct/manifest.json`) or fix the path.")
    if check_samples <= 0:
        raise UserError("--check-samples must be > 0: the shrunk model is always checked against the masked one.")
    start = time.time()
    # Raises a clear UserError for a shrunk folder whose spec went missing (shapes do not fit).
    model, tokenizer, spec = load_model_folder(model_path)
    if spec is None:
        raise UserError(f"--model_path {model_path} has no {SPEC_FILE}, so there is nothing to shrink; prune it first "
                        f"with train/pruning/run_structural_pruning.py.")
    if spec.shrunk:
        raise UserError(f"--model_path {model_path} is already shrunk ({SPEC_FILE} says shrunk=true); "
                        f"pass the pruned (masked) folder instead.")
    texts, texts_source = check_texts(data, check_samples, seed)
    params_before = count_parameters(model)

    hooks = apply_mask_hooks(model, spec)  # the masked function, whether or not the weights were zeroed
    masked = model_logits(model, tokenizer, texts, max_len)
    hooks.remove()
    shrink_model(model, spec)
    new_spec = shrunk_spec(spec)
    shrunk = model_logits(model, tokenizer, texts, max_len)
    max_diff = float(np.abs(masked - shrunk).max())
    if not max_diff <= PARITY_ATOL:
        raise ParityError(f"shrunk logits differ from the masked model's by {max_diff:.3g} > {PARITY_ATOL:g}; "
                          f"nothing was written")
    params_after = count_parameters(model)

    with atomic_output_dir(output) as tmp:
        save_model_folder(model, tokenizer, tmp, new_spec, method=save_method)
        reloaded, _, reloaded_spec = load_model_folder(tmp)
        reload_diff = float(np.abs(model_logits(reloaded, tokenizer, texts, max_len) - masked).max())
        if reloaded_spec is None or not reloaded_spec.shrunk or not reload_diff <= PARITY_ATOL:
            raise ParityError(f"the written shrunk folder reloads with logits {reload_diff:.3g} away from the masked "
                              f"model's; nothing was written")
        source_manifest = read_manifest(model_path) or {}
        manifest = base_manifest("shrink", args or {"model_path": str(model_path), "output": str(output),
                                                     "save_method": save_method}, seed=seed,
                                 inputs={"model": model_path})
        weights_before = _weights_size(model_path)
        manifest.update({
            "source_model": str(model_path),
            "save_method": save_method,
            "pruning_spec": SPEC_FILE,
            "shrunk": True,
            "heads_per_layer": new_spec.heads_per_layer,
            "neurons_per_layer": new_spec.neurons_per_layer,
            "parameters_before": params_before,
            "parameters_after": params_after,
            "encoder_parameter_reduction": 1 - params_after["encoder"] / params_before["encoder"],
            "weights_bytes_before": weights_before,
            "weights_bytes_after": _weights_size(tmp),
            "size_bytes_after": size_on_disk(tmp),
            "parity": {"max_abs_logit_diff": max_diff, "max_abs_logit_diff_after_reload": reload_diff,
                       "atol": PARITY_ATOL, "n_texts": len(texts), "texts": texts_source, "dtype": "fp32"},
            "source_metrics": source_manifest.get("metrics"),
            "wall_time_s": time.time() - start,
        })
        # The shrunk model computes exactly the pruned model's function, so its test metrics carry over.
        manifest["metrics"] = source_manifest.get("metrics")
        write_json_atomic(tmp / "manifest.json", manifest)
    log.info("shrunk %s -> %s (%s): encoder parameters %d -> %d (-%.1f%%), max |logit diff| %.2g on %d texts",
             model_path, output, save_method, params_before["encoder"], params_after["encoder"],
             100 * manifest["encoder_parameter_reduction"], max(max_diff, reload_diff), len(texts))
    return manifest


def _weights_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).iterdir()
               if p.is_file() and (p.suffix == ".safetensors" or p.name in STATE_DICT_FILES))


@dataclass(frozen=True)
class ShrinkConfig(StageConfig):
    """``tools/apply_shrink_to_model.py``'s flags (the seed's spellings)."""

    model_path: str = flag(option="--model_path", aliases=["--model-path"], help="pruned (masked) model folder")
    output_path_shrunk_model: str = flag(option="--output_path_shrunk_model", aliases=["--output-path-shrunk-model"],
                                         help="shrunk model folder to write, e.g. models/shrunk/pruned20")
    save_method: str = flag("save_pretrained", option="--save_method", aliases=["--save-method"], choices=SAVE_METHODS,
                            help="save_pretrained (safetensors) or torch_save (state dict pytorch_model.bin)")
    data: str = shared_flag("data")
    check_samples: int = flag(64, help="texts in the shrunk-vs-masked parity check")
    max_len: int = shared_flag("max_len")
    seed: int = shared_flag("seed")


def run(config: ShrinkConfig) -> int:
    shrink_folder(config.model_path, config.output_path_shrunk_model, save_method=config.save_method,
                  data=config.data, check_samples=config.check_samples, max_len=config.max_len, seed=config.seed,
                  args=config.to_dict())
    return 0
