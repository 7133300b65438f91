"""One benchmark variant, measured in a process of its own, and the earlier measurements it may reuse.

The parent (:mod:`common.bench.run`) runs ``python -m common.bench.worker SPEC.json`` per variant (and a
second time for the batch agreement), so peak RSS, threads and allocator state are that variant's alone.
The worker measures accuracy as the spine's evaluation does (the same keys), unless an earlier record of the
identical artefact on the same test rows holds it (accuracy over the full test split is the slow part), and
speed always, with :mod:`common.bench.timing` - the protocol the Optimum peer is timed with too.
"""
from __future__ import annotations

import json
import logging
import sys
import time
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
# Batch size of the accuracy pass (as the spine's evaluation); the Optimum peer's accuracy uses it too.
EVAL_BATCH_SIZE = 64

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
def measure_variant(model: Path, variant: str, data: str, test_samples: int, max_len: int, device: str, dtype: str,
                    threads: int, batch_size: int, latency_requests: int, throughput_texts: int, seed: int,
                    latency_threads: list[int], reuse: dict | None = None, inputs_out: str | None = None) -> dict:
    """Accuracy (or the reused block), then speed by :mod:`common.bench.timing` on pre-tokenized texts.

    The texts are tokenized before any timing, and only the model call is timed, exactly as the Optimum
    peer's worker does with the token ids saved to ``inputs_out`` (the baseline's worker writes them).
    Throughput runs at ``threads``; batch-1 latency at each of ``latency_threads`` (a fresh classifier per
    count: ONNX Runtime fixes its thread pool when the session is made), reported at the best one.
    """
    from common.bench.timing import best_latency, latency, save_inputs, throughput
    from common.models.classifier import load_classifier
    from common.data import load_test_split
    from common.bench.evaluation import parameter_count
    from common.manifest import size_on_disk
    from common.metrics import classification_metrics, peak_rss_mb
    from common.threads import set_threads

    def load(count: int):
        return load_classifier(model, device=device, dtype=dtype, max_len=max_len, batch_size=batch_size,
                               progress=True, threads=set_threads(count))

    threads = set_threads(threads)
    clf = load(threads)
    test = load_test_split(data, test_samples, seed)
    result = {}
    eval_s = None
    if reuse:
        result.update(reuse)
    else:
        start = time.perf_counter()
        result.update(classification_metrics(test.labels, clf.predict(test.texts, batch_size=EVAL_BATCH_SIZE)))
        eval_s = time.perf_counter() - start
        result["accuracy_source"] = "measured in this run"
    rng = np.random.default_rng(seed)
    speed_ids = clf.encode([test.texts[i] for i in rng.permutation(len(test))[:throughput_texts]])
    pad_id = clf.tokenizer.pad_token_id or 0
    if inputs_out:
        save_inputs(inputs_out, eval_ids=clf.encode(test.texts), speed_ids=speed_ids, pad_id=pad_id,
                    batch_size=batch_size, eval_batch_size=EVAL_BATCH_SIZE, latency_requests=latency_requests)
    result.update(throughput(clf._logits_batch, speed_ids, batch_size, pad_id))
    by_threads = {}
    for count in latency_threads:
        set_threads(count)  # torch's pool is process-wide: set it for the main classifier too
        runner = clf if count == threads else load(count)
        by_threads[str(count)] = latency(runner._logits_batch, speed_ids, latency_requests)
        del runner
    set_threads(threads)
    result.update(best_latency(by_threads))
    result.update({"latency_by_threads": by_threads, "variant": variant, "model": str(model),
                   "format": clf.info.get("format"), "kind": clf.kind, "dtype": dtype,
                   "device": getattr(clf, "device", device), "threads": threads, "max_len": max_len,
                   "eval_wall_s": eval_s, "size_mb": size_on_disk(model) / 2**20, "parameters": parameter_count(clf),
                   "peak_rss_mb": peak_rss_mb()})
    return result


def batch_agreement(clf, texts: list[str], batch_size: int) -> dict:
    """Argmax agreement of ``clf`` between batches of ``batch_size`` and one text at a time."""
    from tqdm import tqdm

    batched = clf.predict_logits(texts, batch_size=batch_size).argmax(axis=1)
    single = np.array([clf.predict_logits([text], batch_size=1)[0].argmax()
                       for text in tqdm(texts, desc="one-by-one", unit="text", leave=False)], dtype=batched.dtype)
    from common.bench.timing import agreement_summary

    return agreement_summary(batched, single, batch_size)


def agreement_texts(texts: list[str], rows: int, seed: int) -> list[str]:
    """A seeded random subset of ``rows`` texts, in their original order (all of them when ``rows`` is 0)."""
    from common.bench.timing import agreement_indices

    return [texts[i] for i in agreement_indices(len(texts), rows, seed)]


def agreement_only(model: Path, data: str, test_samples: int, max_len: int, device: str, dtype: str, threads: int,
                   batch_size: int, seed: int, agreement_rows: int = DEFAULT_AGREEMENT_ROWS, **_unused) -> dict:
    from common.models.classifier import load_classifier
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

    setup_logging()
    spec = json.loads(Path(spec_path).read_text())
    common_kwargs = dict(data=spec["data"], test_samples=spec["test_samples"], max_len=spec["max_len"],
                         device=spec["device"], dtype=spec["dtype"], threads=spec["threads"],
                         batch_size=spec["batch_size"], seed=spec["seed"])
    try:
        if spec.get("task") == "agreement":
            result = agreement_only(Path(spec["model"]), **common_kwargs,
                                    agreement_rows=spec.get("agreement_rows", DEFAULT_AGREEMENT_ROWS))
        else:
            result = measure_variant(Path(spec["model"]), spec["variant"], **common_kwargs,
                                     latency_requests=spec["latency_requests"],
                                     throughput_texts=spec["throughput_texts"],
                                     latency_threads=spec["latency_threads"], reuse=spec.get("reuse"),
                                     inputs_out=spec.get("inputs_out"))
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
    sys.exit("usage: python -m common.bench.worker SPEC.json (internal; use inference/run_onnx_benchmark.py)")
