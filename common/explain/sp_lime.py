"""SP-LIME: a small, representative set of explanations and global feature importance.

``lime.submodular_pick.SubmodularPick(method='sample')`` shuffles with numpy's global RNG
and forgets which rows it drew, so the candidates are chosen here (seeded, class-stratified
from the test split) and passed with ``method='full'``. SubmodularPick hands its explainer
only the data row, so the rows are candidate positions: that is how each candidate gets its
own LIME random state, derived from (seed, instance id) (:func:`instance_lime_seed`), and is
reproducible alone, with noise independent of the other candidates'.

``num_features`` (default 10) is honoured, which LIME's text explainer with every word kept
does not do by itself: each candidate is explained with every word in the ridge fit (so the
weights are those of the full explanation), then only its top-``num_features`` words by
|weight| stay in the explanation SubmodularPick sees. The coverage matrix and the global
importance therefore count a word only where it is among an explanation's most important
ones: a stop word with a small weight in every text no longer piles up into the top rank,
and the longest text no longer wins the first pick by covering the most words.

Global importance per class follows SP-LIME's definition, sqrt(sum over explanations of
|weight|) over those top words, over the candidates whose explained (predicted) class it is;
the scope ``all`` is exactly SubmodularPick's importance vector.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from common import LABEL_NAMES
from common.cli import UserError
from common.explain.explainer import (FastClassifierFn, choose_instances, explain_text, explanation_rows, fmt,
                               instance_lime_seed, make_explainer)
from common.stage import StageConfig, flag, shared_flag

log = logging.getLogger(__name__)

DEFAULT_NUM_FEATURES = 10
PLOT_WORDS = 10  # words per class in the plot and the Markdown section
TEXT_CHARS = 160  # picked texts are cut to this in the Markdown section


def keep_top_features(exp, num_features: int | None):
    """``exp`` with each label's weights cut to its ``num_features`` largest |weight| (None: all kept).

    The full list stays in ``exp.all_local_exp`` (the picked-instances CSV writes every word)."""
    exp.all_local_exp = {label: list(weights) for label, weights in exp.local_exp.items()}
    if num_features is not None:
        # ties broken by feature id, so the cut does not depend on the ridge's column order
        exp.local_exp = {label: sorted(weights, key=lambda fw: (-abs(fw[1]), fw[0]))[:num_features]
                         for label, weights in exp.local_exp.items()}
    return exp


class TopFeaturesExplainer:
    """What SubmodularPick calls: ``explain_instance(position, ...)`` explains candidate ``position``
    with ``explain_position`` and keeps its top ``num_features`` words (SubmodularPick passes its own)."""

    def __init__(self, explain_position: Callable[[int], object], progress=None):
        self.explain_position = explain_position
        self.progress = progress

    def explain_instance(self, position, classifier_fn, num_features=DEFAULT_NUM_FEATURES, top_labels=1, **kwargs):
        exp = keep_top_features(self.explain_position(int(position)), num_features)
        if self.progress is not None:
            self.progress.update(1)
        return exp


def lime_explain_position(texts: Sequence[str], ids: Sequence[int], classifier_fn: Callable, num_samples: int,
                          seed: int) -> Callable[[int], object]:
    """position -> LIME explanation (every word) of the candidate's predicted class, seeded per instance."""
    explainer = make_explainer(seed)

    def explain(position: int):
        text = str(texts[position])
        predicted = int(np.argmax(classifier_fn([text])[0]))
        exp = explain_text(explainer, text, classifier_fn, (predicted,), num_samples,
                           instance_lime_seed(seed, int(ids[position])))
        if exp is None:
            raise UserError(f"Test instance {int(ids[position])} has no words for LIME to perturb; "
                            f"choose another --seed or --sample-size.")
        exp.top_labels = [predicted]
        return exp

    return explain


def submodular_pick(explain_position: Callable[[int], object], n_candidates: int, num_explanations: int,
                    num_features: int | None, classifier_fn: Callable = None, progress=None):
    """LIME's SubmodularPick (method='full') over candidate positions 0..n-1, honouring ``num_features``."""
    from lime.submodular_pick import SubmodularPick

    explainer = TopFeaturesExplainer(explain_position, progress=progress)
    return SubmodularPick(explainer, np.arange(n_candidates), classifier_fn, method="full",
                          num_exps_desired=num_explanations, num_features=num_features, top_labels=1)


def explained_label(exp) -> int:
    return int(exp.available_labels()[0])


