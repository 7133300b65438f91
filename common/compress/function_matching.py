"""Function-preserving re-fine-tuning: teach a pruned model *this* model's function, not a good one.

LIME fits a weighted ridge regression to the model's probabilities on word-deleted copies of a text, so a
student that matches its teacher's probabilities on that perturbation distribution has, by construction, a
close LIME explanation (``||b_S - b_T|| <= ||(Z'WZ + lI)^-1 Z'W|| * ||f_S(Z) - f_T(Z)||``), and the deletion test,
computed on deleted inputs, follows. The ``function`` recipe (``--recipe function``) so trains on:

* **perturbation distillation** - every round (epoch), each clean training text and ``K`` (``--perturb-copies``)
  word-deleted copies of it, drawn exactly as LIME draws its samples (:func:`lime_perturbations`: a uniform
  number of distinct words removed, LIME's own ``IndexedString``), seeded per (seed, round, row) so rounds see
  fresh copies (function matching, Beyer et al. 2022). The targets are the unpruned teacher's probabilities
  (``--perturb-loss kl``: KL(p_T || p_S) at T = 1; ``mse``: squared error of the probabilities), computed once
  and cached by content (:class:`TeacherCache`) so a rerun or another sparsity of the same teacher pays nothing.
  There is no label term: the teacher, not the label, is the target. Only training rows are perturbed - never
  validation or test rows.
* **hidden-state distillation** (``--hidden-weight`` w > 0) - w x the mean over the embedding output and every
  layer of the masked mean squared error between student and teacher hidden states (the pruned model keeps the
  hidden size, so no projection is needed). Hidden states are too large to cache; the teacher runs alongside.

The ``logits`` recipe is the historical one: cross-entropy on labels mixed with KL at ``--distill-temperature``
to the teacher on clean texts only.

After training, :func:`fidelity` measures how far the student is from its teacher where LIME looks: label
agreement and mean absolute probability difference on LIME-style perturbations of the validation rows, and label
agreement on the clean test rows. The manifest keeps them.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from common.cli import UserError
from common.lime_text import lime_indexed_string
from common.manifest import artefact_fingerprint, atomic_output_file, digest

log = logging.getLogger(__name__)

RECIPES = ("logits", "function")
PERTURB_LOSSES = ("kl", "mse")
TEACHER_CACHE_PREFIX = "teacher_probs_"
# Validation copies per row for :func:`fidelity` (a fixed design, so every recipe is measured the same way).
FIDELITY_COPIES = 8
FIDELITY_SEED_OFFSET = 7919  # fidelity's perturbations are never the training ones


# ----------------------------------------------------------------------------------------------- perturbations
def lime_perturbations(text: str, k: int, random_state: np.random.RandomState) -> list[str]:
    """``k`` word-deleted copies of ``text``, exactly as LIME's text explainer draws its neighbourhood.

    LIME (``LimeTextExplainer.__data_labels_distances``) draws ``sizes = randint(1, d + 1, n)`` for a text of d
    distinct words, then for each size ``choice(range(d), size, replace=False)`` words to remove, and removes
    every occurrence of each (``IndexedString.inverse_removing``, bow). With the same random state, copy i here
    is LIME's sample i + 1 (its sample 0 is the text itself). A text without words has no copies.
    """
    indexed = lime_indexed_string(text)
    doc_size = indexed.num_words()
    if doc_size == 0 or k <= 0:
        return []
    sizes = random_state.randint(1, doc_size + 1, k)
    features = range(doc_size)
    return [indexed.inverse_removing(random_state.choice(features, size, replace=False)) for size in sizes]


def copy_seed(seed: int, round_index: int, row: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(round_index), int(row)]).generate_state(1)[0])


def perturbed_texts(texts: Sequence[str], k: int, seed: int, round_index: int) -> list[str]:
    """Round ``round_index``'s copies of every text, text after text (``k`` per text, fewer for none)."""
    out: list[str] = []
    for row, text in enumerate(texts):
        out.extend(lime_perturbations(text, k, np.random.RandomState(copy_seed(seed, round_index, row))))
    return out


