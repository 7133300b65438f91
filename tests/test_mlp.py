"""MLP students (common/mlp/, train_mlp_models/): XAI loss, attribution shift, payload round-trip, scripts.

Toy task: each class is carried by two words that always occur together ("apple" and "apricot" for
class 0, ...). BERT-style LIME weights (written by the test, in the explanations CSV's exact columns)
credit only the first word of each pair. Cross-entropy alone cannot tell the two words apart; the
explanation loss should move the student's attribution toward the first one.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from common.models.mlp_student import (EXPLANATION_COLUMNS, BowEncoder, MLPClassifier, StudentConfig, attribution, build_mlp,
                              explanation_loss)
from common.mlp.training import make_xai_data, prepare_experiment, train_student

PAIRS = [("apple", "apricot"), ("banana", "blueberry"), ("cherry", "coconut"), ("durian", "date")]
FILLER = ["the", "a", "of", "in", "on", "new", "report", "says", "today", "after", "Monday", "week"]
FILLER_EFFECT = dict(zip(FILLER, np.linspace(-0.1, 0.1, len(FILLER))))


def two_word_texts(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 4
        words = list(PAIRS[label]) + list(rng.choice(FILLER, size=4, replace=False))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def write_two_word_data(folder, n_train=200, n_test=80):
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        texts, labels = two_word_texts(n, seed)
        pd.DataFrame({"text": texts, "label": labels}).to_csv(folder / f"{split}.csv", index=False)
    return folder


def write_bert_style_explanations(path, data_folder, n_instances=60, seed=0):
    """One row per instance x explained class x word (LIME's \\W+ words, case kept), first pair word credited."""
    path.parent.mkdir(parents=True, exist_ok=True)
    train = pd.read_csv(data_folder / "train.csv")
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(len(train), size=n_instances, replace=False))
    rows = []
    for iid in ids:
        text, label = train.text[iid], int(train.label[iid])
        words = list(dict.fromkeys(w for w in re.split(r"\W+", text) if w))
        for explained in range(4):
            sign = 1.0 if explained == label else -1 / 3
            weights = {}
            for word in words:
                if word == PAIRS[label][0]:
                    weights[word] = 0.5 * sign
                elif word == PAIRS[label][1]:
                    weights[word] = 0.0
                else:  # a consistent small effect per filler word (as a real model has) plus LIME noise
                    weights[word] = sign * FILLER_EFFECT[word] + float(rng.normal(0, 0.002))
            ranked = sorted(weights.items(), key=lambda kv: -abs(kv[1]))
            for rank, (word, weight) in enumerate(ranked, start=1):
                rows.append([int(iid), text, label, label, explained, word, weight, rank, 0.25, 0.9, 200, 42])
    pd.DataFrame(rows, columns=EXPLANATION_COLUMNS).to_csv(path, index=False)
    return path


@pytest.fixture
def two_word(tmp_path):
    data = write_two_word_data(tmp_path / "data")
    explanations = write_bert_style_explanations(tmp_path / "expl" / "bert_token_explanations.csv", data)
    return data, explanations


# ----------------------------------------------------------------------------------------------- the loss
def test_explanation_loss_is_zero_when_attributions_match_and_positive_otherwise():
    torch.manual_seed(0)
    targets = torch.tensor([[0.5, -0.2, 0.0, 0.1], [0.0, 0.3, 0.3, 0.0]])
    # Matching up to a positive factor (LIME is on the probability scale, attributions on the logit scale).
    assert float(explanation_loss(3.0 * targets, targets)) == pytest.approx(0.0, abs=1e-6)
    other = torch.tensor([[0.1, 0.4, 0.0, -0.2], [0.2, 0.0, 0.1, 0.0]])
    assert float(explanation_loss(other, targets)) > 0.1
    assert float(explanation_loss(-targets, targets)) == pytest.approx(2.0, abs=1e-6)
    # An all-zero target carries no direction and adds nothing.
    padded = torch.cat([targets, torch.zeros(1, 4)])
    assert float(explanation_loss(torch.cat([3.0 * targets, torch.ones(1, 4)]), padded)) == pytest.approx(0.0, abs=1e-6)

    # With a real student: its own grad x input as the target gives zero, and the term is differentiable.
    model = build_mlp(6, 5, 0.0)
    x = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 1]], dtype=torch.float32)
    own = attribution(model, x, [0, 2]).detach()
    assert torch.all(own[x == 0] == 0)  # only words present carry attribution
    assert float(explanation_loss(attribution(model, x, [0, 2]), own)) == pytest.approx(0.0, abs=1e-6)
    shuffled = own[:, [2, 0, 3, 1, 4, 5]] * x
    loss = explanation_loss(attribution(model, x, [0, 2], create_graph=True), shuffled)
    assert float(loss.detach()) > 0
    loss.backward()
    assert model[0].weight.grad is not None and float(model[0].weight.grad.abs().sum()) > 0


