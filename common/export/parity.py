"""Is an exported graph the function it came from? The parity checks every export passes before it is kept.

* fp32: max |Δlogit| vs the source <= ``FP32_ATOL`` on real test texts of varied length, batched with dynamic
  padding (several batch sizes and lengths) and one at a time;
* int8: argmax agreement with the fp32 graph >= ``INT8_MIN_AGREEMENT``.

A failed check raises :class:`ParityError` (a UserError: exit code 2, nothing written).
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from common.models.base import Classifier
from common.cli import UserError

log = logging.getLogger(__name__)

FP32_ATOL = 1e-4
INT8_MIN_AGREEMENT = 0.99


class ParityError(UserError):
    """An exported graph does not compute what its source computes (nothing was written)."""


def parity_texts(texts: Sequence[str], n: int = 48) -> list[str]:
    """``n`` real texts spread over the length distribution, plus one longer than any limit."""
    texts = [t for t in texts if isinstance(t, str)]
    if not texts:
        raise UserError("The parity check needs test texts; --data has an empty test split.")
    order = np.argsort([len(t) for t in texts], kind="stable")
    picks = np.unique(np.linspace(0, len(order) - 1, num=min(n, len(order))).round().astype(int))
    chosen = [texts[order[i]] for i in picks]
    # Truncated at max_len: exercises the longest sequence the graph will be fed.
    chosen.append(" ".join(texts[order[-1]] for _ in range(8)))
    return chosen


def max_logit_difference(reference: Classifier, candidate: Classifier, texts: Sequence[str]) -> dict:
    """Max |Δlogit| over several batchings (dynamic batch and sequence axes) and one at a time."""
    diffs = {}
    for batch_size in (32, 7):
        diffs[f"batch{batch_size}"] = float(np.abs(reference.predict_logits(texts, batch_size=batch_size)
                                                   - candidate.predict_logits(texts, batch_size=batch_size)).max())
    singles = list(texts[:: max(1, len(texts) // 8)]) + [texts[-1]]
    diffs["batch1"] = float(max(np.abs(reference.predict_logits([t], batch_size=1)
                                       - candidate.predict_logits([t], batch_size=1)).max() for t in singles))
    return {"max_abs_logit_diff": max(diffs.values()), "by_batching": diffs, "n_texts": len(texts),
            "n_single_texts": len(singles)}


def check_fp32_parity(reference: Classifier, candidate: Classifier, texts: Sequence[str],
                      atol: float = FP32_ATOL, what: str = "the ONNX export") -> dict:
    result = max_logit_difference(reference, candidate, texts)
    result.update({"atol": atol, "passed": bool(result["max_abs_logit_diff"] <= atol)})
    log.info("fp32 parity: max |Δlogit| %.2e over %d texts (atol %.0e)", result["max_abs_logit_diff"],
             len(texts), atol)
    if not result["passed"]:
        raise ParityError(f"{what} differs from its PyTorch source by max |Δlogit| "
                          f"{result['max_abs_logit_diff']:.3g} > {atol:g}; nothing was written - check the "
                          f"source model and the exporter versions.")
    return result


def check_int8_agreement(reference: Classifier, candidate: Classifier, texts: Sequence[str],
                         labels: Sequence[int] | None = None, min_agreement: float = INT8_MIN_AGREEMENT,
                         what: str = "the int8 model") -> dict:
    ref_logits = reference.predict_logits(texts)
    int8_logits = candidate.predict_logits(texts)
    agreement = float((ref_logits.argmax(1) == int8_logits.argmax(1)).mean())
    result = {"argmax_agreement": agreement, "n_texts": len(texts), "min_agreement": min_agreement,
              "max_abs_logit_diff": float(np.abs(ref_logits - int8_logits).max()),
              "passed": bool(agreement >= min_agreement)}
    if labels is not None:
        labels = np.asarray(labels)
        result["accuracy_reference"] = float((ref_logits.argmax(1) == labels).mean())
        result["accuracy_candidate"] = float((int8_logits.argmax(1) == labels).mean())
    log.info("int8 agreement: %.4f over %d texts (minimum %.2f)", agreement, len(texts), min_agreement)
    if not result["passed"]:
        raise ParityError(f"{what} agrees with the fp32 graph on only {agreement:.2%} of {len(texts)} test "
                          f"texts (< {min_agreement:.0%}); nothing was written.")
    return result