def check_recipe(recipe: str, perturb_copies: int, perturb_loss: str, hidden_weight: float, distill: bool) -> None:
    """The recipe flags' checks, before any model is loaded (one sentence each)."""
    if recipe not in RECIPES:
        raise UserError(f"--recipe {recipe} is unknown; use one of {', '.join(RECIPES)}.")
    if recipe == "logits":
        return
    if perturb_copies <= 0:
        raise UserError(f"--perturb-copies {perturb_copies} must be >= 1 for --recipe function (word-deleted copies "
                        "of each training text per round); use --recipe logits to train on clean texts only.")
    if perturb_loss not in PERTURB_LOSSES:
        raise UserError(f"--perturb-loss {perturb_loss} is unknown; use kl or mse.")
    if not hidden_weight >= 0 or math.isinf(hidden_weight):
        raise UserError(f"--hidden-weight {hidden_weight:g} must be a finite number >= 0 (0 turns hidden-state "
                        "distillation off).")
    if not distill:
        raise UserError("--recipe function distils from the teacher; it cannot run with --no-distill (use "
                        "--recipe logits --no-distill for plain fine-tuning).")


def _tokenizer_identity(tokenizer) -> str:
    vocab = tokenizer.get_vocab()
    return hashlib.sha256("\n".join(f"{w}\t{i}" for w, i in sorted(vocab.items(), key=lambda x: x[1]))
                          .encode()).hexdigest()


def check_teacher(teacher_dir: Path, teacher, teacher_tokenizer, student, student_tokenizer, student_dir: Path,
                  hidden: bool) -> None:
    """The teacher must be the model the pruned one was cut from (same tokenizer, labels and, for hidden-state
    distillation, the same hidden size and depth); anything else stops here, before any training."""
    problems = []
    if _tokenizer_identity(teacher_tokenizer) != _tokenizer_identity(student_tokenizer):
        problems.append("another tokenizer vocabulary")
    t_labels = {int(k): v for k, v in (teacher.config.id2label or {}).items()}
    s_labels = {int(k): v for k, v in (student.config.id2label or {}).items()}
    if t_labels != s_labels:
        problems.append(f"other labels ({t_labels} vs {s_labels})")
    if hidden and (teacher.config.hidden_size != student.config.hidden_size
                   or teacher.config.num_hidden_layers != student.config.num_hidden_layers):
        problems.append("another hidden size or depth (hidden-state distillation needs the same)")
    if problems:
        raise UserError(f"--teacher {teacher_dir} is not the parent of --model {student_dir}: it has "
                        f"{' and '.join(problems)}; pass the fine-tuned folder the model was pruned from.")


