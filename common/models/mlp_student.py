"""The MLP student itself: features, network, attribution, explanation loss, classifier and payload.

:func:`load_student` is the loader :mod:`common.models.classifier` registers for the payload format ``mlp_bow``
(this module imports nothing heavier than torch and scikit-learn, and only the classifier base). See :mod:`common.mlp`.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np

from common import LABEL_NAMES, NUM_LABELS
from common.models.base import Classifier, check_texts, softmax
from common.cli import UserError

log = logging.getLogger(__name__)


PAYLOAD_FORMAT = "mlp_bow"
TOKEN_PATTERN = r"(?u)\w+"  # LIME splits on \W+: its words are the \w+ runs
EXPLANATION_COLUMNS = ["instance_id", "text", "true_label", "predicted_label", "explained_label", "word", "weight",
                       "rank", "intercept", "score", "num_samples", "seed"]
TARGETS = ("true", "bert_hard", "bert_soft")
XAI_CLASSES = ("all", "predicted")
AGREEMENT_METRICS = ("spearman", "jaccard_top5", "jaccard_top10")


def normalise_word(word: str) -> str:
    """The one case rule shared by features and every explanation comparison."""
    return word.lower()


def fold_case(weights: dict[str, float]) -> dict[str, float]:
    """Lower-case an explanation, summing the weights of a word's case variants."""
    out: dict[str, float] = {}
    for word, weight in weights.items():
        key = normalise_word(word)
        out[key] = out.get(key, 0.0) + float(weight)
    return out


