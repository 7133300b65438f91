"""BERT's explanations as the students see them, and how explanation agreement is measured.

See :mod:`common.mlp` for the design (held-out instances, case folding, agreement metrics).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from common import NUM_LABELS
from common.models.classifier import Classifier
from common.cli import UserError
from common.models.mlp_student import (AGREEMENT_METRICS, BowEncoder, EXPLANATION_COLUMNS, MLPClassifier, attribution, dense,
                              explanation_loss, fold_case)

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- explanations
@dataclass
class ExplainedSet:
    """BERT's LIME weights per training row: ``weights[(row, class)] = {word: weight}`` (case-folded)."""

    ids: np.ndarray                      # training rows explained, sorted
    weights: dict[tuple[int, int], dict[str, float]]
    predicted: dict[int, int]            # BERT's predicted label per row
    num_samples: int
    seed: int
    source: str

    def pairs(self, rows: Sequence[int], classes: str = "all") -> list[tuple[int, int]]:
        out = []
        for row in rows:
            wanted = range(NUM_LABELS) if classes == "all" else (self.predicted[int(row)],)
            out += [(int(row), int(c)) for c in wanted if (int(row), int(c)) in self.weights]
        return out


def read_explained(path: str | Path, train_texts: Sequence[str]) -> ExplainedSet:
    """Read and check the explanations CSV against the training rows it claims to explain."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"Explanations CSV {path} does not exist; build it with `make {path}` (BERT's LIME weights "
                        f"on training instances).")
    try:
        frame = pd.read_csv(path, keep_default_na=False, dtype={"word": str, "text": str})
    except Exception as exc:
        raise UserError(f"Could not read {path} ({type(exc).__name__}); rebuild it with "
                        f"generate_bert_token_explanations_for_mlp.") from None
    missing = set(EXPLANATION_COLUMNS) - set(frame.columns)
    if missing:
        raise UserError(f"{path} lacks columns {sorted(missing)}; it is not a generate_bert_token_explanations_for_mlp "
                        f"CSV.")
    if len(frame) == 0:
        raise UserError(f"{path} has no rows; rebuild it with more --n-instances.")
    ids = frame["instance_id"].astype(int).to_numpy()
    if ids.min() < 0 or ids.max() >= len(train_texts):
        raise UserError(f"{path} explains training row {int(ids.max())} but the train split has {len(train_texts)} "
                        f"rows; it was built from other data - rebuild it with the same --data.")
    per_instance = frame.drop_duplicates("instance_id")
    for row, text in zip(per_instance["instance_id"].astype(int), per_instance["text"]):
        if str(text) != train_texts[row]:
            raise UserError(f"{path}: instance {row} does not match training row {row} of --data; the CSV was built "
                            f"from other data - rebuild it with the same --data.")
    raw: dict[tuple[int, int], dict[str, float]] = {}
    for iid, label, word, weight in zip(ids, frame["explained_label"].astype(int), frame["word"].astype(str),
                                        frame["weight"].astype(float)):
        raw.setdefault((int(iid), int(label)), {})[word] = weight
    weights = {key: fold_case(value) for key, value in raw.items()}
    predicted = dict(zip(per_instance["instance_id"].astype(int), per_instance["predicted_label"].astype(int)))
    return ExplainedSet(ids=np.array(sorted(predicted), dtype=np.int64), weights=weights, predicted=predicted,
                        num_samples=int(frame["num_samples"].iloc[0]), seed=int(frame["seed"].iloc[0]),
                        source=str(path))


def split_explained(ids: np.ndarray, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows for the XAI loss, held-out rows for explanation agreement); seeded, both non-empty when >= 2 rows."""
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    if len(ids) < 2:
        raise UserError(f"The explanations CSV explains {len(ids)} instance(s); at least 2 are needed (some for the "
                        f"loss, some held out) - rebuild it with more --n-instances.")
    n_holdout = min(len(ids) - 1, max(1, int(round(len(ids) * holdout_fraction))))
    order = np.random.default_rng(seed).permutation(len(ids))
    return np.sort(ids[order[n_holdout:]]), np.sort(ids[order[:n_holdout]])


def target_matrix(explained: ExplainedSet, pairs: Sequence[tuple[int, int]], encoder: BowEncoder):
    """CSR (n_pairs, V) of BERT's case-folded LIME weights on the vocabulary; words outside it are dropped."""
    from scipy.sparse import csr_matrix

    rows, cols, vals, dropped = [], [], [], 0
    for i, key in enumerate(pairs):
        for word, weight in explained.weights[key].items():
            j = encoder.index.get(word)
            if j is None:
                dropped += 1
                continue
            rows.append(i)
            cols.append(j)
            vals.append(weight)
    if dropped:
        log.info("%d explanation word(s) are outside the vocabulary and carry no target", dropped)
    return csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)), shape=(len(pairs), len(encoder)))


