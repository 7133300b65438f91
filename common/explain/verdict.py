"""The three-way verdict every explanation check uses: ``equivalent``, ``drifted`` or ``inconclusive``.

**The rule (declared before any number it judges; README "How the verdicts work").** The input is one
value per instance for the variant, ``x_i`` (how far it is from base on that instance: the LIME
statistic of :mod:`common.explain.drift`, the deletion curves' distance of :mod:`common.explain.deletion`,
the POS divergence of :mod:`common.explain.pos`) and the same value of the **positive control**, ``c_i`` (the
base recipe fine-tuned with another training seed: another model of the same quality), on the same instances.
Per instance

    d_i = x_i - CONTROL_FRACTION * c_i            (CONTROL_FRACTION = f = 0.5)

and, with Student-t bounds on the mean of d over the n instances,

* ``equivalent`` when the one-sided upper ``1 - alpha_equivalent`` bound of mean d is below 0: the variant is
  shown closer to base than **half the distance to another fine-tune**;
* ``drifted`` when the one-sided lower ``1 - ALPHA`` bound of mean d is above 0: shown farther than that;
* otherwise ``inconclusive``, with ``n_to_decide``: the instances at which the observed mean and spread would
  give the verdict its sign points to (``decides``) with 80 % power, or None when the mean is 0.

The margin is the control's own effect, so it moves with the models, never with LIME's ``num_samples`` or
with how noisy LIME is: both sides carry the same kind of noise and it cancels in the comparison. The control
judged against itself (``d_i = (1 - f) c_i``) comes out ``drifted`` exactly when the check can tell another
fine-tune from base; otherwise the check is **blind** and the reports say so. No control, no ``equivalent``:
:func:`judge` without one returns ``inconclusive`` and ``reason``.

**Multiplicity.** The shipping rule takes the fastest of m candidates, so a false ``equivalent`` on any of them
could ship. Each candidate's ``equivalent`` is therefore tested at ``alpha_equivalent = ALPHA / m``
(Bonferroni over the m candidate variants a stage judges, :func:`bonferroni_alpha`): P(any false
``equivalent``) <= ALPHA whichever candidates are looked at, in any order, so a stage may stop at the first
candidate that passes. Holm would reject a few more but needs every p-value first. Requiring both gates
(an intersection-union test) needs no further correction. ``drifted`` never ships, so it is tested at ALPHA.

Student-t bounds rather than the bootstrap: at ALPHA / 15 = 0.0033 a percentile bootstrap of 100 instances
is itself noisy, and the t bound is exact for normal data (the simulation test checks the false-equivalent
rate of 15 candidates on the boundary). The instances' noise must be independent: LIME seeds are derived per
instance (:func:`common.explain.explainer.instance_lime_seed`).
"""
from __future__ import annotations

import math

import numpy as np

from common.cli import UserError

# f: "equivalent" = shown closer to base than f times the distance of another fine-tune of the base recipe.
CONTROL_FRACTION = 0.5
EQUIVALENT = "equivalent"
DRIFTED = "drifted"
INCONCLUSIVE = "inconclusive"
VERDICTS = (EQUIVALENT, DRIFTED, INCONCLUSIVE)
ALPHA = 0.05
POWER = 0.8
N_BOOT = 2000
NO_CONTROL = "no positive control on these instances: nothing to anchor the margin"


def bonferroni_alpha(n_candidates: int, alpha: float = ALPHA) -> float:
    """The level of each candidate's ``equivalent`` test when the pick chooses among ``n_candidates``."""
    return alpha / max(1, int(n_candidates))


