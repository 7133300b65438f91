"""Data loading: formats, schemas, subsets and the error paths (message + exit code 2)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from common.cli import UserError
from common.data import DEMO_DATA, load_dataset, load_test_split, stratified_indices
from tests.conftest import toy_texts


def _write(folder, fmt, n=40, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        texts, labels = toy_texts(n, seed)
        frame = pd.DataFrame({"text": texts, "label": labels})
        if fmt == "parquet":
            frame.to_parquet(folder / f"{split}.parquet")
        elif fmt == "csv":
            frame.to_csv(folder / f"{split}.csv", index=False)
        elif fmt == "jsonl":
            frame.to_json(folder / f"{split}.jsonl", orient="records", lines=True)
    return folder


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_formats_load_identically(tmp_path, fmt):
    data = load_dataset(_write(tmp_path / fmt, fmt), validation_fraction=0.1, seed=3)
    texts, labels = toy_texts(40, 0)
    assert sorted(data.train.texts + data.validation.texts) == sorted(texts)
    assert data.test.texts == texts and list(data.test.labels) == labels
    assert len(data.validation) == 4


def test_original_ag_news_csv(tmp_path):
    rows = [(3, "Stocks rally", "Wall St. gains, oil falls."), (1, "Summit ends", "Leaders, sign a pact."),
            (2, "Cup final", "Team wins 2-1."), (4, "New chip", "Faster laptops.")]
    for split in ("train", "test"):
        pd.DataFrame(rows).to_csv(tmp_path / f"{split}.csv", header=False, index=False)
    test = load_test_split(tmp_path)
    assert list(test.labels) == [2, 0, 1, 3]
    assert test.texts[0] == "Stocks rally Wall St. gains, oil falls."


def test_stratified_subset_is_balanced_and_seeded():
    labels = np.repeat(np.arange(4), 250)
    a = stratified_indices(labels, 100, seed=1)
    assert len(a) == 100 and np.bincount(labels[a]).tolist() == [25, 25, 25, 25]
    assert np.array_equal(a, stratified_indices(labels, 100, seed=1))
    assert not np.array_equal(a, stratified_indices(labels, 100, seed=2))
    assert len(stratified_indices(labels, 0, seed=1)) == 1000


def test_validation_never_overlaps_train_and_test_untouched():
    data = load_dataset(DEMO_DATA, train_samples=100, seed=7, validation_fraction=0.1)
    assert len(data.train) + len(data.validation) == 100
    assert not set(data.train.texts) & set(data.validation.texts)
    assert len(data.test) == 120 and np.bincount(data.test.labels).tolist() == [30] * 4
    assert load_dataset(DEMO_DATA, 100, 7, 0.1).content_hash == data.content_hash


@pytest.mark.parametrize("case,needle", [
    ("missing_folder", "does not exist"),
    ("missing_split", "No test split"),
    ("bad_columns", "expected text,label"),
    ("bad_labels", "labels outside 0-3"),
    ("empty", "has no rows"),
])
def test_data_errors_name_the_file(tmp_path, case, needle):
    folder = tmp_path / "d"
    if case != "missing_folder":
        folder.mkdir()
        frame = pd.DataFrame({"text": ["a b", "c d"], "label": [0, 1]})
        frame.to_csv(folder / "train.csv", index=False)
        if case == "bad_columns":
            frame.rename(columns={"text": "sentence"}).to_csv(folder / "test.csv", index=False)
        elif case == "bad_labels":
            frame.assign(label=[0, 7]).to_csv(folder / "test.csv", index=False)
        elif case == "empty":
            frame.iloc[:0].to_csv(folder / "test.csv", index=False)
    with pytest.raises(UserError, match=needle) as info:
        load_dataset(folder)
    assert str(folder) in str(info.value)


def test_cli_error_exit_code_and_no_partial_output(tmp_path, capsys):
    from train.fine_tuning.run_fine_tune_bert_agnews import main

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["--data", str(tmp_path / "nope"), "--output", str(out)])
    assert info.value.code == 2
    assert not out.exists()
    assert "does not exist" in capsys.readouterr().err


def test_shared_ag_news_loads(ag_news_dir):
    data = load_dataset(ag_news_dir, validation_fraction=0.05)
    assert len(data.test) == 7600 and np.bincount(data.test.labels).tolist() == [1900] * 4
    assert len(data.train) + len(data.validation) == 4000
    json.dumps(data.content_hash)
