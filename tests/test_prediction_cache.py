"""The one prediction cache (LIME's reference predictions, the MLP teacher) and the split digest (data, benchmark):
a cache is reused exactly when its key matches, and a stale one is recomputed."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from common.prediction_cache import cache_path, cached_predictions, prediction_key, split_digest


def test_split_digest_is_the_row_by_row_hash_and_sees_every_label_and_text():
    texts, labels = ["goal by the striker", "market shares rally"], [1, 2]
    expected = hashlib.sha256(b"1\tgoal by the striker\n2\tmarket shares rally\n").hexdigest()
    assert split_digest(texts, labels) == expected
    assert split_digest(texts, np.asarray(labels, dtype=np.int64)) == expected
    assert split_digest(texts, [1, 3]) != expected  # planted: one label changed
    assert split_digest(["goal by the striker", "market shares fall"], labels) != expected
    assert split_digest(texts[::-1], labels[::-1]) != expected  # order is part of a split


def test_the_data_content_hash_is_built_from_split_digests():
    from common.data import load_dataset

    data = load_dataset("", 40, 0, 0.1)
    parts = "".join(split_digest(s.texts, s.labels) for s in (data.train, data.validation, data.test))
    assert data.content_hash == hashlib.sha256(parts.encode()).hexdigest()


def test_the_key_follows_the_model_file_the_texts_and_the_settings(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights v1")
    key = prediction_key(model, ["a", "b"], max_len=64)
    assert key == prediction_key(model, ["a", "b"], max_len=64)
    assert key != prediction_key(model, ["a", "c"], max_len=64)
    assert key != prediction_key(model, ["a", "b"], max_len=128)
    assert key != prediction_key(model, ["a b"], max_len=64)  # texts are not merely concatenated
    model.write_bytes(b"weights v2")  # planted: the model was rebuilt
    assert key != prediction_key(model, ["a", "b"], max_len=64)


@pytest.mark.parametrize("suffix", [".json", ".npy"])
def test_a_cache_is_reused_only_under_its_key(tmp_path, suffix):
    calls = []

    def compute(value):
        def run():
            calls.append(value)
            return np.full((3, 4), value, dtype=np.float32)
        return run

    first = cache_path(tmp_path, "teacher_", "k1" * 32, suffix)
    assert first.name == f"teacher_{'k1' * 32}{suffix}"
    out = cached_predictions(first, "k1" * 32, compute(0.25), meta={"reference": "m"})
    np.testing.assert_array_equal(out, np.full((3, 4), 0.25))
    again = cached_predictions(first, "k1" * 32, compute(0.5))
    assert calls == [0.25] and again.shape == (3, 4) and float(again[0, 0]) == 0.25
    # planted: a file that does not hold this key is never returned
    other = cached_predictions(first, "k2" * 32, compute(0.75))
    assert calls == [0.25, 0.75] and float(other[0, 0]) == 0.75
    if suffix == ".npy":
        assert out.dtype == np.float32


def test_a_corrupt_cache_is_recomputed_and_a_failed_computation_leaves_no_file(tmp_path):
    key = "ab" * 32
    path = cache_path(tmp_path, ".reference_predictions_", key, ".json")
    path.write_text('{"key": "%s", "values": [1, 2' % key)  # cut short
    assert cached_predictions(path, key, lambda: np.array([3, 1])).tolist() == [3, 1]
    assert cached_predictions(path, key, lambda: np.array([0, 0])).tolist() == [3, 1]

    def killed():
        raise KeyboardInterrupt

    npy = cache_path(tmp_path, "teacher_", key, ".npy")
    with pytest.raises(KeyboardInterrupt):
        cached_predictions(npy, key, killed)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
