"""The LIME-similarity stage: judge the variants that could ship (:mod:`common.explain.drift`) and write the report.

**What is judged.** The symmetric statistic costs a second LIME run (seed S+1, the *rerun*) per judged model, so
the stage explains only what could ship (:func:`shipping_plan`): with ``--bench-summary`` and ``--deletion``,
the candidates are taken fastest first (batch-32 throughput of that benchmark run); a candidate more than
``ACCURACY_TOLERANCE_PT`` below base, or not ``equivalent`` on the deletion test, cannot ship and is not rerun;
once a candidate is ``equivalent`` on both gates, every slower one is "not needed" (the pick takes the
fastest). Candidates missing from the benchmark are always judged. ``--build-rerun`` is the command that builds a
missing rerun (the Makefile passes ``make``, so every rerun is a Make target with its own manifest, resumable);
without it only the reruns that exist are judged. The negative and positive controls are always judged.
The Bonferroni level ALPHA / m counts every candidate given (judged or not), so stopping early is valid.

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
from common.cli import UserError
from common.explain.drift import (COL_D, COL_LOWER, COL_METRIC, COL_N_TO_DECIDE, COL_UPPER, COL_VARIANT, COL_VERDICT,
                                  CONTROL_FRACTION, HEADLINE, ROLE_NEGATIVE_CONTROL, ROLE_POSITIVE_CONTROL,
                                  ROLE_VARIANT, SECONDARY, SIMILARITY_COLUMNS, SIMILARITY_CSV, Plan, Similarity,
                                  judge_similarity)
from common.explain.verdict import ALPHA, EQUIVALENT, POWER
from common.schema import ACCURACY_TOLERANCE_PT, DELETION_CSV, DELETION_GATE
from common.stage import StageConfig, flag

log = logging.getLogger(__name__)


def _plot_extra(summary: dict[str, dict], table: list[dict], names: list[str], path: Path) -> None:
    """Forest plot: mean d = extra - f x control's extra with its bounds against 0, per metric (judged ones)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"equivalent": "tab:green", "drifted": "tab:red", "inconclusive": "tab:orange", "": "grey"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(names) + 2.5), squeeze=False, sharey=True)
    for ax, metric in zip(axes[0], (HEADLINE, SECONDARY)):
        rows = {r[COL_VARIANT]: r for r in table if r[COL_METRIC] == metric and r[COL_VARIANT] in summary}
        for y, name in enumerate(names):
            r = rows[name]
            if not math.isfinite(r[COL_D]):
                ax.text(0, y, "not judged", ha="center", va="center", fontsize=7, color="grey")
                continue
            ax.errorbar([r[COL_D]], [y], xerr=[[r[COL_D] - r[COL_LOWER]], [r[COL_UPPER] - r[COL_D]]],
                        fmt="o", color=colours.get(r[COL_VERDICT], "grey"), capsize=3)
        ax.axvline(0, color="tab:red", ls="--", lw=1, label=f"0: {CONTROL_FRACTION:g} x the positive control's extra")
        ax.set_title(f"{metric}: d = extra - {CONTROL_FRACTION:g} x control extra")
        ax.set_xlabel(f"lower {(1 - ALPHA) * 100:.0f} % bound .. upper 1 - alpha/m bound")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=8, frameon=False)
    labels = [f"{n} ({summary[n]['role'].replace('_', ' ')})" if summary[n]["role"] != ROLE_VARIANT else n
              for n in names]
    axes[0][0].set_yticks(range(len(names)), labels, fontsize=8)
    axes[0][0].invert_yaxis()
    fig.suptitle("LIME explanation drift: green equivalent (left of 0), red drifted (right of 0), orange inconclusive")
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


def _cell(mean: float, lower: float = float("nan"), upper: float = float("nan")) -> str:
    if not math.isfinite(mean):
        return "–"
    if not math.isfinite(lower):
        return f"{mean:+.3f}"
    return f"{mean:+.3f} [{lower:+.3f}, {upper:+.3f}]"


