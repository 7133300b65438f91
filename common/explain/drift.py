"""Is a variant explained like the base model? A paired, like-for-like equivalence test on LIME.

**Design.** Every model that is judged is explained twice over the same instances, the same explained labels
(base's prediction) and the same ``num_samples``: with LIME seed S and with seed S+1.

* ``base@S`` and ``base@S+1`` (the noise run, ``base_noise.csv``);
* ``variant@S`` (``outputs/lime/<variant>.csv``) and ``variant@S+1`` (the *rerun*,
  ``outputs/lime_rerun/<variant>.csv``); the positive control likewise.

Per instance and metric m, the **symmetric statistic**

    extra = [m(b@S, b@S+1) + m(v@S, v@S+1)] / 2 - [m(v@S, b@S+1) + m(b@S, v@S+1)] / 2

is the within-model agreement minus the across-model agreement, every term a cross-seed comparison. It is
exactly 0 for an identical function, and LIME's first-order noise cancels (it enters both brackets), so it
does not favour a variant whose LIME is less noisy than base's. Its cost is one more LIME run per judged
model, which :mod:`common.explain.drift_report` pays for by judging only what could ship.

**Verdict.** :func:`common.explain.verdict.judge` on the per-instance extra of the variant against the positive
control's (the base recipe fine-tuned with another training seed, judged on the same instances):
``equivalent`` when the variant is shown closer to base than ``CONTROL_FRACTION`` (half) the control's
distance, at ``ALPHA / m`` for the m candidates (Bonferroni); ``drifted`` when shown farther; else
``inconclusive`` with the instances that would decide at 80 % power. The margin is the control's effect, so a
fixed pair of models keeps its verdict when ``LIME_SAMPLES`` changes; without a control (or its rerun) nothing
is ``equivalent``. The verdict that counts uses the headline metric (RBO); Spearman's is reported beside it.
The metrics are defined in :mod:`common.explain.similarity`.

**Controls.** A negative control (an identical function, e.g. ``base_onnx``) must come out ``equivalent``;
the positive control judged against itself is ``drifted`` when LIME can tell another fine-tune from base, and
when it is not the summary says the gate is blind.

Bad input stops with one sentence naming the file: files that explain other instances, other labels or
another ``num_samples`` than base, a noise run or rerun with base's seed, a variant with another seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.explain.similarity import METRICS, pair_metrics
from common.explain.design import OTHER_SEED, SAME_SEED, LimeDesign, check_same_design, read_stage_csv, single_setting
from common.explain.verdict import CONTROL_FRACTION, DRIFTED, EQUIVALENT, bonferroni_alpha, bootstrap_means, judge

HEADLINE = "rbo"
SECONDARY = "spearman"
NOISE_NAME = "noise_floor"
REQUIRED = {"instance_id", "word", "weight", "explained_label", "predicted_label", "seed", "num_samples"}

# Roles of the rows of lime_similarity.csv.
ROLE_VARIANT = "variant"
ROLE_NEGATIVE_CONTROL = "negative_control"
ROLE_POSITIVE_CONTROL = "positive_control"
ROLE_NOISE_FLOOR = "noise_floor"

# lime_similarity.csv: one row per (variant, metric). The report imports these names.
SIMILARITY_CSV = "lime_similarity.csv"
COL_VARIANT = "variant"
COL_ROLE = "role"
COL_METRIC = "metric"
COL_N = "n"
COL_LABEL_AGREEMENT = "label_agreement"  # share of instances where the variant predicts base's label
COL_SAME_SEED = "same_seed_mean"  # mean m(base@S, variant@S): descriptive only (noise cancels)
COL_CROSS_SEED = "cross_seed_mean"  # mean m(variant@S, base@S+1) (noise floor row: m(base@S, base@S+1))
COL_FLOOR = "floor_mean"  # mean m(base@S, base@S+1), over the same instances
COL_EXTRA = "extra_mean"  # mean symmetric statistic (module docstring), paired per instance
COL_CONTROL_EXTRA = "control_extra_mean"  # the positive control's, on the same instances
COL_MARGIN = "margin"  # CONTROL_FRACTION x the control's mean: the boundary in the statistic's unit
COL_D = "d_mean"  # mean of extra - CONTROL_FRACTION x control extra
COL_LOWER = "lower"  # one-sided ALPHA lower bound of COL_D (drifted when > 0)
COL_UPPER = "upper"  # one-sided ALPHA / m upper bound of COL_D (equivalent when < 0)
COL_P_EQUIVALENT = "p_equivalent"
COL_ALPHA_EQUIVALENT = "alpha_equivalent"  # ALPHA / m (Bonferroni over the m candidates)
COL_VERDICT = "verdict"  # equivalent | drifted | inconclusive | "" (not judged: COL_REASON says why)
COL_N_TO_DECIDE = "n_to_decide"  # instances that would decide at 80 % power ...
COL_DECIDES = "decides"  # ... and which way
COL_REASON = "reason"
SIMILARITY_COLUMNS = [COL_VARIANT, COL_ROLE, COL_METRIC, COL_N, COL_LABEL_AGREEMENT, COL_SAME_SEED, COL_CROSS_SEED,
                      COL_FLOOR, COL_EXTRA, COL_CONTROL_EXTRA, COL_MARGIN, COL_D, COL_LOWER, COL_UPPER,
                      COL_P_EQUIVALENT, COL_ALPHA_EQUIVALENT, COL_VERDICT, COL_N_TO_DECIDE, COL_DECIDES, COL_REASON]


@dataclass
class Explanations:
    """One LIME CSV: per instance the word -> weight map and the labels, plus its run settings."""

    name: str
    path: Path
    weights: dict[int, dict[str, float]]
    predicted: dict[int, int]
    explained: dict[int, int]
    seed: int
    num_samples: int

    def design(self) -> LimeDesign:
        return LimeDesign(self.path, self.explained, self.seed, self.num_samples)


def read_explanations(path: str | Path, name: str | None = None) -> Explanations:
    path = Path(path)
    frame = read_stage_csv(path, REQUIRED, "run_lime_on_model", ("word",))
    if name is None:
        name = str(frame["variant"].iloc[0]) if "variant" in frame.columns else path.stem
    weights: dict[int, dict[str, float]] = {}
    predicted, explained = {}, {}
    for row in frame.itertuples(index=False):
        iid = int(row.instance_id)
        weights.setdefault(iid, {})[str(row.word)] = float(row.weight)
        predicted[iid] = int(row.predicted_label)
        explained[iid] = int(row.explained_label)
    return Explanations(name, path, weights, predicted, explained, single_setting(frame, "seed", path),
                        single_setting(frame, "num_samples", path))


def check_comparable(reference: Explanations, other: Explanations, *, same_seed: bool) -> None:
    """Stop unless ``other`` explains exactly ``reference``'s instances and labels with the same
    ``num_samples``, and with the same LIME seed (``same_seed``) or another one (not ``same_seed``)."""
    check_same_design(reference.design(), other.design(), SAME_SEED if same_seed else OTHER_SEED)


# ----------------------------------------------------------------------------------------------- the statistic
def compare(reference: Explanations, other: Explanations) -> dict[int, dict[str, float]]:
    """instance_id -> metrics(reference, other); the caller has checked both explain the same instances."""
    return {iid: pair_metrics(reference.weights[iid], other.weights[iid]) for iid in sorted(reference.weights)}


def symmetric_extra(base: Explanations, noise: Explanations, variant: Explanations,
                    rerun: Explanations) -> dict[int, dict[str, float]]:
    """instance_id -> metric -> the symmetric statistic (module docstring). The S+1 run is the reference side
    of every term (``sign_top5`` takes its top words), so the four terms are oriented alike."""
    within_base, within_variant = compare(noise, base), compare(rerun, variant)
    across_a, across_b = compare(noise, variant), compare(rerun, base)
    return {iid: {m: (within_base[iid][m] + within_variant[iid][m]) / 2 - (across_a[iid][m] + across_b[iid][m]) / 2
                  for m in METRICS} for iid in within_base}


def bootstrap_ci(values: np.ndarray, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided percentile-bootstrap CI of the mean (NaNs dropped)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    means = bootstrap_means(values, seed)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def aggregate(rows: list[dict], seed: int) -> dict[str, dict[str, float]]:
    """Mean, median and 95 % CI per metric (for the stability curve and the noise floor)."""
    out = {}
    for metric in METRICS:
        values = np.array([r[metric] for r in rows], dtype=float)
        valid = values[~np.isnan(values)]
        low, high = bootstrap_ci(values, seed)
        out[metric] = {"mean": float(valid.mean()) if valid.size else float("nan"),
                       "median": float(np.median(valid)) if valid.size else float("nan"),
                       "ci_low": low, "ci_high": high, "n": int(valid.size)}
    return out


def _column(per_instance: dict[int, dict[str, float]], ids: list[int], metric: str) -> np.ndarray:
    return np.array([per_instance[i][metric] for i in ids], dtype=float)


def judge_metrics(extra: dict[int, dict[str, float]], control: dict[int, dict[str, float]] | None,
                  alpha_equivalent: float) -> dict[str, dict]:
    """Per metric: the verdict of :func:`common.explain.verdict.judge` in the CSV's columns."""
    out = {}
    ids = sorted(extra)
    for metric in METRICS:
        values = _column(extra, ids, metric)
        if np.isfinite(values).sum() < 2:  # a secondary metric with no usable values: no verdict
            out[metric] = not_judged(f"fewer than 2 instances have a {metric} value")
            continue
        result = judge(values, None if control is None else _column(control, ids, metric),
                       alpha_equivalent=alpha_equivalent)
        out[metric] = {COL_N: result["n"], COL_EXTRA: result["mean"], COL_CONTROL_EXTRA: result["control_mean"],
                       COL_MARGIN: result["boundary"], COL_D: result["d_mean"], COL_LOWER: result["lower"],
                       COL_UPPER: result["upper"], COL_P_EQUIVALENT: result["p_equivalent"],
                       COL_ALPHA_EQUIVALENT: result["alpha_equivalent"],
                       COL_VERDICT: result["verdict"] if not result["reason"] else "",
                       COL_N_TO_DECIDE: result["n_to_decide"], COL_DECIDES: result["decides"],
                       COL_REASON: result["reason"]}
    return out


