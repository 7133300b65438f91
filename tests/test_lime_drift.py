"""The LIME drift verdict: signed RBO, the like-for-like paired design, controls and bad input.

Synthetic LIME CSVs mimic the real thing: per instance a few words carry most of the weight, every run adds
LIME's sampling noise, and a variant explained with base's seed sees the *same* noise draw as base (the
same perturbed texts), while the noise run (seed S+1) gets an independent draw.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from common.explain.similarity import pair_metrics, signed_rbo
from common.explain.drift import (COL_EXTRA, COL_METRIC, COL_N, COL_N_TO_DECIDE, COL_ROLE, COL_VARIANT, COL_VERDICT,
                                    HEADLINE, SECONDARY, SIMILARITY_COLUMNS)
from common.explain.explainer import LIME_COLUMNS
from tests.test_explanations import run_lime, trained_tiny  # noqa: F401 (a module-scoped fixture, reused)

SEED = 7
SIMILARITY_MAIN = "generate_outputs.lime_similarity_pipeline.run_lime_similarity"


def _true_weights(n_instances: int, rng) -> list[dict[str, float]]:
    """Heavy-tailed weights: a handful of words matter, the rest are near zero (like LIME on news text)."""
    out = []
    for _ in range(n_instances):
        n_words = int(rng.integers(12, 25))
        words = [f"w{j}" for j in rng.choice(500, size=n_words, replace=False)]
        weights = rng.laplace(0, 0.02, size=n_words)
        weights[:3] += rng.choice([-1, 1], size=3) * rng.uniform(0.2, 0.5, size=3)
        out.append(dict(zip(words, weights)))
    return out


def _noise_draws(true: list[dict[str, float]], lime_seed: int, sigma: float) -> list[dict[str, float]]:
    rng = np.random.default_rng(lime_seed)
    return [{w: rng.normal(0, sigma) for w in weights} for weights in true]


def write_lime_csv(path, weights: list[dict[str, float]], *, seed: int, variant: str, num_samples: int = 1000,
                   labels=None, ids=None) -> None:
    rows = []
    for position, per_word in enumerate(weights):
        iid = ids[position] if ids is not None else position * 3
        label = labels[position] if labels is not None else position % 4
        for rank, (word, weight) in enumerate(sorted(per_word.items(), key=lambda kv: -abs(kv[1])), start=1):
            rows.append([iid, f"text {iid}", label, label, label, word, weight, rank, 0.1, 0.8, 0.5, variant, seed,
                         num_samples])
    pd.DataFrame(rows, columns=LIME_COLUMNS).to_csv(path, index=False)


def _add(true, noise):
    return [{w: t[w] + n[w] for w in t} for t, n in zip(true, noise)]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """base@S, base@S+1 and variants: identical, reasons permuted, a tiny change, a moderate change."""
    folder = tmp_path_factory.mktemp("synthetic_lime")
    rng = np.random.default_rng(0)
    n = 100
    true = _true_weights(n, rng)
    sigma = 0.06
    noise_s, noise_s1 = _noise_draws(true, 100, sigma), _noise_draws(true, 101, sigma)
    write_lime_csv(folder / "base.csv", _add(true, noise_s), seed=SEED, variant="base")
    write_lime_csv(folder / "base_noise.csv", _add(true, noise_s1), seed=SEED + 1, variant="base_noise")
    write_lime_csv(folder / "same.csv", _add(true, noise_s), seed=SEED, variant="same")
    # The reasons differ (weights shuffled among each text's words), the predicted labels do not.
    permuted = [dict(zip(t, rng.permutation(list(t.values())))) for t in true]
    write_lime_csv(folder / "permuted.csv", _add(permuted, noise_s), seed=SEED, variant="permuted")
    tiny = [{w: v * (1 + rng.normal(0, 0.02)) for w, v in t.items()} for t in true]
    write_lime_csv(folder / "tiny_change.csv", _add(tiny, noise_s), seed=SEED, variant="tiny_change")
    return folder


def exit_code(main, args) -> int:
    """A stage's exit code: 0 on success, the SystemExit code of a user error."""
    try:
        return main(args)
    except SystemExit as exc:
        return exc.code


def run_stage(folder, out, *variants, extra=()):
    from generate_outputs.lime_similarity_pipeline.run_lime_similarity import main

    args = ["--base", str(folder / "base.csv"), "--noise", str(folder / "base_noise.csv"), "--output-dir", str(out),
            "--seed", "0"]
    for v in variants:
        args += ["--variant", str(folder / f"{v}.csv")]
    return exit_code(main, args + list(extra))


