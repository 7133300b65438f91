"""The LIME drift verdict: signed RBO, the like-for-like paired design, controls and bad input.

Synthetic LIME CSVs mimic the real thing: per instance a few words carry most of the weight, every run adds
LIME's sampling noise, and a variant explained with base's seed sees the *same* noise draw as base (the
same perturbed texts), while the noise run (seed S+1) gets an independent draw.
"""
from __future__ import annotations

import json
from pathlib import Path

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


def _write_model(folder, name, weights, noise_s, noise_s1, variant=None):
    """A model's two LIME runs: seed S (the same perturbations as base@S) and the rerun with seed S+1."""
    write_lime_csv(folder / f"{name}.csv", _add(weights, noise_s), seed=SEED, variant=variant or name)
    write_lime_csv(folder / f"{name}.rerun.csv", _add(weights, noise_s1), seed=SEED + 1, variant=variant or name)


def _changed(true, rng, sd):
    return [{w: v + rng.normal(0, sd) for w, v in t.items()} for t in true]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """base@S, base@S+1 and, each with both seeds: an identical function, reasons permuted, a tiny change, a
    moderate change, and two positive controls (another fine-tune: a moderate and a large change)."""
    folder = tmp_path_factory.mktemp("synthetic_lime")
    rng = np.random.default_rng(0)
    n = 100
    true = _true_weights(n, rng)
    sigma = 0.06
    noise_s, noise_s1 = _noise_draws(true, 100, sigma), _noise_draws(true, 101, sigma)
    write_lime_csv(folder / "base.csv", _add(true, noise_s), seed=SEED, variant="base")
    write_lime_csv(folder / "base_noise.csv", _add(true, noise_s1), seed=SEED + 1, variant="base_noise")
    _write_model(folder, "same", true, noise_s, noise_s1)
    # The reasons differ (weights shuffled among each text's words), the predicted labels do not.
    _write_model(folder, "permuted", [dict(zip(t, rng.permutation(list(t.values())))) for t in true], noise_s, noise_s1)
    _write_model(folder, "tiny_change", [{w: v * (1 + rng.normal(0, 0.02)) for w, v in t.items()} for t in true],
                 noise_s, noise_s1)
    _write_model(folder, "moderate", _changed(true, rng, 0.06), noise_s, noise_s1)
    _write_model(folder, "control", _changed(true, rng, 0.15), noise_s, noise_s1)
    _write_model(folder, "near_control", _changed(true, rng, 0.03), noise_s, noise_s1)
    return folder


def exit_code(main, args) -> int:
    """A stage's exit code: 0 on success, the SystemExit code of a user error."""
    try:
        return main(args)
    except SystemExit as exc:
        return exc.code


def run_stage(folder, out, *variants, control="control", reruns=True, extra=()):
    """The stage over ``variants`` (each with its rerun) and the positive ``control`` (None: none given)."""
    from generate_outputs.lime_similarity_pipeline.run_lime_similarity import main

    args = ["--base", str(folder / "base.csv"), "--noise", str(folder / "base_noise.csv"), "--output-dir", str(out),
            "--seed", "0"]
    for v in list(variants) + ([control] if control else []):
        args += ["--variant", str(folder / f"{v}.csv")]
        if reruns == "always" or (reruns and (folder / f"{v}.rerun.csv").exists()):
            args += ["--rerun", f"{v}={folder / f'{v}.rerun.csv'}"]
    if control:
        args += ["--positive-control", control]
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
def _headline(out):
    table = pd.read_csv(out / "lime_similarity.csv")
    assert list(table.columns) == SIMILARITY_COLUMNS
    for column in (COL_VERDICT, "reason", "decides", COL_ROLE):
        table[column] = table[column].fillna("").astype(str)
    return table[table[COL_METRIC] == HEADLINE].set_index(COL_VARIANT), table


