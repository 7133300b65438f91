"""Classification metrics (scikit-learn; ``evaluate.load`` needs the hub) and speed measurement."""
from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np

from common import LABEL_NAMES


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    labels = list(range(len(LABEL_NAMES)))
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class_f1": {name: float(v) for name, v in zip(LABEL_NAMES, per_class)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "n_test": int(len(y_true)),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss; psutil RSS where that is absent)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except (ImportError, AttributeError):  # pragma: no cover - non-Unix
        import psutil

        return psutil.Process(os.getpid()).memory_info().rss / 2**20


def latency_stats(clf, texts: Sequence[str], warmup: int = 10, repeats: int = 100) -> dict:
    """Per-request latency at batch size 1 (ms), after ``warmup`` untimed calls."""
    texts = list(texts)
    for i in range(min(warmup, len(texts))):
        clf.predict_logits([texts[i]], batch_size=1)
    times = []
    for i in range(repeats):
        text = texts[i % len(texts)]
        start = time.perf_counter()
        clf.predict_logits([text], batch_size=1)
        times.append((time.perf_counter() - start) * 1000.0)
    times = np.asarray(times)
    return {
        "latency_ms_p50": float(np.percentile(times, 50)),
        "latency_ms_p95": float(np.percentile(times, 95)),
        "latency_ms_p99": float(np.percentile(times, 99)),
        "latency_ms_mean": float(times.mean()),
        "latency_requests": int(repeats),
    }


def throughput_stats(clf, texts: Sequence[str], batch_size: int = 32, repeats: int = 3,
                     warmup_batches: int = 2) -> dict:
    """Samples/s at ``batch_size`` over ``texts`` (length-sorted batches), best and median of ``repeats``."""
    texts = list(texts)
    clf.predict_logits(texts[: batch_size * warmup_batches], batch_size=batch_size)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        clf.predict_logits(texts, batch_size=batch_size)
        rates.append(len(texts) / (time.perf_counter() - start))
    return {
        "throughput_samples_per_s": float(np.median(rates)),
        "throughput_samples_per_s_best": float(np.max(rates)),
        "throughput_batch_size": int(batch_size),
        "throughput_n_texts": int(len(texts)),
        "throughput_repeats": int(repeats),
    }
