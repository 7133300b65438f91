"""Evaluate one artefact: accuracy/F1 on the test split plus speed, size, parameters and memory.

The same keys are written by ``inference/run_inference_on_model.py``, the 16-bit
evaluation and every row of the benchmark, so reports can read any of them.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.models.classifier import load_classifier
from common.cli import UserError
from common.data import load_test_split
from common.manifest import base_manifest, size_on_disk, write_json_atomic
from common.metrics import classification_metrics, latency_stats, peak_rss_mb, throughput_stats
from common.stage import StageConfig, flag, shared_flag
from common.threads import set_threads

log = logging.getLogger(__name__)


def parameter_count(clf) -> dict | None:
    counter = getattr(clf, "parameter_count", None)
    return counter() if callable(counter) else None


def evaluate_model(model: str | os.PathLike, variant: str, data: str = "", test_samples: int = 0,
                   max_len: int = 128, device: str = "auto", dtype: str = "fp32", threads: int = 0,
                   batch_size: int = 32, latency_requests: int = 100, throughput_texts: int = 512,
                   seed: int = 42) -> dict:
    """All metrics of one variant as a flat-ish dict (see module docstring)."""
    path = Path(model)
    threads = set_threads(threads)
    clf = load_classifier(path, device=device, dtype=dtype, max_len=max_len, batch_size=batch_size,
                          progress=True, threads=threads)
    test = load_test_split(data, test_samples, seed)
    start = time.perf_counter()
    pred = clf.predict(test.texts, batch_size=64)
    eval_s = time.perf_counter() - start
    result = classification_metrics(test.labels, pred)
    rng = np.random.default_rng(seed)
    speed_texts = [test.texts[i] for i in rng.permutation(len(test))[:throughput_texts]]
    result.update(latency_stats(clf, speed_texts, repeats=latency_requests))
    result.update(throughput_stats(clf, speed_texts, batch_size=batch_size))
    result.update({
        "variant": variant,
        "model": str(path),
        "format": clf.info.get("format"),
        "kind": clf.kind,
        "dtype": dtype,
        "device": getattr(clf, "device", device),
        "threads": threads,
        "max_len": max_len,
        "eval_wall_s": eval_s,
        "size_mb": size_on_disk(path) / 2**20,
        "parameters": parameter_count(clf),
        "peak_rss_mb": peak_rss_mb(),
    })
    return result


def write_metrics(result: dict, output: str | os.PathLike, args: dict) -> None:
    manifest = base_manifest("evaluate", args, seed=args.get("seed"), inputs={"model": result["model"]})
    manifest["metrics"] = result
    # Metric keys at the top level too, so `json.load(...)["accuracy"]` works for users.
    write_json_atomic(output, {**result, "manifest": manifest})
    log.info("%s: accuracy %.4f macro-F1 %.4f | %.1f samples/s (batch %d) | p50 %.1f ms | %.1f MB -> %s",
             result["variant"], result["accuracy"], result["macro_f1"], result["throughput_samples_per_s"],
             result["throughput_batch_size"], result["latency_ms_p50"], result["size_mb"], output)


DTYPES = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class ModelEvaluationConfig(StageConfig):
    """The evaluation stage's settings, in the order of its flags (``vars(args)`` of old = ``to_dict()``)."""
    model: str = flag(help="any artefact: model folder, .pt payload or .onnx")
    variant: str = flag(help="name used in reports (base, pruned20, base_8bit, ...)")
    output: str = flag(help="metrics JSON, e.g. outputs/metrics/base.json")
    data: str = flag("", help="ag_news, a folder with train/test files, or empty for the demo sample")
    test_samples: int = flag(0, help="stratified test subset (0 = the full split)")
    max_len: int = flag(128)
    batch_size: int = flag(32, help="batch size of the throughput measurement")
    latency_requests: int = flag(100)
    device: str = flag("auto")
    dtype: str = flag("fp32", choices=list(DTYPES))
    threads: int = shared_flag("threads")
    seed: int = flag(42)

    def check(self) -> None:
        if self.test_samples < 0:
            raise UserError("--test-samples must be >= 0 (0 = the full test split).")
        if self.dtype not in DTYPES:
            raise UserError(f"--dtype {self.dtype!r} is not one of {', '.join(DTYPES)}.")


@dataclass(frozen=True)
class HalfPrecisionEvaluationConfig(ModelEvaluationConfig):
    """``inference/evaluate_agnews_quantized_16bit.py``'s flags: the evaluation's, ``--dtype`` fp16|bf16 (default
    fp16)."""

    dtype: str = flag("fp16", choices=["fp16", "bf16"])


def run_evaluation(config: ModelEvaluationConfig) -> int:
    result = evaluate_model(config.model, config.variant, data=config.data, test_samples=config.test_samples,
                            max_len=config.max_len, device=config.device, dtype=config.dtype, threads=config.threads,
                            batch_size=config.batch_size, latency_requests=config.latency_requests, seed=config.seed)
    write_metrics(result, config.output, config.to_dict())
    return 0