def not_judged(reason: str) -> dict:
    nan = float("nan")
    return {COL_N: 0, COL_EXTRA: nan, COL_CONTROL_EXTRA: nan, COL_MARGIN: nan, COL_D: nan, COL_LOWER: nan,
            COL_UPPER: nan, COL_P_EQUIVALENT: nan, COL_ALPHA_EQUIVALENT: nan, COL_VERDICT: "", COL_N_TO_DECIDE: None,
            COL_DECIDES: "", COL_REASON: reason}


def control_warnings(summary: dict[str, dict]) -> list[str]:
    """Sentences for controls that did not come out as they must, and for a gate that cannot see a control."""
    out = []
    for name, entry in summary.items():
        if entry["role"] == ROLE_NEGATIVE_CONTROL and entry["verdict"] and entry["verdict"] != EQUIVALENT:
            out.append(f"The negative control `{name}` (an identical function) came out **{entry['verdict']}**, "
                       "not equivalent: the comparison is not like-for-like or the control is not the same "
                       "function; do not trust the other verdicts until this is fixed.")
        if entry["role"] != ROLE_POSITIVE_CONTROL:
            continue
        if not entry["verdict"]:
            out.append(f"The positive control `{name}` has no verdict ({entry.get('reason') or 'not judged'}): "
                       "without it nothing can be shown equivalent.")
        elif entry["verdict"] != DRIFTED:
            out.append(f"The positive control `{name}` (another fine-tune of the base recipe) is "
                       f"**{entry['verdict']}** on {HEADLINE} (extra {entry['extra']:+.3f}), not drifted: LIME "
                       "agreement is **blind** here, it cannot tell another model of the same quality from base at "
                       "these instances, so its `equivalent` says little; explain more instances (LIME_INSTANCES).")
        if entry.get(f"{SECONDARY}_verdict") not in (DRIFTED, "", None) and entry["verdict"] == DRIFTED:
            out.append(f"The positive control `{name}` is not shown drifted on {SECONDARY}: that metric cannot "
                       "tell two fine-tunes apart at these instances.")
    return out


