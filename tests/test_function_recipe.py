"""The function-preserving re-fine-tuning recipe (``--recipe function``) on the tiny BERT.

* the perturbation generator draws LIME's own neighbourhood (the same word sets removed for a seed);
* the teacher's outputs are cached by content: a rerun hits, a rebuilt teacher misses;
* a student distilled on LIME-style copies agrees with its teacher on held-out perturbed inputs better than one
  distilled on clean texts only (a real property of the trained models, not a timing);
* bad recipe flags and a teacher that is not the model's parent stop before any training.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.cli import UserError
from common.compress.function_matching import (TeacherCache, check_teacher, fidelity, lime_perturbations,
                                               perturbed_texts)
from common.explain.explainer import make_explainer
from common.models.classifier import load_classifier
from common.models.modeling import load_model_folder
from tests.conftest import make_tiny_bert, toy_texts
from train.fine_tuning.run_fine_tune_bert_agnews import main as finetune_main
from train.pruning.run_structural_pruning import main as prune_main

NEWS = ["Stocks fell sharply on Wall Street as oil prices rose, and stocks in Asia fell too.",
        "The home team won the cup final after a late goal.",
        "A new chip from Intel doubles the speed of laptops, Intel says."]


# ----------------------------------------------------------------------------------------------- generator
@pytest.mark.parametrize("seed", [0, 7, 12345])
def test_perturbations_are_limes_own_samples_for_a_seed(seed):
    """LIME's explainer, given the same random state, asks its classifier about exactly these texts."""
    from lime.lime_text import IndexedString

    explainer = make_explainer(0)
    for text in NEWS:
        seen: list[str] = []

        def classifier_fn(texts):
            seen.extend(texts)
            return np.full((len(texts), 4), 0.25)

        explainer.random_state = np.random.RandomState(seed)
        indexed = IndexedString(text, bow=explainer.bow, split_expression=explainer.split_expression,
                                mask_string=explainer.mask_string)
        explainer._LimeTextExplainer__data_labels_distances(indexed, classifier_fn, 21)
        ours = lime_perturbations(text, 20, np.random.RandomState(seed))
        assert seen[0] == text and ours == seen[1:]
        # Every copy removes between 1 and all of the distinct words, every occurrence of each.
        assert all(len(c) < len(text) for c in ours)
    other = lime_perturbations(NEWS[0], 20, np.random.RandomState(seed + 1))
    assert other != lime_perturbations(NEWS[0], 20, np.random.RandomState(seed))


def test_perturbed_rounds_are_fresh_and_reproducible():
    a0, a1 = perturbed_texts(NEWS, 3, seed=1, round_index=0), perturbed_texts(NEWS, 3, seed=1, round_index=1)
    assert len(a0) == 9 and a0 != a1 and a0 == perturbed_texts(NEWS, 3, seed=1, round_index=0)
    assert lime_perturbations("... !!", 3, np.random.RandomState(0)) == []  # no words, no copies


# ----------------------------------------------------------------------------------------------- cache
def test_teacher_cache_hits_on_rerun_and_misses_for_a_rebuilt_teacher(tmp_path):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "manifest.json").write_text(json.dumps({"stage": "fine_tune", "run": 1}))
    calls: list[int] = []

    def compute(texts):
        calls.append(len(texts))
        return np.stack([np.full(4, len(t), dtype=np.float32) for t in texts])

    texts = NEWS + NEWS[:1]  # a duplicate is computed once
    first = TeacherCache(tmp_path / "cache", teacher, 32)
    probs = first.probs(texts, compute)
    assert calls == [3] and first.misses == 4 and first.hits == 0 and probs[3][0] == len(NEWS[0])
    again = TeacherCache(tmp_path / "cache", teacher, 32)  # a rerun: a new process reads the file
    assert np.array_equal(again.probs(texts, compute), probs) and calls == [3]
    assert again.hits == 4 and again.misses == 0
    assert again.probs(NEWS + ["a new text"], compute).shape == (4, 4) and calls == [3, 1] and again.misses == 1
    (teacher / "manifest.json").write_text(json.dumps({"stage": "fine_tune", "run": 2}))  # a rebuilt teacher
    rebuilt = TeacherCache(tmp_path / "cache", teacher, 32)
    rebuilt.probs(NEWS, compute)
    assert rebuilt.misses == 3 and calls[-1] == 3
    assert TeacherCache(tmp_path / "cache", teacher, 64).path != rebuilt.path  # another max_len, another file


