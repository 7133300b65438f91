"""The deletion-test report over every variant: the verdict table (deletion.csv), Markdown and plot.

Reads the per-variant CSVs :func:`common.explain.deletion.run_deletion_test` wrote, judges each one against the
positive control's (``--positive-control``, also one of the ``--variant`` CSVs) with
:func:`common.explain.deletion.judge_variant` (the rule lives there and in :mod:`common.explain.verdict`), at
ALPHA / m for the m other variants (Bonferroni), and writes deletion.csv, deletion.png, deletion.manifest.json
and, last as the Make target, deletion.md.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.explain.deletion import CHECKS, GATE, MAX_K, PER_INSTANCE_COLUMNS, judge_variant
from common.explain.verdict import ALPHA, CONTROL_FRACTION, POWER, bonferroni_alpha
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
    if row["mean"] != row["mean"]:  # NaN
        return "–"
    if row["d_mean"] != row["d_mean"]:
        return _num(row["mean"])
    return f"{_signed(row['d_mean'])} [{_signed(row['lower'])}, {_signed(row['upper'])}]"


def _verdict_cell(row: dict) -> str:
    if not row["verdict"]:
        return f"no verdict: {row['reason']}"
    if row["verdict"] == "inconclusive" and row["n_to_decide"]:
        return f"inconclusive (would be {row['decides']} at about {row['n_to_decide']} instances, {POWER * 100:.0f} % power)"
    return row["verdict"]


def rule_text(n_candidates: int, alpha_equivalent: float) -> str:
    return (f"Per instance, the distance of the variant's AOPC curve to base's = mean over k = 1..{MAX_K} of |the "
            "variant's drop − base's drop|, base's top-k positive LIME words deleted from the text "
            "(comprehensiveness = p(class | text) − p(class | text without them)) or kept alone (sufficiency). No "
            f"LIME sampling is involved. d = distance − {CONTROL_FRACTION:g} × the positive control's distance on the "
            f"same instance. **equivalent**: the one-sided upper bound of mean d at α/m = {ALPHA:g}/{n_candidates} = "
            f"{alpha_equivalent:.4f} (Bonferroni over the candidates) is below 0: shown closer to base than half the "
            f"distance of another fine-tune; **drifted**: the {(1 - ALPHA) * 100:.0f} % lower bound is above 0; otherwise "
            "`inconclusive`. Offsetting changes (more reliance on base's words for some texts, less for others) add "
            "up instead of cancelling. Instances whose base explanation has no positive word are excluded and "
            "counted. `same evidence` is the gate the shipping rule uses.")


def deletion_markdown(rows: list[dict], means: dict[str, dict], png_name: str | None, control: str | None,
                      n_candidates: int, alpha_equivalent: float) -> str:
    from tabulate import tabulate

    by = {(r["variant"], r["check"]): r for r in rows}
    variants = list(means)
    same, own = [], []
    for v in variants:
        gate, suff = by[(v, GATE)], by[(v, "same_evidence_sufficiency")]
        own_comp, own_suff = by[(v, "own_comprehensiveness")], by[(v, "own_sufficiency")]
        m = means[v]
        name = f"{v} (positive control)" if v == control else v
        same.append([name, gate["n"], gate["n_excluded"], f"{m['label_agreement']:.3f}",
                     _num(m['base_comprehensiveness']), _num(m['base_words_comprehensiveness']), _num(gate["mean"]),
                     _num(gate["control_mean"]) if gate["control_mean"] == gate["control_mean"] else "–",
                     _interval(gate), _verdict_cell(gate), _interval(suff), _verdict_cell(suff)])
        own.append([name, own_comp["n"], _num(m['variant_words_comprehensiveness']), _interval(own_comp),
                    _verdict_cell(own_comp), _num(m['variant_words_sufficiency']), _interval(own_suff),
                    _verdict_cell(own_suff)])
    lines = ["# Deletion test: does each variant rely on base's words?", "", rule_text(n_candidates, alpha_equivalent), ""]
    gate_rows = {r["variant"]: r for r in rows if r["check"] == GATE}
    if control is None:
        lines += ["> **No positive control was given**: nothing anchors the margin, so no variant can be shown "
                  "equivalent (build it with CONTROL=1).", ""]
    elif gate_rows.get(control, {}).get("verdict") != "drifted":
        lines += [f"> **The deletion test is blind here**: the positive control `{control}` (another fine-tune of "
                  f"the base recipe) is {gate_rows.get(control, {}).get('verdict') or 'not judged'}, not drifted, so "
                  "this test cannot tell another model of the same quality from base at these instances and its "
                  "`equivalent` says little; explain more instances (LIME_INSTANCES).", ""]
    lines += [
        "## Same evidence: base's words, deleted on base and on the variant", "",
        tabulate(same, headers=["variant", "n", "excluded", "label agreement", "comp. AOPC base", "comp. AOPC variant",
                                "curve distance", "control's", "d [bounds]", "same evidence", "suff. d [bounds]",
                                "suff. verdict"], tablefmt="github", disable_numparse=True), "",
        "## Own faithfulness: each model's own LIME words, deleted on that model", "",
        "Does the variant's explanation describe the variant as well as base's describes base? Distance of the "
        "variant's curve on its own words to base's curve on base's words.", "",
        tabulate(own, headers=["variant", "n", "comp. AOPC variant (own words)", "d [bounds]", "verdict",
                               "suff. AOPC variant (own words)", "suff. d [bounds]", "verdict"],
                 tablefmt="github", disable_numparse=True), "",
    ]
    if png_name:
        lines += [f"![deletion test]({png_name})", ""]
    return "\n".join(lines)


def plot_deletion(rows: list[dict], path: Path) -> None:
    """d = distance - f x control's distance with its bounds per variant and check, against 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(r["variant"] for r in rows))
    colours = {"equivalent": "tab:green", "drifted": "tab:red", "inconclusive": "tab:orange", "": "grey"}
    fig, axes = plt.subplots(1, len(CHECKS), figsize=(4 * len(CHECKS), 0.5 * len(variants) + 1.8), sharey=True)
    for ax, (check, *_) in zip(np.atleast_1d(axes), CHECKS):
        for y, v in enumerate(variants):
            row = next(r for r in rows if r["variant"] == v and r["check"] == check)
            if row["d_mean"] != row["d_mean"]:
                ax.text(0, y, "no control", ha="center", va="center", fontsize=7, color="grey")
                continue
            ax.errorbar(row["d_mean"], y, xerr=[[row["d_mean"] - row["lower"]], [row["upper"] - row["d_mean"]]],
                        fmt="o", color=colours[row["verdict"]], capsize=3, zorder=2)
        ax.axvline(0, color="tab:red", ls="--", lw=1, zorder=1)
        ax.set_title(check, fontsize=10)
        ax.set_xlabel(f"d = distance - {CONTROL_FRACTION:g} x control's")
        ax.set_yticks(range(len(variants)), variants)
    np.atleast_1d(axes)[0].invert_yaxis()  # the axes share y: inverting each would undo it; first variant on top
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k or "no verdict") for k, c in colours.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle("Deletion test: equivalent left of 0 (upper bound at alpha/m), drifted right of 0")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclass(frozen=True)
class DeletionReportConfig(StageConfig):
    """``build_deletion_report``'s flags."""

    variant: list[str] = flag([], action="append",
                              help="per-variant deletion CSV (outputs/deletion/<variant>.csv; repeatable)")
    positive_control: str = flag("", help="name of the --variant that is another fine-tune of the base recipe: the "
                                          "margin's anchor (without it no variant can be equivalent)")
    output_dir: str = flag("outputs/reports", aliases=["--output_dir"])
    seed: int = shared_flag("seed", help="recorded in the manifest (the verdicts use t bounds, no resampling)")

    def check(self) -> None:
        if not self.variant:
            raise UserError("Pass at least one --variant outputs/deletion/<variant>.csv.")