# ----------------------------------------------------------------------------------------------- the stage
def parse_curve(specs: list[str]) -> list[tuple[int, Path, Path]]:
    out = []
    for spec in specs or []:
        try:
            n, files = spec.split("=", 1)
            first, second = files.split(",")
            out.append((int(n), Path(first), Path(second)))
        except ValueError:
            raise UserError(f"--curve {spec!r} must look like N=A.csv,B.csv (num_samples, two seeds).") from None
    return sorted(out)


def _roles(names: list[str], negative: list[str], positive: list[str]) -> dict[str, str]:
    for flag, chosen in (("--negative-control", negative), ("--positive-control", positive)):
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            raise UserError(f"{flag} {unknown[0]} is not the name of any --variant CSV ({', '.join(names)}); "
                            f"pass its LIME CSV with --variant too.")
    both = sorted(set(negative) & set(positive))
    if both:
        raise UserError(f"{both[0]} is given as both --negative-control and --positive-control; pick one.")
    if len(positive) > 1:
        raise UserError(f"--positive-control is given {len(positive)} times ({', '.join(positive)}); the margin is "
                        "anchored on one control: pass one.")
    return {n: ROLE_NEGATIVE_CONTROL if n in negative else ROLE_POSITIVE_CONTROL if n in positive else ROLE_VARIANT
            for n in names}


