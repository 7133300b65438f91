"""MLP students over a bag of words: cross-entropy vs cross-entropy + an explanation-matching (XAI) loss.

Question: can a tiny model learn not only BERT's labels but BERT's reasons (its LIME weights)?

Features. A binary bag of words over a vocabulary built from the training texts (scikit-learn
``CountVectorizer``). The tokenisation is LIME's: ``LimeTextExplainer`` splits on ``\\W+``, so a word
is a ``\\w+`` run (``token_pattern=(?u)\\w+``, single characters and digits included). LIME is
case-sensitive ("The" and "the" are two features); the student lower-cases its input, and every
comparison lower-cases both sides the same way: the weights of a word's case variants are **summed**
(removing both variants together is, to first order, the sum of removing each). Binary presence makes
each input dimension exactly what LIME perturbs: removing a word sets its feature from 1 to 0.

Model. ``Linear(V, hidden) -> ReLU -> Dropout -> Linear(hidden, 4)``.

Attribution. **Gradient x input** of the explained class's *centred* logit ``z_c - mean_k z_k``:

* exact for the linear part: a ReLU MLP is piecewise linear, so within the input's linear region
  gradient x input is the exact additive split of the centred logit over the present words (up to the
  bias terms); for binary inputs it is the first-order effect of removing each word - what LIME measures;
* centring removes the softmax's shift invariance (a shift common to all logits changes nothing the
  model predicts, but would change a raw ``z_c`` attribution) and, unlike a probability gradient, does
  not vanish when the student is confident;
* cheap (one backward pass) and differentiable (``create_graph=True``), so it can sit inside the loss.

Explanation loss. ``1 - cosine(attribution, BERT's LIME weights)`` over the vocabulary, per
(instance, explained class) pair; only words present in the text are non-zero on either side. Cosine
is scale-free, which matters because LIME's weights live on the probability scale and the student's
attribution on the logit scale: the loss is zero exactly when the two agree up to a positive factor.
Pairs whose LIME weights are all zero carry no direction and are skipped.

Explained instances. BERT's LIME CSV (``generate_bert_token_explanations_for_mlp``) explains training
rows (``instance_id`` = row number in the train file, every class). A seeded split
(``holdout_seed``, ``holdout_fraction``; the same for every student seed) keeps a share of them out of
the XAI loss: explanation agreement is measured on those held-out instances only. Their *labels* still
train both students by cross-entropy like every other training row, so vanilla and XAI differ only in
the explanation term.

Evaluation. Agreement metrics are :func:`common.explanation_similarity.pair_metrics` (Spearman over
the union of both explanations' words, a missing word weighing 0; top-5/10 Jaccard by |weight|), on
the held-out instances, for BERT's predicted class and averaged over all classes; the student is
explained both by its own attribution and by LIME through ``load_classifier`` (BERT's seed and
num_samples, so the perturbed texts are the same). The same agreement on the instances *in* the
loss is reported too: it separates "could not fit BERT's reasons" from "fitted them but did not
generalise". Means and 95 % t-intervals are over student seeds; XAI - vanilla is paired by seed.

Payload ``models/mlp/<name>.pt`` (format ``mlp_bow``, ``torch.load(weights_only=True)``): the
vocabulary (a list of strings), the tokenisation, the hyper-parameters, the seeds and **every seed's
state dict**; :func:`common.classifier.load_classifier` returns the first seed's student unless
``seed=`` is passed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Sequence

import numpy as np

from common import LABEL_NAMES, NUM_LABELS
from common.classifier import Classifier, register_payload_loader, softmax
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

        texts = list(texts)
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


@register_payload_loader(PAYLOAD_FORMAT)
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


# ----------------------------------------------------------------------------------------------- teacher
def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def artefact_fingerprint(path: str | Path) -> str:
    """A model's identity: the hash of its manifest when it has one (cheap), else of its content."""
    from common.manifest import manifest_path_for, sha256_file, sha256_path

    path = Path(path)
    manifest = manifest_path_for(path)
    return sha256_file(manifest) if manifest.is_file() else sha256_path(path)