# ----------------------------------------------------------------------------------------------- the metric
def test_signed_rbo_known_answers():
    a = {"goal": 0.5, "match": 0.3, "team": 0.2, "the": -0.01}
    assert signed_rbo(a, dict(a)) == pytest.approx(1)
    assert signed_rbo({"x": 1.0, "y": 0.5}, {"z": 1.0, "u": 0.5}) == 0
    # the same ranking with every sign flipped shares no word
    assert signed_rbo(a, {w: -v for w, v in a.items()}) == 0
    # two words, same ranking, the second with a flipped sign: X_1 = 1, X_2 = 1
    p = 0.9
    expected = (1 - p) / p * (1 * p + 0.5 * p ** 2) + 0.5 * p ** 2
    assert signed_rbo({"a": 2.0, "b": 1.0}, {"a": 2.0, "b": -1.0}) == pytest.approx(expected)
    # top-weighted: swapping the two top words costs more than swapping the two near-zero ones
    top_swap = dict(a, goal=0.3, match=0.5)
    bottom_swap = {"goal": 0.5, "match": 0.3, "the": -0.2, "team": 0.01}
    assert signed_rbo(a, top_swap) < signed_rbo(a, bottom_swap) < 1
    # uneven lengths: a prefix of the other list still agrees strongly, and symmetrically
    short = {"goal": 0.5, "match": 0.3}
    assert signed_rbo(short, a) == pytest.approx(signed_rbo(a, short))
    assert 0.5 < signed_rbo(short, a) <= 1
    assert pair_metrics(a, dict(a))[HEADLINE] == pytest.approx(1)


# ----------------------------------------------------------------------------------------------- the verdict
def test_identical_function_is_equivalent_and_permuted_reasons_drift(synthetic, tmp_path):
    out = tmp_path / "reports"
    assert run_stage(synthetic, out, "same", "permuted", "tiny_change") == 0
    table = pd.read_csv(out / "lime_similarity.csv")
    assert list(table.columns) == SIMILARITY_COLUMNS
    head = table[table[COL_METRIC] == HEADLINE].set_index(COL_VARIANT)
    # negative: an identical function adds exactly nothing to LIME's own disagreement
    assert head.loc["same", COL_EXTRA] == 0 and head.loc["same", COL_VERDICT] == "equivalent"
    # positive: every label agrees, the reasons do not
    assert head.loc["permuted", "label_agreement"] == 1
    assert head.loc["permuted", COL_VERDICT] == "drifted"
    assert head.loc["permuted", "lower"] > head.loc["permuted", "margin"]
    # a legitimately tiny change is shown equivalent, not merely "not shown drifted"
    assert head.loc["tiny_change", COL_VERDICT] == "equivalent"
    assert head.loc["tiny_change", "upper"] < head.loc["tiny_change", "margin"]
    # the margin is a tenth of LIME's own seed-to-seed disagreement on that metric (the declared value)
    floor = head.loc["noise_floor"]
    assert floor[COL_ROLE] == "noise_floor" and floor["margin"] == pytest.approx(0.1 * (1 - floor["floor_mean"]))
    assert (head.loc[["same", "permuted"], COL_N] == 100).all()
    second = table[table[COL_METRIC] == SECONDARY].set_index(COL_VARIANT)
    assert second.loc["permuted", COL_VERDICT] == "drifted" and second.loc["same", COL_VERDICT] == "equivalent"
    md = (out / "lime_similarity.md").read_text()
    assert "| permuted" in md and "drifted" in md and "margin" in md
    manifest = json.loads((out / "lime_similarity.manifest.json").read_text())["metrics"]
    assert manifest["summary"]["permuted"]["verdict"] == "drifted" and manifest["headline"] == HEADLINE
    per_instance = pd.read_csv(out / "lime_similarity_per_instance.csv")
    assert len(per_instance) == 300 and (per_instance[per_instance.variant == "same"].rbo_same_seed == 1).all()


