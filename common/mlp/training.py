"""Training students: the XAI batches, the training loop, the cached teacher, the experiment setup.

See :mod:`common.mlp`.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from common.cli import UserError
from common.manifest import move_aside
from common.models.mlp_student import BowEncoder, MLPClassifier, StudentConfig, attribution, build_mlp, dense, explanation_loss
from common.mlp.explained import (ExplainedSet, heldout_explanation_loss, own_agreement, read_explained,
                                  split_explained, summarise_agreement, target_matrix)
from common.prediction_cache import cache_path, cached_predictions, prediction_key

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- training
@dataclass
class XaiData:
    """What the explanation term needs: the explained rows' features, their classes and LIME targets."""

    features: object        # CSR (n_pairs, V)
    classes: np.ndarray     # (n_pairs,)
    targets: object         # CSR (n_pairs, V)


def make_xai_data(explained: ExplainedSet, rows: Sequence[int], encoder: BowEncoder, train_features,
                  classes: str) -> XaiData:
    pairs = explained.pairs(rows, classes)
    if not pairs:
        raise UserError(f"{explained.source} has no explanations for the instances kept for the XAI loss.")
    row_index = np.array([r for r, _ in pairs], dtype=np.int64)
    return XaiData(features=train_features[row_index], classes=np.array([c for _, c in pairs], dtype=np.int64),
                   targets=target_matrix(explained, pairs, encoder))


@dataclass
class TrainResult:
    model: object
    history: list[dict] = field(default_factory=list)


