"""Which parts of speech carry a model's LIME weight, and whether a variant shifts that beyond LIME's noise.

Tagging, markup and the mapping of LIME's words onto NLTK's tokens are in :mod:`common.explain.pos_tagging`; the
Markdown and plot in :mod:`common.explain.pos_report`.

Shares. Per explained instance, the top ``TOP_K`` (10) words by |weight| for the explained class;
the share of a tag is that tag's part of their |weight|. A variant's share of a tag is the mean of
the per-instance shares, with a 95 % percentile bootstrap CI over instances.

Verdict, like for like (the design of the LIME agreement verdict). The variant is explained with
the base's LIME seed S and compared with base explained with seed S+1 (``base_noise.csv``); the
floor is base@S against the same base@S+1, on the same instances. Per instance, extra divergence =
JS(tag shares of variant@S, base@S+1) - JS(base@S, base@S+1) (Jensen-Shannon divergence, base 2:
0 = identical, 1 = disjoint). The rule every explanation check uses (:func:`common.explain.verdict.judge`):
d = extra - ``CONTROL_FRACTION`` (0.5) x the positive control's extra on the same instance (``--positive-control``,
the base recipe fine-tuned with another seed); ``equivalent`` when the upper bound of mean d is below 0 (at
ALPHA / m for the m variants), ``drifted`` when the lower bound is above 0, else ``inconclusive``. Without a
control there is no decided verdict. POS shares are shown, not a shipping gate.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import LABEL_NAMES
from common.cli import UserError
from common.explain.design import (OTHER_SEED, SAME_SEED, LimeDesign, check_same_design, read_stage_csv,
                                single_setting)
from common.explain.pos_report import plot_pos, pos_markdown, shown_tags
from common.explain.pos_tagging import TAGS, Tagger, nltk_tagger, word_tags
from common.schema import POS_COLUMNS, POS_CSV
from common.stage import StageConfig, flag
from common.explain.verdict import CONTROL_FRACTION

log = logging.getLogger(__name__)

TOP_K = 10
BOOTSTRAP_SEED = 0
SHARE_COLUMNS = ["variant", "scope", "tag", "share", "lower", "upper", "n"]
FLOOR = "noise_floor"
REFERENCE = "reference"


# ----------------------------------------------------------------------------------------------- shares
def instance_shares(weights: dict[str, float], tags: dict[str, dict[str, float]], top_k: int = TOP_K) -> np.ndarray:
    """Share of each tag (in ``TAGS`` order) in the |weight| of the instance's top ``top_k`` words."""
    top = sorted(weights.items(), key=lambda wv: (-abs(wv[1]), wv[0]))[:top_k]
    mass = np.zeros(len(TAGS))
    for word, weight in top:
        for tag, share in tags.get(word, {"X": 1.0}).items():
            mass[TAGS.index(tag)] += abs(weight) * share
    total = mass.sum()
    return mass / total if total > 0 else mass


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    return float(jensenshannon(p, q, base=2) ** 2)


@dataclass
class ExplainedShares:
    """Per-instance tag shares of one LIME CSV, keyed by (instance_id, explained_label)."""
    name: str
    path: str
    shares: dict[tuple[int, int], np.ndarray]
    seed: int | None
    num_samples: int | None

    def design(self) -> LimeDesign:
        return LimeDesign(self.path, dict.fromkeys(self.shares), self.seed, self.num_samples,
                          unit="(instance, label) pairs")


def load_shares(path: str | Path, tagger: Tagger, top_k: int, cache: dict[str, dict]) -> ExplainedShares:
    """Read one run_lime_on_model CSV; ``cache`` (text -> word tags) is shared across files of the same texts."""
    path = Path(path)
    frame = read_stage_csv(path, {"instance_id", "text", "word", "weight", "explained_label"}, "run_lime_on_model",
                           ("word", "text"))
    name = str(frame["variant"].iloc[0]) if "variant" in frame.columns else path.stem
    shares = {}
    for (instance, label), group in frame.groupby(["instance_id", "explained_label"], sort=True):
        text = str(group["text"].iloc[0])
        if text not in cache:
            cache[text] = word_tags(text, tagger)
        shares[(int(instance), int(label))] = instance_shares(
            dict(zip(group["word"].astype(str), group["weight"].astype(float))), cache[text], top_k)
    return ExplainedShares(name, str(path), shares, single_setting(frame, "seed", path),
                           single_setting(frame, "num_samples", path))