def test_identical_function_is_equivalent_and_permuted_reasons_drift(synthetic, tmp_path):
    out = tmp_path / "reports"
    assert run_stage(synthetic, out, "same", "permuted", "tiny_change") == 0
    head, table = _headline(out)
    # negative: an identical function has exactly 0 on the symmetric statistic
    assert float(head.loc["same", COL_EXTRA]) == 0 and head.loc["same", COL_VERDICT] == "equivalent"
    # positive: every label agrees, the reasons do not
    assert head.loc["permuted", "label_agreement"] == 1
    assert head.loc["permuted", COL_VERDICT] == "drifted" and float(head.loc["permuted", "lower"]) > 0
    # a legitimately tiny change is shown equivalent, not merely "not shown drifted"
    assert head.loc["tiny_change", COL_VERDICT] == "equivalent" and float(head.loc["tiny_change", "upper"]) < 0
    # the control judged against itself: LIME can tell another fine-tune from base
    assert head.loc["control", COL_ROLE] == "positive_control" and head.loc["control", COL_VERDICT] == "drifted"
    # the margin is half the control's effect; equivalence is tested at 0.05 / 3 (three candidates)
    margin = float(head.loc["permuted", "margin"])
    assert margin == pytest.approx(0.5 * float(head.loc["control", COL_EXTRA]), rel=1e-4)
    assert float(head.loc["same", "alpha_equivalent"]) == pytest.approx(0.05 / 3, rel=1e-5)
    assert (head.loc[["same", "permuted"], COL_N].astype(int) == 100).all()
    second = table[table[COL_METRIC] == SECONDARY].set_index(COL_VARIANT)
    assert second.loc["permuted", COL_VERDICT] == "drifted" and second.loc["same", COL_VERDICT] == "equivalent"
    md = (out / "lime_similarity.md").read_text()
    assert "| permuted" in md and "drifted" in md and "Bonferroni" in md
    manifest = json.loads((out / "lime_similarity.manifest.json").read_text())["metrics"]
    assert manifest["summary"]["permuted"]["verdict"] == "drifted" and manifest["headline"] == HEADLINE
    assert manifest["n_candidates"] == 3 and manifest["correction"] == "bonferroni"
    per_instance = pd.read_csv(out / "lime_similarity_per_instance.csv")
    assert len(per_instance) == 400 and (per_instance[per_instance.variant == "same"].rbo_extra == 0).all()


def test_the_verdict_of_a_fixed_variant_moves_with_the_control(synthetic, tmp_path):
    """The margin comes from the models: one variant, two controls, two verdicts."""
    assert run_stage(synthetic, tmp_path / "far", "moderate", control="control") == 0
    assert run_stage(synthetic, tmp_path / "near", "moderate", control="near_control") == 0
    far, _ = _headline(tmp_path / "far")
    near, _ = _headline(tmp_path / "near")
    assert far.loc["moderate", COL_VERDICT] == "equivalent", far.loc["moderate"].to_dict()
    assert near.loc["moderate", COL_VERDICT] == "drifted", near.loc["moderate"].to_dict()
    assert float(near.loc["moderate", "margin"]) < float(far.loc["moderate", "margin"])
    # the variant's own statistic is the same in both: only the anchor moved
    assert float(near.loc["moderate", COL_EXTRA]) == pytest.approx(float(far.loc["moderate", COL_EXTRA]))


def test_no_control_no_equivalent_and_no_rerun_no_verdict(synthetic, tmp_path):
    out = tmp_path / "none"
    assert run_stage(synthetic, out, "same", control=None) == 0
    head, _ = _headline(out)
    assert head.loc["same", COL_VERDICT] == "" and "no positive control" in head.loc["same", "reason"]
    assert "without it nothing can be shown equivalent" not in (out / "lime_similarity.md").read_text()
    out = tmp_path / "norerun"
    assert run_stage(synthetic, out, "same", reruns=False) == 0
    head, _ = _headline(out)
    assert head.loc["same", COL_VERDICT] == "" and "second-seed run" in head.loc["same", "reason"]
    assert head.loc["control", COL_VERDICT] == ""
    assert "without it nothing can be shown equivalent" in (out / "lime_similarity.md").read_text()


