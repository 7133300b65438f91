"""One benchmark variant, measured in a process of its own, and the earlier measurements it may reuse.

The parent (:mod:`common.benchmark`) runs ``python -m common.bench_worker SPEC.json`` per variant (and a
second time for the batch agreement), so peak RSS, threads and allocator state are that variant's alone.
The worker calls :func:`common.evaluation.evaluate_model` - the same keys as the spine's evaluation - or,
when an earlier record of the identical artefact on the same test rows holds its accuracy, only the speed
half of it (accuracy over the full test split is the slow part; speed is always measured again).
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.schema import BATCH_AGREEMENT

log = logging.getLogger(__name__)

CLASSIFICATION_KEYS = ("accuracy", "macro_f1", "per_class_f1", "confusion_matrix", "n_test")
AGREEMENT_KEYS = (BATCH_AGREEMENT, "batch_agreement_flips", "batch_agreement_n", "batch_agreement_batch_size",
                  "batch_agreement_rows")
# One-by-one prediction costs a forward pass per text: the agreement is measured on a seeded random subset of
# the evaluated rows (--agreement-rows; 0 = all of them). 1,000 rows resolve a 1-3 % flip rate to about +-1 pt.
DEFAULT_AGREEMENT_ROWS = 1000

# ----------------------------------------------------------------------------------------------- reuse
def reusable_accuracy(previous_json: Path, model_sha256: str, settings: dict) -> dict | None:
    """The accuracy block of an earlier measurement of the same artefact on the same test rows, else None."""
    if not previous_json.is_file():
        return None
    try:
        previous = json.loads(previous_json.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    manifest = previous.get("manifest") or {}
    recorded_hash = previous.get("model_sha256") or manifest.get("inputs", {}).get("model", {}).get("sha256")
    if recorded_hash != model_sha256 or any(k not in previous for k in CLASSIFICATION_KEYS):
        return None
    arguments = manifest.get("arguments", {})
    same = (str(arguments.get("data", "")) == str(settings["data"])
            and int(arguments.get("test_samples", -1)) == int(settings["test_samples"])
            and int(arguments.get("max_len", previous.get("max_len", -1))) == int(settings["max_len"])
            and previous.get("dtype", "fp32") == settings["dtype"]
            and int(arguments.get("seed", 42) or 42) == int(settings["seed"]))
    if not same:
        return None
    if previous.get("test_sha256") and previous["test_sha256"] != settings.get("test_sha256"):
        return None
    block = {k: previous[k] for k in CLASSIFICATION_KEYS}
    block["accuracy_source"] = f"reused from {previous_json.name} ({manifest.get('created', 'earlier run')}, same model sha256)"
    return block


# ----------------------------------------------------------------------------------------------- worker
def speed_only(model: Path, variant: str, data: str, test_samples: int, max_len: int, device: str, dtype: str,
               threads: int, batch_size: int, latency_requests: int, throughput_texts: int, seed: int) -> dict:
    """Latency, throughput, size, parameters and RSS without the accuracy pass (which is reused)."""
    from common.classifier import load_classifier
    from common.data import load_test_split
    from common.evaluation import parameter_count
    from common.threads import set_threads
    from common.manifest import size_on_disk
    from common.metrics import latency_stats, peak_rss_mb, throughput_stats

    threads = set_threads(threads)
    clf = load_classifier(model, device=device, dtype=dtype, max_len=max_len, batch_size=batch_size,
                          progress=True, threads=threads)
    test = load_test_split(data, test_samples, seed)
    rng = np.random.default_rng(seed)
    speed_texts = [test.texts[i] for i in rng.permutation(len(test))[:throughput_texts]]
    result = dict(latency_stats(clf, speed_texts, repeats=latency_requests))
    result.update(throughput_stats(clf, speed_texts, batch_size=batch_size))
    result.update({"variant": variant, "model": str(model), "format": clf.info.get("format"), "kind": clf.kind,
                   "dtype": dtype, "device": getattr(clf, "device", device), "threads": threads, "max_len": max_len,
                   "eval_wall_s": None, "size_mb": size_on_disk(model) / 2**20, "parameters": parameter_count(clf),
                   "peak_rss_mb": peak_rss_mb()})
    return result


def batch_agreement(clf, texts: list[str], batch_size: int) -> dict:
    """Argmax agreement of ``clf`` between batches of ``batch_size`` and one text at a time."""
    from tqdm import tqdm

    batched = clf.predict_logits(texts, batch_size=batch_size).argmax(axis=1)
    single = np.array([clf.predict_logits([text], batch_size=1)[0].argmax()
                       for text in tqdm(texts, desc="one-by-one", unit="text", leave=False)], dtype=batched.dtype)
    flips = int((batched != single).sum())
    return {BATCH_AGREEMENT: float((batched == single).mean()) if texts else None, "batch_agreement_flips": flips,
            "batch_agreement_n": len(texts), "batch_agreement_batch_size": batch_size}


def agreement_texts(texts: list[str], rows: int, seed: int) -> list[str]:
    """A seeded random subset of ``rows`` texts, in their original order (all of them when ``rows`` is 0)."""
    if not rows or rows >= len(texts):
        return list(texts)
    chosen = np.sort(np.random.default_rng(seed).choice(len(texts), size=rows, replace=False))
    return [texts[i] for i in chosen]


def agreement_only(model: Path, data: str, test_samples: int, max_len: int, device: str, dtype: str, threads: int,
                   batch_size: int, seed: int, agreement_rows: int = DEFAULT_AGREEMENT_ROWS, **_unused) -> dict:
    from common.classifier import load_classifier
    from common.data import load_test_split
    from common.threads import set_threads

    threads = set_threads(threads)
    clf = load_classifier(model, device=device, dtype=dtype, max_len=max_len, batch_size=batch_size,
                          threads=threads)
    texts = agreement_texts(load_test_split(data, test_samples, seed).texts, agreement_rows, seed)
    return {**batch_agreement(clf, texts, batch_size), "batch_agreement_rows": agreement_rows}


def reusable_agreement(previous_json: Path, batch_size: int, rows: int = DEFAULT_AGREEMENT_ROWS) -> dict | None:
    """The batch agreement of an earlier run at the same batch size (call only when its accuracy is reusable)."""
    try:
        previous = json.loads(previous_json.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if (previous.get(BATCH_AGREEMENT) is None or previous.get("batch_agreement_batch_size") != batch_size
            or previous.get("batch_agreement_rows", 0) != rows):
        return None
    return {k: previous[k] for k in AGREEMENT_KEYS if k in previous}


def run_worker(spec_path: str) -> int:
    """Measure one variant as described by a JSON spec; write the result JSON. Runs in its own process.

    ``task: agreement`` measures only the batch agreement (in a process of its own, after the monitored
    one, so its one-by-one pass does not touch the variant's memory and speed figures).
    """
    from common.cli import setup_logging
    from common.evaluation import evaluate_model

    setup_logging()
    spec = json.loads(Path(spec_path).read_text())
    common_kwargs = dict(data=spec["data"], test_samples=spec["test_samples"], max_len=spec["max_len"],
                         device=spec["device"], dtype=spec["dtype"], threads=spec["threads"],
                         batch_size=spec["batch_size"], latency_requests=spec["latency_requests"],
                         throughput_texts=spec["throughput_texts"], seed=spec["seed"])
    try:
        if spec.get("task") == "agreement":
            result = agreement_only(Path(spec["model"]), **common_kwargs,
                                    agreement_rows=spec.get("agreement_rows", DEFAULT_AGREEMENT_ROWS))
        elif spec.get("reuse"):
            result = speed_only(Path(spec["model"]), spec["variant"], **common_kwargs)
            result.update(spec["reuse"])
        else:
            result = evaluate_model(spec["model"], spec["variant"], **common_kwargs)
            result["accuracy_source"] = "measured in this run"
    except UserError as exc:  # one sentence, no traceback - as a stage script would
        Path(spec["result"]).with_name("error.txt").write_text(str(exc))
        log.error("%s", exc)
        return exc.exit_code
    except BaseException as exc:
        # The parent reports this sentence in summary.md; the traceback stays in the log.
        Path(spec["result"]).with_name("error.txt").write_text(f"{type(exc).__name__}: {exc}")
        raise
    from common.manifest import write_json_atomic

    write_json_atomic(spec["result"], result)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 2:
        sys.exit(run_worker(sys.argv[1]))
    sys.exit("usage: python -m common.bench_worker SPEC.json (internal; use inference/run_onnx_benchmark.py)")