def check_design(base: ExplainedShares, noise: ExplainedShares, variants: list[ExplainedShares]) -> None:
    """Same instances, labels and sample counts everywhere; variants on base's seed, the floor on another."""
    check_same_design(base.design(), noise.design(), OTHER_SEED)
    for variant in variants:
        check_same_design(base.design(), variant.design(), SAME_SEED)


def _matrix(explained: ExplainedShares, keys: list) -> np.ndarray:
    return np.array([explained.shares[k] for k in keys]).reshape(len(keys), len(TAGS))


def share_rows(name: str, matrix: np.ndarray, keys: list) -> list[dict]:
    """Long rows (SHARE_COLUMNS): mean share per tag with its 95 % bootstrap CI, overall and per class."""
    from common.explain.verdict import bootstrap_means

    labels = np.array([label for _, label in keys])
    rows = []
    for scope, mask in [("all", np.ones(len(keys), dtype=bool))] + [
            (LABEL_NAMES[c], labels == c) for c in range(len(LABEL_NAMES)) if (labels == c).any()]:
        values = matrix[mask]
        means = values.mean(axis=0)
        boot = bootstrap_means(values, BOOTSTRAP_SEED)
        lower, upper = np.quantile(boot, [0.025, 0.975], axis=0)
        rows += [{"variant": name, "scope": scope, "tag": tag, "share": float(means[i]), "lower": float(lower[i]),
                  "upper": float(upper[i]), "n": int(mask.sum())} for i, tag in enumerate(TAGS)]
    return rows


def pos_verdicts(base: ExplainedShares, noise: ExplainedShares, variants: list[ExplainedShares],
                 control: ExplainedShares | None = None) -> tuple[list[dict], dict]:
    """(rows with POS_COLUMNS, per-instance values) for the floor, each variant and the control (last); see the
    module docstring. ``margin`` is CONTROL_FRACTION x the control's mean extra JS; lower/upper bound mean d."""
    from common.explain.verdict import bonferroni_alpha, judge

    keys = sorted(base.shares)
    base_m, noise_m = _matrix(base, keys), _matrix(noise, keys)
    floor = np.array([js_divergence(b, n) for b, n in zip(base_m, noise_m)])
    finite = np.isfinite(floor)
    if finite.sum() < 2:
        raise UserError(f"{base.path} and {noise.path} share fewer than 2 instances with LIME weight; "
                        f"explain more instances (LIME_INSTANCES).")
    floor_mean = float(floor[finite].mean())
    if not floor_mean > 0:
        raise UserError(f"The base run {base.path} and the noise run {noise.path} give identical tag shares, so "
                        f"there is no noise floor; check that {noise.path} used another seed.")

    def extra_of(explained: ExplainedShares) -> tuple[np.ndarray, np.ndarray]:
        js = np.array([js_divergence(v, n) for v, n in zip(_matrix(explained, keys), noise_m)])
        return js, js - floor

    control_extra = extra_of(control)[1] if control is not None else None
    alpha_equivalent = bonferroni_alpha(len(variants))
    rows = [{"variant": FLOOR, "n": int(finite.sum()), "js_mean": floor_mean, "extra_js_mean": 0.0, "lower": None,
             "upper": None, "margin": None, "verdict": REFERENCE, "n_to_decide": None}]
    per_instance = {FLOOR: floor}
    for explained in list(variants) + ([control] if control is not None else []):
        js, extra = extra_of(explained)
        result = judge(extra, control_extra, alpha_equivalent=alpha_equivalent)
        rows.append({"variant": explained.name, "n": result["n"], "js_mean": float(np.nanmean(js)),
                     "extra_js_mean": result["mean"], "lower": result["lower"], "upper": result["upper"],
                     "margin": result["boundary"], "verdict": "" if result["reason"] else result["verdict"],
                     "n_to_decide": result["n_to_decide"]})
        per_instance[explained.name] = extra
    return rows, per_instance