# ----------------------------------------------------------------------------------------------- config
@dataclass
class StudentConfig:
    """Hyper-parameters of one student (serialised into the payload and the manifest)."""

    hidden: int = 64
    dropout: float = 0.2
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    xai_lambda: float = 0.0
    xai_batch: int = 128  # (instance, class) pairs per step in the explanation term
    xai_classes: str = "all"  # all: every explained class; predicted: BERT's predicted class only
    targets: str = "true"
    min_df: int = 1
    max_features: int = 0  # 0 = every word of the training texts
    holdout_fraction: float = 0.3
    holdout_seed: int = 42

    def __post_init__(self):
        checks = [
            (self.hidden >= 1, "--hidden must be at least 1"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.learning_rate > 0, "--learning-rate must be positive"),
            (self.weight_decay >= 0, "--weight-decay must be non-negative"),
            (self.xai_lambda >= 0 and math.isfinite(self.xai_lambda), "--lambda must be a finite number >= 0"),
            (self.xai_batch >= 1, "--xai-batch must be at least 1"),
            (self.xai_classes in XAI_CLASSES, f"--xai-classes must be one of {', '.join(XAI_CLASSES)}"),
            (self.targets in TARGETS, f"--targets must be one of {', '.join(TARGETS)}"),
            (self.min_df >= 1, "--min-df must be at least 1"),
            (self.max_features >= 0, "--max-features must be >= 0"),
            (0 < self.holdout_fraction < 1, "--holdout-fraction must be in (0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"{message}.")

    @classmethod
    def from_dict(cls, data: dict) -> "StudentConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"Unknown student hyper-parameter(s) {sorted(unknown)}; the payload was written by "
                            f"another version - retrain it.")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------- features
class BowEncoder:
    """Binary bag of words with LIME's tokenisation, lower-cased."""

    def __init__(self, vocabulary: Sequence[str]):
        from sklearn.feature_extraction.text import CountVectorizer

        self.vocabulary = list(vocabulary)
        self.index = {w: i for i, w in enumerate(self.vocabulary)}
        self._vectorizer = CountVectorizer(vocabulary=self.index, binary=True, lowercase=True,
                                           token_pattern=TOKEN_PATTERN, dtype=np.float32)

    @classmethod
    def fit(cls, texts: Sequence[str], min_df: int = 1, max_features: int = 0) -> "BowEncoder":
        from sklearn.feature_extraction.text import CountVectorizer

        vectorizer = CountVectorizer(binary=True, lowercase=True, token_pattern=TOKEN_PATTERN, min_df=min_df,
                                     max_features=max_features or None)
        try:
            vectorizer.fit(list(texts))
        except ValueError:
            raise UserError("The training texts contain no words (after --min-df); check --data.") from None
        return cls(vectorizer.get_feature_names_out().tolist())

    def __len__(self) -> int:
        return len(self.vocabulary)

    def transform(self, texts: Sequence[str]):
        """CSR matrix (n, V) of 0/1 float32."""
        return self._vectorizer.transform([t if isinstance(t, str) else str(t) for t in texts])

    def tokenisation(self) -> dict:
        return {"token_pattern": TOKEN_PATTERN, "lowercase": True, "binary": True}


def dense(matrix, rows=None):
    import torch

    block = matrix if rows is None else matrix[rows]
    return torch.from_numpy(np.asarray(block.toarray(), dtype=np.float32))


# ----------------------------------------------------------------------------------------------- model
def build_mlp(vocab_size: int, hidden: int, dropout: float):
    from torch import nn

    return nn.Sequential(nn.Linear(vocab_size, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, NUM_LABELS))


def attribution(model, x, classes, create_graph: bool = False):
    """Gradient x input of the centred logit ``z_c - mean_k z_k`` of ``classes`` (one per row), shape (B, V)."""
    import torch

    x = x.detach().requires_grad_(True)
    logits = model(x)
    centred = logits - logits.mean(dim=1, keepdim=True)
    chosen = centred.gather(1, torch.as_tensor(classes, dtype=torch.long).view(-1, 1)).sum()
    # Each row's logit depends on its own input only, so the gradient of the sum is per row.
    (grad,) = torch.autograd.grad(chosen, x, create_graph=create_graph)
    # The input is data: the graph kept (create_graph) is the one through the parameters.
    return grad * x.detach()


def explanation_loss(attributions, targets, eps: float = 1e-12):
    """Mean over rows of ``1 - cosine(attribution, target)``; rows with an all-zero target are skipped.

    Zero when every attribution is a positive multiple of its target, positive otherwise (up to 2).
    """
    import torch

    target_norm = targets.norm(dim=1)
    valid = target_norm > 0
    if not bool(valid.any()):
        return attributions.sum() * 0.0
    a, t = attributions[valid], targets[valid]
    cosine = (a * t).sum(dim=1) / (a.norm(dim=1) * target_norm[valid]).clamp_min(eps)
    return (1.0 - cosine).mean() if cosine.numel() else torch.zeros(())


# ----------------------------------------------------------------------------------------------- the classifier
class MLPClassifier(Classifier):
    """A student behind the common interface: texts -> bag of words -> MLP (no tokenizer, no padding)."""

    kind = "mlp"

    def __init__(self, model, encoder: BowEncoder, device: str = "cpu", batch_size: int = 256,
                 progress: bool = False):
        super().__init__(None, batch_size=batch_size, progress=progress)
        self.device = device
        self.model = model.to(device).eval()
        self.encoder = encoder

    def predict_logits(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        import torch

        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, NUM_LABELS), dtype=np.float32)
        batch_size = batch_size or self.batch_size
        features = self.encoder.transform(texts)
        out = np.empty((len(texts), NUM_LABELS), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                block = dense(features[start:start + batch_size]).to(self.device)
                out[start:start + batch_size] = self.model(block).float().cpu().numpy()
        return out

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return softmax(self.predict_logits(texts, batch_size))

    __call__ = predict_proba

    def attributions(self, texts: Sequence[str], classes: Sequence[int]) -> list[dict[str, float]]:
        """Gradient x input per text for its class, as {word: weight} over the vocabulary words present."""
        features = self.encoder.transform(list(texts))
        values = attribution(self.model, dense(features).to(self.device), list(classes)).detach().cpu().numpy()
        out = []
        for i in range(len(texts)):
            present = features[i].indices
            out.append({self.encoder.vocabulary[j]: float(values[i, j]) for j in present})
        return out

    def parameter_count(self) -> dict[str, int]:
        first, last = self.model[0], self.model[-1]
        counts = {"input_layer": first.weight.numel() + first.bias.numel(),
                  "output_layer": last.weight.numel() + last.bias.numel()}
        counts["total"] = sum(counts.values())
        return counts


def build_payload(encoder: BowEncoder, config: StudentConfig, seeds: Sequence[int], models: Sequence) -> dict:
    """Plain containers and tensors only, so ``torch.load(weights_only=True)`` reads it."""
    return {
        "format": PAYLOAD_FORMAT,
        "version": 1,
        "vocabulary": list(encoder.vocabulary),
        "tokenisation": encoder.tokenisation(),
        "hyper_parameters": config.to_dict(),
        "label_names": list(LABEL_NAMES),
        "seeds": [int(s) for s in seeds],
        "state_dicts": [{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in models],
    }


def save_payload(payload: dict, output: Path) -> None:
    import torch

    from common.manifest import atomic_output_file

    with atomic_output_file(output) as tmp:
        torch.save(payload, tmp)


def load_student(payload: dict, path=None, device: str = "cpu", dtype: str = "fp32", batch_size: int = 256,
                 progress: bool = False, seed: int | None = None, **_ignored) -> MLPClassifier:
    """``load_classifier(models/mlp/x.pt, seed=S)``: the student of seed S (default: the first seed)."""
    if dtype != "fp32":
        raise UserError(f"MLP students run in fp32 only (got --dtype {dtype}).")
    try:
        seeds = [int(s) for s in payload["seeds"]]
        config = StudentConfig.from_dict(dict(payload["hyper_parameters"]))
        encoder = BowEncoder(payload["vocabulary"])
    except KeyError as exc:
        raise UserError(f"{path} is an incomplete {PAYLOAD_FORMAT} payload (no {exc}); retrain it.") from None
    if seed is None:
        seed = seeds[0]
    if int(seed) not in seeds:
        raise UserError(f"{path} holds students of seeds {seeds}, not {seed}; pass one of those.")
    model = build_mlp(len(encoder), config.hidden, config.dropout)
    model.load_state_dict(payload["state_dicts"][seeds.index(int(seed))])
    clf = MLPClassifier(model, encoder, device=device, batch_size=max(batch_size, 256), progress=progress)
    clf.info.update({"format": PAYLOAD_FORMAT, "seed": int(seed), "seeds": seeds, "vocabulary_size": len(encoder),
                     "hyper_parameters": config.to_dict()})
    return clf