def test_too_few_instances_is_inconclusive_with_instances_to_decide(tmp_path):
    rng = np.random.default_rng(3)
    true = _true_weights(8, rng)
    noise_s, noise_s1 = _noise_draws(true, 1, 0.06), _noise_draws(true, 2, 0.06)
    write_lime_csv(tmp_path / "base.csv", _add(true, noise_s), seed=SEED, variant="base")
    write_lime_csv(tmp_path / "base_noise.csv", _add(true, noise_s1), seed=SEED + 1, variant="base_noise")
    # drift about the size of the margin: 8 instances cannot tell
    drift = [{w: v + rng.normal(0, 0.15) for w, v in t.items()} for t in true]
    write_lime_csv(tmp_path / "moderate.csv", _add(drift, noise_s), seed=SEED, variant="moderate")
    out = tmp_path / "reports"
    assert run_stage(tmp_path, out, "moderate") == 0
    row = pd.read_csv(out / "lime_similarity.csv").query(f"{COL_METRIC} == @HEADLINE and {COL_VARIANT} == 'moderate'")
    assert row[COL_VERDICT].item() == "inconclusive"
    assert row[COL_N_TO_DECIDE].item() > 8


def test_controls_marked_and_an_equivalent_positive_control_is_called_out(synthetic, tmp_path):
    out = tmp_path / "a"
    assert run_stage(synthetic, out, "same", "permuted",
                     extra=["--negative-control", "same", "--positive-control", "permuted"]) == 0
    roles = pd.read_csv(out / "lime_similarity.csv").set_index(COL_VARIANT)[COL_ROLE].to_dict()
    assert roles["same"] == "negative_control" and roles["permuted"] == "positive_control"
    md = (out / "lime_similarity.md").read_text()
    assert "cannot tell two fine-tunes apart" not in md and "not equivalent" not in md
    # a positive control that comes out equivalent means the metric cannot see two fine-tunes apart
    out = tmp_path / "b"
    assert run_stage(synthetic, out, "same", "tiny_change", "permuted",
                     extra=["--negative-control", "permuted", "--positive-control", "tiny_change"]) == 0
    md = (out / "lime_similarity.md").read_text()
    assert "cannot tell two fine-tunes apart" in md and "margin is to be revisited" in md
    assert "negative control `permuted`" in md and "not equivalent" in md
    warnings = json.loads((out / "lime_similarity.manifest.json").read_text())["metrics"]["control_warnings"]
    assert len(warnings) == 2


# ----------------------------------------------------------------------------------------------- bad input
def _bad_inputs(folder, rng):
    true = _true_weights(6, rng)
    noise_s, noise_s1 = _noise_draws(true, 1, 0.05), _noise_draws(true, 2, 0.05)
    base, noise = _add(true, noise_s), _add(true, noise_s1)
    write_lime_csv(folder / "base.csv", base, seed=SEED, variant="base")
    write_lime_csv(folder / "base_noise.csv", noise, seed=SEED + 1, variant="base_noise")
    write_lime_csv(folder / "fewer.csv", base[:5], seed=SEED, variant="fewer")
    write_lime_csv(folder / "other_ids.csv", base, seed=SEED, variant="other_ids", ids=[1, 2, 3, 4, 5, 6])
    write_lime_csv(folder / "other_label.csv", base, seed=SEED, variant="other_label", labels=[1, 1, 2, 3, 0, 1])
    write_lime_csv(folder / "other_seed.csv", base, seed=SEED + 5, variant="other_seed")
    write_lime_csv(folder / "other_samples.csv", base, seed=SEED, variant="other_samples", num_samples=500)
    write_lime_csv(folder / "same_seed_noise.csv", noise, seed=SEED, variant="base_noise")


@pytest.mark.parametrize("variant, message", [
    ("fewer", "explains other instances than"), ("other_ids", "explains other instances than"),
    ("other_label", "explains label"), ("other_seed", "with LIME seed 12"),
    ("other_samples", "num_samples 500")])
def test_mismatched_files_stop_naming_the_file(tmp_path, capsys, variant, message):
    _bad_inputs(tmp_path, np.random.default_rng(1))
    out = tmp_path / "reports"
    assert run_stage(tmp_path, out, variant) == 2
    err = capsys.readouterr().err
    assert f"{variant}.csv" in err and message in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())  # no partial artefact


def test_noise_run_with_base_seed_and_unknown_control_are_user_errors(tmp_path, capsys):
    from generate_outputs.lime_similarity_pipeline.run_lime_similarity import main

    _bad_inputs(tmp_path, np.random.default_rng(1))
    out = tmp_path / "reports"
    assert exit_code(main, ["--base", str(tmp_path / "base.csv"), "--noise", str(tmp_path / "same_seed_noise.csv"),
                            "--output-dir", str(out)]) == 2
    assert "same_seed_noise.csv was explained with the same LIME seed" in capsys.readouterr().err
    assert run_stage(tmp_path, out, extra=["--positive-control", "nope"]) == 2
    assert "--positive-control nope is not the name of any --variant" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


