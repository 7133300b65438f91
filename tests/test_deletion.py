"""The deletion test (issues 12 and 24): ERASER comprehensiveness/sufficiency, the per-instance distance of the
AOPC curves and the three-way verdict against a positive control.

Exact values on a hand-made classifier; against a planted control (the same words, a little weaker): a
planted variant that keeps every label but keys on other words must come out ``drifted``, one whose per-class
reliance moves up and down (signed mean change about 0) must *not* be ``equivalent``, an identical function
``equivalent``; no control, no verdict; instances with no positive word excluded and counted; the stage end
to end on the tiny BERT; mismatched LIME CSVs stop with exit 2; dynamic int8 does not depend on --batch-size.
"""
from __future__ import annotations

import json
import logging
import re

import numpy as np
import pandas as pd
import pytest

from common.explain.deletion import (DELETION_COLUMNS, PER_INSTANCE_COLUMNS, LimeRun, deletion_texts, judge_variant,
                             measure)
from tests.conftest import CLASS_WORDS, FILLER, copy_sources, make_tiny_bert
from tests.test_explanations import run_lime

RUN_MAIN = "generate_outputs.deletion_test.run_deletion_test"


def _softmax(logits) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text))


class CountingClassifier:
    """p(class 0) = 0.1 + 0.2 x (distinct words of {goal, match, team} present); the rest shared equally."""

    batch_dependent = False
    keys = {"goal", "match", "team"}

    def __call__(self, texts):
        p0 = np.array([0.1 + 0.2 * len(_words(t) & self.keys) for t in texts])
        return np.column_stack([p0] + [(1 - p0) / 3] * 3)


class KeyedClassifier:
    """Class c's logit = strength[c] x (how many of ``keys[c]`` the text contains): a model that relies on
    exactly the words it is given (``strength`` one number or one per class)."""

    batch_dependent = False

    def __init__(self, keys: list[set[str]], strength: float | list[float] = 2.0):
        self.keys = keys
        self.strength = [strength] * len(keys) if np.isscalar(strength) else list(strength)

    def predict_proba(self, texts, batch_size=None):
        return _softmax([[s * len(_words(t) & k) for s, k in zip(self.strength, self.keys)] for t in texts])

    __call__ = predict_proba


def _run(path, texts: dict, explained: dict, weights: dict) -> LimeRun:
    return LimeRun(path, texts, explained, weights, {"1"}, {"200"})


# ----------------------------------------------------------------------------------------------- (a) exact values
def test_deletion_removes_every_occurrence_the_way_lime_does():
    removed, kept = deletion_texts("U.S. goal, goal!", ["goal"])
    assert removed == "U.S. , !"          # both occurrences gone, separators kept (LIME's bow removal)
    assert kept == ".. goal, goal!"       # only the word left
    with pytest.raises(Exception, match="not words of the text"):
        deletion_texts("U.S. goal", ["match"])


def test_comprehensiveness_and_sufficiency_exact_values():
    text = "goal match team the goal"
    weights = {"goal": 0.5, "match": 0.3, "the": 0.1, "team": -0.2}   # 3 positive words, 4 distinct words
    run = _run("lime.csv", {7: text}, {7: 0}, {7: weights})
    frame = measure(run, run, CountingClassifier(), CountingClassifier())
    assert list(frame.columns) == PER_INSTANCE_COLUMNS
    mine = frame[(frame.words_from == "base") & (frame.model == "base")].set_index("k")
    assert list(mine.index) == [1, 2, 3, 4]                          # k capped at the 4 distinct words
    assert mine.words.tolist() == ["goal", "goal match", "goal match the", "goal match the"]  # positive only
    assert mine.p_full.tolist() == pytest.approx([0.7] * 4)
    # k=1: without goal -> {match, team} 0.5; only goal -> 0.3. k>=2: without -> {team} 0.3; only -> 0.5
    assert mine.comprehensiveness.tolist() == pytest.approx([0.2, 0.4, 0.4, 0.4])
    assert mine.sufficiency.tolist() == pytest.approx([0.4, 0.2, 0.2, 0.2])
    assert mine.comprehensiveness.mean() == pytest.approx(0.35) and mine.sufficiency.mean() == pytest.approx(0.25)
    # base's and the variant's words on base and on the variant: 3 settings x 4 k
    assert len(frame) == 12 and set(zip(frame.words_from, frame.model)) == {
        ("base", "base"), ("base", "variant"), ("variant", "variant")}