def teacher_probabilities(teacher: str | Path, texts: Sequence[str], cache_dir: str | Path, device: str = "auto",
                          max_len: int = 128) -> np.ndarray:
    """BERT's probabilities for ``texts``, computed once per (teacher, texts, max_len) and cached as .npy."""
    from common.classifier import load_classifier
    from common.manifest import atomic_output_file

    teacher = Path(teacher)
    if not teacher.exists():
        raise UserError(f"--teacher {teacher} does not exist; build the fine-tuned model first "
                        f"(make models/fine_tuned/bert_agnews/manifest.json).")
    key = _digest({"teacher": artefact_fingerprint(teacher), "max_len": max_len,
                   "texts": hashlib.sha256("\n".join(texts).encode()).hexdigest(), "n": len(texts)})
    cache = Path(cache_dir) / f"teacher_proba_{key[:20]}.npy"
    if cache.is_file():
        probs = np.load(cache)
        if probs.shape == (len(texts), NUM_LABELS):
            log.info("Teacher predictions from cache %s", cache)
            return probs
    log.info("Predicting the teacher %s on %d texts (cached in %s)", teacher, len(texts), cache)
    clf = load_classifier(teacher, device=device, max_len=max_len, progress=True)
    probs = clf.predict_proba(list(texts)).astype(np.float32)
    with atomic_output_file(cache) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, probs)
    return probs