# ----------------------------------------------------------------------------------------------- end to end
def _neutralise_top_words(model_dir, out_dir, lime_csv, texts):
    """Base with the embedding rows of its top explanation words replaced by [PAD]'s, one word at a time,
    keeping a word only while every instance's predicted label stays the same. Returns the words changed."""
    import torch

    from common.models.modeling import load_model_folder

    model, tokenizer, _ = load_model_folder(model_dir)
    model.eval()
    encoded = tokenizer(texts, padding=True, return_tensors="pt")

    def predict():
        with torch.no_grad():
            return model(**encoded).logits.argmax(-1)

    reference = predict()
    frame = pd.read_csv(lime_csv, keep_default_na=False, dtype={"word": str})
    top_words = frame[frame["rank"] <= 2]["word"].value_counts().index.tolist()
    embeddings = model.get_input_embeddings().weight
    pad = embeddings[tokenizer.pad_token_id].detach().clone()
    changed = []
    for word in top_words:
        token = tokenizer.convert_tokens_to_ids(word)
        saved = embeddings[token].detach().clone()
        with torch.no_grad():
            embeddings[token] = pad
        if torch.equal(predict(), reference):
            changed.append(word)
        else:  # this word alone decides some instance's label: keep it
            with torch.no_grad():
                embeddings[token] = saved
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return changed


def test_planted_drift_through_the_lime_stage_flips_the_verdict(tmp_path, trained_tiny, toy_data):
    """Real LIME runs on the tiny BERT: base, base with another seed, an identical copy of base, and base
    with its top explanation words' embeddings neutralised (same labels on every instance, other reasons)."""
    import shutil

    lime, n, samples = tmp_path / "lime", 16, 200
    for name, model, seed in (("base", trained_tiny, 1), ("base_noise", trained_tiny, 2)):
        assert run_lime(model, toy_data, lime / f"{name}.csv", seed=seed, n=n, samples=samples,
                        reference=trained_tiny, variant=name) == 0
    texts = pd.read_csv(lime / "base.csv", keep_default_na=False).drop_duplicates("instance_id")["text"].tolist()
    assert len(texts) == n
    copy = shutil.copytree(trained_tiny, tmp_path / "copy")
    changed = _neutralise_top_words(trained_tiny, tmp_path / "planted", lime / "base.csv", texts)
    assert changed  # the plant changed something
    for name, model in (("copy", copy), ("planted", tmp_path / "planted")):
        assert run_lime(model, toy_data, lime / f"{name}.csv", seed=1, n=n, samples=samples,
                        reference=trained_tiny, variant=name) == 0
    out = tmp_path / "reports"
    assert run_stage(lime, out, "copy", "planted", extra=["--negative-control", "copy"]) == 0
    head = pd.read_csv(out / "lime_similarity.csv").query(f"{COL_METRIC} == @HEADLINE").set_index(COL_VARIANT)
    assert head.loc["planted", "label_agreement"] >= 0.99
    assert head.loc["planted", COL_VERDICT] == "drifted", head.loc["planted"].to_dict()
    assert head.loc["copy", COL_VERDICT] == "equivalent" and head.loc["copy", COL_EXTRA] == 0
    assert head.loc["copy", COL_ROLE] == "negative_control"


def test_a_positive_control_not_shown_drifted_is_called_out():
    """The positive control is the far end of the scale: unless it comes out drifted, the margin does not
    separate two fine-tunes at these instances, and the report says so (planted: drifted -> no sentence)."""
    from common.explain.drift import control_warnings

    def control(verdict, spearman="drifted"):
        return {"ctrl": {"role": "positive_control", "verdict": verdict, "extra": 0.055, "margin": 0.067,
                         "spearman_verdict": spearman}}

    assert control_warnings(control("drifted")) == []
    inconclusive = control_warnings(control("inconclusive"))
    assert len(inconclusive) == 1 and "**inconclusive**" in inconclusive[0] and "not drifted" in inconclusive[0]
    assert "+0.055" in inconclusive[0] and "revisited" in inconclusive[0]
    both = control_warnings(control("inconclusive", spearman="equivalent"))
    assert len(both) == 2 and "equivalent** on spearman" in both[1]
    assert "cannot tell two fine-tunes apart" in control_warnings(control("equivalent"))[0]