# ----------------------------------------------------------------------------------------------- (b) verdict flips
@pytest.fixture(scope="module")
def keyed_runs():
    """40 texts, each with 2 words of class c's set A, 2 of its set B and 3 fillers. Base keys on A; the
    positive control on A too, a little weaker (another model of the same quality); the planted variants on B
    (same labels everywhere) or on A with per-class strengths that offset (stronger for two classes, weaker
    for two). All explained by real LIME with the same seed."""
    from common.explain.explainer import explain_text, explanation_rows, instance_lime_seed, make_explainer

    rng = np.random.default_rng(0)
    set_a = [set(words[:3]) for words in CLASS_WORDS]
    set_b = [set(words[3:]) for words in CLASS_WORDS]
    texts, labels = {}, {}
    for iid in range(40):
        c = iid % 4
        words = (list(rng.choice(sorted(set_a[c]), 2, replace=False)) + list(rng.choice(sorted(set_b[c]), 2, replace=False))
                 + list(rng.choice(FILLER, 3, replace=False)))
        rng.shuffle(words)
        texts[iid], labels[iid] = " ".join(words), c
    models = {"base": KeyedClassifier(set_a), "other_words": KeyedClassifier(set_b),
              "identical": KeyedClassifier(set_a), "control": KeyedClassifier(set_a, strength=1.8),
              "offsetting": KeyedClassifier(set_a, strength=[2.5, 1.8, 2.5, 1.8])}
    explainer = make_explainer(1)
    runs = {}
    for name, model in models.items():
        weights = {}
        for iid, text in texts.items():
            exp = explain_text(explainer, text, model, (labels[iid],), 200, instance_lime_seed(1, iid))
            weights[iid] = {word: weight for word, weight, _ in explanation_rows(exp, labels[iid])}
        runs[name] = _run(f"{name}.csv", texts, labels, weights)
    frames = {name: measure(runs["base"], runs[name], models["base"], models[name]) for name in models}
    return models, runs, set_a, frames


def test_planted_variant_with_same_labels_but_other_words_is_drifted(keyed_runs):
    models, runs, set_a, frames = keyed_runs
    # LIME finds what base keys on: its top-2 positive words are A words on every instance
    assert all(set(sorted(w, key=w.get, reverse=True)[:2]) <= set().union(*set_a) for w in runs["base"].weights.values())
    rows, means = judge_variant(frames["other_words"], "other_words", frames["control"])
    assert means["label_agreement"] >= 0.99                      # the labels cannot tell it apart ...
    by = {r["check"]: r for r in rows}
    assert by["same_evidence"]["verdict"] == "drifted"         # ... the deletion test can
    assert by["same_evidence"]["lower"] > 0                     # farther than half the control, shown
    assert by["same_evidence"]["mean"] > by["same_evidence"]["control_mean"]
    assert by["same_evidence_sufficiency"]["verdict"] == "drifted"
    assert set(DELETION_COLUMNS) == set(rows[0])


def test_identical_function_is_equivalent_and_the_control_against_itself_is_drifted(keyed_runs):
    models, runs, _, frames = keyed_runs
    rows, means = judge_variant(frames["identical"], "identical", frames["control"])
    for row in rows:
        assert row["verdict"] == "equivalent" and row["mean"] == pytest.approx(0, abs=1e-12), row
        assert row["margin"] == pytest.approx(0.5 * row["control_mean"]) and row["control_mean"] > 0
    assert means["base_comprehensiveness"] > 0.3                # deleting base's words matters to base
    # the control is farther than half of itself: the gate can tell another model from base, not blind
    control_rows, _ = judge_variant(frames["control"], "control", frames["control"])
    assert {r["check"]: r["verdict"] for r in control_rows}["same_evidence"] == "drifted"


