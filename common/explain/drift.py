"""Is a variant explained like the base model? A paired, like-for-like equivalence test on LIME.

**Design.** Three kinds of LIME run over the same instances, the same explained labels (base's
prediction) and the same ``num_samples``:

* ``base@S``: the base model, LIME seed S;
* ``noise`` = ``base@S+1``: the base model again with another LIME seed;
* ``variant@S``: every variant (and every control) with the *same* seed S as base.

Per instance and metric m, with the noise run as the common reference on both sides,

    extra disagreement = m(base@S, base@S+1) - m(variant@S, base@S+1)

Both terms are cross-seed comparisons, so both carry LIME's sampling noise (like for like), and they are
paired per instance. An identical function gives ``variant@S == base@S`` and so exactly 0; a variant that
reasons differently agrees less with base@S+1 than base@S does, which is a positive value. (Comparing
variant@S with base@S alone lets the shared perturbations cancel LIME's noise, and judging that against a
cross-seed floor lets any variant pass.)

**Margin.** ``MARGIN_FRACTION`` (a tenth) of LIME's own seed-to-seed disagreement on that metric:
``margin = 0.1 * (1 - mean m(base@S, base@S+1))``, the same fraction as the deletion test's margin. Why a
tenth: on the shared AG News a second fine-tune of the base recipe (the positive control) adds about 0.2 of
LIME's own disagreement on RBO (+0.055 against 1 - 0.731), so a quarter - the first choice - could not call
another model of the same quality drifted. A tenth is about half of what another fine-tune adds:
``equivalent`` means shown closer to base than half the distance to another model of the same quality.

**Verdict.** :func:`common.explain.verdict.judge` on the per-instance extra disagreement, one-sided
(``two_sided=False``; only more disagreement is worse): ``equivalent`` when the one-sided 95 % upper
bootstrap bound of the mean is below the margin, ``drifted`` when the lower bound is above it, otherwise
``inconclusive`` with ``n_to_decide``. The verdict that counts uses the headline metric (RBO); Spearman's
verdict is reported beside it as a secondary check. The metrics are defined in
:mod:`common.explain.similarity`; :mod:`common.explain.drift_report` writes the stage's files.

**Controls.** A negative control (an identical function, e.g. ``base_onnx``) must come out
``equivalent``; a positive control (the base recipe fine-tuned with another training seed) is judged like
a variant. If the positive control is ``equivalent`` the metric cannot tell two fine-tunes apart at this
margin, and the summary says so.

Bad input stops with one sentence naming the file: files that explain other instances, other labels or
another ``num_samples`` than base, a noise run with base's seed, a variant with another seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.explain.similarity import METRICS, pair_metrics
from common.explain.design import OTHER_SEED, SAME_SEED, LimeDesign, check_same_design, read_stage_csv, single_setting
from common.explain.verdict import DRIFTED, EQUIVALENT, MARGIN_FRACTION, bootstrap_means, judge

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
COL_CROSS_SEED = "cross_seed_mean"  # mean m(variant@S, base@S+1)
COL_FLOOR = "floor_mean"  # mean m(base@S, base@S+1), over the same instances
COL_EXTRA = "extra_mean"  # mean extra disagreement (floor - cross-seed), paired per instance
COL_LOWER = "lower"  # one-sided 95 % bootstrap bounds of COL_EXTRA
COL_UPPER = "upper"
COL_MARGIN = "margin"
COL_VERDICT = "verdict"
COL_N_TO_DECIDE = "n_to_decide"
SIMILARITY_COLUMNS = [COL_VARIANT, COL_ROLE, COL_METRIC, COL_N, COL_LABEL_AGREEMENT, COL_SAME_SEED, COL_CROSS_SEED,
                      COL_FLOOR, COL_EXTRA, COL_LOWER, COL_UPPER, COL_MARGIN, COL_VERDICT, COL_N_TO_DECIDE]


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


# ----------------------------------------------------------------------------------------------- the verdict
def compare(reference: Explanations, other: Explanations) -> dict[int, dict[str, float]]:
    """instance_id -> metrics(reference, other); the caller has checked both explain the same instances."""
    return {iid: pair_metrics(reference.weights[iid], other.weights[iid]) for iid in sorted(reference.weights)}


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


def margins_from_floor(floor: dict[int, dict[str, float]], noise_path: Path) -> dict[str, float]:
    """Per metric: MARGIN_FRACTION of LIME's own seed-to-seed disagreement (1 - mean floor agreement)."""
    out = {}
    for metric in METRICS:
        values = np.array([r[metric] for r in floor.values()], dtype=float)
        mean = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        out[metric] = MARGIN_FRACTION * (1 - mean)
    if not out[HEADLINE] > 0:
        raise UserError(f"{noise_path} agrees perfectly with the base run on {HEADLINE}, so LIME's seed-to-seed "
                        f"disagreement and the margin are 0; check that it was explained with another --seed.")
    return out