# ----------------------------------------------------------------------------------------------- the property
ARGS = ["--sparsity", "50", "--learning-rate", "3e-3", "--batch-size", "16", "--max-len", "32", "--device", "cpu",
        "--seed", "0", "--importance-samples", "64", "--validation-fraction", "0.25"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("function_recipe")
    data = root / "data"
    data.mkdir()
    for split, n, seed in (("train", 160, 1), ("test", 80, 2)):
        texts, labels = toy_texts(n, seed)
        pd.DataFrame({"text": texts, "label": labels}).to_csv(data / f"{split}.csv", index=False)
    model = root / "teacher"
    assert finetune_main(["--base-model", str(make_tiny_bert(root / "init")), "--data", str(data), "--output",
                          str(model), "--epochs", "12", "--learning-rate", "3e-3", "--batch-size", "16", "--max-len",
                          "32", "--device", "cpu", "--validation-fraction", "0.1", "--seed", "0"]) == 0
    return {"root": root, "data": data, "model": model}


def test_perturbation_distillation_matches_the_teacher_on_perturbed_inputs_better(teacher):
    root = teacher["root"]
    common = ["--model", str(teacher["model"]), "--data", str(teacher["data"]), *ARGS]
    clean = root / "clean"
    assert prune_main([*common, "--output", str(clean), "--recipe", "logits", "--epochs", "3"]) == 0
    function = root / "function"
    cache = root / "cache"
    # Same optimiser steps as the clean run: 3 epochs of clean + 1 copy per text would be 6 clean-epochs' worth.
    assert prune_main([*common, "--output", str(function), "--recipe", "function", "--perturb-copies", "2",
                       "--epochs", "1", "--teacher-cache-dir", str(cache)]) == 0
    fn_manifest = json.loads((function / "manifest.json").read_text())
    assert fn_manifest["recipe"]["teacher_cache"]["misses"] > 0
    # On held-out copies (fresh seeds, validation-like texts the student never saw), measured here, not read back.
    held_out, _ = toy_texts(40, seed=99)
    teacher_clf = load_classifier(teacher["model"], device="cpu", max_len=32)
    scores = {}
    for name, folder in (("clean", clean), ("function", function)):
        student = load_classifier(folder, device="cpu", max_len=32)
        scores[name] = fidelity(student.predict_proba, teacher_clf.predict_proba, held_out, seed=5, copies=8)
    # Probabilities are what LIME regresses on: the function recipe must at least halve their distance. Labels
    # agree on ~96 % of these easy copies either way, so their count (320 copies) is only kept from getting worse.
    assert scores["function"]["perturbed_prob_mae"] < 0.5 * scores["clean"]["perturbed_prob_mae"], scores
    assert scores["function"]["perturbed_label_agreement"] >= scores["clean"]["perturbed_label_agreement"] - 0.02, scores
    assert fn_manifest["fidelity"]["test_n"] == 80 and 0.0 <= fn_manifest["fidelity"]["test_label_agreement"] <= 1.0

    # A rerun with another output (another sparsity, say) reuses every teacher output of the first.
    again = root / "function_again"
    assert prune_main([*common, "--output", str(again), "--recipe", "function", "--perturb-copies", "2",
                       "--epochs", "1", "--teacher-cache-dir", str(cache)]) == 0
    cache_stats = json.loads((again / "manifest.json").read_text())["recipe"]["teacher_cache"]
    assert cache_stats["misses"] == 0 and cache_stats["hits"] == fn_manifest["recipe"]["texts"]


# ----------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("flag, words", [
    (["--perturb-copies", "0"], "--perturb-copies 0"),
    (["--perturb-copies", "-2"], "--perturb-copies -2"),
    (["--epochs", "-1"], "epochs"),
    (["--hidden-weight", "-1"], "--hidden-weight"),
    (["--no-distill"], "--no-distill"),
])
def test_bad_recipe_flags_stop_before_any_training(tmp_path, tiny_bert, toy_data, flag, words, caplog):
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as exc:
        prune_main(["--model", str(tiny_bert), "--sparsity", "20", "--output", str(out), "--data", str(toy_data),
                    "--recipe", "function", *flag])
    assert exc.value.code == 2 and words in caplog.text
    assert not out.exists() and not out.with_name("o.checkpoints").exists()


def test_logits_recipe_accepts_no_copies(tmp_path, tiny_bert, toy_data):
    """--perturb-copies only binds the function recipe: the historical one ignores it (no error)."""
    from common.compress.function_matching import check_recipe

    check_recipe("logits", 0, "kl", 1.0, False)
    with pytest.raises(UserError, match="--perturb-copies 0"):
        check_recipe("function", 0, "kl", 1.0, True)


def test_a_teacher_that_is_not_the_parent_stops_before_training(tmp_path, toy_data, caplog):
    parent = make_tiny_bert(tmp_path / "parent")
    other_labels = make_tiny_bert(tmp_path / "other_labels", seed=1)
    config = json.loads((other_labels / "config.json").read_text())
    config["id2label"] = {str(i): name for i, name in enumerate(["a", "b", "c", "d"])}
    config["label2id"] = {name: i for i, name in enumerate(["a", "b", "c", "d"])}
    (other_labels / "config.json").write_text(json.dumps(config))
    other_vocab = make_tiny_bert(tmp_path / "other_vocab", seed=2)
    vocab = (other_vocab / "vocab.txt").read_text().split("\n")
    (other_vocab / "vocab.txt").write_text("\n".join(vocab[:5] + list(reversed(vocab[5:-1])) + [""]))
    shutil.rmtree(other_vocab / "tokenizer.json", ignore_errors=True)
    (other_vocab / "tokenizer.json").unlink(missing_ok=True)
    for bad, words in ((other_labels, "other labels"), (other_vocab, "another tokenizer vocabulary")):
        out = tmp_path / f"out_{bad.name}"
        caplog.clear()
        with pytest.raises(SystemExit) as exc:
            prune_main(["--model", str(parent), "--teacher", str(bad), "--sparsity", "20", "--output", str(out),
                        "--data", str(toy_data), "--device", "cpu"])
        assert exc.value.code == 2 and "is not the parent of --model" in caplog.text and words in caplog.text
        assert not out.exists() and not out.with_name(out.name + ".checkpoints").exists()
    # The parent itself passes the check.
    model, tokenizer, _ = load_model_folder(parent)
    check_teacher(parent, model, tokenizer, model, tokenizer, parent, hidden=True)