def test_offsetting_changes_are_not_equivalent(keyed_runs):
    """Relies more on base's words for two classes (strength 2.5: the largest rise this model allows, +0.014 AOPC),
    less for two (1.8, -0.015): the signed mean change of the AOPC is about 0 (the old signed-mean gate called
    this equivalent), the per-instance distance is about the control's, so more than half of it."""
    from common.explain.deletion import aopc

    models, runs, _, frames = keyed_runs
    frame = frames["offsetting"]
    signed = (aopc(frame, "base", "variant", "comprehensiveness") - aopc(frame, "base", "base", "comprehensiveness"))
    assert abs(signed.mean()) < 0.25 * signed.abs().mean()       # the changes offset ...
    by = {r["check"]: r for r in judge_variant(frame, "offsetting", frames["control"])[0]}
    assert by["same_evidence"]["verdict"] != "equivalent"       # ... and still cannot pass
    assert by["same_evidence"]["verdict"] == "drifted"


def test_no_control_no_verdict_and_the_control_moves_the_margin(keyed_runs):
    models, runs, _, frames = keyed_runs
    rows, _ = judge_variant(frames["identical"], "identical", None)
    assert all(r["verdict"] == "" and r["reason"] for r in rows)
    # a closer control (the same words at strength 1.95, not 1.8): the margin follows the control
    near = KeyedClassifier(models["base"].keys, strength=1.95)
    near_frame = measure(runs["base"], runs["control"], models["base"], near)  # same_evidence: base's words only
    by_far = {r["check"]: r for r in judge_variant(frames["offsetting"], "v", frames["control"])[0]}
    by_near = {r["check"]: r for r in judge_variant(frames["offsetting"], "v", near_frame)[0]}
    assert by_near["same_evidence"]["margin"] < by_far["same_evidence"]["margin"]


def test_instances_without_a_positive_base_word_are_excluded_and_counted(keyed_runs):
    models, runs, _, frames = keyed_runs
    weights = dict(runs["base"].weights)
    for iid in (0, 1, 2):                                      # three base explanations with no positive word
        weights[iid] = {w: -abs(v) for w, v in weights[iid].items()}
    base = _run("base.csv", runs["base"].texts, runs["base"].explained, weights)
    frame = measure(base, runs["identical"], models["base"], models["identical"])
    control = measure(base, runs["control"], models["base"], models["control"])
    rows, means = judge_variant(frame, "identical", control)
    assert means["n_excluded"] == 3 and means["n_instances"] == 40
    gate = {r["check"]: r for r in rows}["same_evidence"]
    assert gate["n"] == 37 and gate["n_excluded"] == 3 and gate["verdict"] == "equivalent"


# ----------------------------------------------------------------------------------------------- (c) end to end
@pytest.fixture(scope="module")
def lime_csvs(tmp_path_factory, toy_data_module):
    """Two tiny BERTs (random inits 0 and 1) explained on 6 toy instances for base's label."""
    root = tmp_path_factory.mktemp("deletion")
    base, other = make_tiny_bert(root / "base", seed=0), make_tiny_bert(root / "other", seed=1)
    csvs = {"base": root / "lime" / "base.csv", "other": root / "lime" / "other.csv"}
    assert run_lime(base, toy_data_module, csvs["base"], reference=base, variant="base") == 0
    assert run_lime(other, toy_data_module, csvs["other"], reference=base, variant="other") == 0
    return {"root": root, "base": base, "other": other, "csvs": csvs, "data": toy_data_module}


@pytest.fixture(scope="module")
def toy_data_module(tmp_path_factory):
    from tests.conftest import toy_texts

    folder = tmp_path_factory.mktemp("toy_data")
    for split, n, seed in (("train", 40, 1), ("test", 24, 2)):
        texts, labels = toy_texts(n, seed)
        pd.DataFrame({"text": texts, "label": labels}).to_csv(folder / f"{split}.csv", index=False)
    return folder


def deletion_args(setup, variant_lime, model, output, *extra):
    """``model`` None: the models are the ones the LIME CSVs' manifests name."""
    models = [] if model is None else ["--base-model", str(setup["base"]), "--model", str(model)]
    return ["--base-lime", str(setup["csvs"]["base"]), "--variant-lime", str(variant_lime), *models,
            "--output", str(output), "--max-len", "64", "--seed", "3", "--threads", "1", "--device", "cpu", *extra]


