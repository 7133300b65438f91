"""SP-LIME: a small, representative set of explanations and global feature importance.

``lime.submodular_pick.SubmodularPick(method='sample')`` shuffles with numpy's global RNG
and forgets which rows it drew, so the candidates are chosen here (seeded, class-stratified
from the test split) and passed with ``method='full'``. Every candidate is explained with
the random state reset (reproducible), keeping every word, for its predicted class.

Global importance per class follows SP-LIME's definition, sqrt(sum over explanations of
|weight|), over the candidates whose explained (predicted) class it is.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from common import LABEL_NAMES
from common.cli import UserError
from common.lime_utils import FastClassifierFn, choose_instances, count_words, explanation_rows, fmt, make_explainer

log = logging.getLogger(__name__)

TOP_FEATURES = 10


class ResettingExplainer:
    """What SubmodularPick calls: resets LIME's random state per instance and keeps every word."""

    def __init__(self, seed: int, num_samples: int, progress=None):
        self.explainer = make_explainer(seed)
        self.seed = seed
        self.num_samples = num_samples
        self.progress = progress

    def explain_instance(self, text, classifier_fn, num_features=None, top_labels=1, **kwargs):
        from sklearn.utils import check_random_state

        self.explainer.random_state = check_random_state(self.seed)
        self.explainer.base.random_state = self.explainer.random_state
        num_words = max(count_words(self.explainer, text), 1)
        exp = self.explainer.explain_instance(str(text), classifier_fn, num_features=num_words, top_labels=top_labels,
                                              num_samples=self.num_samples)
        if self.progress is not None:
            self.progress.update(1)
        return exp