def judge_variant(floor: dict[int, dict[str, float]], cross: dict[int, dict[str, float]],
                  same: dict[int, dict[str, float]], margins: dict[str, float], seed: int) -> dict[str, dict]:
    """Per metric: the verdict on the paired extra disagreement plus the descriptive means."""
    out = {}
    for metric in METRICS:
        ids = sorted(floor)
        extra = np.array([floor[i][metric] - cross[i][metric] for i in ids], dtype=float)
        same_values = np.array([same[i][metric] for i in ids], dtype=float)
        cross_values = np.array([cross[i][metric] for i in ids], dtype=float)
        floor_values = np.array([floor[i][metric] for i in ids], dtype=float)
        ok = np.isfinite(extra)
        means = {COL_SAME_SEED: float(np.nanmean(same_values)) if np.isfinite(same_values).any() else float("nan"),
                COL_CROSS_SEED: float(cross_values[ok].mean()) if ok.any() else float("nan"),
                COL_FLOOR: float(floor_values[ok].mean()) if ok.any() else float("nan")}
        if ok.sum() < 2 or not margins[metric] > 0:  # a secondary metric with no usable values: no verdict
            out[metric] = {**means, COL_EXTRA: float("nan"), COL_LOWER: float("nan"), COL_UPPER: float("nan"),
                           COL_MARGIN: margins[metric], COL_VERDICT: "", COL_N: int(ok.sum()), COL_N_TO_DECIDE: None}
            continue
        result = judge(extra[ok], margins[metric], two_sided=False, seed=seed)
        out[metric] = {**means, COL_EXTRA: result["mean"], COL_LOWER: result["lower"], COL_UPPER: result["upper"],
                       COL_MARGIN: result["margin"], COL_VERDICT: result["verdict"], COL_N: result["n"],
                       COL_N_TO_DECIDE: result["n_to_decide"]}
    return out


def control_warnings(summary: dict[str, dict]) -> list[str]:
    """Sentences for controls that did not come out as they must (or as a positive control should not)."""
    out = []
    for name, entry in summary.items():
        if entry["role"] == ROLE_NEGATIVE_CONTROL and entry["verdict"] != EQUIVALENT:
            out.append(f"The negative control `{name}` (an identical function) came out **{entry['verdict']}**, "
                       "not equivalent: the comparison is not like-for-like or the control is not the same "
                       "function; do not trust the other verdicts until this is fixed.")
        if entry["role"] != ROLE_POSITIVE_CONTROL:
            continue
        if entry["verdict"] == EQUIVALENT:
            out.append(f"The positive control `{name}` (another fine-tune of the base recipe) came out "
                       "**equivalent**: the metric cannot tell two fine-tunes apart at this margin, so "
                       "`equivalent` says little here; the margin is to be revisited.")
        elif entry["verdict"] != DRIFTED:
            # Not shown drifted: at these instances the margin does not separate another model of the same
            # quality, so a variant's `equivalent` only says it is closer to base than the margin.
            out.append(f"The positive control `{name}` (another fine-tune of the base recipe) is "
                       f"**{entry['verdict']}** on {HEADLINE} (extra {entry['extra']:+.3f}, margin "
                       f"{entry['margin']:.3f}), not drifted: with these instances the margin does not separate "
                       "two fine-tunes; compare each variant's extra disagreement with the control's, and the "
                       "margin is to be revisited.")
        if entry.get(f"{SECONDARY}_verdict") == EQUIVALENT and entry["verdict"] != EQUIVALENT:
            out.append(f"The positive control `{name}` came out **equivalent** on {SECONDARY}: that metric "
                       "cannot tell two fine-tunes apart at its margin.")
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
    return {n: ROLE_NEGATIVE_CONTROL if n in negative else ROLE_POSITIVE_CONTROL if n in positive else ROLE_VARIANT
            for n in names}


