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

**Margin.** ``MARGIN_FRACTION`` (a quarter) of LIME's own seed-to-seed disagreement on that metric:
``margin = 0.25 * (1 - mean m(base@S, base@S+1))``. A variant may add at most a quarter of the
disagreement LIME already has with itself.

**Verdict.** :func:`common.verdict.judge` on the per-instance extra disagreement, one-sided
(``two_sided=False``; only more disagreement is worse): ``equivalent`` when the one-sided 95 % upper
bootstrap bound of the mean is below the margin, ``drifted`` when the lower bound is above it, otherwise
``inconclusive`` with ``n_to_decide``. The verdict that counts uses the headline metric (RBO); Spearman's
verdict is reported beside it as a secondary check.

**Headline metric: signed rank-biased overlap** (RBO, Webber, Moffat & Zobel 2010, ``p = 0.9``,
extrapolated). Each explanation is the list of its words ranked by |weight| (ties by the word, so the
order is deterministic). At depth d, ``X_d`` is the number of words that are in both top-d prefixes *and*
whose weights have the same sign on both sides (a word that supports the class on one side and opposes it
on the other is not shared). With list lengths s <= l::

    RBO_ext = (1-p)/p * [ sum_{d=1..l} X_d/d p^d + sum_{d=s+1..l} X_s (d-s)/(s d) p^d ]
              + [ (X_l - X_s)/l + X_s/s ] p^l

Identical lists give 1, disjoint (or all sign-flipped) lists 0. The weight on depth d decays like p^d,
so the top few words carry most of it (with p = 0.9 the top 10 carry ~86 %), and the ranks of near-zero
weights, which dominate Spearman over every word, barely count.

Secondary metrics (same design, own verdicts in the CSV): ``spearman`` / ``kendall`` (rank correlation
over the union of words, a missing word weighs 0), ``jaccard_top5`` / ``jaccard_top10`` (overlap of the
top-k words by |weight|), ``sign_top5`` (share of the reference's top-5 words with the same sign on the
other side), ``cosine`` (of the weight vectors).

**Controls.** A negative control (an identical function, e.g. ``base_onnx``) must come out
``equivalent``; a positive control (the base recipe fine-tuned with another training seed) is judged like
a variant. If the positive control is ``equivalent`` the metric cannot tell two fine-tunes apart at this
margin, and the summary says so.

Bad input stops with one sentence naming the file: files that explain other instances, other labels or
another ``num_samples`` than base, a noise run with base's seed, a variant with another seed.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.verdict import EQUIVALENT, bootstrap_means, judge

log = logging.getLogger(__name__)

RBO_P = 0.9
HEADLINE = "rbo"
SECONDARY = "spearman"
METRICS = ["rbo", "spearman", "kendall", "jaccard_top5", "jaccard_top10", "sign_top5", "cosine"]
MARGIN_FRACTION = 0.25
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


def _single_value(frame, column: str, path: Path) -> int:
    values = sorted(set(frame[column].astype(int)))
    if len(values) != 1:
        raise UserError(f"{path} mixes {column} values {values[:5]}; one LIME CSV must come from one run.")
    return int(values[0])


def read_explanations(path: str | Path, name: str | None = None) -> Explanations:
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"LIME CSV {path} does not exist; build it with `make {path}` first.")
    try:
        frame = pd.read_csv(path, keep_default_na=False, dtype={"word": str})
    except Exception as exc:
        raise UserError(f"Could not read {path} ({type(exc).__name__}); rebuild it with run_lime_on_model.") from None
    missing = REQUIRED - set(frame.columns)
    if missing:
        raise UserError(f"{path} lacks columns {sorted(missing)}; it is not a run_lime_on_model CSV.")
    if frame.empty:
        raise UserError(f"{path} has no rows; rebuild it with run_lime_on_model.")
    if name is None:
        name = str(frame["variant"].iloc[0]) if "variant" in frame.columns else path.stem
    weights: dict[int, dict[str, float]] = {}
    predicted, explained = {}, {}
    for row in frame.itertuples(index=False):
        iid = int(row.instance_id)
        weights.setdefault(iid, {})[str(row.word)] = float(row.weight)
        predicted[iid] = int(row.predicted_label)
        explained[iid] = int(row.explained_label)
    return Explanations(name, path, weights, predicted, explained, _single_value(frame, "seed", path),
                        _single_value(frame, "num_samples", path))