@dataclass
class Plan:
    """Which candidates to judge, in which order, and when to stop (:mod:`common.explain.drift_report` builds it
    from the benchmark and the deletion verdicts). ``skip(name)`` is the reason a candidate cannot ship whatever
    its LIME verdict, or None; ``stops_search(name)``: whether its passing LIME makes every later candidate
    unnecessary (it is ``equivalent`` on every other gate and faster than them); ``rerun(name)`` the path of its
    second-seed run, built when missing (None: there is none)."""

    order: list[str]
    skip: object
    stops_search: object
    rerun: object


@dataclass
class Similarity:
    """Everything the stage writes: the CSV rows, the per-variant summary and the numbers behind them."""

    base: Explanations
    noise: Explanations
    n_instances: int
    n_candidates: int
    alpha_equivalent: float
    floor_stats: dict[str, dict[str, float]]
    table: list[dict]  # rows of lime_similarity.csv (SIMILARITY_COLUMNS)
    summary: dict[str, dict]  # variant -> its headline verdict, role and the secondary verdict
    per_instance: list[dict]
    curve_rows: list[dict]
    warnings: list[str]


def _read_rerun(path, base_exp: Explanations, variant: Explanations) -> Explanations:
    rerun = read_explanations(path, variant.name)
    check_comparable(base_exp, rerun, same_seed=False)
    if rerun.seed == variant.seed:
        raise UserError(f"{path} explains {variant.name} with the seed of its first run ({variant.seed}); the rerun "
                        f"needs another LIME seed (the noise run's, {base_exp.seed + 1}).")
    return rerun


def default_plan(names: list[str], reruns: dict[str, str]) -> Plan:
    """Judge every variant that has a rerun file, in the given order, with no early stop."""
    return Plan(list(names), lambda name: None, lambda name: False,
                lambda name: reruns.get(name) if reruns.get(name) and Path(reruns[name]).is_file() else None)