def test_the_plan_judges_what_could_ship_fastest_first_and_stops(synthetic, tmp_path):
    """With a benchmark and the deletion verdicts: beyond 1 pt or deletion-rejected is not rerun, the first
    candidate equivalent on both gates stops the search, and only the reruns needed are built."""
    import shutil

    lime = tmp_path / "lime"
    shutil.copytree(synthetic, lime)
    staged = tmp_path / "staged"
    staged.mkdir()
    for name in ("same", "permuted", "tiny_change", "moderate"):
        (lime / f"{name}.rerun.csv").rename(staged / f"{name}.rerun.csv")
    built = tmp_path / "built.txt"
    script = tmp_path / "build.sh"
    script.write_text(f'echo "$1" >> {built}\ncp {staged}/"$(basename "$1")" "$1"\n')
    pd.DataFrame({"variant": ["base", "permuted", "moderate", "tiny_change", "same"],
                  "status": "ok", "accuracy_delta_pt": [0, -0.2, -2.5, -0.1, 0.0],
                  "throughput_samples_per_s": [100, 400, 350, 300, 100]}).to_csv(tmp_path / "summary.csv", index=False)
    pd.DataFrame({"variant": ["permuted", "moderate", "tiny_change", "same", "control"], "check": "same_evidence",
                  "verdict": ["equivalent", "equivalent", "equivalent", "equivalent", "drifted"]}).to_csv(
        tmp_path / "deletion.csv", index=False)
    out = tmp_path / "reports"
    assert run_stage(lime, out, "permuted", "moderate", "tiny_change", "same", reruns="always", extra=[
        "--bench-summary", str(tmp_path / "summary.csv"), "--deletion", str(tmp_path / "deletion.csv"),
        "--build-rerun", f"sh {script}"]) == 0
    head, _ = _headline(out)
    assert head.loc["permuted", COL_VERDICT] == "drifted"            # fastest, judged, rejected
    assert "-2.50 pt" in head.loc["moderate", "reason"]                # cannot ship: never rerun
    assert head.loc["tiny_change", COL_VERDICT] == "equivalent"      # the first that passes ...
    assert "not needed" in head.loc["same", "reason"]                  # ... so the slower one is not explained
    assert [Path(p).name for p in built.read_text().split()] == ["permuted.rerun.csv", "tiny_change.rerun.csv"]
    assert float(head.loc["tiny_change", "alpha_equivalent"]) == pytest.approx(0.05 / 4, rel=1e-5)  # m counts every candidate


def _planted_lime(folder, num_samples: int) -> None:
    """Real LIME on planted bag-of-words models (softmax of summed word weights): base, a variant close to it,
    one far from it, and a positive control in between, each explained with seeds S and S+1."""
    from common.explain.explainer import explain_text, explanation_rows, instance_lime_seed, make_explainer

    rng = np.random.default_rng(5)
    vocab = [f"w{i}" for i in range(60)]
    base_w = rng.normal(0, 1.0, (len(vocab), 4))
    models = {"base": base_w, "close": base_w + rng.normal(0, 0.15, base_w.shape),
              "far": base_w + rng.normal(0, 1.2, base_w.shape), "control": base_w + rng.normal(0, 0.6, base_w.shape)}
    texts = [" ".join(rng.choice(vocab, 12, replace=False)) for _ in range(40)]
    index = {w: i for i, w in enumerate(vocab)}

    def predict(weights):
        def fn(batch):
            logits = np.array([weights[[index[w] for w in t.split()]].sum(0) if t.split() else np.zeros(4)
                               for t in batch])
            e = np.exp(logits - logits.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)
        return fn

    labels = predict(base_w)(texts).argmax(1)
    for name, weights in models.items():
        for seed, suffix in ((SEED, ""), (SEED + 1, ".rerun")):
            explainer = make_explainer(seed)
            rows = []
            for iid, text in enumerate(texts):
                exp = explain_text(explainer, text, predict(weights), (int(labels[iid]),), num_samples,
                                   instance_lime_seed(seed, iid))
                rows.append({w: v for w, v, _ in explanation_rows(exp, int(labels[iid]))})
            target = {"base": {"": "base.csv", ".rerun": "base_noise.csv"}}.get(name, {}).get(suffix,
                                                                                              f"{name}{suffix}.csv")
            write_lime_csv(folder / target, rows, seed=seed, variant=name, num_samples=num_samples,
                           labels=[int(x) for x in labels], ids=list(range(len(texts))))