def global_importance(explanations, labels) -> list[dict]:
    """Rows: scope (class name or 'all'), word, importance, mean_weight, n_explanations, rank."""
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for exp, label in zip(explanations, labels):
        for word, weight, _ in explanation_rows(exp, label):
            sums[LABEL_NAMES[label]][word].append(weight)
            sums["all"][word].append(weight)
    rows = []
    for scope in ["all"] + [c for c in LABEL_NAMES if c in sums]:
        ranked = sorted(((word, float(np.sqrt(np.abs(w).sum())), float(np.mean(w)), len(w))
                         for word, w in sums[scope].items()), key=lambda r: (-r[1], r[0]))
        rows += [{"scope": scope, "word": word, "importance": imp, "mean_weight": mean, "n_explanations": n,
                  "rank": rank} for rank, (word, imp, mean, n) in enumerate(ranked, start=1)]
    return rows


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scopes = [c for c in LABEL_NAMES if any(r["scope"] == c for r in rows)]
    cols = 2
    fig, axes = plt.subplots((len(scopes) + 1) // cols or 1, cols, figsize=(11, 3.2 * ((len(scopes) + 1) // cols or 1)),
                             squeeze=False)
    for ax in axes.ravel()[len(scopes):]:
        ax.axis("off")
    for ax, scope in zip(axes.ravel(), scopes):
        top = [r for r in rows if r["scope"] == scope][:TOP_FEATURES][::-1]
        ax.barh([r["word"] for r in top], [r["importance"] for r in top],
                color=["tab:green" if r["mean_weight"] > 0 else "tab:red" for r in top])
        ax.set_title(f"{scope} (green: for the class, red: against)", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.suptitle("SP-LIME global feature importance per class (sqrt of summed |weight|)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_sp_lime(args) -> dict:
    import pandas as pd
    from lime.submodular_pick import SubmodularPick
    from tabulate import tabulate
    from tqdm import tqdm

    from common.classifier import load_classifier
    from common.cli import set_seed
    from common.evaluation import set_threads
    from common.lime_utils import default_threads
    from common.manifest import base_manifest, manifest_path_for, write_json_atomic, write_text_atomic

    if args.num_explanations < 1 or args.sample_size < args.num_explanations:
        raise UserError(f"--sample-size ({args.sample_size}) must be >= --num-explanations "
                        f"({args.num_explanations}) >= 1.")
    if args.num_samples < 2:
        raise UserError(f"--num-samples must be at least 2 (got {args.num_samples}).")
    threads = default_threads(args.threads)
    set_threads(threads)
    set_seed(args.seed)
    out_dir = Path(args.output_dir)
    prefix = args.output_prefix
    candidates = choose_instances(args.data, args.sample_size, args.seed)
    clf = load_classifier(args.model_dir, device=args.device, max_len=args.max_len, batch_size=args.batch_size,
                          threads=threads)
    fn = FastClassifierFn(clf)
    started = time.time()
    with tqdm(total=len(candidates), desc="SP-LIME candidates", unit="instance") as bar:
        explainer = ResettingExplainer(args.seed, args.num_samples, progress=bar)
        pick = SubmodularPick(explainer, np.array(candidates.texts, dtype=object), fn, method="full",
                              num_exps_desired=args.num_explanations, top_labels=1)
    elapsed = time.time() - started
    labels = [int(exp.top_labels[0]) for exp in pick.explanations]

    picked_rows = []
    for order, index in enumerate(pick.V, start=1):
        exp, label = pick.explanations[index], labels[index]
        for word, weight, rank in explanation_rows(exp, label):
            picked_rows.append({"pick_order": order, "instance_id": int(candidates.ids[index]),
                                "text": candidates.texts[index], "true_label": int(candidates.labels[index]),
                                "predicted_label": label, "explained_label": label, "word": word,
                                "weight": fmt(weight), "rank": rank, "intercept": fmt(exp.intercept[label]),
                                "score": fmt(exp.score)})
    features = global_importance(pick.explanations, labels)
    features_frame = pd.DataFrame(features)
    write_text_atomic(out_dir / f"{prefix}_global_features.csv", features_frame.to_csv(index=False, float_format="%.6g"))
    _plot(features, out_dir / f"{prefix}_global_features.png")
    lines = [f"# SP-LIME global features ({prefix})", "",
             f"{len(candidates)} candidates (class-stratified test instances, seed {args.seed}), "
             f"{args.num_samples} LIME samples each; importance = sqrt(sum |weight|) over the candidates "
             f"explained for the class; mean_weight > 0 pushes towards the class.", ""]
    for scope in [c for c in LABEL_NAMES if c in set(features_frame.scope)]:
        top = features_frame[features_frame.scope == scope].head(TOP_FEATURES)
        lines += [f"## {scope}", "", tabulate(
            [[r.rank, r.word, f"{r.importance:.4f}", f"{r.mean_weight:+.3g}", r.n_explanations]
             for r in top.itertuples()], headers=["rank", "word", "importance", "mean weight", "explanations"],
            tablefmt="github"), ""]
    picked_ids = [int(candidates.ids[i]) for i in pick.V]
    lines += ["## Picked instances", "", tabulate(
        [[o, int(candidates.ids[i]), LABEL_NAMES[labels[i]], candidates.texts[i][:90]] for o, i in enumerate(pick.V, 1)],
        headers=["pick", "instance_id", "explained class", "text"], tablefmt="github"), "",
        f"![global features]({prefix}_global_features.png)", ""]
    write_text_atomic(out_dir / f"{prefix}_global_features.md", "\n".join(lines))
    picked_path = out_dir / f"{prefix}_picked.csv"
    metrics = {"n_candidates": len(candidates), "picked_instance_ids": picked_ids,
               "candidate_class_counts": {LABEL_NAMES[c]: int(n) for c, n in zip(*np.unique(labels, return_counts=True))},
               "seconds_per_explanation": elapsed / len(candidates),
               "outside_model_fraction": 1 - fn.model_seconds / elapsed if elapsed > 0 else None}
    manifest = base_manifest("sp_lime", vars(args), args.seed, inputs={
        "model": args.model_dir, "data": args.data if args.data and Path(args.data).exists() else None})
    manifest.update({"classifier": clf.info, "candidate_ids": candidates.ids.tolist(), "metrics": metrics})
    write_json_atomic(manifest_path_for(picked_path), manifest)
    write_text_atomic(picked_path, pd.DataFrame(picked_rows).to_csv(index=False))  # the Make target, last
    log.info("Wrote %s (picked %s)", picked_path, picked_ids)
    return metrics