@dataclass
class Similarity:
    """Everything the stage writes: the CSV rows, the per-variant summary and the numbers behind them."""

    base: Explanations
    noise: Explanations
    n_instances: int
    margins: dict[str, float]
    floor_stats: dict[str, dict[str, float]]
    table: list[dict]  # rows of lime_similarity.csv (SIMILARITY_COLUMNS)
    summary: dict[str, dict]  # variant -> its headline verdict, role and the secondary verdict
    per_instance: list[dict]
    curve_rows: list[dict]
    warnings: list[str]


def judge_similarity(base: str, noise: str, variants: list[str], curve: list[str], seed: int,
                     negative_controls: list[str] | None = None,
                     positive_controls: list[str] | None = None) -> Similarity:
    """Read every LIME CSV, check the design, and judge each variant against the noise floor."""
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
    # The noise run is the reference of both cross-seed comparisons (sign_top5 uses its top words).
    floor = compare(noise_exp, base_exp)
    margins = margins_from_floor(floor, noise_exp.path)
    floor_stats = aggregate(list(floor.values()), seed)
    table = [{COL_VARIANT: NOISE_NAME, COL_ROLE: ROLE_NOISE_FLOOR, COL_METRIC: m, COL_N: floor_stats[m]["n"],
              COL_LABEL_AGREEMENT: float("nan"), COL_SAME_SEED: float("nan"),
              COL_CROSS_SEED: floor_stats[m]["mean"], COL_FLOOR: floor_stats[m]["mean"], COL_EXTRA: float("nan"),
              COL_LOWER: float("nan"), COL_UPPER: float("nan"), COL_MARGIN: margins[m], COL_VERDICT: "",
              COL_N_TO_DECIDE: None} for m in METRICS]
    summary, per_instance = {}, []
    for name, exp in explained.items():
        same = compare(base_exp, exp)
        cross = compare(noise_exp, exp)
        judged = judge_variant(floor, cross, same, margins, seed)
        label_agreement = float(np.mean([exp.predicted[i] == base_exp.predicted[i] for i in sorted(floor)]))
        for metric in METRICS:
            table.append({COL_VARIANT: name, COL_ROLE: roles[name], COL_METRIC: metric,
                          COL_LABEL_AGREEMENT: label_agreement, **judged[metric]})
        head, second = judged[HEADLINE], judged[SECONDARY]
        summary[name] = {"role": roles[name], "n_instances": len(floor), "label_agreement": label_agreement,
                         "verdict": head[COL_VERDICT], "extra": head[COL_EXTRA], "lower": head[COL_LOWER],
                         "upper": head[COL_UPPER], "margin": head[COL_MARGIN], "n": head[COL_N],
                         "n_to_decide": head[COL_N_TO_DECIDE], f"{SECONDARY}_verdict": second[COL_VERDICT],
                         f"{SECONDARY}_extra": second[COL_EXTRA]}
        for iid in sorted(floor):
            per_instance.append({"variant": name, "instance_id": iid,
                                 "label_agrees": float(exp.predicted[iid] == base_exp.predicted[iid]),
                                 **{f"{m}_same_seed": same[iid][m] for m in METRICS},
                                 **{f"{m}_cross_seed": cross[iid][m] for m in METRICS},
                                 **{f"{m}_floor": floor[iid][m] for m in METRICS}})
    curve_rows = []
    for n, first, second in parse_curve(curve):
        a, b = read_explanations(first, f"s{n}_a"), read_explanations(second, f"s{n}_b")
        check_comparable(a, b, same_seed=False)
        stats = aggregate(list(compare(a, b).values()), seed)
        curve_rows += [{"num_samples": n, "metric": m, **stats[m]} for m in METRICS]
    return Similarity(base_exp, noise_exp, len(floor), margins, floor_stats, table, summary, per_instance, curve_rows,
                      control_warnings(summary))