def test_attribution_is_exact_for_a_linear_student():
    """No hidden non-linearity active: grad x input sums to the centred logit minus the bias part."""
    model = build_mlp(5, 3, 0.0)
    with torch.no_grad():
        model[0].bias.fill_(10.0)  # every ReLU open: the network is linear on this input
    x = torch.tensor([[1, 1, 0, 1, 0]], dtype=torch.float32)
    attr = attribution(model, x, [1])
    logits = model(x)
    zero_logits = model(torch.zeros_like(x))
    centred = (logits - logits.mean()) - (zero_logits - zero_logits.mean())
    assert float(attr.sum()) == pytest.approx(float(centred[0, 1].detach()), abs=1e-5)


# ----------------------------------------------------------------------------------------------- the effect
def first_word_share(model, exp, rows) -> float:
    clf = MLPClassifier(model, exp.encoder)
    texts = [exp.train_texts[r] for r in rows]
    labels = [int(exp.train_labels[r]) for r in rows]
    shares = []
    for attr, label in zip(clf.attributions(texts, labels), labels):
        first, second = (attr[w] for w in PAIRS[label])
        shares.append(max(first, 0) / (max(first, 0) + max(second, 0) + 1e-12))
    return float(np.mean(shares))


def test_xai_loss_moves_attribution_toward_the_word_bert_credits(two_word):
    data, explanations = two_word
    config = StudentConfig(hidden=16, dropout=0.0, epochs=15, batch_size=16, learning_rate=5e-3, holdout_fraction=0.3)
    exp = prepare_experiment(str(data), str(explanations), config)
    xai_config = StudentConfig.from_dict({**config.to_dict(), "xai_lambda": 3.0})
    xai_data = make_xai_data(exp.explained, exp.loss_rows, exp.encoder, exp.train_features, "all")
    vanilla = train_student(exp.train_features, exp.train_labels, config, seed=0, progress=False).model
    xai = train_student(exp.train_features, exp.train_labels, xai_config, seed=0, xai=xai_data, progress=False).model
    held_out = exp.heldout_rows
    assert len(held_out) >= 10 and not set(held_out) & set(exp.loss_rows)
    vanilla_share, xai_share = first_word_share(vanilla, exp, held_out), first_word_share(xai, exp, held_out)
    assert xai_share > 0.75, (vanilla_share, xai_share)
    assert xai_share > vanilla_share + 0.15, (vanilla_share, xai_share)
    # Both still solve the task.
    for model in (vanilla, xai):
        assert (MLPClassifier(model, exp.encoder).predict(exp.test_texts) == exp.test_labels).mean() > 0.9


# ----------------------------------------------------------------------------------------------- the scripts
def _train(script, tmp_path, data, explanations, output, *extra):
    return script.main(["--output", str(output), "--data", str(data), "--explanations", str(explanations),
                        "--seeds", "3", "4", "--epochs", "10", "--hidden", "16", "--batch-size", "16",
                        "--learning-rate", "5e-3", "--threads", "1", *extra])