def train_student(train_features, targets: np.ndarray, config: StudentConfig, seed: int,
                  xai: XaiData | None = None, progress: bool = True) -> TrainResult:
    """Train one student. ``targets``: int labels (n,) or probabilities (n, 4) for ``bert_soft``.

    Data order comes from its own generator seeded by ``seed`` and initialisation from ``set_seed(seed)``,
    so a vanilla and an XAI student of the same seed start identical and see the same batches.
    """
    import torch
    from tqdm import tqdm

    from common.cli import set_seed

    if config.xai_lambda > 0 and xai is None:
        raise UserError("--lambda > 0 needs --explanations (BERT's LIME weights).")
    set_seed(seed)
    model = build_mlp(train_features.shape[1], config.hidden, config.dropout)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    order_rng = np.random.default_rng(seed)
    pair_rng = np.random.default_rng(seed + 1_000_003)
    soft = targets.ndim == 2
    target_tensor = torch.from_numpy(np.asarray(targets, dtype=np.float32 if soft else np.int64))
    n = train_features.shape[0]
    use_xai = xai is not None and config.xai_lambda > 0
    pair_order, pair_pos = (pair_rng.permutation(len(xai.classes)), 0) if use_xai else (None, 0)
    history = []
    epochs = tqdm(range(config.epochs), desc=f"student seed {seed}" + (f" lambda {config.xai_lambda:g}" if use_xai else ""),
                  unit="epoch", leave=False, disable=not progress)
    for epoch in epochs:
        model.train()
        totals = {"ce": 0.0, "xai": 0.0, "steps": 0}
        permutation = order_rng.permutation(n)
        for start in range(0, n, config.batch_size):
            rows = permutation[start:start + config.batch_size]
            logits = model(dense(train_features, rows))
            if soft:
                ce = -(target_tensor[rows] * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
            else:
                ce = torch.nn.functional.cross_entropy(logits, target_tensor[rows])
            loss = ce
            if use_xai:
                if pair_pos + config.xai_batch > len(pair_order):
                    pair_order, pair_pos = pair_rng.permutation(len(xai.classes)), 0
                batch = pair_order[pair_pos:pair_pos + config.xai_batch]
                pair_pos += len(batch)
                attr = attribution(model, dense(xai.features, batch), xai.classes[batch], create_graph=True)
                xai_term = explanation_loss(attr, dense(xai.targets, batch))
                loss = ce + config.xai_lambda * xai_term
                totals["xai"] += float(xai_term.detach())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            totals["ce"] += float(ce.detach())
            totals["steps"] += 1
        entry = {"epoch": epoch + 1, "ce": totals["ce"] / max(totals["steps"], 1)}
        if use_xai:
            entry["explanation_loss"] = totals["xai"] / max(totals["steps"], 1)
        history.append(entry)
        epochs.set_postfix({k: f"{v:.3f}" for k, v in entry.items() if k != "epoch"})
    model.eval()
    return TrainResult(model, history)


# ----------------------------------------------------------------------------------------------- teacher
def teacher_probabilities(teacher: str | Path, texts: Sequence[str], cache_dir: str | Path, device: str = "auto",
                          max_len: int = 128) -> np.ndarray:
    """BERT's probabilities for ``texts``, computed once per (teacher, texts, max_len) and cached as .npy."""
    from common.models.classifier import load_classifier

    teacher = Path(teacher)
    if not teacher.exists():
        raise UserError(f"--teacher {teacher} does not exist; build the fine-tuned model first "
                        f"(make models/fine_tuned/bert_agnews/manifest.json).")
    key = prediction_key(teacher, texts, max_len=max_len)
    cache = cache_path(cache_dir, "teacher_proba_", key, ".npy")

    def predict() -> np.ndarray:
        log.info("Predicting the teacher %s on %d texts (cached in %s)", teacher, len(texts), cache)
        clf = load_classifier(teacher, device=device, max_len=max_len, progress=True)
        return clf.predict_proba(list(texts)).astype(np.float32)

    return cached_predictions(cache, key, predict)


# ----------------------------------------------------------------------------------------------- experiment
@dataclass
class Experiment:
    """Everything a student run needs, built once: data, features, BERT's explanations and their split."""

    train_texts: list[str]
    train_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    encoder: BowEncoder
    train_features: object
    test_features: object
    explained: ExplainedSet | None
    loss_rows: np.ndarray
    heldout_rows: np.ndarray
    data_hash: str


def prepare_experiment(data: str, explanations: str | None, config: StudentConfig, test_samples: int = 0,
                       vocabulary: Sequence[str] | None = None) -> Experiment:
    """Train rows in file order (``instance_id`` = row number, as the explanations CSV counts them)."""
    from common.data import load_dataset, load_test_split

    dataset = load_dataset(data, 0, config.holdout_seed, validation_fraction=0)
    test = load_test_split(data, test_samples, config.holdout_seed)
    train = dataset.train
    encoder = BowEncoder(vocabulary) if vocabulary is not None else BowEncoder.fit(train.texts, config.min_df,
                                                                                   config.max_features)
    explained, loss_rows, heldout_rows = None, np.zeros(0, np.int64), np.zeros(0, np.int64)
    if explanations:
        explained = read_explained(explanations, train.texts)
        loss_rows, heldout_rows = split_explained(explained.ids, config.holdout_fraction, config.holdout_seed)
    log.info("Data: %d train rows, %d test rows, vocabulary %d words; explained rows: %d for the loss, %d held out",
             len(train), len(test), len(encoder), len(loss_rows), len(heldout_rows))
    return Experiment(train.texts, train.labels, test.texts, test.labels, encoder, encoder.transform(train.texts),
                      encoder.transform(test.texts), explained, loss_rows, heldout_rows, dataset.content_hash)


def training_targets(exp: Experiment, config: StudentConfig, teacher: str | None, cache_dir: str | Path,
                     device: str = "auto", max_len: int = 128) -> np.ndarray:
    if config.targets == "true":
        return exp.train_labels
    if not teacher:
        raise UserError(f"--targets {config.targets} needs --teacher (the fine-tuned BERT folder).")
    probs = teacher_probabilities(teacher, exp.train_texts, cache_dir, device, max_len)
    return probs.argmax(axis=1).astype(np.int64) if config.targets == "bert_hard" else probs


def train_seeds(exp: Experiment, config: StudentConfig, seeds: Sequence[int], targets: np.ndarray,
                progress: bool = True) -> list[TrainResult]:
    xai = None
    if config.xai_lambda > 0:
        if exp.explained is None:
            raise UserError("--lambda > 0 needs --explanations (BERT's LIME weights on training rows).")
        xai = make_xai_data(exp.explained, exp.loss_rows, exp.encoder, exp.train_features, config.xai_classes)
    return [train_student(exp.train_features, targets, config, seed, xai, progress) for seed in seeds]


def student_metrics(clf: MLPClassifier, exp: Experiment, teacher_test: np.ndarray | None = None) -> dict:
    """Test accuracy / macro-F1 (/ agreement with BERT), and held-out explanation agreement (own attribution)."""
    from common.metrics import classification_metrics

    predicted = clf.predict(exp.test_texts)
    cls = classification_metrics(exp.test_labels, predicted)
    out = {"accuracy": cls["accuracy"], "macro_f1": cls["macro_f1"], "n_test": cls["n_test"]}
    if teacher_test is not None:
        out["teacher_agreement"] = float((predicted == teacher_test).mean())
    if exp.explained is not None and len(exp.heldout_rows):
        own = own_agreement(clf, exp.explained, exp.heldout_rows, exp.train_texts)
        out.update({f"own_{k}": v for k, v in summarise_agreement(own).items()})
        out["heldout_explanation_loss"] = heldout_explanation_loss(clf, exp.explained, exp.heldout_rows,
                                                                   exp.train_features)
    if exp.explained is not None and len(exp.loss_rows):
        # The same on the rows the XAI loss saw: tells "could not fit BERT's reasons" from "did not generalise".
        fitted = summarise_agreement(own_agreement(clf, exp.explained, exp.loss_rows, exp.train_texts))
        out["inloss_own_spearman_pred"] = fitted["spearman_pred"]
        out["inloss_explanation_loss"] = heldout_explanation_loss(clf, exp.explained, exp.loss_rows,
                                                                  exp.train_features)
    return out


class ResultCache:
    """Finished work of a long stage, keyed by a digest of its settings, so a rerun skips it.

    Rewritten whole and atomically after every entry, so a kill or a full disk leaves the previous version. A
    file that does not parse anyway (written by something else, a damaged disk) is moved aside with a warning,
    not silently overwritten, and the work is done again."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.entries: dict = {}
        if self.path.is_file():
            try:
                entries = json.loads(self.path.read_text())
                if not isinstance(entries, dict):
                    raise ValueError("not a JSON object")
                self.entries = entries
            except (ValueError, UnicodeDecodeError) as exc:
                move_aside(self.path, f"does not parse ({exc})", "redoing its work")

    def get(self, key: str):
        return self.entries.get(key)

    def put(self, key: str, value) -> None:
        from common.manifest import write_json_atomic

        self.entries[key] = value
        write_json_atomic(self.path, self.entries)