def test_stage_end_to_end_and_report(lime_csvs, tmp_path):
    from common.models.classifier import load_classifier
    from common.manifest import read_manifest
    from generate_outputs.deletion_test.build_deletion_report import main as report_main
    from generate_outputs.deletion_test.run_deletion_test import main

    out = tmp_path / "deletion"
    # the models default to the ones LIME explained (as Make runs it)
    assert main(deletion_args(lime_csvs, lime_csvs["csvs"]["other"], None, out / "other.csv")) == 0
    # the negative control: base's own function and explanations
    assert main(deletion_args(lime_csvs, lime_csvs["csvs"]["base"], lime_csvs["base"], out / "same.csv",
                              "--variant", "same")) == 0

    frame = pd.read_csv(out / "other.csv", keep_default_na=False)
    assert list(frame.columns) == PER_INSTANCE_COLUMNS
    lime = pd.read_csv(lime_csvs["csvs"]["base"], keep_default_na=False).drop_duplicates("instance_id")
    assert sorted(frame.instance_id.unique()) == sorted(lime.instance_id)
    for row in lime.itertuples():  # 3 settings x min(5, distinct words) rows per instance
        k_max = min(5, len({w for w in re.split(r"\W+", row.text) if w}))
        assert (frame.instance_id == row.instance_id).sum() == 3 * k_max
    # the probabilities are the models' own: recompute one deleted text independently
    first = frame[(frame.words_from == "base") & (frame.model == "variant")].iloc[0]
    text = lime.set_index("instance_id").loc[first.instance_id, "text"]
    removed, _ = deletion_texts(text, first.words.split())
    other = load_classifier(lime_csvs["other"], device="cpu", max_len=64)
    probs = other.predict_proba([text, removed])[:, first.explained_label]
    assert first.p_full == pytest.approx(probs[0], abs=1e-6) and first.p_removed == pytest.approx(probs[1], abs=1e-6)
    assert np.allclose(frame.comprehensiveness, frame.p_full - frame.p_removed, atol=1e-6)
    assert np.allclose(frame.sufficiency, frame.p_full - frame.p_kept, atol=1e-6)

    manifest = read_manifest(out / "other.csv")
    assert manifest["stage"] == "deletion_test" and manifest["variant"] == "other"
    assert manifest["arguments"]["model"] == str(lime_csvs["other"])
    assert manifest["arguments"]["base_model"] == str(lime_csvs["base"])
    assert "checks" not in manifest["metrics"]                  # the stage describes; only the report judges
    assert manifest["metrics"]["distance_same_evidence"] > 0
    assert manifest["inputs"]["variant_lime"]["sha256"] and manifest["metrics"]["n_instances"] == len(lime)

    reports = tmp_path / "reports"
    # without a positive control nothing can be equivalent, and the report says why
    assert report_main(["--variant", str(out / "other.csv"), "--variant", str(out / "same.csv"),
                        "--output-dir", str(reports / "blind"), "--seed", "3"]) == 0
    blind = pd.read_csv(reports / "blind" / "deletion.csv", keep_default_na=False)
    assert (blind.verdict == "").all() and (blind.reason != "").all()
    assert "positive control" in (reports / "blind" / "deletion.md").read_text()

    # the other random init is the positive control: base's own function must come out equivalent
    assert report_main(["--variant", str(out / "other.csv"), "--variant", str(out / "same.csv"),
                        "--positive-control", "other", "--output-dir", str(reports), "--seed", "3"]) == 0
    table = pd.read_csv(reports / "deletion.csv", keep_default_na=False)
    assert list(table.columns) == DELETION_COLUMNS
    assert len(table) == 8 and set(table.variant) == {"other", "same"}
    same = table[table.variant == "same"]
    assert (same.verdict == "equivalent").all() and np.allclose(same["mean"], 0)
    assert (table.n + table.n_excluded == len(lime)).all()
    # the report's distances are the per-variant stage's
    gate = table[(table.variant == "other") & (table.check == "same_evidence")].iloc[0]
    assert gate["mean"] == pytest.approx(manifest["metrics"]["distance_same_evidence"], rel=1e-6)
    assert gate["control_mean"] == pytest.approx(gate["mean"]) and gate["margin"] == pytest.approx(0.5 * gate["mean"])
    md = (reports / "deletion.md").read_text()
    assert "| other" in md and "| same" in md and "deletion.png" in md and "Bonferroni" in md
    if gate.verdict != "drifted":                               # a control the gate cannot tell apart: say so
        assert "blind" in md
    assert (reports / "deletion.png").read_bytes()[:4] == b"\x89PNG"
    report_manifest = json.loads((reports / "deletion.manifest.json").read_text())
    assert report_manifest["gate"] == "same_evidence" and len(report_manifest["checks"]) == 8
    assert report_manifest["positive_control"] == "other" and report_manifest["n_candidates"] == 1
    with pytest.raises(SystemExit) as exc:                       # a control that is not among the variants
        report_main(["--variant", str(out / "same.csv"), "--positive-control", "other",
                     "--output-dir", str(reports / "x")])
    assert exc.value.code == 2