def run_deletion_report(args: DeletionReportConfig) -> int:
    """``generate_outputs.deletion_test.build_deletion_report``: see that script's docstring."""
    import pandas as pd

    from common.manifest import (atomic_output_file, base_manifest, manifest_path_for, write_json_atomic,
                                 write_text_atomic)

    output_dir = Path(args.output_dir)
    frames = {}
    for path in args.variant:
        frame, name = read_deletion_csv(path)
        if name in frames:
            raise UserError(f"Variant {name} is given twice (--variant {path}); pass each variant once.")
        frames[name] = frame
    control = args.positive_control or None
    if control is not None and control not in frames:
        raise UserError(f"--positive-control {control} is not the name of any --variant CSV ({', '.join(frames)}); "
                        "pass its deletion CSV with --variant too.")
    n_candidates = len([n for n in frames if n != control])
    alpha_equivalent = bonferroni_alpha(n_candidates)
    rows, means = [], {}
    for name, frame in frames.items():
        variant_rows, means[name] = judge_variant(frame, name, frames[control] if control else None, alpha_equivalent)
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
    manifest.update({"control_fraction": CONTROL_FRACTION, "alpha": ALPHA, "n_candidates": n_candidates,
                     "alpha_equivalent": alpha_equivalent, "correction": "bonferroni", "positive_control": control,
                     "gate": GATE, "checks": rows, "aopc_means": means})
    write_json_atomic(manifest_path_for(csv_path), manifest)
    # the Markdown is the Make target, so it is written last
    write_text_atomic(md_path, deletion_markdown(rows, means, png_path.name, control, n_candidates, alpha_equivalent))
    for row in rows:
        if row["check"] == GATE:
            log.info("%s: same_evidence %s (d %s)", row["variant"], row["verdict"] or "no verdict", _interval(row))
    return 0
