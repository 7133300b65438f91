"""How far a variant's LIME explanations drift from the base model's, against LIME's own noise.

Per instance (base vs variant, matched on ``instance_id``; both explain the same label):

* ``spearman`` / ``kendall``: rank correlation of the weights over the union of both
  explanations' words (a word one side lacks weighs 0);
* ``jaccard_top5`` / ``jaccard_top10``: overlap of the top-k words by |weight|;
* ``sign_top5``: share of the base's top-5 words whose weight has the same sign in the
  variant (absent = 0 counts as disagreement);
* ``cosine``: cosine of the two weight vectors over the union.

Each metric is aggregated as mean, median and a seeded percentile-bootstrap 95 % CI over
instances. The **noise floor** is the same comparison for base vs base explained with
another LIME seed. Rule: a variant is *beyond the noise floor* on a metric when the upper
bound of its CI is below the noise floor's mean (its explanations agree with base less than
base agrees with itself under re-sampling); otherwise *within*. The headline verdict uses
Spearman.

Every variant is explained with the base run's LIME seed, so base and variant see the same perturbed
texts and the comparison above isolates the model (LIME's sampling noise cancels). That makes
"within" a generous test. The **cross-seed check** is the strict one: the variant (seed S) is compared
with the noise run (base, seed S+1), so both sides of the comparison carry independent sampling noise,
exactly like the noise floor itself. Per instance, ``delta = spearman(variant, noise) -
spearman(base, noise)``; a mean delta whose bootstrap CI lies entirely below 0 means the variant's drift
is *detectable* through LIME's own noise (paired over the same instances).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError

log = logging.getLogger(__name__)

METRICS = ["spearman", "kendall", "jaccard_top5", "jaccard_top10", "sign_top5", "cosine"]
HEADLINE = "spearman"
NOISE_NAME = "noise_floor"
REQUIRED = {"instance_id", "word", "weight", "explained_label", "predicted_label"}


@dataclass
class Explanations:
    """One LIME CSV: per instance the word -> weight map and the labels."""

    name: str
    weights: dict[int, dict[str, float]]
    predicted: dict[int, int]
    explained: dict[int, int]


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
    if name is None:
        name = str(frame["variant"].iloc[0]) if "variant" in frame.columns and len(frame) else path.stem
    weights: dict[int, dict[str, float]] = {}
    predicted, explained = {}, {}
    for row in frame.itertuples(index=False):
        iid = int(row.instance_id)
        weights.setdefault(iid, {})[str(row.word)] = float(row.weight)
        predicted[iid] = int(row.predicted_label)
        explained[iid] = int(row.explained_label)
    return Explanations(name, weights, predicted, explained)


# ----------------------------------------------------------------------------------------------- metrics
def _top(weights: dict[str, float], k: int) -> list[str]:
    return [w for w, _ in sorted(weights.items(), key=lambda kv: (-abs(kv[1]), kv[0]))[:k]]


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
    """All metrics for one instance; ``a`` is the reference (base) explanation."""
    from scipy.stats import kendalltau, spearmanr

    words = sorted(set(a) | set(b))
    va = np.array([a.get(w, 0.0) for w in words])
    vb = np.array([b.get(w, 0.0) for w in words])
    out = {}
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


def compare(base: Explanations, other: Explanations) -> list[dict]:
    """Per-instance metrics for the instances both files explain (same explained label required)."""
    shared = sorted(set(base.weights) & set(other.weights))
    if not shared:
        raise UserError(f"{other.name} and {base.name} share no instance_id; explain the same instances "
                        f"(same DATA, --n-instances and --instance-seed).")
    if len(shared) < len(base.weights):
        log.warning("%s explains %d of the %d instances of %s; comparing those only.", other.name, len(shared),
                    len(base.weights), base.name)
    rows = []
    for iid in shared:
        if base.explained[iid] != other.explained[iid]:
            raise UserError(f"{other.name} explains label {other.explained[iid]} for instance {iid} but "
                            f"{base.name} explains {base.explained[iid]}; pass the same --reference-model to both.")
        rows.append({"instance_id": iid, **pair_metrics(base.weights[iid], other.weights[iid]),
                     "label_agrees": float(base.predicted[iid] == other.predicted[iid])})
    return rows


def bootstrap_ci(values: np.ndarray, seed: int, n_boot: int = 2000, level: float = 0.95) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    if values.size == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def aggregate(rows: list[dict], seed: int) -> dict[str, dict[str, float]]:
    out = {}
    for metric in METRICS + ["label_agrees"]:
        values = np.array([r[metric] for r in rows], dtype=float)
        valid = values[~np.isnan(values)]
        low, high = bootstrap_ci(values, seed)
        out[metric] = {"mean": float(valid.mean()) if valid.size else float("nan"),
                       "median": float(np.median(valid)) if valid.size else float("nan"),
                       "ci_low": low, "ci_high": high, "n": int(valid.size)}
    return out


def cross_seed_check(floor_rows: list[dict], cross_rows: list[dict], seed: int) -> dict:
    """Variant vs the noise run (``cross_rows``), paired per instance with base vs the noise run
    (``floor_rows``, the noise floor's own rows; the headline metric is symmetric). See the module docstring."""
    floor = {r["instance_id"]: r[HEADLINE] for r in floor_rows}
    cross = {r["instance_id"]: r[HEADLINE] for r in cross_rows}
    shared = sorted(set(floor) & set(cross))
    values = np.array([cross[i] for i in shared], dtype=float)
    deltas = np.array([cross[i] - floor[i] for i in shared], dtype=float)
    ok = ~np.isnan(deltas)
    low, high = bootstrap_ci(values, seed)
    d_low, d_high = bootstrap_ci(deltas, seed)
    return {"metric": HEADLINE, "n": int(ok.sum()),
            "cross_seed_mean": float(np.nanmean(values)) if values.size else float("nan"),
            "cross_seed_ci_low": low, "cross_seed_ci_high": high,
            "floor_mean": float(np.nanmean([floor[i] for i in shared])) if shared else float("nan"),
            "delta_mean": float(deltas[ok].mean()) if ok.any() else float("nan"),
            "delta_ci_low": d_low, "delta_ci_high": d_high,
            "detectable": bool(not math.isnan(d_high) and d_high < 0)}


def verdict(stats: dict[str, float], noise: dict[str, float]) -> str:
    if math.isnan(stats["ci_high"]) or math.isnan(noise["mean"]):
        return "n/a"
    return "beyond" if stats["ci_high"] < noise["mean"] else "within"


# ----------------------------------------------------------------------------------------------- the stage
def _plot_boxes(per_instance: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_instance)
    fig, axes = plt.subplots(2, 3, figsize=(max(12, 1.6 * len(names)), 8), squeeze=False)
    for ax, metric in zip(axes.ravel(), METRICS):
        data = [[v for v in (r[metric] for r in per_instance[n]) if not math.isnan(v)] for n in names]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(metric)
        ax.axhline(np.mean(data[0]) if data[0] else 0, color="grey", ls="--", lw=0.8)
        lowest = min((min(d) for d in data if d), default=0.0)
        ax.set_ylim(min(0.0, lowest) - 0.05, 1.05)
    fig.suptitle("LIME explanation similarity to base (first box: noise floor, base vs base with another seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_curve(curve: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for metric in ("spearman", "jaccard_top5", "jaccard_top10", "cosine"):
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


def run_similarity(base: str, noise: str, variants: list[str], curve: list[str], output_dir: str,
                   seed: int, args: dict) -> dict:
    import pandas as pd
    from tabulate import tabulate

    from common.manifest import base_manifest, write_json_atomic, write_text_atomic

    output_dir = Path(output_dir)
    base_exp = read_explanations(base, "base")
    noise_exp = read_explanations(noise)
    per_instance = {NOISE_NAME: compare(base_exp, noise_exp)}
    cross_seed = {}
    for path in variants or []:
        exp = read_explanations(path)
        name = exp.name if exp.name not in per_instance else Path(path).stem
        per_instance[name] = compare(base_exp, exp)
        cross_seed[name] = cross_seed_check(per_instance[NOISE_NAME], compare(noise_exp, exp), seed)
    all_stats = {name: aggregate(rows, seed) for name, rows in per_instance.items()}
    noise_stats = all_stats[NOISE_NAME]
    table = []
    summary = {}
    for name, rows in per_instance.items():
        stats = all_stats[name]
        summary[name] = {"n_instances": len(rows), "label_agreement": stats["label_agrees"]["mean"],
                         "verdict": "reference" if name == NOISE_NAME else verdict(stats[HEADLINE], noise_stats[HEADLINE])}
        if name in cross_seed:
            summary[name]["cross_seed"] = cross_seed[name]
        for metric in METRICS + ["label_agrees"]:
            s = stats[metric]
            table.append({"variant": name, "metric": metric, **s, "noise_floor_mean": noise_stats[metric]["mean"],
                          "verdict": "" if name == NOISE_NAME or metric == "label_agrees"
                          else verdict(s, noise_stats[metric])})
    for name, c in cross_seed.items():  # the strict check, in the same long format
        table.append({"variant": name, "metric": f"cross_seed_{HEADLINE}", "mean": c["cross_seed_mean"],
                      "median": float("nan"), "ci_low": c["cross_seed_ci_low"], "ci_high": c["cross_seed_ci_high"],
                      "n": c["n"], "noise_floor_mean": c["floor_mean"],
                      "verdict": "detectable" if c["detectable"] else "not detectable"})
        table.append({"variant": name, "metric": f"cross_seed_delta_{HEADLINE}", "mean": c["delta_mean"],
                      "median": float("nan"), "ci_low": c["delta_ci_low"], "ci_high": c["delta_ci_high"],
                      "n": c["n"], "noise_floor_mean": 0.0,
                      "verdict": "detectable" if c["detectable"] else "not detectable"})
    frame = pd.DataFrame(table)
    long_rows = [{"variant": name, **r} for name, rows in per_instance.items() for r in rows]
    curve_rows = []
    for n, first, second in parse_curve(curve):
        stats = aggregate(compare(read_explanations(first, f"s{n}_a"), read_explanations(second, f"s{n}_b")), seed)
        curve_rows += [{"num_samples": n, "metric": m, **stats[m]} for m in METRICS]

    csv_path = output_dir / "lime_similarity.csv"
    write_text_atomic(csv_path, frame.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(output_dir / "lime_similarity_per_instance.csv",
                      pd.DataFrame(long_rows).to_csv(index=False, float_format="%.6g"))
    _plot_boxes(per_instance, output_dir / "lime_similarity.png")

    def cell(s):
        return f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"

    headline = []
    for name, rows in per_instance.items():
        stats = all_stats[name]
        headline.append([name, len(rows), f"{summary[name]['label_agreement']:.3f}"]
                        + [cell(stats[m]) for m in METRICS] + [summary[name]["verdict"]])
    lines = [
        "# LIME explanation drift vs the base model",
        "",
        f"Base: `{base}`. Noise floor: base vs `{noise}` (same model, another LIME seed). "
        f"Cells: mean [bootstrap 95% CI] over instances (seed {seed}).",
        "",
        "Rule: a variant is **beyond** the noise floor when the upper CI bound of its mean "
        f"{HEADLINE} is below the noise floor's mean {HEADLINE} (per-metric verdicts in lime_similarity.csv); "
        "otherwise **within**.",
        "",
        tabulate(headline, headers=["variant", "n", "label agreement"] + METRICS + ["verdict"], tablefmt="github"),
        "",
        "Medians per metric:",
        "",
        tabulate([[name] + [f"{all_stats[name][m]['median']:.3f}" for m in METRICS]
                  for name in per_instance], headers=["variant"] + METRICS, tablefmt="github"),
        "",
        "![similarity box plots](lime_similarity.png)",
        "",
    ]
    if cross_seed:
        lines += [
            "## Cross-seed check (the strict test)",
            "",
            "The table above compares explanations drawn with the same LIME seed, so sampling noise cancels and "
            "only the model differs. Here each variant is compared with the *other-seed* base run instead, like "
            f"the noise floor itself; Δ = {HEADLINE}(variant, noise run) − {HEADLINE}(base, noise run), paired "
            "per instance. **Detectable** = the CI of Δ lies entirely below 0: the variant's drift shows "
            "through LIME's own noise.",
            "",
            tabulate([[name, c["n"], f"{c['floor_mean']:.3f}",
                       f"{c['cross_seed_mean']:.3f} [{c['cross_seed_ci_low']:.3f}, {c['cross_seed_ci_high']:.3f}]",
                       f"{c['delta_mean']:+.3f} [{c['delta_ci_low']:+.3f}, {c['delta_ci_high']:+.3f}]",
                       "yes" if c["detectable"] else "no"] for name, c in cross_seed.items()],
                     headers=["variant", "n", f"floor {HEADLINE}", f"cross-seed {HEADLINE}", "Δ vs floor",
                              "detectable"], tablefmt="github", disable_numparse=True),
            "",
        ]
    if curve_rows:
        curve_frame = pd.DataFrame(curve_rows)
        write_text_atomic(output_dir / "lime_sample_curve.csv", curve_frame.to_csv(index=False, float_format="%.6g"))
        _plot_curve(curve_rows, output_dir / "lime_sample_curve.png")
        pivot = [[n] + [cell(next(r for r in curve_rows if r["num_samples"] == n and r["metric"] == m))
                        for m in METRICS] for n in sorted({r["num_samples"] for r in curve_rows})]
        lines += ["## Stability vs num_samples (base vs base, two LIME seeds)", "",
                  tabulate(pivot, headers=["num_samples"] + METRICS, tablefmt="github"), "",
                  "![sample curve](lime_sample_curve.png)", ""]
    manifest = base_manifest("lime_similarity", args, seed,
                             inputs={"base": base, "noise": noise,
                                     **{f"variant_{i}": p for i, p in enumerate(variants or [])}})
    manifest["metrics"] = {"summary": summary, "curve": curve_rows, "rule": __doc__.split("Rule: ")[1].split("\n\n")[0]}
    write_json_atomic(output_dir / "lime_similarity.manifest.json", manifest)
    write_text_atomic(output_dir / "lime_similarity.md", "\n".join(lines))  # the Make target, last
    log.info("Wrote %s: %s", output_dir / "lime_similarity.md",
             {k: v["verdict"] for k, v in summary.items()})
    return summary
