"""SP-LIME honours num_features: planted explanations for the pick and the global importance, and the stage end to end."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from common import LABEL_NAMES
from tests.test_makefile import tree  # noqa: F401  (the source-tree fixture)


def planted_explanation(text: str, weights: dict[str, float], label: int):
    """A real LIME text Explanation of ``label`` whose weights are ``weights`` (every word must be in ``text``)."""
    from lime.explanation import Explanation
    from lime.lime_text import IndexedString, TextDomainMapper

    indexed = IndexedString(text)
    feature = {word: i for i, word in enumerate(indexed.inverse_vocab)}
    exp = Explanation(TextDomainMapper(indexed), mode="classification", class_names=list(LABEL_NAMES))
    exp.local_exp = {label: sorted(((feature[w], v) for w, v in weights.items()), key=lambda fw: -abs(fw[1]))}
    exp.intercept, exp.score, exp.top_labels = {label: 0.0}, 1.0, [label]
    return exp


def pick_planted(explanations, num_explanations: int, num_features: int | None):
    from common.explain.sp_lime import submodular_pick

    return submodular_pick(lambda position: explanations[position], len(explanations), num_explanations,
                           num_features)


def stop_word_case():
    """30 texts, each with its own content words (weights 0.5, 0.4, 0.3, 0.2) and 'the' at 0.04 in every one."""
    explanations = []
    for i in range(30):
        words = {f"w{i}x{j}": 0.5 - 0.1 * j for j in range(4)}
        words["the"] = 0.04
        explanations.append(planted_explanation(" ".join(words), words, i % 4))
    return explanations


def test_a_frequent_small_weight_stop_word_does_not_rank_first():
    from common.explain.sp_lime import global_importance

    explanations = stop_word_case()
    top = [r for r in global_importance(pick_planted(explanations, 3, 3).explanations) if r["scope"] == "all"]
    assert top[0]["word"] != "the" and top[0]["importance"] == pytest.approx(np.sqrt(0.5))
    assert "the" not in {r["word"] for r in top}  # never among any explanation's top 3
    # the planted negative: every word counted (the old behaviour), 'the' piles up into the first rank
    every_word = [r for r in global_importance(pick_planted(stop_word_case(), 3, None).explanations)
                  if r["scope"] == "all"]
    assert every_word[0]["word"] == "the" and every_word[0]["importance"] == pytest.approx(np.sqrt(30 * 0.04))


def longest_text_case():
    """One long text of 40 small-weight words; six short Sports texts sharing strong words."""
    long_words = {f"long{j}": 0.05 for j in range(40)}
    explanations = [planted_explanation(" ".join(long_words), long_words, 0)]
    for i in range(6):
        words = {"goal": 0.5, "match": 0.4, "striker": 0.3, f"own{i}": 0.1}
        explanations.append(planted_explanation(" ".join(words), words, 1))
    return explanations


def test_the_first_pick_is_not_simply_the_longest_text():
    pick = pick_planted(longest_text_case(), 2, 3)
    assert pick.V[0] != 0 and LABEL_NAMES[pick.explanations[pick.V[0]].top_labels[0]] == "Sports"
    assert all(len(exp.local_exp[exp.top_labels[0]]) <= 3 for exp in pick.explanations)
    # the planted negative: with every word in the coverage matrix the longest text wins the first pick
    assert pick_planted(longest_text_case(), 2, None).V[0] == 0


def test_keep_top_features_keeps_the_largest_weights_and_the_full_list():
    from common.explain.sp_lime import keep_top_features

    exp = planted_explanation("a b c d", {"a": 0.1, "b": -0.4, "c": 0.3, "d": -0.05}, 2)
    keep_top_features(exp, 2)
    assert [exp.domain_mapper.indexed_string.word(f) for f, _ in exp.local_exp[2]] == ["b", "c"]
    assert len(exp.all_local_exp[2]) == 4


def run_stage(tmp_path, model, data, num_features, name):
    from generate_outputs.sp_lime.run_sp_lime_hf_model import main

    out = tmp_path / name
    code = main(["--model_dir", str(model), "--output_prefix", "tiny", "--output-dir", str(out), "--data", str(data),
                 "--sample-size", "6", "--num-explanations", "2", "--num-samples", "60", "--seed", "3",
                 "--max-len", "64", "--threads", "1", "--num-features", str(num_features)])
    return code, out


def test_num_features_flag_changes_the_coverage_matrix(tmp_path, tiny_bert, toy_data):
    code, two = run_stage(tmp_path, tiny_bert, toy_data, 2, "two")
    assert code == 0
    code, every = run_stage(tmp_path, tiny_bert, toy_data, 50, "every")
    assert code == 0
    manifests = [json.loads((out / "tiny_picked.manifest.json").read_text())["metrics"] for out in (two, every)]
    assert manifests[0]["num_features"] == 2
    assert manifests[0]["coverage_words"] < manifests[1]["coverage_words"]
    features = pd.read_csv(two / "tiny_global_features.csv", keep_default_na=False)
    # each of the 6 candidates contributes at most 2 words to the coverage matrix
    assert features[features.scope == "all"].n_explanations.sum() <= 2 * 6
    every_features = pd.read_csv(every / "tiny_global_features.csv", keep_default_na=False)
    assert every_features[every_features.scope == "all"].n_explanations.sum() > 2 * 6
    picked = pd.read_csv(two / "tiny_picked.csv", keep_default_na=False)
    # the picked CSV keeps every word, marking the two that entered the coverage matrix
    assert (picked.groupby("instance_id").in_top_features.sum() == 2).all()
    assert (picked.groupby("instance_id").size() > 2).all()
    top = picked[picked.in_top_features]
    assert (top["rank"] <= 2).all()
    md = (two / "tiny_sp_lime.md").read_text()
    assert "## Picked instances" in md and "## Top words per class" in md and "num_features = 2" in md
    assert str(picked.instance_id.iloc[0]) in md


def test_per_instance_seeds_independent_masks_and_independent_of_the_other_candidates():
    from common.explain.sp_lime import lime_explain_position

    seen: list[list[str]] = []

    def recording_fn(texts):
        seen.append(list(texts))
        return np.tile([0.1, 0.2, 0.3, 0.4], (len(texts), 1))

    def masks(text, position_texts, ids, position):
        seen.clear()
        lime_explain_position(position_texts, ids, recording_fn, 40, 5)(position)
        perturbed = seen[-1]
        return [[word in t.split() for word in text.split()] for t in perturbed]

    a, b = "goal match team coach league", "market bank profit shares merger"  # equal word counts
    mask_a = masks(a, [a, b], [7, 8], 0)
    assert mask_a == masks(a, [b, a], [8, 7], 1)  # the candidate's position and neighbours do not matter
    assert mask_a != masks(b, [a, b], [7, 8], 1)  # another instance id: other perturbations


def test_bad_num_features_is_a_user_error(tmp_path, tiny_bert, toy_data):
    with pytest.raises(SystemExit) as exc:
        run_stage(tmp_path, tiny_bert, toy_data, 0, "bad")
    assert exc.value.code == 2
    assert not (tmp_path / "bad" / "tiny_picked.csv").exists()


def test_sp_features_knob_rebuilds_sp_lime_with_the_flag(tree):
    import shutil

    from tests.test_makefile import make, stages

    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    (tree / "outputs" / "sp_lime_sets").mkdir(parents=True)
    target = "outputs/sp_lime_sets/base_picked.csv"
    make(tree, "-t", target)
    assert stages(make(tree, "-n", target)) == []
    dry_run = make(tree, "-n", target, "SP_FEATURES=5")
    assert stages(dry_run) == ["generate_outputs.sp_lime.run_sp_lime_hf_model"]
    assert "--num-features 5" in dry_run