# ----------------------------------------------------------------------------------------------- teacher cache
def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class TeacherCache:
    """The teacher's probabilities by text content, one ``.npz`` per (teacher, max_len) in ``cache_dir``.

    The file name holds a digest of the teacher's fingerprint (its manifest's hash) and ``max_len``, so a
    rebuilt teacher never reuses another's outputs; each row is keyed by the sha256 of its text. New rows are
    merged and the file rewritten atomically (a killed run leaves the previous complete file). ``hits`` and
    ``misses`` count the texts of the last :meth:`probs` call that were / were not in the cache.
    """

    def __init__(self, cache_dir: str | os.PathLike, teacher_dir: str | os.PathLike, max_len: int):
        self.key = digest({"teacher": artefact_fingerprint(Path(teacher_dir)), "max_len": int(max_len)})
        self.path = Path(cache_dir) / f"{TEACHER_CACHE_PREFIX}{self.key[:24]}.npz"
        self.table: dict[str, np.ndarray] = {}
        self.hits = self.misses = 0
        if self.path.is_file():
            try:
                with np.load(self.path) as stored:
                    if str(stored["key"]) == self.key:
                        self.table = dict(zip((str(k) for k in stored["keys"]), stored["probs"]))
            except (OSError, ValueError, KeyError):
                log.warning("teacher cache %s is unreadable; it is rebuilt", self.path)

    def probs(self, texts: Sequence[str], compute) -> np.ndarray:
        """Probabilities ``(len(texts), n_labels)``: cached rows read, the rest ``compute(missing_texts)``."""
        keys = [text_key(t) for t in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key not in self.table and key not in missing:
                missing[key] = text
        self.misses = sum(1 for k in keys if k in missing)
        self.hits = len(keys) - self.misses
        if missing:
            log.info("teacher: %d of %d texts not cached; computing them (%s)", len(missing), len(texts), self.path)
            values = np.asarray(compute(list(missing.values())), dtype=np.float32)
            self.table.update(zip(missing.keys(), values))
            self._write()
        else:
            log.info("teacher: all %d texts from cache %s", len(texts), self.path)
        return np.stack([self.table[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        names = list(self.table)
        with atomic_output_file(self.path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, key=np.asarray(self.key), keys=np.asarray(names), probs=np.stack([self.table[n] for n in names]))


def teacher_prob_fn(teacher, tokenizer, device: str, max_len: int):
    from common.models.base import TorchClassifier

    clf = TorchClassifier(teacher, tokenizer, device=device, max_len=max_len, batch_size=64, progress=True)
    return clf.predict_proba


# ----------------------------------------------------------------------------------------------- training data
class DistillSet(torch.utils.data.Dataset):
    """Tokenised texts with their teacher probabilities (``teacher_probs``) and a label (for eval metrics)."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int], probs: np.ndarray, tokenizer, max_len: int):
        enc = tokenizer(list(texts), truncation=True, max_length=max_len)
        self.items = [{"input_ids": ids, "attention_mask": am, "labels": int(label), "teacher_probs": p.tolist()}
                      for ids, am, label, p in zip(enc["input_ids"], enc["attention_mask"], labels, probs)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def build_distill_set(train_texts: Sequence[str], train_labels: Sequence[int], k: int, rounds: int, seed: int,
                      cache: TeacherCache, prob_fn, tokenizer, max_len: int) -> tuple[DistillSet, dict]:
    """``rounds`` x (every clean text + ``k`` fresh LIME-style copies of each), teacher-labelled through the
    cache. A copy keeps its source row's label (only eval metrics read it; training uses the teacher)."""
    texts: list[str] = []
    labels: list[int] = []
    for round_index in range(rounds):
        for row, (text, label) in enumerate(zip(train_texts, train_labels)):
            copies = lime_perturbations(text, k, np.random.RandomState(copy_seed(seed, round_index, row)))
            texts.extend([text, *copies])
            labels.extend([int(label)] * (1 + len(copies)))
    probs = cache.probs(texts, prob_fn)
    stats = {"texts": len(texts), "rounds": rounds, "copies_per_text": k, "clean_texts_per_round": len(train_texts),
             "teacher_cache": {"path": str(cache.path), "hits": cache.hits, "misses": cache.misses}}
    return DistillSet(texts, labels, probs, tokenizer, max_len), stats


def distill_collator(tokenizer):
    """Pads like ``DataCollatorWithPadding`` and stacks ``teacher_probs`` (absent in eval batches)."""
    from transformers import DataCollatorWithPadding

    pad = DataCollatorWithPadding(tokenizer)

    def collate(items):
        probs = [item["teacher_probs"] for item in items if "teacher_probs" in item]
        batch = pad([{k: v for k, v in item.items() if k != "teacher_probs"} for item in items])
        if probs and len(probs) == len(items):
            batch["teacher_probs"] = torch.tensor(probs, dtype=torch.float32)
        return batch

    return collate


# ----------------------------------------------------------------------------------------------- losses
def perturbation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "kl":
        return torch.nn.functional.kl_div(torch.log_softmax(student_logits.float(), dim=-1), teacher_probs,
                                          reduction="batchmean")
    return ((torch.softmax(student_logits.float(), dim=-1) - teacher_probs) ** 2).sum(dim=-1).mean()


def hidden_state_loss(student_hidden, teacher_hidden, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over layers (embedding output included) of the squared error per real token, per hidden unit."""
    mask = attention_mask.unsqueeze(-1).float()
    denom = mask.sum() * student_hidden[0].shape[-1]
    losses = [(((s.float() - t.float()) ** 2) * mask).sum() / denom for s, t in zip(student_hidden, teacher_hidden)]
    return torch.stack(losses).mean()


# ----------------------------------------------------------------------------------------------- fidelity
def fidelity(student_probs_fn, teacher_probs_fn, validation_texts: Sequence[str], seed: int,
             copies: int = FIDELITY_COPIES) -> dict:
    """Student vs teacher on LIME-style copies of the validation rows (never trained on): label agreement and
    mean |p_S - p_T| (over classes and copies)."""
    texts = perturbed_texts(validation_texts, copies, seed + FIDELITY_SEED_OFFSET, 0)
    if not texts:
        return {"perturbed_n": 0}
    s, t = np.asarray(student_probs_fn(texts)), np.asarray(teacher_probs_fn(texts))
    return {"perturbed_n": len(texts), "perturbed_copies_per_row": copies,
            "perturbed_label_agreement": float((s.argmax(1) == t.argmax(1)).mean()),
            "perturbed_prob_mae": float(np.abs(s - t).mean())}


# ----------------------------------------------------------------------------------------------- the stage's parts
def recipe_fields() -> list[tuple]:
    """The pruning stage's recipe flags, as config fields in flag order."""
    from common.stage import flag

    return [
        ("recipe", str, flag("function", choices=list(RECIPES), help=(
            "re-fine-tuning recipe: function (the teacher's probabilities on clean texts and LIME-style word-deleted "
            "copies, plus hidden-state distillation; see common/compress/function_matching.py) or logits (the "
            "historical cross-entropy + temperature KL on clean texts)"))),
        ("perturb_copies", int, flag(3, help="--recipe function: word-deleted copies of each training text per epoch")),
        ("perturb_loss", str, flag("kl", choices=["kl", "mse"], help=(
            "--recipe function: KL(teacher || student) at T = 1, or squared error of the probabilities"))),
        ("hidden_weight", float, flag(0.0, help=(
            "--recipe function: weight of the per-layer hidden-state MSE to the teacher (0 = off)"))),
        ("teacher", str, flag("", help=(
            "teacher folder (default: --model, the unpruned parent); must share its tokenizer and labels"))),
        ("teacher_cache_dir", str, flag("", help=(
            "where the teacher's probabilities are cached by content (default: <output's parent>/teacher_cache)"))),
    ]


def recipe_run_key(key: dict) -> None:
    """The recipe's part of the pruning run key, in place: the historical recipe keeps the key of the runs made
    before ``--recipe`` existed; a teacher is keyed by its identity; the cache folder never changes the model."""
    key.pop("teacher_cache_dir", None)
    if key.get("recipe") == "logits":
        for name in ("recipe", "perturb_copies", "perturb_loss", "hidden_weight"):
            key.pop(name, None)
    if not key.get("teacher"):  # the default teacher is --model itself
        key.pop("teacher", None)
    else:
        key["teacher"] = artefact_fingerprint(Path(key["teacher"]))


def load_teacher(args: dict, model_dir: Path, model, tokenizer):
    """(teacher folder, teacher model or None without distillation): ``--teacher`` checked against the model it
    must be the parent of, or a copy of ``--model`` itself (taken before any hook is attached)."""
    import copy

    from common.models.modeling import is_model_folder, load_model_folder

    teacher_dir = Path(args["teacher"]) if args.get("teacher") else model_dir
    if teacher_dir == model_dir:
        return teacher_dir, (copy.deepcopy(model).eval() if args["distill"] else None)
    if not is_model_folder(teacher_dir):
        raise UserError(f"--teacher {teacher_dir} is not a model folder (no config.json); pass the fine-tuned folder "
                        "the model was pruned from.")
    teacher, teacher_tokenizer, teacher_spec = load_model_folder(teacher_dir)
    if teacher_spec is not None:
        raise UserError(f"--teacher {teacher_dir} is pruned; the teacher is the unpruned model the student is cut "
                        "from.")
    check_teacher(teacher_dir, teacher, teacher_tokenizer, model, tokenizer, model_dir,
                  hidden=args["recipe"] == "function" and args["hidden_weight"] > 0)
    return teacher_dir, (teacher.eval() if args["distill"] else None)


def function_training_set(teacher, teacher_dir: Path, tokenizer, train_split, config, args: dict, output: Path,
                          device: str):
    """The pruning stage's training set for ``--recipe function``: every round's clean texts and copies with the
    teacher's probabilities (through the cache), its collator, the manifest's recipe block, and the Trainer
    config whose one pass over the set is ``epochs`` passes of clean + copies. ``--recipe logits``: (None, None,
    its block, ``config``): the Trainer tokenises the clean split itself."""
    import dataclasses
    import time

    if args["recipe"] != "function":
        return None, None, {"recipe": args["recipe"]}, config
    cache = TeacherCache(args.get("teacher_cache_dir") or output.parent / "teacher_cache", teacher_dir,
                         args["max_len"])
    rounds = max(1, math.ceil(config.epochs))
    start = time.time()
    distill_set, set_stats = build_distill_set(
        train_split.texts, train_split.labels, args["perturb_copies"], rounds, args["seed"], cache,
        teacher_prob_fn(teacher, tokenizer, device, args["max_len"]), tokenizer, args["max_len"])
    stats = {"recipe": "function", **set_stats, "teacher_wall_s": time.time() - start,
             "perturb_loss": args["perturb_loss"], "hidden_weight": args["hidden_weight"]}
    log.info("function recipe: %d texts (%d rounds x %d rows x (1 + %d copies)); teacher cache %d hits, %d misses",
             set_stats["texts"], rounds, len(train_split), args["perturb_copies"], cache.hits, cache.misses)
    return distill_set, distill_collator(tokenizer), stats, dataclasses.replace(config, epochs=config.epochs / rounds)


def function_fidelity(student_clf, teacher_dir: Path, tokenizer, data, test_pred, device: str, args: dict,
                      output: Path) -> dict:
    """How close the re-fine-tuned model is to its teacher: label agreement on every test row and, on LIME-style
    copies of the validation rows, label agreement and mean |dp| (:func:`fidelity`). The
    teacher's test predictions are memoised beside the teacher cache (never used for training)."""
    from common.models.classifier import load_classifier
    from common.prediction_cache import cache_path, cached_predictions, prediction_key

    teacher_clf = load_classifier(teacher_dir, device=device, max_len=args["max_len"], batch_size=64, progress=True)
    cache_dir = Path(args.get("teacher_cache_dir") or output.parent / "teacher_cache")
    key = prediction_key(teacher_dir, data.test.texts, max_len=args["max_len"], what="test argmax")
    teacher_test = cached_predictions(cache_path(cache_dir, "teacher_test_", key, ".npy"), key,
                                      lambda: teacher_clf.predict(data.test.texts))
    out = {"test_n": len(test_pred), "test_label_agreement": float((np.asarray(test_pred) == teacher_test).mean())}
    if len(data.validation):
        out.update(fidelity(student_clf.predict_proba, teacher_clf.predict_proba, data.validation.texts,
                            args["seed"]))
    log.info("fidelity to the teacher: %s", out)
    return out