def test_scripts_end_to_end_and_load_classifier_round_trip(two_word, tmp_path, tiny_bert):
    from common.models.classifier import load_classifier
    from common.manifest import read_manifest
    from train_mlp_models import evaluate_mlp_models, sweep_lambda, train_mlp_vanilla, train_mlp_xai_loss

    data, explanations = two_word
    vanilla, xai = tmp_path / "mlp" / "vanilla.pt", tmp_path / "mlp" / "xai.pt"
    assert _train(train_mlp_vanilla, tmp_path, data, explanations, vanilla) == 0
    assert _train(train_mlp_xai_loss, tmp_path, data, explanations, xai, "--lambda", "3") == 0

    v_manifest, x_manifest = read_manifest(vanilla), read_manifest(xai)
    assert v_manifest["seeds"] == [3, 4] and set(v_manifest["per_seed"]) == {"3", "4"}
    assert v_manifest["hyper_parameters"]["xai_lambda"] == 0 and x_manifest["hyper_parameters"]["xai_lambda"] == 3
    assert v_manifest["explained_split"] == x_manifest["explained_split"]  # judged on the same held-out rows
    for manifest in (v_manifest, x_manifest):
        assert manifest["metrics"]["accuracy"]["mean"] > 0.9
    assert (x_manifest["metrics"]["own_spearman_pred"]["mean"] > v_manifest["metrics"]["own_spearman_pred"]["mean"])
    assert x_manifest["metrics"]["heldout_explanation_loss"]["mean"] < v_manifest["metrics"]["heldout_explanation_loss"]["mean"]

    # Round trip: a weights_only payload with a plain vocabulary, loaded by the one loader, predicting as trained.
    payload = torch.load(xai, weights_only=True)
    assert payload["format"] == "mlp_bow" and all(isinstance(w, str) for w in payload["vocabulary"])
    assert len(payload["state_dicts"]) == 2
    test = pd.read_csv(data / "test.csv")
    for seed in (3, 4):
        clf = load_classifier(xai, device="cpu", seed=seed)
        probs = clf.predict_proba(test.text.tolist())
        assert probs.shape == (len(test), 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
        accuracy = float((probs.argmax(axis=1) == test.label.to_numpy()).mean())
        assert accuracy == pytest.approx(x_manifest["per_seed"][str(seed)]["accuracy"])
        assert clf.info["seed"] == seed and clf.parameter_count()["total"] > 0
    assert load_classifier(xai).info["seed"] == 3  # default: the first seed
    assert not np.allclose(load_classifier(xai, seed=3).predict_logits(test.text[:5].tolist()),
                           load_classifier(xai, seed=4).predict_logits(test.text[:5].tolist()))
    # Lower-casing is part of the features: a case change does not change the prediction.
    assert np.allclose(clf.predict_proba(["APPLE apricot The"]), clf.predict_proba(["apple Apricot the"]))

    # Evaluation: both students, teacher = a tiny (random) BERT, LIME on the students.
    reports = tmp_path / "reports"
    assert evaluate_mlp_models.main(["--vanilla", str(vanilla), "--xai", str(xai), "--output-dir", str(reports),
                                     "--data", str(data), "--explanations", str(explanations),
                                     "--teacher", str(tiny_bert), "--lime-samples", "0", "--seeds", "3", "4",
                                     "--threads", "1"]) == 0
    summary = pd.read_csv(reports / "mlp.csv")
    row = summary.set_index(["student", "metric"])
    for student in ("vanilla", "xai"):
        assert row.loc[(student, "accuracy"), "mean"] > 0.9
        assert 0 <= row.loc[(student, "teacher_agreement"), "mean"] <= 1
        assert -1 <= row.loc[(student, "lime_spearman_pred"), "mean"] <= 1
        assert len(json.loads(row.loc[(student, "accuracy"), "per_seed"])) == 2
    assert row.loc[("xai_minus_vanilla", "own_spearman_pred"), "mean"] > 0
    # LIME on the student (same perturbations as BERT's) sees the shift too.
    assert row.loc[("xai", "lime_spearman_pred"), "mean"] > row.loc[("vanilla", "lime_spearman_pred"), "mean"]
    report = (reports / "mlp.md").read_text()
    assert "## Verdict" in report and "Spearman" in report and "accuracy" in report
    caches = list((explanations.parent).glob("teacher_proba_*.npy"))
    assert len(caches) == 1  # teacher predictions cached beside the explanations
    assert read_manifest(reports / "mlp.manifest.json")["paired"] is True

    # Rerunning the training with the same inputs skips the work.
    mtime = vanilla.stat().st_mtime_ns
    assert _train(train_mlp_vanilla, tmp_path, data, explanations, vanilla) == 0
    assert vanilla.stat().st_mtime_ns == mtime

    # The sweep: a table, a PNG and agreement rising with lambda.
    assert sweep_lambda.main(["--lambdas", "0", "3", "--output-dir", str(reports), "--data", str(data),
                              "--explanations", str(explanations), "--seeds", "3", "4", "--epochs", "10",
                              "--hidden", "16", "--batch-size", "16", "--learning-rate", "5e-3", "--threads", "1"]) == 0
    sweep = pd.read_csv(reports / "mlp_sweep.csv").set_index("lambda")
    assert list(sweep.index) == [0.0, 3.0]
    assert sweep.loc[3.0, "own_spearman_pred"] > sweep.loc[0.0, "own_spearman_pred"]
    assert (reports / "mlp_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sweep_md = (reports / "mlp_sweep.md").read_text()
    assert "lambda" in sweep_md and sweep_md.count("\n|") == 4  # header, rule, one row per lambda


def test_user_errors_exit_2_and_leave_nothing(two_word, tmp_path):
    from train_mlp_models import train_mlp_xai_loss

    data, explanations = two_word
    output = tmp_path / "mlp" / "xai.pt"
    with pytest.raises(SystemExit) as missing:
        _train(train_mlp_xai_loss, tmp_path, data, tmp_path / "nope.csv", output)
    assert missing.value.code == 2 and not output.exists()
    bad = tmp_path / "bad.csv"
    pd.read_csv(explanations).drop(columns=["weight"]).to_csv(bad, index=False)
    with pytest.raises(SystemExit) as malformed:
        _train(train_mlp_xai_loss, tmp_path, data, bad, output)
    assert malformed.value.code == 2 and not output.exists()
    with pytest.raises(SystemExit) as negative:
        _train(train_mlp_xai_loss, tmp_path, data, explanations, output, "--lambda", "-1")
    assert negative.value.code == 2 and not output.exists()


def test_bow_encoder_uses_lime_words_lower_cased():
    encoder = BowEncoder.fit(["The cat's 3 toys", "a dog"])
    # LIME splits on \W+: single letters and digits are words too.
    assert {"the", "cat", "s", "3", "toys", "a", "dog"} == set(encoder.vocabulary)
    row = encoder.transform(["THE the Cat"]).toarray()[0]
    assert row[encoder.index["the"]] == 1 and row.sum() == 2
