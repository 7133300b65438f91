"""LIME speed: the naive setup vs ours, on the same model function, in one run.

(a) naive: ``transformers.pipeline("text-classification", model=<torch folder>, top_k=None)``
    as ``classifier_fn`` (one text at a time, as the pipeline does by default);
(b) ours: :class:`~common.explain.explainer.FastClassifierFn` over the parity-checked fp32 ONNX export
    (de-duplicated strings, length-sorted dynamic batches);
(c) ours over the torch folder itself (shows what batching alone buys).

Every setup uses the same explainer settings, the same instances, the same ``num_samples``
and the random state reset per instance, so they see identical perturbed texts; the
explanations are compared too (same function -> near-identical weights). Reported: seconds
per explanation, speed-up (a)/(b) (goal >= 1.8) and the share of (b)'s time spent outside
the model call (goal <= 5 %).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.explain.explainer import (DEFAULT_INSTANCE_SEED, FastClassifierFn, choose_instances, explain_text,
                               explanation_rows, make_explainer)
from common.stage import StageConfig, flag, shared_flag

log = logging.getLogger(__name__)

SPEEDUP_GOAL = 1.8
OVERHEAD_GOAL = 0.05


class PipelineFn:
    """The naive classifier_fn: a Hugging Face pipeline called on the perturbed texts."""

    def __init__(self, model: str, max_len: int, device: str):
        from transformers import pipeline

        self.pipe = pipeline("text-classification", model=model, top_k=None,
                             device=0 if device.startswith("cuda") else -1)
        self.label_ids = self.pipe.model.config.label2id
        self.max_len = max_len
        self.model_seconds = 0.0

    def __call__(self, texts):
        start = time.perf_counter()
        outputs = self.pipe(list(texts), truncation=True, max_length=self.max_len)
        probs = np.array([[d["score"] for d in sorted(out, key=lambda d: self.label_ids[d["label"]])]
                          for out in outputs], dtype=np.float64)
        self.model_seconds += time.perf_counter() - start
        return probs


def _time_one(fn, text: str, label: int, num_samples: int, seed: int) -> tuple[float, float, dict]:
    explainer = make_explainer(seed)
    model_before = fn.model_seconds
    start = time.perf_counter()
    exp = explain_text(explainer, text, fn, (label,), num_samples, seed)
    elapsed = time.perf_counter() - start
    weights = {word: weight for word, weight, _ in explanation_rows(exp, label)}
    return elapsed, fn.model_seconds - model_before, weights


@dataclass(frozen=True)
class LimeBenchConfig(StageConfig):
    """``bench_lime_speed``'s flags."""

    model: str = flag(help="the fine-tuned torch folder (the pipeline loads it)")
    onnx: str = flag(help="its parity-checked fp32 ONNX export (or the folder again)")
    data: str = shared_flag("data")
    n_instances: int = flag(3, aliases=["--n_instances"], help="instances timed per setup")
    num_samples: int = flag(1000, aliases=["--num_samples"])
    seed: int = shared_flag("seed")
    instance_seed: int = flag(DEFAULT_INSTANCE_SEED)
    max_len: int = shared_flag("max_len")
    batch_size: int = flag(32)
    device: str = shared_flag("device", default="cpu")  # cpu: what the speed goals refer to
    threads: int = shared_flag("threads")
    output: str = flag("outputs/metrics/lime_speed.json")