def check_comparable(reference: Explanations, other: Explanations, *, same_seed: bool) -> None:
    """Stop unless ``other`` explains exactly ``reference``'s instances and labels with the same
    ``num_samples``, and with the same LIME seed (``same_seed``) or another one (not ``same_seed``)."""
    extra = sorted(set(other.weights) - set(reference.weights))
    lacking = sorted(set(reference.weights) - set(other.weights))
    if extra or lacking:
        raise UserError(f"{other.path} explains other instances than {reference.path} ({len(lacking)} of its "
                        f"instances missing, e.g. {lacking[:3]}; {len(extra)} extra, e.g. {extra[:3]}); explain "
                        f"the same instances (same DATA, --n-instances and --instance-seed).")
    for iid in sorted(reference.weights):
        if reference.explained[iid] != other.explained[iid]:
            raise UserError(f"{other.path} explains label {other.explained[iid]} for instance {iid} but "
                            f"{reference.path} explains {reference.explained[iid]}; pass the same "
                            f"--reference-model to both.")
    if other.num_samples != reference.num_samples:
        raise UserError(f"{other.path} was explained with num_samples {other.num_samples} but "
                        f"{reference.path} with {reference.num_samples}; explain both with the same --num-samples.")
    if same_seed and other.seed != reference.seed:
        raise UserError(f"{other.path} was explained with LIME seed {other.seed} but {reference.path} with "
                        f"{reference.seed}; explain every variant with the base run's --seed.")
    if not same_seed and other.seed == reference.seed:
        raise UserError(f"{other.path} was explained with the same LIME seed ({other.seed}) as {reference.path}; "
                        f"the noise run needs another --seed (e.g. SEED+1).")


# ----------------------------------------------------------------------------------------------- metrics
def ranked_words(weights: dict[str, float]) -> list[str]:
    """Words by decreasing |weight|, ties by the word (deterministic)."""
    return [w for w, _ in sorted(weights.items(), key=lambda kv: (-abs(kv[1]), kv[0]))]


def _top(weights: dict[str, float], k: int) -> list[str]:
    return ranked_words(weights)[:k]


def signed_rbo(a: dict[str, float], b: dict[str, float], p: float = RBO_P) -> float:
    """Extrapolated rank-biased overlap of the |weight| rankings, a word shared only with the same sign
    on both sides (see the module docstring)."""
    short, long_ = ranked_words(a), ranked_words(b)
    if len(short) > len(long_):
        short, long_ = long_, short
    s, l = len(short), len(long_)
    if s == 0:
        return float("nan")
    seen_short, seen_long = set(), set()
    overlap = 0
    overlaps = np.zeros(l + 1)
    for d in range(1, l + 1):
        if d <= s:
            word = short[d - 1]
            seen_short.add(word)
            overlap += word in seen_long and np.sign(a[word]) == np.sign(b[word])
        word = long_[d - 1]
        seen_long.add(word)
        overlap += word in seen_short and np.sign(a[word]) == np.sign(b[word])
        overlaps[d] = overlap
    depths = np.arange(1, l + 1)
    powers = p ** depths
    total = float(np.sum(overlaps[1:] / depths * powers))
    x_s, x_l = overlaps[s], overlaps[l]
    if l > s:
        tail = depths[s:]
        total += float(np.sum(x_s * (tail - s) / (s * tail) * powers[s:]))
    return float((1 - p) / p * total + ((x_l - x_s) / l + x_s / s) * p ** l)


def jaccard_top_k(a: dict[str, float], b: dict[str, float], k: int) -> float:
    top_a, top_b = set(_top(a, k)), set(_top(b, k))
    union = top_a | top_b
    return len(top_a & top_b) / len(union) if union else float("nan")


def sign_agreement_top_k(base: dict[str, float], other: dict[str, float], k: int) -> float:
    top = _top(base, k)
    if not top:
        return float("nan")
    return float(np.mean([np.sign(base[w]) == np.sign(other.get(w, 0.0)) for w in top]))