def verdict_cell(entry: dict) -> str:
    """The verdict, "would be drifted at about N instances (80 % power)", or why it was not judged."""
    if not entry.get("verdict"):
        return f"not judged: {entry.get('reason') or 'no verdict'}"
    if entry["verdict"] == "inconclusive" and entry.get("n_to_decide"):
        return f"inconclusive (would be {entry['decides']} at about {int(entry['n_to_decide'])} instances, " \
               f"{POWER * 100:.0f} % power)"
    return entry["verdict"]


def rule_sentence(n_candidates: int, alpha_equivalent: float) -> str:
    """The rule in one paragraph (lime_similarity.md and the report say the same)."""
    return (f"Per instance, extra = [m(b@S, b@S+1) + m(v@S, v@S+1)]/2 − [m(v@S, b@S+1) + m(b@S, v@S+1)]/2 (0 for an "
            f"identical function; LIME's own noise cancels), and d = extra − {CONTROL_FRACTION:g} × the positive "
            f"control's extra on the same instance. **equivalent**: the one-sided upper bound of mean d at "
            f"α/m = {ALPHA:g}/{n_candidates} = {alpha_equivalent:.4f} (Bonferroni over the {n_candidates} candidates) "
            f"is below 0, i.e. shown closer to base than half the distance to another fine-tune; **drifted**: the "
            f"one-sided {(1 - ALPHA) * 100:.0f} % lower bound is above 0; otherwise **inconclusive**. Student-t bounds. The "
            "margin is the control's own effect, so it does not move with LIME_SAMPLES; no control, no "
            "`equivalent`.")


def similarity_markdown(result: Similarity, base: str, noise: str, order: list[str], seed: int) -> list[str]:
    """The lines of lime_similarity.md before the sample curve: the design, the rule and one row per variant."""
    from tabulate import tabulate

    summary, table = result.summary, result.table
    base_exp, noise_exp = result.base, result.noise
    rows = []
    for name in order:
        s = summary[name]
        second = next(r for r in table if r[COL_VARIANT] == name and r[COL_METRIC] == SECONDARY)
        role = "" if s["role"] == ROLE_VARIANT else s["role"].replace("_", " ")
        rows.append([name, role, s["n"] or "–", f"{s['label_agreement']:.3f}", _cell(s["extra"]),
                     _cell(s["control_extra"]), _cell(s["d"], s["lower"], s["upper"]), verdict_cell(s),
                     _cell(second[COL_D], second[COL_LOWER], second[COL_UPPER]), second[COL_VERDICT] or "–"])
    lines = [
        "# LIME explanation drift vs the base model",
        "",
        f"Base: `{base}` (LIME seed {base_exp.seed}); noise run: `{noise}` (base, seed {noise_exp.seed}); every "
        f"variant explained with seed {base_exp.seed} and, when judged, rerun with seed {noise_exp.seed}; "
        f"{result.n_instances} instances × {base_exp.num_samples} samples. LIME's own seed-to-seed agreement "
        f"(descriptive): {HEADLINE} {result.floor_stats[HEADLINE]['mean']:.3f}, {SECONDARY} "
        f"{result.floor_stats[SECONDARY]['mean']:.3f}.",
        "",
        rule_sentence(result.n_candidates, result.alpha_equivalent) + f" Headline metric: signed rank-biased "
        f"overlap ({HEADLINE}, p = {RBO_P}); {SECONDARY} is secondary. Cells: mean d [lower, upper bound]. Only "
        "what could ship is judged (fastest first; see the stage's docstring): the others say why not.",
        "",
    ]
    if rows:
        lines += [tabulate(rows, headers=["variant", "control", "n", "label agreement", f"{HEADLINE} extra",
                                          "control's extra", f"d [{HEADLINE}]", "verdict", f"d [{SECONDARY}]",
                                          f"{SECONDARY} verdict"],
                           tablefmt="github", disable_numparse=True), ""]
        for sentence in result.warnings:
            lines += [f"> {sentence}", ""]
        lines += ["![d per variant](lime_similarity.png)", ""]
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