def run_bench(args: LimeBenchConfig) -> dict:
    from scipy.stats import spearmanr

    from common.models.classifier import load_classifier
    from common.threads import set_threads
    from common.manifest import base_manifest, write_json_atomic

    if not Path(args.model).is_dir():
        raise UserError(f"--model {args.model} must be the fine-tuned torch folder (the pipeline loads it).")
    if not Path(args.onnx).exists():
        raise UserError(f"--onnx {args.onnx} does not exist; build it with `make models/onnx/base.onnx`.")
    threads = set_threads(args.threads)
    instances = choose_instances(args.data, args.n_instances, args.instance_seed)
    naive = PipelineFn(args.model, args.max_len, args.device)
    setups = {"naive_pipeline": naive,
              "ours_onnx": FastClassifierFn(load_classifier(args.onnx, device=args.device, max_len=args.max_len,
                                                            batch_size=args.batch_size, threads=threads)),
              "ours_torch": FastClassifierFn(load_classifier(args.model, device=args.device, max_len=args.max_len,
                                                             batch_size=args.batch_size, threads=threads))}
    for fn in setups.values():  # warm-up: first calls pay for allocations and graph set-up
        fn([instances.texts[0], instances.texts[0][:20]])
        fn.model_seconds = 0.0
    labels = FastClassifierFn.__call__(setups["ours_onnx"], instances.texts).argmax(axis=1)
    setups["ours_onnx"].model_seconds = 0.0
    times = {name: [] for name in setups}
    model_times = {name: [] for name in setups}
    agreement = []
    from tqdm import tqdm

    for i in tqdm(range(len(instances)), desc="bench LIME", unit="instance"):
        weights = {}
        for name, fn in setups.items():  # interleaved, so all setups share the machine's load
            elapsed, model_s, weights[name] = _time_one(fn, instances.texts[i], int(labels[i]), args.num_samples,
                                                        args.seed)
            times[name].append(elapsed)
            model_times[name].append(model_s)
            log.info("instance %d %s: %.2f s (model %.2f s)", i, name, elapsed, model_s)
        words = sorted(weights["naive_pipeline"])
        a = np.array([weights["naive_pipeline"][w] for w in words])
        b = np.array([weights["ours_onnx"].get(w, 0.0) for w in words])
        agreement.append({"spearman": float(spearmanr(a, b).statistic) if len(words) > 1 else 1.0,
                          "max_abs_weight_diff": float(np.abs(a - b).max())})
    per_setup = {name: {"seconds_per_explanation_mean": float(np.mean(t)),
                        "seconds_per_explanation_median": float(np.median(t)),
                        "model_seconds_mean": float(np.mean(model_times[name])),
                        "outside_model_fraction": float(1 - np.sum(model_times[name]) / np.sum(t))}
                 for name, t in times.items()}
    speedup = float(np.sum(times["naive_pipeline"]) / np.sum(times["ours_onnx"]))
    overhead = per_setup["ours_onnx"]["outside_model_fraction"]
    metrics = {
        "n_instances": len(instances), "num_samples": args.num_samples, "threads": threads,
        "setups": per_setup,
        "speedup_vs_naive": speedup,
        "speedup_torch_batched_vs_naive": float(np.sum(times["naive_pipeline"]) / np.sum(times["ours_torch"])),
        "outside_model_fraction": overhead,
        "speedup_goal": SPEEDUP_GOAL, "overhead_goal": OVERHEAD_GOAL,
        "speedup_goal_met": speedup >= SPEEDUP_GOAL, "overhead_goal_met": overhead <= OVERHEAD_GOAL,
        "naive_vs_ours_explanations": {
            "spearman_mean": float(np.mean([a["spearman"] for a in agreement])),
            "max_abs_weight_diff": float(np.max([a["max_abs_weight_diff"] for a in agreement]))},
        "per_instance_seconds": times,
    }
    manifest = base_manifest("bench_lime", args.to_dict(), args.seed, inputs={"model": args.model, "onnx": args.onnx})
    manifest["metrics"] = metrics
    write_json_atomic(args.output, manifest)
    log.info("LIME speed: naive %.2f s, ours (ONNX) %.2f s per explanation -> %.2fx (goal %.1fx); outside the "
             "model %.1f %% (goal <= %.0f %%)", per_setup["naive_pipeline"]["seconds_per_explanation_mean"],
             per_setup["ours_onnx"]["seconds_per_explanation_mean"], speedup, SPEEDUP_GOAL, 100 * overhead,
             100 * OVERHEAD_GOAL)
    return metrics