# ----------------------------------------------------------------------------------------------- (d) bad input
@pytest.mark.parametrize("mismatch, expected", [
    ("instances", "other instances"),
    ("label", "explains label"),
    ("seed", "seed"),
    ("num_samples", "num_samples"),
])
def test_mismatched_lime_csvs_exit_2_naming_the_file(lime_csvs, tmp_path, caplog, mismatch, expected):
    from generate_outputs.deletion_test.run_deletion_test import main

    frame = pd.read_csv(lime_csvs["csvs"]["base"], keep_default_na=False, dtype={"word": str})
    first = frame.instance_id.iloc[0]
    if mismatch == "instances":
        frame = frame[frame.instance_id != first]
    elif mismatch == "label":
        frame.loc[frame.instance_id == first, "explained_label"] = (frame.explained_label.iloc[0] + 1) % 4
    else:
        frame[mismatch] = frame[mismatch] + 1
    bad = tmp_path / f"bad_{mismatch}.csv"
    frame.to_csv(bad, index=False)
    output = tmp_path / "out" / "bad.csv"
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exc:
        main(deletion_args(lime_csvs, bad, lime_csvs["base"], output))
    assert exc.value.code == 2
    message = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert str(bad) in message and expected in message
    assert not output.exists()


def test_missing_lime_csv_or_unnamed_model_exit_2(lime_csvs, tmp_path, caplog):
    import shutil

    from generate_outputs.deletion_test.run_deletion_test import main

    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exc:
        main(deletion_args(lime_csvs, tmp_path / "nope.csv", lime_csvs["base"], tmp_path / "o.csv"))
    assert exc.value.code == 2 and "nope.csv" in caplog.text
    caplog.clear()
    no_manifest = tmp_path / "copied.csv"   # a LIME CSV without its manifest: which model is unknown
    shutil.copy(lime_csvs["csvs"]["other"], no_manifest)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exc:
        main(deletion_args(lime_csvs, no_manifest, None, tmp_path / "o.csv"))
    assert exc.value.code == 2 and str(no_manifest) in caplog.text and "--model" in caplog.text
    assert not (tmp_path / "o.csv").exists()


