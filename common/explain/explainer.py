"""LIME for any artefact: fast classifier_fn, reproducible explanations, the instances to explain.

Why things are done the way they are (see DESIGN.md, "LIME facts that bite"):

* ``LimeTextExplainer`` advances its random state with every call, so the state is
  reset per instance to a seed derived from (LIME seed, instance id)
  (:func:`instance_lime_seed`): each explanation is reproducible alone, after a resume
  and on any rank, does not depend on which other instances are explained, every
  variant sees exactly the same perturbed texts, and two instances never share their
  perturbation masks (their sampling noise is independent, as the bootstrap assumes).
* Dynamic int8 classifiers (``batch_dependent``) quantize activations with one scale
  per batch, so a text's probabilities depend on its batch mates. For them LIME always
  predicts an instance's perturbation set in length-sorted batches of a fixed size
  (``BATCH_DEPENDENT_BATCH_SIZE``), whatever ``--batch-size`` says: the batch composition
  is then a function of the instance alone, so explanations do not depend on the flag
  (and stay as fast as sorted batching; one batch of every perturbation would pad them all
  to the longest).
* ``feature_selection='none'`` (and ``num_features`` = number of words) keeps every
  word, so whole weight vectors can be compared between variants.
* The instances are a class-stratified choice from the test split that depends only
  on ``instance_seed``, never on the LIME seed: the noise-floor run (another LIME
  seed) explains the same texts.

The resumable, torchrun-sharded CSV job is :mod:`common.sharded_job`; the stages are :mod:`common.explain.stages`.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from common import LABEL_NAMES
from common.cli import UserError
from common.lime_text import make_explainer  # noqa: F401  (the LIME stages' explainer, re-exported)
from common.prediction_cache import cache_path, cached_predictions, prediction_key

log = logging.getLogger(__name__)

LIME_COLUMNS = ["instance_id", "text", "true_label", "predicted_label", "explained_label", "word", "weight",
                "rank", "intercept", "score", "local_pred", "variant", "seed", "num_samples"]
MLP_COLUMNS = ["instance_id", "text", "true_label", "predicted_label", "explained_label", "word", "weight",
               "rank", "intercept", "score", "num_samples", "seed"]
DEFAULT_INSTANCE_SEED = 42
BATCH_DEPENDENT_BATCH_SIZE = 32  # LIME's batch size for dynamic-int8 models, independent of --batch-size


def fmt(value: float) -> str:
    """Floats in CSVs: fixed significant digits, so reruns compare byte for byte."""
    value = float(value)
    return "0" if value == 0 else f"{value:.8g}"


# ----------------------------------------------------------------------------------------------- model function
class FastClassifierFn:
    """``classifier_fn`` for LIME over any :class:`~common.models.classifier.Classifier`.

    Identical perturbed strings are predicted once; the classifier sorts the unique
    strings by token length and pads each batch to its own longest item. The last
    call is memoised, so explaining several labels of one instance (LIME re-samples
    the same texts after a random-state reset) costs one pass. ``model_seconds``
    accumulates the time spent inside, for the overhead measurement.
    """

    def __init__(self, classifier):
        self.classifier = classifier
        self.model_seconds = 0.0
        self.n_texts = 0
        self.n_unique = 0
        self._last_keys: list[str] | None = None
        self._last_probs: np.ndarray | None = None

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        start = time.perf_counter()
        texts = list(texts)
        position = {}
        for text in texts:
            position.setdefault(text, len(position))
        keys = list(position)
        if keys == self._last_keys:
            probs = self._last_probs
        else:
            # batch-dependent (dynamic int8) models: a fixed batch size = a fixed composition per instance
            batch_size = BATCH_DEPENDENT_BATCH_SIZE if getattr(self.classifier, "batch_dependent", False) else None
            probs = self.classifier.predict_proba(keys, batch_size=batch_size)
            self._last_keys, self._last_probs = keys, probs
            self.n_unique += len(keys)
        self.n_texts += len(texts)
        out = probs[np.fromiter((position[t] for t in texts), dtype=np.int64, count=len(texts))]
        self.model_seconds += time.perf_counter() - start
        return out


# ----------------------------------------------------------------------------------------------- explanations
def instance_lime_seed(seed: int, instance_id: int) -> int:
    """LIME's random state for one instance: derived from (seed, instance_id), independent across instances."""
    return int(np.random.SeedSequence([int(seed), int(instance_id)]).generate_state(1)[0])