# ----------------------------------------------------------------------------------------------- agreement
def agreement(reference: dict[str, float], other: dict[str, float]) -> dict[str, float]:
    """Spearman over the union of words and top-5/10 Jaccard by |weight| (common.explain.similarity)."""
    from common.explain.similarity import pair_metrics

    metrics = pair_metrics(reference, other)
    return {m: metrics[m] for m in AGREEMENT_METRICS}


def summarise_agreement(rows: list[dict]) -> dict[str, float]:
    """Mean of each metric per class set ('pred': BERT's predicted class, 'all': every class)."""
    out = {}
    for class_set in ("pred", "all"):
        chosen = [r for r in rows if class_set == "all" or r["is_predicted"]]
        for metric in AGREEMENT_METRICS:
            values = np.array([r[metric] for r in chosen], dtype=float)
            values = values[~np.isnan(values)]
            out[f"{metric}_{class_set}"] = float(values.mean()) if values.size else float("nan")
    return out


def own_agreement(clf: MLPClassifier, explained: ExplainedSet, rows: Sequence[int],
                  train_texts: Sequence[str]) -> list[dict]:
    """Per (held-out row, class): agreement of the student's gradient x input with BERT's LIME weights."""
    pairs = explained.pairs(rows, "all")
    attributions = clf.attributions([train_texts[r] for r, _ in pairs], [c for _, c in pairs])
    return [{"row": r, "label": c, "is_predicted": explained.predicted[r] == c,
             **agreement(explained.weights[(r, c)], attr)} for (r, c), attr in zip(pairs, attributions)]


def lime_agreement(clf: Classifier, explained: ExplainedSet, rows: Sequence[int], train_texts: Sequence[str],
                   num_samples: int, progress: bool = True) -> list[dict]:
    """Per (held-out row, class): LIME on the student (same seed and num_samples as BERT's) vs BERT's LIME."""
    from tqdm import tqdm

    from common.explain.explainer import FastClassifierFn, explain_text, explanation_rows, instance_lime_seed, make_explainer

    explainer = make_explainer(explained.seed)
    fn = FastClassifierFn(clf)
    out = []
    for row in tqdm(rows, desc="LIME on the student", unit="instance", leave=False, disable=not progress):
        row = int(row)
        # Same text and per-instance seed as BERT's run: LIME draws exactly the same perturbed texts.
        exp = explain_text(explainer, train_texts[row], fn, tuple(range(NUM_LABELS)), num_samples,
                           instance_lime_seed(explained.seed, row))
        if exp is None:
            continue
        for label in range(NUM_LABELS):
            if (row, label) not in explained.weights:
                continue
            weights = fold_case({w: v for w, v, _ in explanation_rows(exp, label)})
            out.append({"row": row, "label": label, "is_predicted": explained.predicted[row] == label,
                        **agreement(explained.weights[(row, label)], weights)})
    return out


def heldout_explanation_loss(clf: MLPClassifier, explained: ExplainedSet, rows: Sequence[int],
                             train_features) -> float:
    """Mean 1 - cosine over every explained class of ``rows`` (eval mode, no dropout)."""
    pairs = explained.pairs(rows, "all")
    index = np.array([r for r, _ in pairs], dtype=np.int64)
    attr = attribution(clf.model, dense(train_features, index), [c for _, c in pairs])
    return float(explanation_loss(attr.detach(), dense(target_matrix(explained, pairs, clf.encoder))))


def metric_bounds(key: str) -> tuple[float, float] | None:
    """The range a metric lives in (None: unbounded, e.g. a difference)."""
    if "spearman" in key:
        return (-1.0, 1.0)
    if key in ("accuracy", "macro_f1", "teacher_agreement") or "jaccard" in key:
        return (0.0, 1.0)
    if "explanation_loss" in key:  # 1 - cosine
        return (0.0, 2.0)
    return None


def mean_ci(values: Sequence[float], level: float = 0.95, bounds: tuple[float, float] | None = None) -> dict:
    """Mean and a t-interval over seeds (NaN half-width with fewer than 2 values).

    With ``bounds`` the interval is clipped to the metric's range: a t-interval over three seeds of an
    accuracy near 1 otherwise claims accuracies above 1.
    """
    from scipy.stats import t

    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if values.size == 0:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    mean = float(values.mean())
    if values.size < 2:
        return {"mean": mean, "ci_low": float("nan"), "ci_high": float("nan"), "n": 1}
    half = float(t.ppf(0.5 + level / 2, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": int(values.size)}


def fmt_ci(stats: dict, digits: int = 3) -> str:
    if math.isnan(stats["mean"]):
        return "n/a"
    if math.isnan(stats["ci_low"]):
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} [{stats['ci_low']:.{digits}f}, {stats['ci_high']:.{digits}f}]"