def judge_similarity(base: str, noise: str, variants: list[str], curve: list[str], seed: int,
                     negative_controls: list[str] | None = None, positive_controls: list[str] | None = None,
                     reruns: dict[str, str] | None = None, plan_for=None) -> Similarity:
    """Read every LIME CSV, check the design and judge the candidates against the positive control.

    ``reruns`` maps a variant name to its second-seed CSV; ``plan_for(names, roles)`` returns the :class:`Plan`
    (default: judge every variant whose rerun exists)."""
    base_exp = read_explanations(base, "base")
    noise_exp = read_explanations(noise)
    check_comparable(base_exp, noise_exp, same_seed=False)
    explained = {}
    for path in variants or []:
        exp = read_explanations(path)
        if exp.name in explained or exp.name in ("base", NOISE_NAME):
            exp.name = Path(path).stem
        check_comparable(base_exp, exp, same_seed=True)
        explained[exp.name] = exp
    roles = _roles(list(explained), negative_controls or [], positive_controls or [])
    reruns = dict(reruns or {})
    unknown = sorted(set(reruns) - set(explained))
    if unknown:
        raise UserError(f"--rerun {unknown[0]} names no --variant CSV ({', '.join(explained) or 'none given'}); "
                        "pass the variant's first LIME run with --variant too.")
    candidates = [n for n in explained if roles[n] != ROLE_POSITIVE_CONTROL]
    alpha_equivalent = bonferroni_alpha(len(candidates))
    plan = plan_for(candidates, roles) if plan_for else default_plan(candidates, reruns)
    floor = compare(noise_exp, base_exp)
    floor_stats = aggregate(list(floor.values()), seed)
    ids = sorted(floor)

    def statistic(name: str) -> tuple[dict | None, str]:
        path = plan.rerun(name)
        if path is None:
            return None, f"no second-seed run (outputs/lime_rerun/{name}.csv)"
        return symmetric_extra(base_exp, noise_exp, explained[name], _read_rerun(path, base_exp, explained[name])), ""

    control_name = next((n for n in explained if roles[n] == ROLE_POSITIVE_CONTROL), None)
    control_extra, control_reason = (statistic(control_name) if control_name else
                                     (None, "no positive control was given (--positive-control)"))
    judged: dict[str, dict] = {}
    extras: dict[str, dict] = {}
    if control_name and control_extra is not None:
        extras[control_name] = control_extra
    if control_name:
        judged[control_name] = (judge_metrics(control_extra, control_extra, alpha_equivalent)
                                if control_extra is not None else {m: not_judged(control_reason) for m in METRICS})
    shipped_by = None
    # the negative control first (it checks the design; its rerun is a copy of the noise run), then the plan
    order = [n for n in candidates if roles[n] == ROLE_NEGATIVE_CONTROL] + \
        [n for n in plan.order if roles.get(n) == ROLE_VARIANT]
    for name in order:
        reason = plan.skip(name) if roles[name] == ROLE_VARIANT else None
        if reason is None and shipped_by is not None and roles[name] == ROLE_VARIANT:
            reason = f"not needed: slower than `{shipped_by}`, which is equivalent on every gate"
        if reason is None:
            extra, reason = statistic(name)
        if reason:
            judged[name] = {m: not_judged(reason) for m in METRICS}
            continue
        extras[name] = extra
        judged[name] = judge_metrics(extra, control_extra, alpha_equivalent)
        if control_extra is None:
            for m in METRICS:
                judged[name][m][COL_REASON] = control_reason
        if (roles[name] == ROLE_VARIANT and judged[name][HEADLINE][COL_VERDICT] == EQUIVALENT
                and plan.stops_search(name)):
            shipped_by = name
    for name in candidates:  # a variant the plan did not list
        judged.setdefault(name, {m: not_judged("not a candidate of the plan") for m in METRICS})
    table = [{COL_VARIANT: NOISE_NAME, COL_ROLE: ROLE_NOISE_FLOOR, COL_METRIC: m, COL_LABEL_AGREEMENT: float("nan"),
              COL_SAME_SEED: float("nan"), COL_CROSS_SEED: floor_stats[m]["mean"], COL_FLOOR: floor_stats[m]["mean"],
              **not_judged(""), COL_N: floor_stats[m]["n"]} for m in METRICS]
    summary, per_instance = {}, []
    for name, exp in explained.items():
        same, cross = compare(base_exp, exp), compare(noise_exp, exp)
        label_agreement = float(np.mean([exp.predicted[i] == base_exp.predicted[i] for i in ids]))
        for metric in METRICS:
            table.append({COL_VARIANT: name, COL_ROLE: roles[name], COL_METRIC: metric,
                          COL_LABEL_AGREEMENT: label_agreement,
                          COL_SAME_SEED: float(np.nanmean([same[i][metric] for i in ids])),
                          COL_CROSS_SEED: float(np.nanmean([cross[i][metric] for i in ids])),
                          COL_FLOOR: floor_stats[metric]["mean"], **judged[name][metric]})
        head, second = judged[name][HEADLINE], judged[name][SECONDARY]
        summary[name] = {"role": roles[name], "n_instances": len(ids), "label_agreement": label_agreement,
                         "verdict": head[COL_VERDICT], "extra": head[COL_EXTRA], "control_extra": head[COL_CONTROL_EXTRA],
                         "d": head[COL_D], "lower": head[COL_LOWER], "upper": head[COL_UPPER],
                         "margin": head[COL_MARGIN], "n": head[COL_N], "n_to_decide": head[COL_N_TO_DECIDE],
                         "decides": head[COL_DECIDES], "reason": head[COL_REASON],
                         "p_equivalent": head[COL_P_EQUIVALENT], f"{SECONDARY}_verdict": second[COL_VERDICT],
                         f"{SECONDARY}_extra": second[COL_EXTRA]}
        for iid in ids:
            per_instance.append({"variant": name, "instance_id": iid,
                                 "label_agrees": float(exp.predicted[iid] == base_exp.predicted[iid]),
                                 **{f"{m}_same_seed": same[iid][m] for m in METRICS},
                                 **{f"{m}_cross_seed": cross[iid][m] for m in METRICS},
                                 **{f"{m}_floor": floor[iid][m] for m in METRICS},
                                 **{f"{m}_extra": (extras[name][iid][m] if name in extras else float("nan"))
                                    for m in METRICS}})
    curve_rows = []
    for n, first, second in parse_curve(curve):
        a, b = read_explanations(first, f"s{n}_a"), read_explanations(second, f"s{n}_b")
        check_comparable(a, b, same_seed=False)
        stats = aggregate(list(compare(a, b).values()), seed)
        curve_rows += [{"num_samples": n, "metric": m, **stats[m]} for m in METRICS]
    return Similarity(base_exp, noise_exp, len(ids), len(candidates), alpha_equivalent, floor_stats, table, summary,
                      per_instance, curve_rows, control_warnings(summary))