def count_words(explainer, text: str) -> int:
    from lime.lime_text import IndexedString

    return IndexedString(text, bow=explainer.bow, split_expression=explainer.split_expression,
                         mask_string=explainer.mask_string).num_words()


def explain_text(explainer, text: str, classifier_fn: Callable, labels: Sequence[int], num_samples: int,
                 seed: int):
    """One reproducible explanation of ``labels`` (every word kept), or None for a text without words."""
    from sklearn.utils import check_random_state

    num_words = count_words(explainer, text)
    if num_words == 0:
        return None
    explainer.random_state = check_random_state(seed)
    explainer.base.random_state = explainer.random_state
    return explainer.explain_instance(text, classifier_fn, labels=tuple(int(k) for k in labels),
                                      num_features=num_words, num_samples=num_samples)


def explain_each_label(explainer, text: str, classifier_fn: FastClassifierFn, labels: Sequence[int],
                       num_samples: int, seed: int) -> dict:
    """label -> explanation of that label alone. LIME keeps only the last label's score and local_pred, so
    each label gets its own call (same perturbations after the reset; the model runs once, memoised)."""
    out = {}
    for label in labels:
        exp = explain_text(explainer, text, classifier_fn, (label,), num_samples, seed)
        if exp is None:
            return {}
        out[int(label)] = exp
    return out


def explanation_rows(exp, label: int) -> list[tuple[str, float, int]]:
    """(word, weight, rank) for one label, rank 1 = largest |weight| (LIME's order)."""
    mapper = exp.domain_mapper
    return [(mapper.indexed_string.word(feature), float(weight), rank)
            for rank, (feature, weight) in enumerate(exp.local_exp[label], start=1)]


def local_pred(exp) -> float:
    value = np.asarray(exp.local_pred).ravel()
    return float(value[0]) if value.size else float("nan")


# ----------------------------------------------------------------------------------------------- instances
@dataclass
class Instances:
    ids: np.ndarray       # row numbers in the split file
    texts: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


def choose_instances(data: str, n: int, instance_seed: int = DEFAULT_INSTANCE_SEED, split: str = "test") -> Instances:
    """A class-stratified, seeded choice of ``n`` rows of ``split``, in file order (same for every variant)."""
    from common.data import load_dataset, load_test_split, stratified_indices

    if n < 1:
        raise UserError(f"--n-instances must be at least 1 (got {n}).")
    if split == "test":
        rows = load_test_split(data, 0)
    else:
        rows = load_dataset(data, 0, instance_seed, validation_fraction=0).train
    ids = stratified_indices(rows.labels, n, instance_seed)
    return Instances(ids=ids, texts=[rows.texts[i] for i in ids], labels=rows.labels[ids])


def reference_predictions(reference: str | os.PathLike, instances: Instances, max_len: int, device: str,
                          threads: int, cache_dir: Path) -> np.ndarray:
    """The reference (base) model's predicted labels for the instances, computed once and cached."""
    from common.models.classifier import load_classifier

    key = prediction_key(reference, instances.texts, max_len=max_len, ids=instances.ids.tolist())
    cache = cache_path(cache_dir, ".reference_predictions_", key, ".json")

    def predict() -> np.ndarray:
        log.info("Predicting the reference model %s on %d instances (cached in %s)", reference, len(instances), cache)
        clf = load_classifier(reference, device=device, max_len=max_len, threads=threads)
        return clf.predict(instances.texts)

    return cached_predictions(cache, key, predict, meta={"reference": str(reference)}).astype(np.int64)
