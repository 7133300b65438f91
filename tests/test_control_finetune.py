"""The positive control's fine-tune: the base recipe with another training seed, the same data split."""
from __future__ import annotations

import json

from tests.conftest import make_tiny_bert
from tests.test_finetune import _run


def test_another_training_seed_keeps_the_data_and_changes_the_weights(tmp_path, toy_data):
    tiny = make_tiny_bert(tmp_path / "tiny")
    _run(tiny, toy_data, tmp_path / "base", "--epochs", "2")  # --seed 0
    _run(tiny, toy_data, tmp_path / "control", "--epochs", "2", "--seed", "43", "--data-seed", "0")
    _run(tiny, toy_data, tmp_path / "reshuffled", "--epochs", "2", "--seed", "43")  # data seed follows --seed
    base, control, reshuffled = (json.loads((tmp_path / n / "manifest.json").read_text())
                                 for n in ("base", "control", "reshuffled"))
    # same training rows and validation split as base ...
    assert control["data"]["content_hash"] == base["data"]["content_hash"]
    assert reshuffled["data"]["content_hash"] != base["data"]["content_hash"]
    # ... but other weights: a different model of the same recipe
    assert (tmp_path / "control" / "model.safetensors").read_bytes() != \
        (tmp_path / "base" / "model.safetensors").read_bytes()
    assert control["seed"] == 43 and control["arguments"]["data_seed"] == 0
    # an unset --data-seed does not enter the run key: models built before the flag are still reused
    before = (tmp_path / "base" / "model.safetensors").stat().st_mtime_ns
    _run(tiny, toy_data, tmp_path / "base", "--epochs", "2")
    assert (tmp_path / "base" / "model.safetensors").stat().st_mtime_ns == before
