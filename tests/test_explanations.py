"""LIME CSVs, resume, reproducibility, MLP token explanations, SP-LIME, drift metrics, bench.

Everything runs on the tiny in-memory BERT and the toy data through each stage's ``main``.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_tiny_bert, toy_texts

LIME_MAIN = "generate_outputs.generate_lime_csv.run_lime_on_model"


def lime_args(model, data, output, seed=1, n=6, samples=60, reference=None, variant="v"):
    args = ["--model", str(model), "--variant", variant, "--n-instances", str(n), "--num-samples", str(samples),
            "--seed", str(seed), "--output", str(output), "--data", str(data), "--max-len", "64", "--threads", "1"]
    return args + (["--reference-model", str(reference)] if reference else [])


def run_lime(*args, **kwargs):
    from generate_outputs.generate_lime_csv.run_lime_on_model import main

    return main(lime_args(*args, **kwargs))


@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory):
    """The tiny BERT after a few optimiser steps on the toy data, so its explanations are not flat
    (built once per module: every test only reads it)."""
    import torch

    from common.data import load_dataset
    from common.models.modeling import load_model_folder

    tmp_path = tmp_path_factory.mktemp("trained")
    untrained = make_tiny_bert(tmp_path / "untrained")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    texts, labels = toy_texts(160, 1)
    pd.DataFrame({"text": texts, "label": labels}).to_csv(data_dir / "train.csv", index=False)
    pd.DataFrame({"text": texts[:8], "label": labels[:8]}).to_csv(data_dir / "test.csv", index=False)
    model, tokenizer, _ = load_model_folder(untrained)
    data = load_dataset(data_dir, 0, 0, validation_fraction=0)
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    enc = tokenizer(data.train.texts, padding=True, return_tensors="pt")
    labels = torch.as_tensor(data.train.labels)
    for _ in range(30):
        loss = model(**enc, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    folder = tmp_path / "trained_tiny"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------------------------- similarity metrics
def test_similarity_metrics_known_answers():
    from common.explain.similarity import pair_metrics

    a = {"goal": 0.5, "match": 0.3, "the": -0.1, "team": 0.2}
    same = pair_metrics(a, dict(a))
    assert same["spearman"] == pytest.approx(1) and same["kendall"] == pytest.approx(1)
    assert same["jaccard_top5"] == 1 and same["jaccard_top10"] == 1 and same["sign_top5"] == 1
    assert same["cosine"] == pytest.approx(1)

    reversed_ = pair_metrics({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 1.0, "b": 2.0, "c": 3.0})
    assert reversed_["spearman"] == pytest.approx(-1) and reversed_["kendall"] == pytest.approx(-1)

    disjoint = pair_metrics({"x": 1.0, "y": 0.5}, {"z": 1.0, "u": 0.5})
    assert disjoint["jaccard_top5"] == 0 and disjoint["jaccard_top10"] == 0
    assert disjoint["cosine"] == pytest.approx(0) and disjoint["sign_top5"] == 0

    flipped = pair_metrics(a, {w: -v for w, v in a.items()})
    assert flipped["sign_top5"] == 0 and flipped["cosine"] == pytest.approx(-1) and flipped["jaccard_top5"] == 1


# ----------------------------------------------------------------------------------------------- LIME CSV
def test_lime_csv_reproducible_resumes_and_explains_reference(tmp_path, trained_tiny, tiny_bert, toy_data):
    from common.models.classifier import load_classifier
    from common.explain.explainer import LIME_COLUMNS, choose_instances
    from common.manifest import read_manifest

    full = tmp_path / "full" / "v.csv"
    assert run_lime(tiny_bert, toy_data, full, reference=trained_tiny) == 0
    again = tmp_path / "again" / "v.csv"
    assert run_lime(tiny_bert, toy_data, again, reference=trained_tiny) == 0
    assert full.read_bytes() == again.read_bytes()  # same seed -> byte-identical

    frame = pd.read_csv(full, keep_default_na=False)
    assert list(frame.columns) == LIME_COLUMNS
    instances = choose_instances(str(toy_data), 6)
    assert list(frame.instance_id.drop_duplicates()) == instances.ids.tolist()
    # the explained label is the reference's prediction; predicted_label is the variant's own
    ref = load_classifier(trained_tiny, device="cpu", max_len=64).predict(instances.texts)
    own = load_classifier(tiny_bert, device="cpu", max_len=64).predict(instances.texts)
    per_instance = frame.drop_duplicates("instance_id")
    assert per_instance.explained_label.tolist() == ref.tolist()
    assert per_instance.predicted_label.tolist() == own.tolist()
    assert (per_instance.true_label.to_numpy() == instances.labels).all()
    for iid, group in frame.groupby("instance_id"):
        text = group.text.iloc[0]
        assert set(group.word) == {w for w in re.split(r"\W+", text) if w}  # every word kept
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert np.all(np.diff(group.weight.abs().to_numpy()) <= 1e-12)  # rank follows |weight|

    # kill after 2 instances (plus a row torn mid-write), then resume: same bytes as the uninterrupted run
    resumed = tmp_path / "resumed" / "v.csv"
    from generate_outputs.generate_lime_csv.run_lime_on_model import main

    assert main(lime_args(tiny_bert, toy_data, resumed, reference=trained_tiny) + ["--stop-after", "2"]) == 3
    assert not resumed.exists()
    part = resumed.with_name(f".{resumed.name}.part0of1")
    assert part.stat().st_size > 0
    with open(part, "ab") as fh:
        fh.write(b"99,torn row without its end")
    assert main(lime_args(tiny_bert, toy_data, resumed, reference=trained_tiny)) == 0
    assert resumed.read_bytes() == full.read_bytes()
    metrics = read_manifest(resumed)["metrics"]
    assert metrics["resumed_instances"] == 2 and metrics["explained_this_run"] == 4
    assert not part.exists()

    other_seed = tmp_path / "seed2" / "v.csv"
    assert run_lime(tiny_bert, toy_data, other_seed, seed=2, reference=trained_tiny) == 0
    assert other_seed.read_bytes() != full.read_bytes()
    manifest = read_manifest(full)
    assert manifest["seed"] == 1 and manifest["metrics"]["n_explained_instances"] == 6
    assert 0 <= manifest["metrics"]["outside_model_fraction"] < 1


def test_second_name_for_the_same_model_file_reuses_the_rows(tmp_path, tiny_bert, trained_tiny, toy_data,
                                                             monkeypatch):
    """base and base_onnx (or pruned20 and pruned20_onnx) are explained through one file: the second CSV is
    the first with the variant renamed, byte for byte what explaining it would have written; another seed,
    another model or an edited source CSV are explained afresh."""
    from common.explain import explainer as lime_utils
    from common.manifest import read_manifest

    out = tmp_path / "lime"
    assert run_lime(tiny_bert, toy_data, out / "a.csv", variant="a") == 0
    fresh = tmp_path / "fresh" / "b.csv"
    assert run_lime(tiny_bert, toy_data, fresh, variant="b") == 0

    calls = []
    real = lime_utils.explain_text
    monkeypatch.setattr(lime_utils, "explain_text", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert run_lime(tiny_bert, toy_data, out / "b.csv", variant="b") == 0
    assert calls == []  # nothing explained
    assert (out / "b.csv").read_bytes() == fresh.read_bytes()
    manifest = read_manifest(out / "b.csv")
    assert manifest["reused_from"] == str(out / "a.csv") and manifest["variant"] == "b"
    assert manifest["inputs"]["model"]["path"] == str(tiny_bert) and manifest["inputs"]["data"]

    before = (out / "b.csv").read_bytes()
    assert run_lime(tiny_bert, toy_data, out / "b.csv", variant="b") == 0  # a rerun keeps an up-to-date CSV
    assert calls == [] and (out / "b.csv").read_bytes() == before
    from common.explain import stages as lime_stages

    with monkeypatch.context() as patch:  # an edit of any imported toolkit source re-explains
        patch.setattr(lime_stages, "code_fingerprint", lambda: "edited")
        assert run_lime(tiny_bert, toy_data, out / "b.csv", variant="b") == 0
    assert len(calls) == 6 and (out / "b.csv").read_bytes() == before
    calls.clear()
    assert run_lime(tiny_bert, toy_data, out / "c.csv", variant="c", seed=2) == 0  # another seed
    assert run_lime(trained_tiny, toy_data, out / "d.csv", variant="d") == 0  # another model
    assert len(calls) == 12 and "reused_from" not in read_manifest(out / "c.csv")
    with open(out / "a.csv", "a") as fh:  # a source edited after its manifest was written is not trusted
        fh.write("\n")
    (out / "b.csv").unlink()
    assert run_lime(tiny_bert, toy_data, out / "e.csv", variant="e") == 0
    assert len(calls) == 18 and "reused_from" not in read_manifest(out / "e.csv")


def test_lime_user_errors(tmp_path, tiny_bert, toy_data):
    from generate_outputs.generate_lime_csv.run_lime_on_model import main

    with pytest.raises(SystemExit) as exc:
        main(lime_args(tmp_path / "missing", toy_data, tmp_path / "x.csv"))
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(lime_args(tiny_bert, toy_data, tmp_path / "x.txt"))
    assert exc.value.code == 2
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.txt").exists()


def test_token_explanations_for_mlp_cover_every_class(tmp_path, trained_tiny, toy_data):
    from common.data import load_dataset
    from common.explain.explainer import MLP_COLUMNS
    from generate_outputs.generate_lime_csv.generate_bert_token_explanations_for_mlp import main

    out = tmp_path / "inter" / "bert_token_explanations.csv"
    args = ["--model", str(trained_tiny), "--data", str(toy_data), "--n-instances", "8", "--num-samples", "60",
            "--seed", "3", "--max-len", "64", "--output", str(out), "--threads", "1"]
    assert main(args) == 0
    frame = pd.read_csv(out, keep_default_na=False)
    assert list(frame.columns) == MLP_COLUMNS
    train = load_dataset(toy_data, 0, 3, validation_fraction=0).train
    assert frame.instance_id.nunique() == 8
    assert set(frame.text) <= set(train.texts)  # training instances, not test
    for _, group in frame.groupby("instance_id"):
        assert sorted(group.explained_label.unique()) == [0, 1, 2, 3]
        assert group.predicted_label.nunique() == 1
    # the four classes' probabilities sum to 1, so their LIME weights per word sum to ~0
    sums = frame.groupby(["instance_id", "word"]).weight.sum()
    assert sums.abs().max() < 1e-3 * frame.weight.abs().max() + 1e-6
    # class words push towards their class for a trained model
    goal = frame[(frame.word == "goal") & (frame.explained_label == 1)].weight
    if len(goal):
        assert goal.mean() > 0


# The drift report's tests are in tests/test_lime_drift.py.


# POS analysis: tests/test_pos.py


# ----------------------------------------------------------------------------------------------- SP-LIME, bench
def test_sp_lime_picks_and_global_features(tmp_path, trained_tiny, toy_data):
    from generate_outputs.sp_lime.run_sp_lime_hf_model import main

    out = tmp_path / "sp"
    args = ["--model_dir", str(trained_tiny), "--output_prefix", "tiny", "--output-dir", str(out), "--data",
            str(toy_data), "--sample-size", "8", "--num-explanations", "3", "--num-samples", "80", "--seed", "5",
            "--max-len", "64", "--threads", "1"]
    assert main(args) == 0
    picked = pd.read_csv(out / "tiny_picked.csv", keep_default_na=False)
    manifest = json.loads((out / "tiny_picked.manifest.json").read_text())
    assert sorted(picked.pick_order.unique()) == [1, 2, 3]
    assert picked.instance_id.nunique() == 3
    assert set(picked.instance_id) <= set(manifest["candidate_ids"]) and len(manifest["candidate_ids"]) == 8
    features = pd.read_csv(out / "tiny_global_features.csv", keep_default_na=False)
    for _, group in features.groupby("scope"):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert np.all(np.diff(group.importance.to_numpy()) <= 0)
    assert (out / "tiny_global_features.png").stat().st_size > 5_000
    assert "## Picked instances" in (out / "tiny_sp_lime.md").read_text()
    first = (out / "tiny_picked.csv").read_bytes()
    assert main(args) == 0
    assert (out / "tiny_picked.csv").read_bytes() == first


def test_bench_lime_same_function_same_explanations(tmp_path, trained_tiny, toy_data):
    from generate_outputs.generate_lime_csv.bench_lime_speed import main

    out = tmp_path / "lime_speed.json"
    assert main(["--model", str(trained_tiny), "--onnx", str(trained_tiny), "--data", str(toy_data),
                 "--n-instances", "1", "--num-samples", "40", "--max-len", "64", "--threads", "1",
                 "--output", str(out)]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert set(metrics["setups"]) == {"naive_pipeline", "ours_onnx", "ours_torch"}
    # the pipeline and our classifier_fn compute the same function on the same perturbations
    assert metrics["naive_vs_ours_explanations"]["spearman_mean"] == pytest.approx(1, abs=1e-6)
    assert metrics["naive_vs_ours_explanations"]["max_abs_weight_diff"] < 1e-4
    assert metrics["speedup_vs_naive"] > 0 and 0 <= metrics["outside_model_fraction"] <= 1


def test_sharded_job_publishes_its_manifest_before_the_csv_appears(tmp_path):
    """Make sees the CSV only once everything beside it (the manifest) is written."""
    from common.sharded_job import ShardedCsvJob

    output = tmp_path / "out.csv"
    seen = {}

    def explain(position):
        return [[position, f"word{position}"]], {"explain_seconds": 0.1, "model_seconds": 0.09}

    def publish(merged, result):
        seen["output_existed"] = output.exists()
        seen["rows"] = pd.read_csv(merged)["id"].tolist()
        seen["timed"] = len(result.stats["explain_seconds"])

    job = ShardedCsvJob(output, ["id", "word"], {"k": 1}, 3, 0, 1)
    result = job.run(explain, desc="test", publish=publish)
    assert result.finished and seen == {"output_existed": False, "rows": [0, 1, 2], "timed": 3}
    assert pd.read_csv(output)["word"].tolist() == ["word0", "word1", "word2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # parts cleaned up
