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
from common.lime_text import make_explainer
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


# ----------------------------------------------------------------------------------------------- side by side
def test_recipes_table_measures_agreement_and_reads_each_recipes_verdicts(teacher, tmp_path):
    """`make recipes`' stage: agreement with base measured on every test row; each recipe's verdicts from its own
    report folder; 'every gate' only when both gates say equivalent (a planted drifted deletion verdict fails)."""
    from analysis.recipes.compare_recipes import main as recipes_main
    from common.data import load_test_split

    root = teacher["root"]
    student = root / "student_for_table"
    assert prune_main(["--model", str(teacher["model"]), "--data", str(teacher["data"]), *ARGS, "--output",
                       str(student), "--recipe", "logits", "--epochs", "1"]) == 0
    reports = {}
    for recipe, deletion in (("function", "equivalent"), ("logits", "drifted")):
        folder = tmp_path / recipe
        folder.mkdir()
        pd.DataFrame([{"variant": "pruned50_x", "metric": "rbo", "extra_mean": 0.01, "d_mean": -0.02,
                       "verdict": "equivalent", "reason": ""},
                      {"variant": "pruned50_x", "metric": "spearman", "extra_mean": 0.5, "d_mean": 0.4,
                       "verdict": "drifted", "reason": ""}]).to_csv(folder / "lime_similarity.csv", index=False)
        pd.DataFrame([{"variant": "pruned50_x", "check": "same_evidence", "d_mean": -0.01, "verdict": deletion,
                       "reason": ""}]).to_csv(folder / "deletion.csv", index=False)
        reports[recipe] = folder
    out = tmp_path / "recipes.md"
    assert recipes_main(["--base", str(teacher["model"]), "--data", str(teacher["data"]), "--max-len", "32",
                         "--variant", f"function:pruned50_x={student}", "--variant", f"logits:pruned50_x={student}",
                         "--variant", f"logits:pruned50_y={teacher['model']}",
                         "--reports", f"function={reports['function']}", "--reports", f"logits={reports['logits']}",
                         "--pruned", f"function:50={student}", "--cache-dir", str(tmp_path / "cache"),
                         "--output", str(out)]) == 0
    rows = {(r["recipe"], r["variant"]): r for r in json.loads(out.with_suffix(".manifest.json").read_text())["rows"]}
    test = load_test_split(teacher["data"])
    base_pred = load_classifier(teacher["model"], device="cpu", max_len=32).predict(test.texts)
    student_pred = load_classifier(student, device="cpu", max_len=32).predict(test.texts)
    assert rows[("function", "pruned50_x")]["label_agreement_with_base"] == pytest.approx(
        float((base_pred == student_pred).mean()))
    assert rows[("logits", "pruned50_y")]["label_agreement_with_base"] == 1.0  # base against itself
    assert rows[("function", "pruned50_x")]["every_gate"] is True
    assert rows[("function", "pruned50_x")]["lime_d"] == pytest.approx(-0.02)  # the rbo row, not spearman
    assert rows[("logits", "pruned50_x")]["every_gate"] is False  # planted: deletion drifted
    assert rows[("logits", "pruned50_y")]["lime_verdict"] == "not judged"
    assert rows[("function", "pruned50_x")]["refinetune_wall_s"] > 0
    assert "| function" in out.read_text() and out.with_suffix(".csv").is_file()
    with pytest.raises(SystemExit) as exc:
        recipes_main(["--base", str(teacher["model"]), "--variant", "no-colon=x", "--output", str(tmp_path / "b.md")])
    assert exc.value.code == 2 and not (tmp_path / "b.md").exists()


def test_the_picks_say_which_recipe_built_a_pruned_graph(tmp_path):
    from common.report.build import _with_recipe
    from common.report.recipes import recipe_text

    function = {"arguments": {"recipe": "function", "perturb_copies": 3, "perturb_loss": "kl", "hidden_weight": 0.0,
                              "epochs": 2.0, "head_ffn_ratio": 0.5}, "fidelity": {"test_label_agreement": 0.9912}}
    legacy = {"arguments": {"epochs": 2.0, "distill": True, "distill_temperature": 2.0}}  # before --recipe existed
    text = recipe_text(function)
    assert "`function` recipe" in text and "3 LIME-style" in text and "0.9912" in text and "ratio 0.5" in text
    assert "`logits` recipe" in recipe_text(legacy) and "T = 2" in recipe_text(legacy)
    folder = tmp_path / "models" / "pruned" / "bert_agnews_60pct"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(function))
    shipped = _with_recipe("**Ship `pruned60_ov_int8`**: fast.", tmp_path / "models")
    assert shipped.endswith(text)
    assert _with_recipe("**Ship `base_onnx_int8`**: fast.", tmp_path / "models") == "**Ship `base_onnx_int8`**: fast."
    assert _with_recipe("**Ship `pruned40_ov_int8`**: fast.", tmp_path / "models") == "**Ship `pruned40_ov_int8`**: fast."
