"""load_classifier on torch folders: odd inputs, order restoration, dtypes, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from common.models.classifier import load_classifier
from common.cli import UserError
from tests.conftest import toy_texts

ODD_INPUTS = ["", "   ", "?!...", "héllo wörld – naïve café", "rocket 🚀 launch 🌕 today", "goal " * 400, "\n\t"]


def test_odd_inputs_give_valid_probability_rows(tiny_bert):
    clf = load_classifier(tiny_bert, device="cpu")
    proba = clf.predict_proba(ODD_INPUTS)
    assert proba.shape == (len(ODD_INPUTS), 4)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert clf.label_names == ["World", "Sports", "Business", "Sci/Tech"]


def test_length_sorting_restores_order(tiny_bert):
    """Batched, length-sorted predictions equal one-at-a-time predictions in input order."""
    clf = load_classifier(tiny_bert, device="cpu", batch_size=3)
    texts = toy_texts(9)[0] + ["market " * 30, "goal"]
    batched = clf.predict_logits(texts)
    single = np.stack([clf.predict_logits([t], batch_size=1)[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_matches_plain_transformers_forward(tiny_bert):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = toy_texts(6)[0]
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    with torch.no_grad():
        expected = torch.softmax(model(**tok(texts, padding=True, return_tensors="pt")).logits, -1).numpy()
    np.testing.assert_allclose(load_classifier(tiny_bert, device="cpu").predict_proba(texts), expected, atol=1e-5)


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_half_precision_close_to_fp32(tiny_bert, dtype):
    texts = toy_texts(8)[0]
    ref = load_classifier(tiny_bert, device="cpu").predict_proba(texts)
    half = load_classifier(tiny_bert, device="cpu", dtype=dtype).predict_proba(texts)
    assert half.dtype == np.float32 and np.abs(half - ref).max() < 0.05


def test_loader_errors(tmp_path, tiny_bert):
    with pytest.raises(UserError, match="does not exist"):
        load_classifier(tmp_path / "missing")
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(UserError, match="not a model"):
        load_classifier(tmp_path / "junk.txt")
    with pytest.raises(UserError, match="--dtype"):
        load_classifier(tiny_bert, dtype="int4")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(UserError, match="format"):
        load_classifier(tmp_path / "plain.pt")