def run_pos_analysis(base: str, variants: list[str], output_dir: str, args: dict, noise: str,
                     tagger: Tagger | None = None, top_k: int = TOP_K, control: str | None = None) -> dict:
    """Writes pos_analysis.csv (POS_COLUMNS), pos_tag_shares.csv (SHARE_COLUMNS), .png, .manifest.json, .md."""
    import pandas as pd

    from common.manifest import base_manifest, write_json_atomic, write_text_atomic

    if top_k < 1:
        raise UserError(f"--top-k must be at least 1 (got {top_k}).")
    tagger = tagger or nltk_tagger()
    output_dir = Path(output_dir)
    cache: dict[str, dict] = {}
    base_shares = load_shares(base, tagger, top_k, cache)
    base_shares.name = "base"
    noise_shares = load_shares(noise, tagger, top_k, cache)
    noise_shares.name = FLOOR
    variant_shares = []
    for path in variants or []:
        loaded = load_shares(path, tagger, top_k, cache)
        taken = {"base", FLOOR} | {v.name for v in variant_shares}
        if loaded.name in taken:  # two files with one variant name: tell them apart by file name
            stem = Path(path).stem
            loaded.name = stem if stem not in taken else f"{loaded.name}_{len(variant_shares) + 1}"
        variant_shares.append(loaded)
    control_shares = None
    if control:
        control_shares = load_shares(control, tagger, top_k, cache)
        if control_shares.name in {"base", FLOOR} | {v.name for v in variant_shares}:
            control_shares.name = Path(control).stem
    check_design(base_shares, noise_shares, variant_shares + ([control_shares] if control_shares else []))
    verdict_rows, _ = pos_verdicts(base_shares, noise_shares, variant_shares, control_shares)

    keys = sorted(base_shares.shares)
    shares = pd.DataFrame([row for explained in [base_shares, noise_shares] + variant_shares
                           + ([control_shares] if control_shares else [])
                           for row in share_rows(explained.name, _matrix(explained, keys), keys)],
                          columns=SHARE_COLUMNS)
    used = shown_tags(shares)
    verdicts = pd.DataFrame(verdict_rows, columns=POS_COLUMNS)
    write_text_atomic(output_dir / POS_CSV, verdicts.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(output_dir / "pos_tag_shares.csv", shares.to_csv(index=False, float_format="%.6g"))
    plot_pos(shares, verdict_rows, used, output_dir / "pos_analysis.png", top_k)

    summary = {r["variant"]: {k: r[k] for k in POS_COLUMNS if k != "variant"} for r in verdict_rows}
    manifest = base_manifest("pos_analysis", args, None,
                             inputs={"base": base, "noise": noise, **{f"variant_{i}": p for i, p in enumerate(variants or [])},
                                     **({"positive_control": control} if control else {})})
    manifest.update({"top_k": top_k, "control_fraction": CONTROL_FRACTION, "positive_control": control,
                     "bootstrap_seed": BOOTSTRAP_SEED,
                     "base_seed": base_shares.seed, "noise_seed": noise_shares.seed,
                     "num_samples": base_shares.num_samples, "metrics": summary})
    write_json_atomic(output_dir / "pos_analysis.manifest.json", manifest)
    write_text_atomic(output_dir / "pos_analysis.md", pos_markdown(verdict_rows, shares, used, top_k, control_shares.name if control_shares else None))
    log.info("Wrote %s", output_dir / "pos_analysis.md")  # the Make target, last
    return summary


@dataclass(frozen=True)
class PosConfig(StageConfig):
    """``nltk_analyze_all_models``'s flags."""

    base: str = flag(help="LIME CSV of the base model (LIME seed S)")
    noise: str = flag(help="LIME CSV of base with another LIME seed (S+1): the noise floor every variant is "
                           "judged on")
    variant: list[str] = flag([], action="append", help="LIME CSV of a variant, explained with seed S (repeatable)")
    positive_control: str = flag("", help="LIME CSV of the positive control (seed S): the margin's anchor")
    top_k: int = flag(TOP_K, aliases=["--top_k"], help="words per explanation (largest |weight|) whose tags are counted")
    output_dir: str = flag("outputs/reports", aliases=["--output_dir"])

    def check(self) -> None:
        if self.top_k < 1:
            raise UserError(f"--top-k must be at least 1 (got {self.top_k}).")


def run_pos_stage(config: PosConfig) -> dict:
    """``analysis.nltk.nltk_analyze_all_models``: see that script's docstring."""
    return run_pos_analysis(config.base, config.variant, config.output_dir, config.to_dict(), noise=config.noise,
                            top_k=config.top_k, control=config.positive_control or None)