# ----------------------------------------------------------------------------------------------- agreement
def agreement(reference: dict[str, float], other: dict[str, float]) -> dict[str, float]:
    """Spearman over the union of words and top-5/10 Jaccard by |weight| (common.explanation_similarity)."""
    from common.explanation_similarity import pair_metrics

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

    from common.lime_utils import FastClassifierFn, explain_text, explanation_rows, instance_lime_seed, make_explainer

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
    """Finished work of a long stage, keyed by a digest of its settings, so a rerun skips it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.entries: dict = {}
        if self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text())
            except ValueError:
                self.entries = {}

    def get(self, key: str):
        return self.entries.get(key)

    def put(self, key: str, value) -> None:
        from common.manifest import write_json_atomic

        self.entries[key] = value
        write_json_atomic(self.path, self.entries)


# ----------------------------------------------------------------------------------------------- CLI pieces
def add_training_arguments(parser, xai: bool) -> None:
    """Flags shared by the vanilla and the XAI script (the XAI one adds --lambda)."""
    defaults = StudentConfig()
    parser.add_argument("--output", required=True, help="payload to write (e.g. models/mlp/vanilla.pt)")
    parser.add_argument("--data", default="", help="folder with train/test files, or ag_news; empty = demo sample")
    parser.add_argument("--explanations", default="" if not xai else None, required=xai,
                        help="BERT's LIME weights on training rows (outputs/intermediate_data/bert_token_explanations.csv)"
                             + ("" if xai else "; optional here, used for held-out explanation agreement"))
    parser.add_argument("--teacher", default="", help="fine-tuned BERT (needed for --targets bert_hard|bert_soft)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="one student per seed")
    if xai:
        parser.add_argument("--lambda", dest="xai_lambda", type=float, default=1.0,
                            help="weight of the explanation loss (1 - cosine)")
    add_student_arguments(parser, defaults)


def add_student_arguments(parser, defaults: StudentConfig | None = None) -> None:
    defaults = defaults or StudentConfig()
    parser.add_argument("--targets", default=defaults.targets, choices=TARGETS,
                        help="true labels, BERT's predicted labels, or BERT's probabilities (distillation)")
    parser.add_argument("--hidden", type=int, default=defaults.hidden, help="hidden units")
    parser.add_argument("--dropout", type=float, default=defaults.dropout)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", "--lr", type=float, default=defaults.learning_rate)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--xai-batch", type=int, default=defaults.xai_batch,
                        help="(instance, class) pairs per step in the explanation term")
    parser.add_argument("--xai-classes", default=defaults.xai_classes, choices=XAI_CLASSES,
                        help="explain every class (all) or only BERT's predicted class in the loss")
    parser.add_argument("--min-df", type=int, default=defaults.min_df, help="vocabulary: minimum document frequency")
    parser.add_argument("--max-features", type=int, default=defaults.max_features, help="vocabulary cap (0 = none)")
    parser.add_argument("--holdout-fraction", type=float, default=defaults.holdout_fraction,
                        help="share of explained instances kept out of the XAI loss (evaluation only)")
    parser.add_argument("--holdout-seed", type=int, default=defaults.holdout_seed,
                        help="seed of that split (the same for every student seed)")
    parser.add_argument("--cache-dir", default="",
                        help="teacher predictions cache (default: the explanations CSV's folder, else outputs/intermediate_data)")
    parser.add_argument("--device", default="auto", help="device of the teacher's predictions (students train on CPU)")
    parser.add_argument("--max-len", type=int, default=128, help="teacher's max tokens per text")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")


def config_from_args(args, xai_lambda: float) -> StudentConfig:
    return StudentConfig(hidden=args.hidden, dropout=args.dropout, epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, weight_decay=args.weight_decay, xai_lambda=xai_lambda,
                         xai_batch=args.xai_batch, xai_classes=args.xai_classes, targets=args.targets,
                         min_df=args.min_df, max_features=args.max_features,
                         holdout_fraction=args.holdout_fraction, holdout_seed=args.holdout_seed)


def cache_dir_for(args) -> Path:
    if getattr(args, "cache_dir", ""):
        return Path(args.cache_dir)
    if getattr(args, "explanations", ""):
        return Path(args.explanations).parent
    return Path("outputs/intermediate_data")


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    if not seeds:
        raise UserError("--seeds needs at least one seed.")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {list(seeds)} repeats a seed; give distinct seeds.")
    return [int(s) for s in seeds]


def _input_paths(args) -> dict:
    data = args.data if args.data and Path(args.data).exists() else None
    return {"data": data, "explanations": args.explanations or None, "teacher": args.teacher or None}


# ----------------------------------------------------------------------------------------------- stage: train
def run_training(args, loss: str) -> int:
    """``train_mlp_vanilla`` (loss='cross_entropy') and ``train_mlp_xai_loss`` (loss='xai')."""
    import time

    from common.classifier import load_classifier
    from common.evaluation import set_threads
    from common.manifest import base_manifest, manifest_path_for, read_manifest, write_json_atomic

    output = Path(args.output)
    if output.suffix != ".pt":
        raise UserError(f"--output {output} must be a .pt file.")
    xai_lambda = float(getattr(args, "xai_lambda", 0.0)) if loss == "xai" else 0.0
    config = config_from_args(args, xai_lambda)
    seeds = _check_seeds(args.seeds)
    set_threads(args.threads)
    started = time.time()
    run_args = {k: v for k, v in vars(args).items() if k not in ("threads", "device", "force")}
    inputs = _input_paths(args)
    if config.targets == "true":
        inputs.pop("teacher")
    manifest = base_manifest(f"mlp_{loss}", run_args, seeds[0], inputs=inputs)
    run_key = _digest({"config": config.to_dict(), "seeds": seeds, "loss": loss,
                       "inputs": {k: v["sha256"] for k, v in manifest["inputs"].items()},
                       "data": args.data})
    previous = read_manifest(output) if output.is_file() else None
    if previous and previous.get("run_key") == run_key and not getattr(args, "force", False):
        log.info("%s is up to date (same arguments and inputs); pass --force to retrain.", output)
        return 0
    log.info("MLP student (%s): seeds=%s config=%s", loss, seeds, config.to_dict())
    exp = prepare_experiment(args.data, args.explanations or None, config)
    targets = training_targets(exp, config, args.teacher or None, cache_dir_for(args), args.device, args.max_len)
    results = train_seeds(exp, config, seeds, targets)
    payload = build_payload(exp.encoder, config, seeds, [r.model for r in results])
    per_seed = {}
    for seed, result in zip(seeds, results):
        clf = MLPClassifier(result.model, exp.encoder)
        per_seed[str(seed)] = {**student_metrics(clf, exp), "history": result.history}
        log.info("seed %d: %s", seed, {k: round(v, 4) for k, v in per_seed[str(seed)].items()
                                       if isinstance(v, float)})
    save_payload(payload, output)
    # The saved file must load through the one loader and predict what was trained.
    reloaded = load_classifier(output, device="cpu")
    check = exp.test_texts[:32]
    expected = MLPClassifier(results[0].model, exp.encoder).predict_logits(check)
    if not np.allclose(reloaded.predict_logits(check), expected, atol=1e-5):
        raise RuntimeError(f"{output} does not reload to the trained student")
    numeric = sorted({k for m in per_seed.values() for k, v in m.items() if isinstance(v, float)})
    manifest.update({
        "run_key": run_key,
        "loss": "cross_entropy" if loss != "xai" else f"cross_entropy + {xai_lambda:g} * (1 - cosine(grad x input, "
                                                      f"BERT LIME weights))",
        "format": PAYLOAD_FORMAT, "seeds": seeds, "hyper_parameters": config.to_dict(),
        "vocabulary_size": len(exp.encoder),
        "vocabulary_sha256": hashlib.sha256("\n".join(exp.encoder.vocabulary).encode()).hexdigest(),
        "tokenisation": exp.encoder.tokenisation(),
        "explained_split": {"loss_rows": exp.loss_rows.tolist(), "heldout_rows": exp.heldout_rows.tolist()},
        "data": {"source": args.data, "content_hash": exp.data_hash, "n_train": len(exp.train_texts),
                 "n_test": len(exp.test_texts)},
        "wall_seconds": round(time.time() - started, 3),
        "per_seed": per_seed,
        "metrics": {k: mean_ci([m[k] for m in per_seed.values()], bounds=metric_bounds(k)) for k in numeric},
    })
    write_json_atomic(manifest_path_for(output), manifest)
    log.info("Wrote %s: test accuracy %s over %d seed(s)", output, fmt_ci(manifest["metrics"]["accuracy"]),
             len(seeds))
    return 0


# ----------------------------------------------------------------------------------------------- stage: evaluate
STUDENTS = ("vanilla", "xai")
REPORT_METRICS = [  # (key, label in the report)
    ("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("teacher_agreement", "agreement with BERT"),
    ("own_spearman_pred", "Spearman (grad x input)"), ("own_jaccard_top5_pred", "top-5 Jaccard (grad x input)"),
    ("own_jaccard_top10_pred", "top-10 Jaccard (grad x input)"), ("lime_spearman_pred", "Spearman (LIME)"),
    ("lime_jaccard_top5_pred", "top-5 Jaccard (LIME)"), ("lime_jaccard_top10_pred", "top-10 Jaccard (LIME)"),
    ("heldout_explanation_loss", "held-out 1 - cosine (all classes)"),
    ("inloss_own_spearman_pred", "Spearman (grad x input), in-loss instances"),
    ("inloss_explanation_loss", "1 - cosine (all classes), in-loss instances"),
]


def _student_payload_info(path: Path) -> dict:
    from common.classifier import load_payload

    if not path.is_file():
        raise UserError(f"Student {path} does not exist; train it first (make {path}).")
    payload = load_payload(path)
    if payload.get("format") != PAYLOAD_FORMAT:
        raise UserError(f"{path} is a {payload.get('format')!r} payload, not an MLP student ({PAYLOAD_FORMAT}).")
    return {"seeds": [int(s) for s in payload["seeds"]], "config": StudentConfig.from_dict(dict(payload["hyper_parameters"])),
            "vocabulary": list(payload["vocabulary"])}


def difference(xai: list[float], vanilla: list[float], paired: bool) -> dict:
    """XAI minus vanilla: paired by seed when both used the same seeds, else a Welch-style interval."""
    from scipy.stats import t

    if paired:
        return mean_ci([a - b for a, b in zip(xai, vanilla)])
    a = np.asarray([v for v in xai if not math.isnan(v)], float)
    b = np.asarray([v for v in vanilla if not math.isnan(v)], float)
    if a.size < 2 or b.size < 2:
        return {"mean": float(a.mean() - b.mean()) if a.size and b.size else float("nan"), "ci_low": float("nan"),
                "ci_high": float("nan"), "n": int(min(a.size, b.size))}
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    half = float(t.ppf(0.975, min(a.size, b.size) - 1) * se)
    mean = float(a.mean() - b.mean())
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(min(a.size, b.size))}


def direction(stats: dict) -> str:
    if math.isnan(stats["ci_low"]):
        return "undetermined (fewer than 2 seeds)"
    if stats["ci_low"] > 0:
        return "raised"
    if stats["ci_high"] < 0:
        return "lowered"
    return "did not significantly change"


def run_evaluation(args) -> int:
    """``evaluate_mlp_models``: both students on the test split and on held-out explained instances."""
    import time

    import pandas as pd
    from tabulate import tabulate

    from common.classifier import load_classifier
    from common.evaluation import set_threads
    from common.manifest import base_manifest, sha256_path, write_json_atomic, write_text_atomic

    started = time.time()
    set_threads(args.threads)
    output_dir = Path(args.output_dir)
    paths = {"vanilla": Path(args.vanilla), "xai": Path(args.xai)}
    infos = {name: _student_payload_info(path) for name, path in paths.items()}
    if args.seeds:
        for name, info in infos.items():
            absent = sorted(set(args.seeds) - set(info["seeds"]))
            if absent:
                raise UserError(f"--seeds {absent} are not in {paths[name]} (it holds {info['seeds']}); retrain it with "
                                f"those seeds or leave them out.")
            info["seeds"] = [int(s) for s in args.seeds]
    config = infos["vanilla"]["config"]
    if (infos["xai"]["config"].holdout_seed, infos["xai"]["config"].holdout_fraction) != (
            config.holdout_seed, config.holdout_fraction):
        raise UserError(f"{paths['xai']} and {paths['vanilla']} were trained with different --holdout-seed/"
                        f"--holdout-fraction; retrain them with the same values so they are judged on the same instances.")
    exp = prepare_experiment(args.data, args.explanations, config, args.test_samples)
    explained = exp.explained
    num_samples = args.lime_samples or explained.num_samples
    if num_samples != explained.num_samples:
        log.warning("LIME on the students uses %d samples but BERT's explanations used %d: the comparison mixes "
                    "sampling budgets.", num_samples, explained.num_samples)
    teacher_test = None
    if args.teacher:
        cache_dir = cache_dir_for(args)
        teacher_test = teacher_probabilities(args.teacher, exp.test_texts, cache_dir, args.device,
                                             args.max_len).argmax(axis=1)
    cache = ResultCache(output_dir / ".mlp_eval_cache.json")
    per_seed_rows = []
    for name, path in paths.items():
        payload_hash = sha256_path(path)
        for seed in infos[name]["seeds"]:
            key = _digest({"payload": payload_hash, "seed": seed, "data": exp.data_hash, "test_samples": args.test_samples,
                           "explanations": sha256_path(args.explanations), "num_samples": num_samples,
                           "teacher": None if teacher_test is None else _digest(teacher_test.tolist())})
            row = cache.get(key)
            if row is None:
                clf = load_classifier(path, device="cpu", seed=seed)
                exp_student = Experiment(**{**exp.__dict__, "encoder": clf.encoder,
                                            "train_features": clf.encoder.transform(exp.train_texts)})
                row = student_metrics(clf, exp_student, teacher_test)
                lime_rows = lime_agreement(clf, explained, exp.heldout_rows, exp.train_texts, num_samples)
                row.update({f"lime_{k}": v for k, v in summarise_agreement(lime_rows).items()})
                cache.put(key, row)
            log.info("%s seed %d: %s", name, seed, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)})
            per_seed_rows.append({"student": name, "seed": seed, **row})
    per_seed = pd.DataFrame(per_seed_rows)
    metric_keys = [k for k in per_seed.columns if k not in ("student", "seed", "n_test")]
    paired = infos["vanilla"]["seeds"] == infos["xai"]["seeds"]
    summary_rows, stats = [], {}
    for name in STUDENTS:
        chosen = per_seed[per_seed.student == name]
        for key in metric_keys:
            stats[(name, key)] = mean_ci(chosen[key].tolist(), bounds=metric_bounds(key))
            summary_rows.append({"student": name, "metric": key, **stats[(name, key)],
                                 "per_seed": json.dumps([round(float(v), 6) for v in chosen[key]])})
    for key in metric_keys:
        stats[("diff", key)] = difference(per_seed[per_seed.student == "xai"][key].tolist(),
                                          per_seed[per_seed.student == "vanilla"][key].tolist(), paired)
        summary_rows.append({"student": "xai_minus_vanilla", "metric": key, **stats[("diff", key)],
                             "per_seed": ""})
    write_text_atomic(output_dir / "mlp.csv", pd.DataFrame(summary_rows).to_csv(index=False, float_format="%.6g"))
    write_text_atomic(output_dir / "mlp_per_seed.csv", per_seed.to_csv(index=False, float_format="%.6g"))

    shown = [(k, label) for k, label in REPORT_METRICS if (STUDENTS[0], k) in stats]
    table = [[label] + [fmt_ci(stats[(n, k)]) for n in STUDENTS] + [fmt_ci(stats[("diff", k)])] for k, label in shown]
    all_classes = [[label.replace("(", "(all classes, ")] + [fmt_ci(stats[(n, k.replace("_pred", "_all"))])
                                                             for n in STUDENTS]
                   + [fmt_ci(stats[("diff", k.replace("_pred", "_all"))])]
                   for k, label in shown if k.endswith("_pred") and k.startswith(("own_", "lime_"))]
    lam = infos["xai"]["config"].xai_lambda
    verdict = _verdict(stats)
    lines = [
        "# MLP students: cross-entropy vs cross-entropy + explanation loss",
        "",
        f"Students: `{paths['vanilla']}` (cross-entropy) and `{paths['xai']}` (cross-entropy + {lam:g} x "
        f"(1 - cosine(grad x input, BERT's LIME weights))); targets: {config.targets}; seeds "
        f"{infos['vanilla']['seeds']}{' (paired)' if paired else ''}. Test split: {len(exp.test_texts)} rows of "
        f"`{args.data or 'demo sample'}`. Explained training instances: {len(explained.ids)} "
        f"({len(exp.loss_rows)} in the XAI loss, {len(exp.heldout_rows)} held out for the agreement rows below).",
        "",
        "Cells: mean over seeds [95% t-interval over seeds]. Explanation agreement is with BERT's LIME weights on "
        "the held-out instances, for BERT's predicted class; *grad x input* is the student's own attribution, "
        f"*LIME* is LIME run on the student through `load_classifier` ({num_samples} samples, seed {explained.seed}, "
        "the same perturbations BERT saw). Words are lower-cased on both sides (case variants' weights summed).",
        "",
        tabulate(table, headers=["metric", "vanilla", "xai", "xai - vanilla"], tablefmt="github"),
        "",
        "## Verdict",
        "",
        *verdict,
        "",
        "## All four classes",
        "",
        "The same agreement averaged over every explained class (LIME's weights for classes BERT gives little "
        "probability are small and noisier).",
        "",
        tabulate(all_classes, headers=["metric", "vanilla", "xai", "xai - vanilla"], tablefmt="github"),
        "",
        "Per-seed numbers: `mlp_per_seed.csv`; every metric with its CI: `mlp.csv`.",
        "",
    ]
    manifest = base_manifest("mlp_evaluation", {k: v for k, v in vars(args).items() if k != "threads"},
                             infos["vanilla"]["seeds"][0],
                             inputs={"vanilla": paths["vanilla"], "xai": paths["xai"], "explanations": args.explanations,
                                     "teacher": args.teacher or None})
    manifest.update({"lime_num_samples": num_samples, "heldout_rows": exp.heldout_rows.tolist(), "paired": paired,
                     "verdict": verdict, "wall_seconds": round(time.time() - started, 3),
                     "metrics": {f"{n}.{k}": v for (n, k), v in stats.items()}})
    write_json_atomic(output_dir / "mlp.manifest.json", manifest)
    write_text_atomic(output_dir / "mlp.md", "\n".join(lines))  # the Make target, last
    log.info("Wrote %s; %s", output_dir / "mlp.md", " ".join(verdict))
    return 0


def _verdict(stats: dict) -> list[str]:
    """Plain sentences computed from the numbers (paired XAI - vanilla differences and their CIs)."""
    lines = []
    for source, label in (("own", "the student's own attribution (grad x input)"), ("lime", "LIME on the student")):
        key = f"{source}_spearman_pred"
        if ("diff", key) not in stats:
            continue
        d = stats[("diff", key)]
        j = stats[("diff", f"{source}_jaccard_top5_pred")]
        lines.append(f"- Explanation agreement via {label}: the XAI loss **{direction(d)}** Spearman with BERT's "
                     f"LIME ({stats[('vanilla', key)]['mean']:.3f} -> {stats[('xai', key)]['mean']:.3f}, "
                     f"difference {fmt_ci(d)}); top-5 Jaccard difference {fmt_ci(j)} ({direction(j)}).")
    for key, label in (("accuracy", "test accuracy"), ("teacher_agreement", "agreement with BERT's predictions")):
        if ("diff", key) not in stats:
            continue
        d = stats[("diff", key)]
        cost = -d["mean"] * 100
        change = "no change" if abs(cost) < 0.005 else f"a {'cost' if cost > 0 else 'gain'} of {abs(cost):.2f} points"
        lines.append(f"- {label[0].upper() + label[1:]}: {stats[('vanilla', key)]['mean']:.4f} -> "
                     f"{stats[('xai', key)]['mean']:.4f}, {change} "
                     f"(difference {fmt_ci(d, 4)}; {direction(d)}).")
    return lines


# ----------------------------------------------------------------------------------------------- stage: sweep
SWEEP_METRICS = [("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("teacher_agreement", "agreement with BERT"),
                 ("own_spearman_pred", "Spearman (grad x input)"), ("own_jaccard_top5_pred", "top-5 Jaccard"),
                 ("own_jaccard_top10_pred", "top-10 Jaccard"), ("heldout_explanation_loss", "held-out 1 - cosine"),
                 ("inloss_own_spearman_pred", "Spearman, in-loss instances"),
                 ("inloss_explanation_loss", "1 - cosine, in-loss instances")]


def run_sweep(args) -> int:
    """``sweep_lambda``: one XAI student per (lambda, seed); lambda 0 is the vanilla student."""
    import time

    import pandas as pd
    from tabulate import tabulate

    from common.evaluation import set_threads
    from common.manifest import base_manifest, write_json_atomic, write_text_atomic

    started = time.time()
    lambdas = sorted({float(v) for v in args.lambdas})
    if not lambdas or any(v < 0 or not math.isfinite(v) for v in lambdas):
        raise UserError(f"--lambdas {args.lambdas} must be finite numbers >= 0.")
    seeds = _check_seeds(args.seeds)
    set_threads(args.threads)
    output_dir = Path(args.output_dir)
    base_config = config_from_args(args, 0.0)
    exp = prepare_experiment(args.data, args.explanations, base_config)
    targets = training_targets(exp, base_config, args.teacher or None, cache_dir_for(args), args.device, args.max_len)
    teacher_test = None
    if args.teacher:
        teacher_test = teacher_probabilities(args.teacher, exp.test_texts, cache_dir_for(args), args.device,
                                             args.max_len).argmax(axis=1)
    from common.manifest import sha256_path

    inputs_key = {"data": exp.data_hash, "explanations": sha256_path(args.explanations),
                  "teacher": None if teacher_test is None else _digest(teacher_test.tolist()),
                  "targets": _digest(np.asarray(targets).round(6).tolist())}
    cache = ResultCache(output_dir / ".mlp_sweep_cache.json")
    rows = []
    for xai_lambda in lambdas:
        config = StudentConfig.from_dict({**base_config.to_dict(), "xai_lambda": xai_lambda})
        for seed in seeds:
            key = _digest({"config": config.to_dict(), "seed": seed, **inputs_key})
            result = cache.get(key)
            if result is None:
                model = train_seeds(exp, config, [seed], targets)[0].model
                result = student_metrics(MLPClassifier(model, exp.encoder), exp, teacher_test)
                cache.put(key, result)
            log.info("lambda %g seed %d: %s", xai_lambda, seed,
                     {k: round(v, 4) for k, v in result.items() if isinstance(v, float)})
            rows.append({"lambda": xai_lambda, "seed": seed, **result})
    per_seed = pd.DataFrame(rows)
    keys = [k for k, _ in SWEEP_METRICS if k in per_seed.columns]
    summary = []
    for xai_lambda in lambdas:
        chosen = per_seed[per_seed["lambda"] == xai_lambda]
        entry = {"lambda": xai_lambda, "n_seeds": len(chosen)}
        for key in keys:
            s = mean_ci(chosen[key].tolist(), bounds=metric_bounds(key))
            entry.update({key: s["mean"], f"{key}_ci_low": s["ci_low"], f"{key}_ci_high": s["ci_high"]})
        summary.append(entry)
    summary_frame = pd.DataFrame(summary)
    write_text_atomic(output_dir / "mlp_sweep.csv", summary_frame.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(output_dir / "mlp_sweep_per_seed.csv", per_seed.to_csv(index=False, float_format="%.6g"))
    _plot_sweep(summary_frame, keys, output_dir / "mlp_sweep.png")
    labels = dict(SWEEP_METRICS)
    table = [[f"{e['lambda']:g}"] + [fmt_ci({"mean": e[k], "ci_low": e[f"{k}_ci_low"], "ci_high": e[f"{k}_ci_high"]})
                                     for k in keys] for e in summary]
    lines = [
        "# Lambda sweep: weight of the explanation loss",
        "",
        f"One student per lambda and seed (seeds {seeds}; lambda 0 = vanilla cross-entropy), targets "
        f"{base_config.targets}. Test split: {len(exp.test_texts)} rows. Explanation agreement: the student's "
        f"grad x input vs BERT's LIME weights for BERT's predicted class on {len(exp.heldout_rows)} held-out "
        f"explained instances ({len(exp.loss_rows)} in the loss). Cells: mean [95% t-interval over seeds].",
        "",
        tabulate(table, headers=["lambda"] + [labels[k] for k in keys], tablefmt="github"),
        "",
        "![accuracy and explanation agreement vs lambda](mlp_sweep.png)",
        "",
        "Per-seed numbers: `mlp_sweep_per_seed.csv`.",
        "",
    ]
    manifest = base_manifest("mlp_sweep", {k: v for k, v in vars(args).items() if k != "threads"}, seeds[0],
                             inputs=_input_paths(args))
    manifest.update({"lambdas": lambdas, "seeds": seeds, "hyper_parameters": base_config.to_dict(),
                     "heldout_rows": exp.heldout_rows.tolist(), "wall_seconds": round(time.time() - started, 3),
                     "metrics": summary})
    write_json_atomic(output_dir / "mlp_sweep.manifest.json", manifest)
    write_text_atomic(output_dir / "mlp_sweep.md", "\n".join(lines))  # the Make target, last
    log.info("Wrote %s", output_dir / "mlp_sweep.md")
    return 0


def _plot_sweep(summary, keys: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    from common.manifest import atomic_output_file

    lambdas = summary["lambda"].to_numpy(float)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = ((axes[0], [k for k in ("accuracy", "macro_f1", "teacher_agreement") if k in keys], "test split"),
              (axes[1], [k for k in ("own_spearman_pred", "own_jaccard_top5_pred", "own_jaccard_top10_pred")
                         if k in keys], "agreement with BERT's LIME (held-out)"))
    labels = dict(SWEEP_METRICS)
    for ax, chosen, ylabel in panels:
        for key in chosen:
            mean = summary[key].to_numpy(float)
            low = summary[f"{key}_ci_low"].to_numpy(float)
            high = summary[f"{key}_ci_high"].to_numpy(float)
            ax.plot(lambdas, mean, marker="o", label=labels[key])
            if not np.isnan(low).all():
                bounds = metric_bounds(key)  # older CSVs may hold unclipped intervals
                if bounds is not None:
                    low, high = np.clip(low, *bounds), np.clip(high, *bounds)
                ax.fill_between(lambdas, low, high, alpha=0.15)
        # symlog keeps lambda = 0 on the axis; ticks at the swept values read as the values, not as 10^k.
        ax.set_xscale("symlog", linthresh=min([v for v in lambdas if v > 0], default=1.0))
        ax.set_xticks(lambdas)
        ax.set_xticklabels([f"{v:g}" for v in lambdas])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("lambda (weight of the explanation loss)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("MLP student: accuracy and explanation agreement vs lambda (mean, 95% CI over seeds)")
    fig.tight_layout()
    with atomic_output_file(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