def _read_speeds(summary_csv: str | None) -> dict[str, tuple[float, float]]:
    """variant -> (accuracy_delta_pt, throughput) of one benchmark run (summary.csv); {} without one."""
    if not summary_csv:
        return {}
    import pandas as pd

    if not Path(summary_csv).is_file():
        raise UserError(f"--bench-summary {summary_csv} does not exist; run `make bench` or leave the flag out.")
    frame = pd.read_csv(summary_csv)
    missing = {"variant", "status", "accuracy_delta_pt", "throughput_samples_per_s"} - set(frame.columns)
    if missing:
        raise UserError(f"--bench-summary {summary_csv} has no column {sorted(missing)[0]}; pass the benchmark's "
                        "summary.csv (outputs/metrics/summary.csv).")
    frame = frame[frame["status"] == "ok"]
    return {str(r.variant): (float(r.accuracy_delta_pt), float(r.throughput_samples_per_s))
            for r in frame.itertuples(index=False)}


def _read_deletion_gate(deletion_csv: str | None) -> dict[str, str]:
    """variant -> its deletion-gate verdict ("" when not judged); {} without the file."""
    if not deletion_csv:
        return {}
    import pandas as pd

    if not Path(deletion_csv).is_file():
        raise UserError(f"--deletion {deletion_csv} does not exist; build outputs/reports/{DELETION_CSV} first or "
                        "leave the flag out.")
    frame = pd.read_csv(deletion_csv, keep_default_na=False)
    if not {"variant", "check", "verdict"} <= set(frame.columns):
        raise UserError(f"--deletion {deletion_csv} is not a deletion report ({DELETION_CSV}); rebuild it.")
    gate = frame[frame["check"] == DELETION_GATE]
    return {str(v): str(verdict) for v, verdict in zip(gate["variant"], gate["verdict"])}


def shipping_plan(names: list[str], roles: dict[str, str], speeds: dict, deletion: dict[str, str] | None,
                  reruns: dict[str, str], build_rerun: str | None) -> Plan:
    """The candidates in the order a pick would consider them, and why one cannot ship (module docstring)."""
    import shlex
    import subprocess

    unknown = [n for n in names if n not in speeds]
    known = sorted((n for n in names if n in speeds), key=lambda n: -speeds[n][1])

    def skip(name: str) -> str | None:
        if name in speeds and speeds[name][0] < -ACCURACY_TOLERANCE_PT - 1e-9:
            return f"cannot ship: {speeds[name][0]:+.2f} pt, beyond the {ACCURACY_TOLERANCE_PT:g} pt tolerance"
        if deletion is not None and name in deletion and deletion[name] != EQUIVALENT:
            return f"cannot ship: deletion test {deletion[name] or 'not judged'}"
        return None

    def rerun(name: str) -> str | None:
        path = reruns.get(name)
        if not path:
            return None
        if not Path(path).is_file() and build_rerun:
            log.info("Explaining %s again with the second seed: %s %s", name, build_rerun, path)
            done = subprocess.run([*shlex.split(build_rerun), path])
            if done.returncode != 0:
                raise UserError(f"Building the rerun {path} failed (exit {done.returncode}); see the messages above, "
                                "fix it, and run again (finished explanations are kept).")
        return path if Path(path).is_file() else None

    def stops_search(name: str) -> bool:
        """Passing LIME, does ``name`` make every slower candidate unnecessary? Only with a known speed and an
        ``equivalent`` deletion test (a candidate the benchmark did not measure, e.g. a sweep's LIME_EXTRA, is
        judged first and stops nothing)."""
        return name in speeds and deletion is not None and deletion.get(name) == EQUIVALENT

    return Plan(unknown + known, skip, stops_search, rerun)


def _parse_reruns(specs: list[str]) -> dict[str, str]:
    out = {}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--rerun {spec!r} must look like NAME=PATH.csv (a variant and its second-seed LIME run).")
        out[name] = path
    return out


