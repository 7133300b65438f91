"""The LIME-similarity stage: judge every variant (:mod:`common.explain.drift`) and write what a person reads.

Writes lime_similarity.csv (``SIMILARITY_COLUMNS``), lime_similarity_per_instance.csv, lime_similarity.png (the
extra disagreement per variant against the margin), lime_similarity.manifest.json and, last as the Make target,
lime_similarity.md; with ``--curve`` also lime_sample_curve.csv/.png (seed-to-seed agreement per num_samples).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from common.explain.similarity import METRICS, RBO_P
from common.explain.drift import (COL_EXTRA, COL_LOWER, COL_MARGIN, COL_METRIC, COL_N_TO_DECIDE, COL_UPPER,
                                    COL_VARIANT, COL_VERDICT, HEADLINE, MARGIN_FRACTION, ROLE_NEGATIVE_CONTROL,
                                    ROLE_POSITIVE_CONTROL, ROLE_VARIANT, SECONDARY, SIMILARITY_COLUMNS,
                                    SIMILARITY_CSV, Similarity, judge_similarity)
from common.stage import StageConfig, flag

log = logging.getLogger(__name__)


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


def _cell(mean: float, lower: float, upper: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:+.3f} [{lower:+.3f}, {upper:+.3f}]"


def similarity_markdown(result: Similarity, base: str, noise: str, order: list[str], seed: int) -> list[str]:
    """The lines of lime_similarity.md before the sample curve: the design, the margins and one row per variant."""
    from tabulate import tabulate

    summary, table, margins, floor_stats = result.summary, result.table, result.margins, result.floor_stats
    base_exp, noise_exp = result.base, result.noise
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
        f"variant explained with seed {base_exp.seed}; {result.n_instances} instances × {base_exp.num_samples} "
        "samples.",
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
        for sentence in result.warnings:
            lines += [f"> {sentence}", ""]
        lines += ["![extra disagreement per variant](lime_similarity.png)", ""]
    else:
        lines += ["_No variant was given._", ""]
    return lines


def curve_markdown(curve_rows: list[dict]) -> list[str]:
    from tabulate import tabulate

    def ci(r):
        return f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"

    pivot = [[n] + [ci(next(r for r in curve_rows if r["num_samples"] == n and r["metric"] == m))
                    for m in METRICS] for n in sorted({r["num_samples"] for r in curve_rows})]
    return ["## Stability vs num_samples (base vs base, two LIME seeds)", "",
            tabulate(pivot, headers=["num_samples"] + METRICS, tablefmt="github"), "",
            "![sample curve](lime_sample_curve.png)", ""]


def run_similarity(base: str, noise: str, variants: list[str], curve: list[str], output_dir: str,
                   seed: int, args: dict, negative_controls: list[str] | None = None,
                   positive_controls: list[str] | None = None) -> dict:
    import pandas as pd

    from common.manifest import base_manifest, write_json_atomic, write_text_atomic

    output_dir = Path(output_dir)
    result = judge_similarity(base, noise, variants, curve, seed, negative_controls, positive_controls)
    summary, table = result.summary, result.table
    frame = pd.DataFrame(table, columns=SIMILARITY_COLUMNS)
    frame[COL_N_TO_DECIDE] = frame[COL_N_TO_DECIDE].astype("Int64")
    for sentence in result.warnings:
        log.warning("%s", sentence.replace("*", "").replace("`", ""))
    write_text_atomic(output_dir / SIMILARITY_CSV, frame.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(output_dir / "lime_similarity_per_instance.csv",
                      pd.DataFrame(result.per_instance).to_csv(index=False, float_format="%.6g"))
    # Each variant is shown between the two controls.
    role_order = [ROLE_NEGATIVE_CONTROL, ROLE_VARIANT, ROLE_POSITIVE_CONTROL]
    order = sorted(summary, key=lambda n: role_order.index(summary[n]["role"]))
    if summary:
        _plot_extra(summary, table, order, output_dir / "lime_similarity.png")
    lines = similarity_markdown(result, base, noise, order, seed)
    if result.curve_rows:
        curve_frame = pd.DataFrame(result.curve_rows)
        write_text_atomic(output_dir / "lime_sample_curve.csv", curve_frame.to_csv(index=False, float_format="%.6g"))
        _plot_curve(result.curve_rows, output_dir / "lime_sample_curve.png")
        lines += curve_markdown(result.curve_rows)
    inputs = {"base": base, "noise": noise, **{f"variant_{i}": p for i, p in enumerate(variants or [])}}
    manifest = base_manifest("lime_similarity", args, seed, inputs=inputs)
    manifest["metrics"] = {"summary": summary, "margins": result.margins, "floor": result.floor_stats,
                           "curve": result.curve_rows, "control_warnings": result.warnings, "headline": HEADLINE,
                           "margin_fraction": MARGIN_FRACTION}
    write_json_atomic(output_dir / "lime_similarity.manifest.json", manifest)
    write_text_atomic(output_dir / "lime_similarity.md", "\n".join(lines))  # the Make target, last
    log.info("Wrote %s: %s", output_dir / "lime_similarity.md", {k: v["verdict"] for k, v in summary.items()})
    return summary


@dataclass(frozen=True)
class SimilarityConfig(StageConfig):
    """``run_lime_similarity``'s flags."""

    base: str = flag(help="LIME CSV of the base model")
    noise: str = flag(help="LIME CSV of the base model with another LIME seed")
    variant: list[str] = flag([], action="append", help=(
        "LIME CSV of a variant or control, explained with the base run's seed (repeatable)"))
    negative_control: list[str] = flag([], action="append", help=(
        "name of a --variant that is the same function as base (must come out equivalent)"))
    positive_control: list[str] = flag([], action="append", help=(
        "name of a --variant that is another fine-tune of the base recipe (not a candidate)"))
    curve: list[str] = flag([], action="append", help=(
        "N=A.csv,B.csv: base explained at num_samples N with two seeds (repeatable)"))
    output_dir: str = flag("outputs/reports", aliases=["--output_dir"])
    seed: int = flag(42, help="bootstrap seed")


def run_similarity_stage(config: SimilarityConfig) -> dict:
    """``generate_outputs.lime_similarity_pipeline.run_lime_similarity``: see that script's docstring."""
    return run_similarity(config.base, config.noise, config.variant, config.curve, config.output_dir, config.seed,
                          config.to_dict(), negative_controls=config.negative_control,
                          positive_controls=config.positive_control)