def pair_metrics(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """All metrics for one instance; ``a`` is the reference (``sign_top5`` uses its top words)."""
    from scipy.stats import kendalltau, spearmanr

    words = sorted(set(a) | set(b))
    va = np.array([a.get(w, 0.0) for w in words])
    vb = np.array([b.get(w, 0.0) for w in words])
    out = {"rbo": signed_rbo(a, b)}
    if len(words) >= 2 and np.ptp(va) > 0 and np.ptp(vb) > 0:
        out["spearman"] = float(spearmanr(va, vb).statistic)
        out["kendall"] = float(kendalltau(va, vb).statistic)
    else:  # a constant vector has no ranking
        out["spearman"] = out["kendall"] = float("nan")
    out["jaccard_top5"] = jaccard_top_k(a, b, 5)
    out["jaccard_top10"] = jaccard_top_k(a, b, 10)
    out["sign_top5"] = sign_agreement_top_k(a, b, 5)
    norm = float(np.linalg.norm(va) * np.linalg.norm(vb))
    out["cosine"] = float(va @ vb / norm) if norm > 0 else float("nan")
    return out


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
        if entry["role"] == ROLE_POSITIVE_CONTROL and entry["verdict"] == EQUIVALENT:
            out.append(f"The positive control `{name}` (another fine-tune of the base recipe) came out "
                       "**equivalent**: the metric cannot tell two fine-tunes apart at this margin, so "
                       "`equivalent` says little here; the margin is to be revisited.")
    return out


# ----------------------------------------------------------------------------------------------- the stage
def _plot_extra(summary: dict[str, dict], table: list[dict], names: list[str], path: Path) -> None:
    """Forest plot: extra disagreement with its one-sided bounds against the margin, per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"equivalent": "tab:green", "drifted": "tab:red", "inconclusive": "tab:orange", "": "grey"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(names) + 2.5), squeeze=False, sharey=True)
    for ax, metric in zip(axes[0], (HEADLINE, SECONDARY)):
        rows = {r[COL_VARIANT]: r for r in table if r[COL_METRIC] == metric and r[COL_VARIANT] in summary}
        for y, name in enumerate(names):
            r = rows[name]
            ax.errorbar([r[COL_EXTRA]], [y], xerr=[[r[COL_EXTRA] - r[COL_LOWER]], [r[COL_UPPER] - r[COL_EXTRA]]],
                        fmt="o", color=colours.get(r[COL_VERDICT], "grey"), capsize=3)
        margin = next(iter(rows.values()))[COL_MARGIN]
        ax.axvline(0, color="black", lw=0.8)
        ax.axvline(margin, color="tab:red", ls="--", lw=1, label=f"margin {margin:.3f}")
        ax.set_title(f"{metric}: extra disagreement vs base (90% interval)")
        ax.set_xlabel(f"{metric}(base@S, base@S+1) - {metric}(variant@S, base@S+1)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=8, frameon=False)
    labels = [f"{n} ({summary[n]['role'].replace('_', ' ')})" if summary[n]["role"] != ROLE_VARIANT else n
              for n in names]
    axes[0][0].set_yticks(range(len(names)), labels, fontsize=8)
    axes[0][0].invert_yaxis()
    fig.suptitle("LIME explanation drift: green equivalent, red drifted, orange inconclusive")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_curve(curve: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for metric in (HEADLINE, "spearman", "jaccard_top5", "cosine"):
        rows = [r for r in curve if r["metric"] == metric]
        xs = [r["num_samples"] for r in rows]
        ax.plot(xs, [r["mean"] for r in rows], marker="o", label=metric)
        ax.fill_between(xs, [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], alpha=0.15)
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(sorted({r["num_samples"] for r in curve}), [str(x) for x in sorted({r["num_samples"] for r in curve})])
    ax.set_xlabel("LIME num_samples")
    ax.set_ylabel("agreement between two LIME seeds (mean, 95% CI)")
    ax.set_ylim(0, 1.02)
    ax.legend()
    ax.set_title("How many samples give stable explanations (base model)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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


def _cell(mean: float, lower: float, upper: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:+.3f} [{lower:+.3f}, {upper:+.3f}]"


def run_similarity(base: str, noise: str, variants: list[str], curve: list[str], output_dir: str,
                   seed: int, args: dict, negative_controls: list[str] | None = None,
                   positive_controls: list[str] | None = None) -> dict:
    import pandas as pd
    from tabulate import tabulate

    from common.manifest import base_manifest, write_json_atomic, write_text_atomic

    output_dir = Path(output_dir)
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
    frame = pd.DataFrame(table, columns=SIMILARITY_COLUMNS)
    frame[COL_N_TO_DECIDE] = frame[COL_N_TO_DECIDE].astype("Int64")
    curve_rows = []
    for n, first, second in parse_curve(curve):
        a, b = read_explanations(first, f"s{n}_a"), read_explanations(second, f"s{n}_b")
        check_comparable(a, b, same_seed=False)
        stats = aggregate(list(compare(a, b).values()), seed)
        curve_rows += [{"num_samples": n, "metric": m, **stats[m]} for m in METRICS]

    warnings = control_warnings(summary)
    for sentence in warnings:
        log.warning("%s", sentence.replace("*", "").replace("`", ""))
    write_text_atomic(output_dir / SIMILARITY_CSV, frame.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(output_dir / "lime_similarity_per_instance.csv",
                      pd.DataFrame(per_instance).to_csv(index=False, float_format="%.6g"))
    # Each variant is shown between the two controls.
    role_order = [ROLE_NEGATIVE_CONTROL, ROLE_VARIANT, ROLE_POSITIVE_CONTROL]
    order = sorted(summary, key=lambda n: role_order.index(summary[n]["role"]))
    if summary:
        _plot_extra(summary, table, order, output_dir / "lime_similarity.png")
    rows = []
    for name in order:
        s = summary[name]
        second = next(r for r in table if r[COL_VARIANT] == name and r[COL_METRIC] == SECONDARY)
        role = "" if s["role"] == ROLE_VARIANT else s["role"].replace("_", " ")
        rows.append([name, role, s["n"], f"{s['label_agreement']:.3f}", _cell(s["extra"], s["lower"], s["upper"]),
                     s["verdict"], _cell(second[COL_EXTRA], second[COL_LOWER], second[COL_UPPER]),
                     second[COL_VERDICT], "" if s["n_to_decide"] is None else s["n_to_decide"]])
    lines = [
        "# LIME explanation drift vs the base model",
        "",
        f"Base: `{base}` (LIME seed {base_exp.seed}); noise run: `{noise}` (base, seed {noise_exp.seed}); every "
        f"variant explained with seed {base_exp.seed}; {len(floor)} instances × {base_exp.num_samples} samples.",
        "",
        f"Extra disagreement per instance = m(base@S, base@S+1) − m(variant@S, base@S+1), paired; 0 for an "
        f"identical function. Margin = {MARGIN_FRACTION} × (1 − LIME's own seed-to-seed agreement): "
        f"{HEADLINE} floor {floor_stats[HEADLINE]['mean']:.3f} → margin {margins[HEADLINE]:.3f}; "
        f"{SECONDARY} floor {floor_stats[SECONDARY]['mean']:.3f} → margin {margins[SECONDARY]:.3f}. "
        "**equivalent**: the one-sided 95 % upper bootstrap bound of the mean is below the margin; **drifted**: "
        "the lower bound is above it; otherwise **inconclusive** (n to decide: instances at which the same mean "
        f"and spread would decide). Headline metric: signed rank-biased overlap ({HEADLINE}, p = {RBO_P}); "
        f"{SECONDARY} is secondary. Cells: mean [one-sided 95 % bounds] (bootstrap seed {seed}).",
        "",
    ]
    if rows:
        lines += [tabulate(rows, headers=["variant", "control", "n", "label agreement", f"{HEADLINE} extra",
                                          "verdict", f"{SECONDARY} extra", f"{SECONDARY} verdict", "n to decide"],
                           tablefmt="github", disable_numparse=True), ""]
        for sentence in warnings:
            lines += [f"> {sentence}", ""]
        lines += ["![extra disagreement per variant](lime_similarity.png)", ""]
    else:
        lines += ["_No variant was given._", ""]
    if curve_rows:
        curve_frame = pd.DataFrame(curve_rows)
        write_text_atomic(output_dir / "lime_sample_curve.csv", curve_frame.to_csv(index=False, float_format="%.6g"))
        _plot_curve(curve_rows, output_dir / "lime_sample_curve.png")

        def ci(r):
            return f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"

        pivot = [[n] + [ci(next(r for r in curve_rows if r["num_samples"] == n and r["metric"] == m))
                        for m in METRICS] for n in sorted({r["num_samples"] for r in curve_rows})]
        lines += ["## Stability vs num_samples (base vs base, two LIME seeds)", "",
                  tabulate(pivot, headers=["num_samples"] + METRICS, tablefmt="github"), "",
                  "![sample curve](lime_sample_curve.png)", ""]
    inputs = {"base": base, "noise": noise, **{f"variant_{i}": p for i, p in enumerate(variants or [])}}
    manifest = base_manifest("lime_similarity", args, seed, inputs=inputs)
    manifest["metrics"] = {"summary": summary, "margins": margins, "floor": floor_stats, "curve": curve_rows,
                           "control_warnings": warnings, "headline": HEADLINE, "margin_fraction": MARGIN_FRACTION}
    write_json_atomic(output_dir / "lime_similarity.manifest.json", manifest)
    write_text_atomic(output_dir / "lime_similarity.md", "\n".join(lines))  # the Make target, last
    log.info("Wrote %s: %s", output_dir / "lime_similarity.md", {k: v["verdict"] for k, v in summary.items()})
    return summary