# ----------------------------------------------------------------------------------------------- (e) int8
def test_dynamic_int8_numbers_do_not_depend_on_the_other_instances(lime_csvs, tmp_path):
    """Dynamic int8 scales activations per batch: an instance's rows must be the same whether it is
    measured with all instances or alone with one other."""
    from common.models.classifier import load_classifier
    from generate_outputs.deletion_test.run_deletion_test import main
    from train.quantization.run_dynamic_quantization import main as quantize_main

    int8 = tmp_path / "base_8bit.pt"
    assert quantize_main(["--model", str(lime_csvs["base"]), "--output", str(int8), "--data",
                          str(lime_csvs["data"])]) == 0
    assert load_classifier(int8, device="cpu").batch_dependent
    full = tmp_path / "full" / "base_8bit.csv"
    assert main(deletion_args(lime_csvs, lime_csvs["csvs"]["base"], int8, full)) == 0

    lime = pd.read_csv(lime_csvs["csvs"]["base"], keep_default_na=False, dtype={"word": str})
    pair = sorted(lime.instance_id.unique())[-2:]
    subset_lime = tmp_path / "subset_lime.csv"
    lime[lime.instance_id.isin(pair)].to_csv(subset_lime, index=False)
    subset = tmp_path / "subset" / "base_8bit.csv"
    args = deletion_args(lime_csvs, subset_lime, int8, subset)
    args[args.index("--base-lime") + 1] = str(subset_lime)
    assert main(args) == 0

    full_rows = pd.read_csv(full, keep_default_na=False)
    subset_rows = pd.read_csv(subset, keep_default_na=False)
    expected = full_rows[full_rows.instance_id.isin(pair)].reset_index(drop=True)
    pd.testing.assert_frame_equal(subset_rows, expected, check_exact=True)
    # and the int8 variant really differs from fp32 somewhere, so the comparison above is not vacuous
    on_base_words = full_rows[full_rows.words_from == "base"]
    assert not np.allclose(on_base_words[on_base_words.model == "variant"].p_removed.to_numpy(),
                           on_base_words[on_base_words.model == "base"].p_removed.to_numpy(), rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------------------------- Make rules
def test_make_builds_one_deletion_test_per_lime_variant_after_its_lime_run(tmp_path):
    import shutil
    import subprocess

    from tests.test_makefile import ROOT

    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    tree = copy_sources(tmp_path / "repo", ROOT)
    res = subprocess.run(["make", "-n", "--no-print-directory", "outputs/reports/report.md", "PYTHON=python3",
                          "DATA=data", "LIME_VARIANTS=base base_onnx base_onnx_int8 pruned20", "CONTROL=0"], cwd=tree,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    runs = re.findall(r"run_deletion_test --base-lime outputs/lime/base.csv --variant-lime outputs/lime/(\w+)\.csv"
                      r" \\\n\s+--variant (\w+)", res.stdout)
    assert runs == [(v, v) for v in ("base_onnx", "base_onnx_int8", "pruned20")]
    # each after its LIME CSV, which is built from the model the deletion test then reads from its manifest
    for v in ("base_onnx", "base_onnx_int8", "pruned20"):
        assert res.stdout.index(f"--output outputs/lime/{v}.csv") < res.stdout.index(f"--variant-lime outputs/lime/{v}.csv")
    report = re.search(r"build_deletion_report .*?(?=\n\S)", res.stdout, re.S).group(0)
    assert re.findall(r"--variant (\S+)", report) == [f"outputs/deletion/{v}.csv" for v in
                                                      ("base_onnx", "base_onnx_int8", "pruned20")]
    # the report is built before the one report that reads it
    assert res.stdout.index("build_deletion_report") < res.stdout.index("generate_outputs.report.build_report")


def test_a_base_without_any_deletion_effect_cannot_pass_and_the_gate_is_blind():
    """Deleting words changes nothing for base, the control or the variant: every distance is 0, so nothing is
    shown closer than half the control (not equivalent) and the control is not drifted (the report says blind).
    With no positive word at all there is nothing to delete: one sentence."""
    from common.cli import UserError
    from common.explain.deletion_report import deletion_markdown

    class Constant:
        def __call__(self, texts):
            return np.full((len(texts), 4), 0.25)

    run = _run("lime.csv", {1: "goal match", 2: "bank profit", 3: "team win"}, {1: 1, 2: 2, 3: 1},
               {1: {"goal": 0.4, "match": 0.1}, 2: {"bank": 0.3, "profit": 0.2}, 3: {"team": 0.2, "win": 0.1}})
    frame = measure(run, run, Constant(), Constant())
    assert (frame.comprehensiveness == 0).all()
    rows, means = judge_variant(frame, "v", frame)
    control_rows, control_means = judge_variant(frame, "control", frame)
    assert all(r["verdict"] != "equivalent" for r in rows)
    assert all(r["verdict"] != "drifted" for r in control_rows)
    md = deletion_markdown(rows + control_rows, {"v": means, "control": control_means}, None, "control", 1, 0.05)
    assert "blind" in md
    negative = _run("lime.csv", run.texts, run.explained, {i: {w: -abs(x) for w, x in ws.items()}
                                                           for i, ws in run.weights.items()})
    with pytest.raises(UserError, match="nothing to delete"):
        judge_variant(measure(negative, negative, Constant(), Constant()), "v", None)


def test_report_refuses_a_file_that_is_not_a_deletion_csv(tmp_path, caplog):
    from generate_outputs.deletion_test.build_deletion_report import main as report_main

    wrong = tmp_path / "pruned20.csv"
    pd.DataFrame({"instance_id": [1], "word": ["goal"]}).to_csv(wrong, index=False)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exc:
        report_main(["--variant", str(wrong), "--output-dir", str(tmp_path / "reports")])
    assert exc.value.code == 2 and str(wrong) in caplog.text and "run_deletion_test" in caplog.text
    assert not (tmp_path / "reports" / "deletion.md").exists() and not (tmp_path / "reports" / "deletion.csv").exists()
