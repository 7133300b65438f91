"""The dynamic-int8 stage: any torch model folder (fine-tuned, pruned or shrunk) -> one ``.pt`` payload.

The quantization call itself and the payload format live in :mod:`common.models.torch_int8`; this
module loads the source, quantizes, writes the payload atomically, reloads it through
``load_classifier`` (the path every consumer takes) and records in the manifest the size
before/after and how closely the int8 model agrees with its fp32 source on real texts.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.data import load_test_split
from common.manifest import (atomic_output_file, base_manifest, manifest_path_for, read_manifest, size_on_disk,
                             write_json_atomic)
from common.models.modeling import STATE_DICT_FILES, count_parameters, is_model_folder, load_model_folder
from common.stage import StageConfig, flag, shared_flag

log = logging.getLogger(__name__)


def _weights_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir()
               if p.is_file() and (p.suffix == ".safetensors" or p.name in STATE_DICT_FILES))


def quantize_folder(model: str, output: str, data: str = "", check_samples: int = 200, max_len: int = 128,
                    seed: int = 42, threads: int = 0, args: dict | None = None) -> dict:
    """Quantize ``model`` into ``output`` (.pt) and write ``<output stem>.manifest.json`` beside it."""
    import torch

    from common.models.classifier import TorchClassifier, load_classifier
    from common.threads import set_threads
    from common.models.torch_int8 import quantize_dynamic_int8, save_quantized

    source, output = Path(model), Path(output)
    if not source.exists():
        raise UserError(f"--model {source} does not exist; build it first (see `make help`) or fix the path.")
    if not is_model_folder(source):
        raise UserError(f"--model {source} is not a torch model folder (no config.json); pass a fine-tuned, pruned "
                        f"or shrunk model folder.")
    if output.suffix != ".pt":
        raise UserError(f"--output {output} must end in .pt (the int8 payload is a torch file).")
    if check_samples <= 0:
        raise UserError("--check-samples must be > 0 (texts on which int8 and fp32 predictions are compared).")
    start = time.time()
    set_threads(threads)
    fp32_model, tokenizer, spec = load_model_folder(source)
    params = count_parameters(fp32_model)
    test = load_test_split(data, check_samples, seed)
    fp32_clf = TorchClassifier(fp32_model, tokenizer, device="cpu", max_len=max_len)
    fp32_logits = fp32_clf.predict_logits(test.texts)
    config = fp32_model.config
    qmodel = quantize_dynamic_int8(fp32_model)  # quantizes in place; fp32 logits were taken above
    with atomic_output_file(output) as tmp:
        save_quantized(qmodel, config, tokenizer, spec, tmp)
        clf = load_classifier(tmp, device="cpu", max_len=max_len)  # the reload every consumer does
        int8_logits = clf.predict_logits(test.texts)
        int8_params = clf.parameter_count()
        fp32_pred, int8_pred = fp32_logits.argmax(1), int8_logits.argmax(1)
        agreement = {
            "n_texts": len(test),
            "texts": data or "common/demo_data (shipped demo sample)",
            "prediction_agreement": float((fp32_pred == int8_pred).mean()),
            "accuracy_fp32": float((fp32_pred == test.labels).mean()),
            "accuracy_int8": float((int8_pred == test.labels).mean()),
            "max_abs_logit_diff": float(np.abs(fp32_logits - int8_logits).max()),
        }
        source_manifest = read_manifest(source) or {}
        size_before = _weights_bytes(source)
        size_after = tmp.stat().st_size
        manifest = base_manifest("dynamic_quantization", args or {"model": str(source), "output": str(output)},
                                 seed=seed, inputs={"model": source})
        manifest.update({
            "source_model": str(source),
            "source_pruning": None if spec is None else ("shrunk" if spec.shrunk else "masked"),
            "quantization": {"method": "torch.ao.quantization.quantize_dynamic", "dtype": "qint8",
                             "modules": ["Linear"], "torch": torch.__version__},
            "size_bytes_before": size_before,
            "size_bytes_before_folder": size_on_disk(source),
            "size_bytes_after": size_after,
            "size_ratio": size_after / size_before if size_before else None,
            "parameters_fp32": params,
            "parameters_int8": int8_params,
            "agreement": agreement,
            "source_metrics": source_manifest.get("metrics"),
            "wall_time_s": time.time() - start,
        })
        # Written before the payload is renamed into place: a .pt without a manifest never looks finished.
        write_json_atomic(manifest_path_for(output), manifest)
    log.info("int8 %s -> %s: %.1f MB -> %.1f MB; agreement with fp32 %.3f on %d texts (accuracy %.3f vs %.3f)",
             source, output, size_before / 2**20, size_after / 2**20, agreement["prediction_agreement"],
             len(test), agreement["accuracy_int8"], agreement["accuracy_fp32"])
    return manifest


@dataclass(frozen=True)
class QuantizeConfig(StageConfig):
    """``train/quantization/run_dynamic_quantization.py``'s flags."""

    model: str = flag(help="fine-tuned, pruned or shrunk model folder")
    output: str = flag(help="int8 payload to write, e.g. models/quantized/bert_agnews_8bit.pt")
    data: str = shared_flag("data")
    check_samples: int = flag(200, help="test texts compared between fp32 and int8")
    max_len: int = shared_flag("max_len")
    threads: int = shared_flag("threads")
    seed: int = shared_flag("seed")


def run(config: QuantizeConfig) -> int:
    quantize_folder(config.model, config.output, data=config.data, check_samples=config.check_samples,
                    max_len=config.max_len, seed=config.seed, threads=config.threads, args=config.to_dict())
    return 0
