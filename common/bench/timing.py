"""The benchmark's timing protocol, run verbatim by our worker and by the Optimum peer's worker.

Only the standard library and numpy are imported here, on purpose: the peer runs in a venv of its own
(Optimum pins transformers < 4.58) that must not import the toolkit's dependencies, yet a ratio between
the two is only fair if both sides time the same thing. So the texts are tokenized once, on our side,
and saved as token ids (:func:`save_inputs`); both sides pad them with :func:`pad_batches` (length-sorted
batches, each padded to its own longest row) and time only the model call ``run(input_ids,
attention_mask, token_type_ids) -> logits`` (:func:`throughput`, :func:`latency`).
"""
from __future__ import annotations

import os
import time

import numpy as np

from common.padding import pad_rows

THROUGHPUT_REPEATS = 3
WARMUP_BATCHES = 2
LATENCY_WARMUP = 10


def flatten(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged token ids as one flat array and row offsets (``len(ids) + 1`` of them)."""
    lengths = np.array([len(row) for row in ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.fromiter((token for row in ids for token in row), dtype=np.int64, count=int(offsets[-1]))
    return flat, offsets


def unflatten(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def save_inputs(path: str | os.PathLike, *, eval_ids: list[list[int]], speed_ids: list[list[int]], pad_id: int,
                batch_size: int, eval_batch_size: int, latency_requests: int) -> None:
    """The token ids both sides run: every evaluated row (accuracy) and the speed rows (latency, throughput)."""
    eval_flat, eval_offsets = flatten(eval_ids)
    speed_flat, speed_offsets = flatten(speed_ids)
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}.npz"
    np.savez(tmp, eval_flat=eval_flat, eval_offsets=eval_offsets, speed_flat=speed_flat, speed_offsets=speed_offsets,
             settings=np.array([pad_id, batch_size, eval_batch_size, latency_requests], dtype=np.int64))
    os.replace(tmp, path)


def load_inputs(path: str | os.PathLike) -> dict:
    with np.load(path) as saved:
        pad_id, batch_size, eval_batch_size, latency_requests = (int(x) for x in saved["settings"])
        return {"eval": unflatten(saved["eval_flat"], saved["eval_offsets"]),
                "speed": unflatten(saved["speed_flat"], saved["speed_offsets"]), "pad_id": pad_id,
                "batch_size": batch_size, "eval_batch_size": eval_batch_size, "latency_requests": latency_requests}


def pad_batches(ids: list, batch_size: int, pad_id: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Length-sorted batches, each padded to its own longest row, and the row order they hold."""
    order = np.argsort([len(row) for row in ids], kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        batches.append(pad_rows(ids, order[start:start + batch_size], pad_id))
    return batches, order


def _call(run, batch) -> np.ndarray:
    input_ids, attention = batch
    return run(input_ids, attention, np.zeros_like(input_ids))


def logits_in_order(run, ids: list, batch_size: int, pad_id: int) -> np.ndarray:
    """Logits of every row of ``ids``, in the order given (computed in length-sorted batches)."""
    batches, order = pad_batches(ids, batch_size, pad_id)
    out = np.concatenate([np.asarray(_call(run, batch), dtype=np.float32) for batch in batches])
    restored = np.empty_like(out)
    restored[order] = out
    return restored


def agreement_indices(n: int, rows: int, seed: int) -> list[int]:
    """A seeded random subset of ``rows`` of ``n`` row indices, sorted (all of them when ``rows`` is 0): the rows
    the batch-vs-one-by-one agreement is measured on, the same for our variants and the peer."""
    if not rows or rows >= n:
        return list(range(n))
    return [int(i) for i in np.sort(np.random.default_rng(seed).choice(n, size=rows, replace=False))]


def batch_vs_single(run, ids: list, batch_size: int, pad_id: int) -> dict:
    """Argmax of every row in length-sorted batches of ``batch_size`` and one row at a time, and how often
    they differ (dynamic int8's activation scales depend on the batch mates)."""
    return agreement_summary(logits_in_order(run, ids, batch_size, pad_id).argmax(axis=1),
                             logits_in_order(run, ids, 1, pad_id).argmax(axis=1), batch_size)


def agreement_summary(batched: np.ndarray, single: np.ndarray, batch_size: int) -> dict:
    """The batch agreement record from the two argmax arrays (our variants' and the peer's alike)."""
    flips = int((batched != single).sum())
    return {"batch_agreement": float((batched == single).mean()) if len(batched) else None,
            "batch_agreement_flips": flips, "batch_agreement_n": len(batched), "batch_agreement_batch_size": batch_size}


def throughput(run, ids: list, batch_size: int, pad_id: int, repeats: int = THROUGHPUT_REPEATS) -> dict:
    """Samples/s over ``ids`` at ``batch_size``: median and best of ``repeats`` passes after a warm-up."""
    batches, _ = pad_batches(ids, batch_size, pad_id)
    for batch in batches[:WARMUP_BATCHES]:
        _call(run, batch)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            _call(run, batch)
        rates.append(len(ids) / (time.perf_counter() - start))
    return {"throughput_samples_per_s": float(np.median(rates)), "throughput_samples_per_s_best": float(np.max(rates)),
            "throughput_batch_size": int(batch_size), "throughput_n_texts": len(ids), "throughput_repeats": repeats}


def latency(run, ids: list, requests: int) -> dict:
    """Batch-1 latency (ms) of ``requests`` calls cycling over ``ids``, after a warm-up."""
    singles = [(np.asarray(row, dtype=np.int64)[None, :], np.ones((1, len(row)), dtype=np.int64)) for row in ids]
    for batch in singles[:LATENCY_WARMUP]:
        _call(run, batch)
    times = []
    for i in range(requests):
        batch = singles[i % len(singles)]
        start = time.perf_counter()
        _call(run, batch)
        times.append((time.perf_counter() - start) * 1000.0)
    times = np.asarray(times)
    return {"latency_ms_p50": float(np.percentile(times, 50)), "latency_ms_p95": float(np.percentile(times, 95)),
            "latency_ms_p99": float(np.percentile(times, 99)), "latency_ms_mean": float(times.mean()),
            "latency_requests": int(requests)}


def thread_settings(cores: int) -> list[int]:
    """The thread counts latency is measured at: 1, 2, 4, ... below ``cores``, and ``cores``."""
    cores = max(1, int(cores))
    settings, threads = [], 1
    while threads < cores:
        settings.append(threads)
        threads *= 2
    return settings + [cores]


def best_latency(by_threads: dict) -> dict:
    """The latency block at the thread count with the lowest p50 (ties: the fewer threads), with that count.

    ``by_threads`` maps a thread count (int, or its string from JSON) to a :func:`latency` block.
    """
    if not by_threads:
        raise ValueError("no latency measurement to choose from")
    threads, block = min(((int(t), b) for t, b in by_threads.items()),
                         key=lambda item: (item[1]["latency_ms_p50"], item[0]))
    return {**block, "latency_threads": threads}