def global_importance(explanations) -> list[dict]:
    """Rows: scope (class name or 'all'), word, importance, mean_weight, n_explanations, rank.

    Over the words each explanation kept (its top ``num_features``); ``all`` is SubmodularPick's vector."""
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for exp in explanations:
        label = explained_label(exp)
        for word, weight, _ in explanation_rows(exp, label):
            sums[LABEL_NAMES[label]][str(word)].append(weight)
            sums["all"][str(word)].append(weight)
    rows = []
    for scope in ["all"] + [c for c in LABEL_NAMES if c in sums]:
        ranked = sorted(((word, float(np.sqrt(np.abs(w).sum())), float(np.mean(w)), len(w))
                         for word, w in sums[scope].items()), key=lambda r: (-r[1], r[0]))
        rows += [{"scope": scope, "word": word, "importance": imp, "mean_weight": mean, "n_explanations": n,
                  "rank": rank} for rank, (word, imp, mean, n) in enumerate(ranked, start=1)]
    return rows


def _plot(rows: list[dict], path: Path, num_features: int | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scopes = [c for c in LABEL_NAMES if any(r["scope"] == c for r in rows)]
    cols = 2
    n_rows = (len(scopes) + 1) // cols or 1
    fig, axes = plt.subplots(n_rows, cols, figsize=(11, 3.2 * n_rows), squeeze=False)
    for ax in axes.ravel()[len(scopes):]:
        ax.axis("off")
    for ax, scope in zip(axes.ravel(), scopes):
        top = [r for r in rows if r["scope"] == scope][:PLOT_WORDS][::-1]
        ax.barh([r["word"] for r in top], [r["importance"] for r in top],
                color=["tab:green" if r["mean_weight"] > 0 else "tab:red" for r in top])
        ax.set_title(f"{scope} (green: for the class, red: against)", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.suptitle(f"SP-LIME global importance per class: sqrt of summed |weight| over each explanation's "
                 f"top {num_features} words", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _top_words(exp, label: int, n: int) -> str:
    return ", ".join(f"{word} ({weight:+.3g})" for word, weight, _ in explanation_rows(exp, label)[:n])


def sp_lime_markdown(prefix: str, candidates, pick, features, args) -> str:
    """The section the report includes: settings, the picked instances, the top words per class."""
    from tabulate import tabulate

    lines = [f"# SP-LIME ({prefix})", "",
             f"{len(candidates)} candidates (class-stratified test instances, seed {args.seed}), {args.num_samples} "
             f"LIME samples each, explained for their predicted class; SubmodularPick (method='full') picked "
             f"{len(pick.V)}. num_features = {args.num_features}: each explanation contributes only its top "
             f"{args.num_features} words by |weight| to the coverage matrix and the global importance "
             f"(sqrt of summed |weight|).", "", "## Picked instances", ""]
    picked = []
    for order, index in enumerate(pick.V, start=1):
        exp = pick.explanations[index]
        label = explained_label(exp)
        text = candidates.texts[index]
        text = text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS - 1] + "…"
        picked.append([order, int(candidates.ids[index]), LABEL_NAMES[label],
                       LABEL_NAMES[int(candidates.labels[index])], _top_words(exp, label, 5), text.replace("|", "/")])
    lines += [tabulate(picked, headers=["pick", "instance", "explained class", "true class", "top words (weight)",
                                        "text"], tablefmt="github", disable_numparse=True), "",
              "## Top words per class", "",
              "Importance (sqrt of summed |weight|); a word marked − pushes against the class on average.", ""]
    scopes = [c for c in LABEL_NAMES if any(r["scope"] == c for r in features)]
    per_scope = {s: [r for r in features if r["scope"] == s][:PLOT_WORDS] for s in scopes}
    table = [[rank] + [(f"{rows[rank - 1]['word']}{'' if rows[rank - 1]['mean_weight'] > 0 else ' −'} "
                        f"({rows[rank - 1]['importance']:.3g})") if rank <= len(rows) else ""
                       for rows in per_scope.values()]
             for rank in range(1, max((len(r) for r in per_scope.values()), default=0) + 1)]
    lines += [tabulate(table, headers=["rank"] + scopes, tablefmt="github", disable_numparse=True), ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class SpLimeConfig(StageConfig):
    """``run_sp_lime_hf_model``'s flags (the seed's underscore spellings too)."""

    model_dir: str = flag(aliases=["--model_dir", "--model"], help="model folder, .pt payload or .onnx file")
    output_prefix: str = flag("base", aliases=["--output_prefix"], help=(
        "file name prefix of the outputs; with a folder in it (outputs/sp_lime_sets/base), taken as given and "
        "--output-dir is not used"))
    output_dir: str = flag("outputs/sp_lime_sets", aliases=["--output_dir"])
    data: str = shared_flag("data")
    sample_size: int = flag(40, aliases=["--sample_size"], help="candidates explained")
    num_explanations: int = flag(6, aliases=["--num_explanations"], help="explanations picked")
    num_samples: int = flag(1000, aliases=["--num_samples"], help="LIME perturbations each")
    num_features: int = flag(DEFAULT_NUM_FEATURES, aliases=["--num_features"], help=(
        "words per explanation (largest |weight|) in the coverage matrix and global importance"))
    seed: int = shared_flag("seed")
    max_len: int = shared_flag("max_len")
    batch_size: int = flag(32)
    device: str = shared_flag("device")
    threads: int = shared_flag("threads")

    def check(self) -> None:
        if self.num_explanations < 1 or self.sample_size < self.num_explanations:
            raise UserError(f"--sample-size ({self.sample_size}) must be >= --num-explanations "
                            f"({self.num_explanations}) >= 1.")
        if self.num_samples < 2:
            raise UserError(f"--num-samples must be at least 2 (got {self.num_samples}).")
        if self.num_features < 1:
            raise UserError(f"--num-features must be at least 1 (got {self.num_features}).")


def split_output_prefix(config: SpLimeConfig) -> SpLimeConfig:
    """A prefix with a folder in it (the seed's ``outputs/sp_lime_sets/base_model_sp_lime``) is taken as given."""
    prefix = Path(config.output_prefix)
    if prefix.parent != Path("."):
        return config.replace(output_dir=str(prefix.parent), output_prefix=prefix.name)
    return config


def run_sp_lime(config: SpLimeConfig) -> dict:
    import pandas as pd
    from tqdm import tqdm

    from common.models.classifier import load_classifier
    from common.cli import set_seed
    from common.threads import set_rank_threads
    from common.manifest import base_manifest, manifest_path_for, write_json_atomic, write_text_atomic

    args = split_output_prefix(config)
    threads = set_rank_threads(args.threads)
    set_seed(args.seed)
    out_dir = Path(args.output_dir)
    prefix = args.output_prefix
    candidates = choose_instances(args.data, args.sample_size, args.seed)
    clf = load_classifier(args.model_dir, device=args.device, max_len=args.max_len, batch_size=args.batch_size,
                          threads=threads)
    fn = FastClassifierFn(clf)
    started = time.time()
    with tqdm(total=len(candidates), desc="SP-LIME candidates", unit="instance") as bar:
        explain = lime_explain_position(candidates.texts, candidates.ids, fn, args.num_samples, args.seed)
        pick = submodular_pick(explain, len(candidates), args.num_explanations, args.num_features, fn, progress=bar)
    elapsed = time.time() - started
    labels = [explained_label(exp) for exp in pick.explanations]

    picked_rows = []
    for order, index in enumerate(pick.V, start=1):
        exp, label = pick.explanations[index], labels[index]
        mapper = exp.domain_mapper.indexed_string
        for rank, (feature, weight) in enumerate(exp.all_local_exp[label], start=1):
            picked_rows.append({"pick_order": order, "instance_id": int(candidates.ids[index]),
                                "text": candidates.texts[index], "true_label": int(candidates.labels[index]),
                                "predicted_label": label, "explained_label": label, "word": mapper.word(feature),
                                "weight": fmt(weight), "rank": rank, "in_top_features": rank <= args.num_features,
                                "intercept": fmt(exp.intercept[label]), "score": fmt(exp.score)})
    features = global_importance(pick.explanations)
    write_text_atomic(out_dir / f"{prefix}_global_features.csv",
                      pd.DataFrame(features).to_csv(index=False, float_format="%.6g"))
    _plot(features, out_dir / f"{prefix}_global_features.png", args.num_features)
    write_text_atomic(out_dir / f"{prefix}_sp_lime.md", sp_lime_markdown(prefix, candidates, pick, features, args))
    picked_path = out_dir / f"{prefix}_picked.csv"
    picked_ids = [int(candidates.ids[i]) for i in pick.V]
    metrics = {"n_candidates": len(candidates), "picked_instance_ids": picked_ids, "num_features": args.num_features,
               "coverage_words": sum(r["scope"] == "all" for r in features),
               "candidate_class_counts": {LABEL_NAMES[c]: int(n) for c, n in zip(*np.unique(labels, return_counts=True))},
               "seconds_per_explanation": elapsed / len(candidates),
               "outside_model_fraction": 1 - fn.model_seconds / elapsed if elapsed > 0 else None}
    manifest = base_manifest("sp_lime", args.to_dict(), args.seed, inputs={
        "model": args.model_dir, "data": args.data if args.data and Path(args.data).exists() else None})
    manifest.update({"classifier": clf.info, "candidate_ids": candidates.ids.tolist(), "metrics": metrics})
    write_json_atomic(manifest_path_for(picked_path), manifest)
    write_text_atomic(picked_path, pd.DataFrame(picked_rows).to_csv(index=False))  # the Make target, last
    log.info("Wrote %s (picked %s)", picked_path, picked_ids)
    return metrics