def bootstrap_means(values: np.ndarray, seed: int, n_boot: int = N_BOOT) -> np.ndarray:
    """Means of ``n_boot`` seeded resamples of ``values`` (instances drawn with replacement); descriptive CIs."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    return values[idx].mean(axis=1)


def _t_bound(mean: float, sd: float, n: int, alpha: float, upper: bool) -> float:
    from scipy.stats import t

    if sd == 0:
        return mean
    step = float(t.ppf(1 - alpha, n - 1)) * sd / math.sqrt(n)
    return mean + step if upper else mean - step


def _p_below_zero(mean: float, sd: float, n: int) -> float:
    """One-sided p-value of H0: mean d >= 0 (small: shown below 0)."""
    from scipy.stats import t

    if sd == 0:
        return 0.0 if mean < 0 else 1.0
    return float(t.cdf(mean / (sd / math.sqrt(n)), n - 1))


def n_to_decide(mean: float, sd: float, n: int, alpha: float, power: float = POWER) -> int | None:
    """Instances at which a mean ``mean`` with spread ``sd`` is decided at level ``alpha`` with ``power``."""
    from scipy.stats import norm

    if abs(mean) < 1e-15 or not sd > 0:
        return None
    needed = ((float(norm.ppf(1 - alpha)) + float(norm.ppf(power))) * sd / abs(mean)) ** 2
    return max(n + 1, math.ceil(needed))


def judge(values, control=None, *, fraction: float = CONTROL_FRACTION, alpha_equivalent: float = ALPHA,
          alpha: float = ALPHA) -> dict:
    """The verdict on per-instance ``values`` against ``fraction`` x the positive ``control``'s values on the same
    instances (see the module docstring). Pairs where either side is not finite are dropped.

    Returns ``verdict``, ``mean`` (of ``values``), ``control_mean``, ``boundary`` (fraction x control_mean, the
    margin in the values' own unit), ``d_mean``, ``lower`` (ALPHA bound of mean d), ``upper``
    (``alpha_equivalent`` bound), ``p_equivalent``, ``alpha_equivalent``, ``n``, ``n_to_decide``, ``decides`` and
    ``reason`` (why there is no decided verdict, when there is none to be had).
    """
    values = np.asarray(values, dtype=np.float64)
    if control is None:
        ok = np.isfinite(values)
        if ok.sum() < 2:
            raise UserError(f"A verdict needs at least 2 paired instances (got {int(ok.sum())}).")
        return {"verdict": INCONCLUSIVE, "mean": float(values[ok].mean()), "control_mean": float("nan"),
                "boundary": float("nan"), "d_mean": float("nan"), "lower": float("nan"), "upper": float("nan"),
                "p_equivalent": float("nan"), "alpha_equivalent": float(alpha_equivalent), "n": int(ok.sum()),
                "n_to_decide": None, "decides": "", "reason": NO_CONTROL}
    control = np.asarray(control, dtype=np.float64)
    if control.shape != values.shape:
        raise UserError(f"The variant and the control are measured on different instances ({values.shape[0]} vs "
                        f"{control.shape[0]}); judge them on the same ones.")
    ok = np.isfinite(values) & np.isfinite(control)
    n = int(ok.sum())
    if n < 2:
        raise UserError(f"A verdict needs at least 2 paired instances (got {n}).")
    x, c = values[ok], control[ok]
    d = x - fraction * c
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd < 1e-12 * max(1.0, abs(mean)):
        sd = 0.0  # an exactly constant difference (an identical function): the bounds are the mean itself
    lower = _t_bound(mean, sd, n, alpha, upper=False)
    upper = _t_bound(mean, sd, n, alpha_equivalent, upper=True)
    if upper < 0:
        verdict = EQUIVALENT
    elif lower > 0:
        verdict = DRIFTED
    else:
        verdict = INCONCLUSIVE
    decides, needed = "", None
    if verdict == INCONCLUSIVE:
        decides = EQUIVALENT if mean < 0 else DRIFTED
        needed = n_to_decide(mean, sd, n, alpha_equivalent if mean < 0 else alpha)
    return {"verdict": verdict, "mean": float(x.mean()), "control_mean": float(c.mean()),
            "boundary": float(fraction * c.mean()), "d_mean": mean, "lower": lower, "upper": upper,
            "p_equivalent": _p_below_zero(mean, sd, n), "alpha_equivalent": float(alpha_equivalent), "n": n,
            "n_to_decide": needed, "decides": decides if needed else "", "reason": ""}


def decide_text(result: dict) -> str:
    """"would be drifted at about 240 instances (80 % power)", or "" when there is nothing to say."""
    if result.get("verdict") != INCONCLUSIVE or not result.get("n_to_decide"):
        return ""
    return f"would be {result['decides']} at about {int(result['n_to_decide'])} instances ({POWER * 100:.0f} % power)"
