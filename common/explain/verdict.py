"""The three-way verdict every explanation check uses: ``equivalent``, ``drifted`` or ``inconclusive``.

An equivalence test, not an absence of evidence. The input is one paired value per instance: the
variant's *extra disagreement* with base (for LIME agreement: agreement(base@A, base@B) -
agreement(variant@A, base@B), same instances, same seeds on both sides), or a paired difference
(for the deletion test: the variant's probability drop minus base's). With a declared ``margin``:

* one-sided (``two_sided=False``, extra disagreement; only larger is worse): ``equivalent`` when the
  one-sided 95 % upper bootstrap bound of the mean is below ``margin``; ``drifted`` when the one-sided
  95 % lower bound is above it;
* two-sided (``two_sided=True``, a difference that may go either way): two one-sided tests (TOST) -
  ``equivalent`` when the 90 % interval lies inside (-margin, margin); ``drifted`` when it lies
  entirely outside (below -margin or above margin);
* otherwise ``inconclusive``, with ``n_to_decide``: the number of instances at which the same mean
  and spread would give a decided verdict (normal approximation), or None when the mean sits on the
  margin (more instances cannot decide it; more LIME samples per explanation, which shrink the spread,
  can).

The bootstrap resamples instances (percentile method, seeded), so the instances' noise must be
independent: LIME seeds are derived per instance (:func:`common.explain.explainer.instance_lime_seed`).
"""
from __future__ import annotations

import math

import numpy as np

from common.cli import UserError

# The one declared margin rule of every explanation check (LIME agreement, deletion test, POS): a variant may
# differ from base by at most a tenth of the check's own scale (LIME's seed-to-seed disagreement, base's AOPC,
# LIME's seed-to-seed JS). A quarter (the first choice) could not call a second fine-tune of the base recipe
# drifted (analysis/RESULTS.md, "LIME noise floor and drift verdicts").
MARGIN_FRACTION = 0.1

EQUIVALENT = "equivalent"
DRIFTED = "drifted"
INCONCLUSIVE = "inconclusive"
VERDICTS = (EQUIVALENT, DRIFTED, INCONCLUSIVE)
ALPHA = 0.05
N_BOOT = 2000
Z_ONE_SIDED_95 = 1.6448536269514722


def bootstrap_means(values: np.ndarray, seed: int, n_boot: int = N_BOOT) -> np.ndarray:
    """Means of ``n_boot`` seeded resamples of ``values`` (instances drawn with replacement)."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    return values[idx].mean(axis=1)


def judge(values, margin: float, *, two_sided: bool = False, seed: int = 0, alpha: float = ALPHA,
          n_boot: int = N_BOOT) -> dict:
    """The verdict on paired per-instance ``values`` against ``margin`` (> 0). See the module docstring.

    Returns ``verdict``, ``mean``, ``lower``/``upper`` (one-sided ``1 - alpha`` bounds, i.e. the
    ``1 - 2 alpha`` two-sided interval), ``margin``, ``n``, ``two_sided`` and ``n_to_decide``.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not margin > 0:
        raise UserError(f"The equivalence margin must be positive (got {margin}).")
    if len(values) < 2:
        raise UserError(f"A verdict needs at least 2 paired instances (got {len(values)}).")
    means = bootstrap_means(values, seed, n_boot)
    lower, upper = (float(q) for q in np.quantile(means, [alpha, 1 - alpha]))
    mean = float(values.mean())
    if two_sided:
        if -margin < lower and upper < margin:
            verdict = EQUIVALENT
        elif lower > margin or upper < -margin:
            verdict = DRIFTED
        else:
            verdict = INCONCLUSIVE
        distance = margin - abs(mean)
    else:
        if upper < margin:
            verdict = EQUIVALENT
        elif lower > margin:
            verdict = DRIFTED
        else:
            verdict = INCONCLUSIVE
        distance = margin - mean
    n_to_decide = None
    if verdict == INCONCLUSIVE:
        sd = float(values.std(ddof=1))
        if abs(distance) > 1e-12 and sd > 0:
            n_to_decide = max(len(values) + 1, math.ceil((Z_ONE_SIDED_95 * sd / abs(distance)) ** 2))
    return {"verdict": verdict, "mean": mean, "lower": lower, "upper": upper, "margin": float(margin),
            "n": int(len(values)), "two_sided": bool(two_sided), "n_to_decide": n_to_decide}