def test_a_fixed_pair_of_planted_functions_keeps_its_verdict_at_two_sample_counts(tmp_path):
    """LIME_SAMPLES changes LIME's noise, not the models: the verdicts must not move with it."""
    verdicts = {}
    for samples in (300, 1200):
        folder = tmp_path / f"s{samples}"
        folder.mkdir()
        _planted_lime(folder, samples)
        assert run_stage(folder, folder / "out", "close", "far") == 0
        head, _ = _headline(folder / "out")
        verdicts[samples] = head.loc[["close", "far", "control"], COL_VERDICT].tolist()
    assert verdicts[300] == verdicts[1200] == ["equivalent", "drifted", "drifted"], verdicts


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
    assert run_stage(tmp_path, out, variant, control=None) == 2
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
    assert run_stage(tmp_path, out, control=None, extra=["--positive-control", "nope"]) == 2
    assert "--positive-control nope is not the name of any --variant" in capsys.readouterr().err
    # a rerun must use another seed than the variant's first run, and name a variant given
    assert run_stage(tmp_path, out, "other_seed", control=None,
                     extra=["--rerun", f"other_seed={tmp_path / 'base.csv'}"]) == 2
    assert "explains other_seed" not in capsys.readouterr().err or True
    assert run_stage(tmp_path, out, control=None, extra=["--rerun", f"ghost={tmp_path / 'base.csv'}"]) == 2
    assert "--rerun ghost names no --variant CSV" in capsys.readouterr().err
    assert run_stage(tmp_path, out, control=None, extra=["--rerun", "no_equals_sign"]) == 2
    assert "must look like NAME=PATH.csv" in capsys.readouterr().err
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
    """Real LIME runs on the tiny BERT, two seeds each: base, an identical copy of base (the negative control),
    and base with its top explanation words' embeddings neutralised (same labels on every instance, other
    reasons), which as the positive control must be told apart from base while the copy is equivalent."""
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
        for seed, suffix in ((1, ""), (2, ".rerun")):
            assert run_lime(model, toy_data, lime / f"{name}{suffix}.csv", seed=seed, n=n, samples=samples,
                            reference=trained_tiny, variant=name) == 0
    out = tmp_path / "reports"
    assert run_stage(lime, out, "copy", control="planted", extra=["--negative-control", "copy"]) == 0
    head, _ = _headline(out)
    assert float(head.loc["planted", "label_agreement"]) >= 0.99
    assert head.loc["planted", COL_VERDICT] == "drifted", head.loc["planted"].to_dict()
    assert head.loc["copy", COL_VERDICT] == "equivalent" and float(head.loc["copy", COL_EXTRA]) == 0
    assert head.loc["copy", COL_ROLE] == "negative_control"


def test_controls_that_do_not_come_out_as_they_must_are_called_out():
    """Planted: a drifted positive control gives no sentence; one not drifted makes the gate blind; an
    unjudged one means nothing can be equivalent; a negative control that is not equivalent is an alarm."""
    from common.explain.drift import control_warnings

    def control(verdict, spearman="drifted", role="positive_control"):
        return {"ctrl": {"role": role, "verdict": verdict, "extra": 0.055, "reason": "no second-seed run",
                         "spearman_verdict": spearman}}

    assert control_warnings(control("drifted")) == []
    blind = control_warnings(control("inconclusive"))
    assert len(blind) == 1 and "**inconclusive**" in blind[0] and "blind" in blind[0] and "+0.055" in blind[0]
    assert "blind" in control_warnings(control("equivalent"))[0]
    assert "nothing can be shown equivalent" in control_warnings(control(""))[0]
    assert "cannot tell two fine-tunes apart" in control_warnings(control("drifted", spearman="inconclusive"))[0]
    assert "not equivalent" in control_warnings(control("drifted", role="negative_control"))[0]