def run_similarity(base: str, noise: str, variants: list[str], curve: list[str], output_dir: str,
                   seed: int, args: dict, negative_controls: list[str] | None = None,
                   positive_controls: list[str] | None = None, reruns: list[str] | None = None,
                   bench_summary: str | None = None, deletion: str | None = None,
                   build_rerun: str | None = None) -> dict:
    import pandas as pd

    from common.manifest import base_manifest, write_json_atomic, write_text_atomic

    output_dir = Path(output_dir)
    rerun_paths = _parse_reruns(reruns)
    speeds, gate = _read_speeds(bench_summary), _read_deletion_gate(deletion) if deletion else None
    if bench_summary or deletion or build_rerun:
        def plan_for(names, roles):
            return shipping_plan(names, roles, speeds, gate, rerun_paths, build_rerun)
    else:
        plan_for = None
    result = judge_similarity(base, noise, variants, curve, seed, negative_controls, positive_controls,
                              reruns=rerun_paths, plan_for=plan_for)
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
    inputs = {"base": base, "noise": noise, **{f"variant_{i}": p for i, p in enumerate(variants or [])},
              **{f"rerun_{name}": path for name, path in rerun_paths.items() if Path(path).is_file()}}
    if bench_summary:
        inputs["bench_summary"] = bench_summary
    if deletion:
        inputs["deletion"] = deletion
    manifest = base_manifest("lime_similarity", args, seed, inputs=inputs)
    manifest["metrics"] = {"summary": summary, "floor": result.floor_stats, "curve": result.curve_rows,
                           "control_warnings": result.warnings, "headline": HEADLINE,
                           "control_fraction": CONTROL_FRACTION, "alpha": ALPHA,
                           "n_candidates": result.n_candidates, "alpha_equivalent": result.alpha_equivalent,
                           "correction": "bonferroni"}
    write_json_atomic(output_dir / "lime_similarity.manifest.json", manifest)
    write_text_atomic(output_dir / "lime_similarity.md", "\n".join(lines))  # the Make target, last
    log.info("Wrote %s: %s", output_dir / "lime_similarity.md",
             {k: v["verdict"] or "not judged" for k, v in summary.items()})
    return summary


@dataclass(frozen=True)
class SimilarityConfig(StageConfig):
    """``run_lime_similarity``'s flags."""

    base: str = flag(help="LIME CSV of the base model")
    noise: str = flag(help="LIME CSV of the base model with another LIME seed")
    variant: list[str] = flag([], action="append", help=(
        "LIME CSV of a variant or control, explained with the base run's seed (repeatable)"))
    rerun: list[str] = flag([], action="append", help=(
        "NAME=PATH: the variant's second LIME run, with the noise run's seed (repeatable; built with "
        "--build-rerun when missing and needed)"))
    negative_control: list[str] = flag([], action="append", help=(
        "name of a --variant that is the same function as base (must come out equivalent)"))
    positive_control: list[str] = flag([], action="append", help=(
        "name of a --variant that is another fine-tune of the base recipe: the margin's anchor (not a candidate)"))
    bench_summary: str = flag("", help="summary.csv of a benchmark run: judge the candidates fastest first, skip "
                                       "those beyond the accuracy tolerance, stop after the first that passes")
    deletion: str = flag("", help="deletion.csv: candidates not equivalent on the deletion test are not rerun")
    build_rerun: str = flag("", help="command that builds a missing rerun, given its path (the Makefile: make)")
    curve: list[str] = flag([], action="append", help=(
        "N=A.csv,B.csv: base explained at num_samples N with two seeds (repeatable)"))
    output_dir: str = flag("outputs/reports", aliases=["--output_dir"])
    seed: int = flag(42, help="bootstrap seed (the descriptive CIs of the floor and the curve)")


def run_similarity_stage(config: SimilarityConfig) -> dict:
    """``generate_outputs.lime_similarity_pipeline.run_lime_similarity``: see that script's docstring."""
    return run_similarity(config.base, config.noise, config.variant, config.curve, config.output_dir, config.seed,
                          config.to_dict(), negative_controls=config.negative_control,
                          positive_controls=config.positive_control, reruns=config.rerun,
                          bench_summary=config.bench_summary or None, deletion=config.deletion or None,
                          build_rerun=config.build_rerun or None)
