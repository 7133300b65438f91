"""The deletion-test report over every variant: the verdict table (deletion.csv), Markdown and plot.

Reads the per-variant CSVs :func:`common.explain.deletion.run_deletion_test` wrote, judges each one with
:func:`common.explain.deletion.judge_variant` (the margin rule lives there) and writes deletion.csv, deletion.png,
deletion.manifest.json and, last as the Make target, deletion.md.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.explain.deletion import CHECKS, GATE, MARGIN_FRACTION, MAX_K, PER_INSTANCE_COLUMNS, judge_variant
from common.explain.design import read_stage_csv
from common.schema import DELETION_COLUMNS, DELETION_CSV
from common.stage import StageConfig, flag, shared_flag

log = logging.getLogger(__name__)


def read_deletion_csv(path: str | Path):
    """A per-variant deletion CSV and its variant name (from its manifest, else the file name)."""
    from common.manifest import read_manifest

    path = Path(path)
    frame = read_stage_csv(path, set(PER_INSTANCE_COLUMNS), "run_deletion_test", ("words",))
    manifest = read_manifest(path) or {}
    return frame, str(manifest.get("variant") or path.stem)


def _num(value: float, sign: str = "") -> str:
    """4 decimals, or 3 significant digits for values too small for that (a tiny model's effects)."""
    return f"{value:{sign}.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:{sign}.2e}"


def _signed(value: float) -> str:
    return _num(value, "+")


def _interval(row: dict) -> str:
    return f"{_signed(row['mean'])} [{_signed(row['lower'])}, {_signed(row['upper'])}]"


def _verdict_cell(row: dict) -> str:
    if row["verdict"] == "inconclusive" and row["n_to_decide"]:
        return f"inconclusive (n ≈ {row['n_to_decide']} would decide)"
    return row["verdict"]


def deletion_markdown(rows: list[dict], means: dict[str, dict], png_name: str | None) -> str:
    from tabulate import tabulate

    by = {(r["variant"], r["check"]): r for r in rows}
    variants = list(means)
    same, own = [], []
    for v in variants:
        gate, suff = by[(v, GATE)], by[(v, "same_evidence_sufficiency")]
        own_comp, own_suff = by[(v, "own_comprehensiveness")], by[(v, "own_sufficiency")]
        m = means[v]
        same.append([v, gate["n"], f"{m['label_agreement']:.3f}", _num(m['base_comprehensiveness']),
                     _num(m['base_words_comprehensiveness']), _interval(gate), _num(gate['margin']),
                     _verdict_cell(gate), _interval(suff), _num(suff['margin']), _verdict_cell(suff)])
        own.append([v, own_comp["n"], _num(m['base_comprehensiveness']), _num(m['variant_words_comprehensiveness']),
                    _interval(own_comp), _verdict_cell(own_comp), _num(m['base_sufficiency']),
                    _num(m['variant_words_sufficiency']), _interval(own_suff), _verdict_cell(own_suff)])
    lines = [
        "# Deletion test: does each variant rely on base's words?", "",
        f"Per instance, base's top-k LIME words with positive weight for the explained class (k = 1..{MAX_K}) are "
        "deleted from the text (comprehensiveness = p(class | text) - p(class | text without them)) or kept alone "
        "(sufficiency = p(class | text) - p(class | only them)), on base and on the variant; AOPC = mean over k. "
        "No LIME sampling is involved: the words are fixed, only the models are asked. Δ = the variant's AOPC - "
        "base's, paired per instance, mean with its 90 % bootstrap interval. **Margin** = "
        f"{MARGIN_FRACTION:g} x base's mean AOPC comprehensiveness (sufficiency checks: {MARGIN_FRACTION:g} x base's "
        "mean |AOPC sufficiency|). `equivalent`: the interval lies within ±margin; `drifted`: entirely outside; "
        "otherwise `inconclusive`. `same evidence` is the gate the shipping rule uses.", "",
        "## Same evidence: base's words, deleted on base and on the variant", "",
        tabulate(same, headers=["variant", "n", "label agreement", "comp. AOPC base", "comp. AOPC variant",
                                "Δ comp. [90 % CI]", "margin", "same evidence", "Δ suff. [90 % CI]", "suff. margin",
                                "suff. verdict"], tablefmt="github", disable_numparse=True), "",
        "## Own faithfulness: each model's own LIME words, deleted on that model", "",
        "Does the variant's explanation describe the variant as well as base's describes base? Δ = the variant's "
        "AOPC on its own words - base's AOPC on base's words.", "",
        tabulate(own, headers=["variant", "n", "comp. AOPC base", "comp. AOPC variant (own words)", "Δ comp. [90 % CI]",
                               "verdict", "suff. AOPC base", "suff. AOPC variant (own words)", "Δ suff. [90 % CI]",
                               "verdict"], tablefmt="github", disable_numparse=True), "",
    ]
    if png_name:
        lines += [f"![deletion test]({png_name})", ""]
    return "\n".join(lines)


def plot_deletion(rows: list[dict], path: Path) -> None:
    """Δ with its 90 % interval per variant and check, over the ±margin band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(r["variant"] for r in rows))
    colours = {"equivalent": "tab:green", "drifted": "tab:red", "inconclusive": "tab:orange"}
    fig, axes = plt.subplots(1, len(CHECKS), figsize=(4 * len(CHECKS), 0.5 * len(variants) + 1.8), sharey=True)
    for ax, (check, *_) in zip(np.atleast_1d(axes), CHECKS):
        for y, v in enumerate(variants):
            row = next(r for r in rows if r["variant"] == v and r["check"] == check)
            ax.barh(y, 2 * row["margin"], left=-row["margin"], height=0.7, color="0.88", zorder=0)
            ax.errorbar(row["mean"], y, xerr=[[row["mean"] - row["lower"]], [row["upper"] - row["mean"]]], fmt="o",
                        color=colours[row["verdict"]], capsize=3, zorder=2)
        ax.axvline(0, color="0.5", lw=0.8, zorder=1)
        ax.set_title(check, fontsize=10)
        ax.set_xlabel("Δ AOPC (variant - base)")
        ax.set_yticks(range(len(variants)), variants)
    np.atleast_1d(axes)[0].invert_yaxis()  # the axes share y: inverting each would undo it; first variant on top
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in colours.items()]
    handles.append(plt.Rectangle((0, 0), 1, 1, color="0.88", label="±margin"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle("Deletion test: Δ AOPC with 90 % bootstrap interval")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclass(frozen=True)
class DeletionReportConfig(StageConfig):
    """``build_deletion_report``'s flags."""

    variant: list[str] = flag([], action="append",
                              help="per-variant deletion CSV (outputs/deletion/<variant>.csv; repeatable)")
    output_dir: str = flag("outputs/reports", aliases=["--output_dir"])
    seed: int = shared_flag("seed", help="seed of the bootstrap")

    def check(self) -> None:
        if not self.variant:
            raise UserError("Pass at least one --variant outputs/deletion/<variant>.csv.")


def run_deletion_report(args: DeletionReportConfig) -> int:
    """``generate_outputs.deletion_test.build_deletion_report``: see that script's docstring."""
    import pandas as pd

    from common.manifest import (atomic_output_file, base_manifest, manifest_path_for, write_json_atomic,
                                 write_text_atomic)

    output_dir = Path(args.output_dir)
    rows, means = [], {}
    for path in args.variant:
        frame, name = read_deletion_csv(path)
        if name in means:
            raise UserError(f"Variant {name} is given twice (--variant {path}); pass each variant once.")
        variant_rows, means[name] = judge_variant(frame, name, args.seed)
        rows += variant_rows
    table = pd.DataFrame(rows, columns=DELETION_COLUMNS)
    csv_path = output_dir / DELETION_CSV
    md_path, png_path = csv_path.with_suffix(".md"), csv_path.with_suffix(".png")
    output_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output_file(png_path) as tmp:
        plot_deletion(rows, tmp)
    with atomic_output_file(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.8g")
    manifest = base_manifest("deletion_report", args.to_dict(), args.seed,
                             inputs={f"deletion_{name}": path for name, path in zip(means, args.variant)})
    manifest.update({"margin_fraction": MARGIN_FRACTION, "gate": GATE, "checks": rows, "aopc_means": means})
    write_json_atomic(manifest_path_for(csv_path), manifest)
    # the Markdown is the Make target, so it is written last
    write_text_atomic(md_path, deletion_markdown(rows, means, png_path.name))
    for row in rows:
        if row["check"] == GATE:
            log.info("%s: same_evidence %s (%s, margin %.4f)", row["variant"], row["verdict"], _interval(row),
                     row["margin"])
    return 0
