"""Shared fixtures: a tiny in-memory BERT, a tiny WordPiece vocab, toy AG-News-like data.

No hub, no network: the tiny model is built from a ``BertConfig`` (hidden 32,
2 layers, 4 heads, intermediate 37) and a vocab written to ``tmp_path``.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# Not sources: virtual environments (.venv, .venv-interop; a worktree may link them, and copying through the
# link costs ~2 GB per test), git data, built artefacts and caches.
# Not sources: at the top of the checkout only (common/models/ is code, models/ the artefacts), and anywhere.
NOT_SOURCES = (".venv*", ".git", "models", "outputs", ".deps")
NOT_SOURCES_ANYWHERE = ("__pycache__", ".pytest_cache")


def sources_only(root: Path, extra_top: tuple[str, ...] = ()):
    """A ``shutil.copytree`` ignore: the build outputs at the top of ``root``, caches at any depth."""
    top = shutil.ignore_patterns(*NOT_SOURCES, *extra_top)
    anywhere = shutil.ignore_patterns(*NOT_SOURCES_ANYWHERE)

    def ignore(folder, names):
        return anywhere(folder, names) | (top(folder, names) if Path(folder).resolve() == Path(root).resolve() else set())

    return ignore


def copy_sources(dst: Path, root: Path = REPO) -> Path:
    """A copy of the repository's sources only, as a clean clone has them (for tests that run ``make``)."""
    shutil.copytree(root, dst, ignore=sources_only(root))
    return dst

# One word list per class: texts built from them are linearly separable, so a
# tiny model fine-tuned for a few steps must beat chance by a wide margin.
CLASS_WORDS = [
    ["election", "minister", "treaty", "embassy", "border", "parliament"],
    ["match", "goal", "team", "coach", "league", "striker"],
    ["market", "shares", "profit", "bank", "earnings", "merger"],
    ["software", "chip", "space", "robot", "internet", "laptop"],
]
FILLER = ["the", "a", "of", "in", "on", "new", "report", "says", "today", "after"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def toy_texts(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 4
        words = list(rng.choice(CLASS_WORDS[label], size=3)) + list(rng.choice(FILLER, size=4))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def write_vocab(folder: Path) -> Path:
    words = SPECIAL + sorted({w for ws in CLASS_WORDS for w in ws} | set(FILLER)) + list("abcdefghijklmnopqrstuvwxyz.,!?")
    path = folder / "vocab.txt"
    path.write_text("\n".join(words) + "\n")
    return path


def make_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """Write a randomly initialised tiny BERT classifier + tokenizer to ``folder``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from common.models.modeling import label_config

    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(folder)
    tokenizer = BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    config = BertConfig(vocab_size=len(vocab.read_text().split()), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=37, max_position_embeddings=64,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **label_config())
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_bert(tmp_path) -> Path:
    return make_tiny_bert(tmp_path / "tiny_bert")


@pytest.fixture
def toy_data(tmp_path) -> Path:
    """A folder with train.csv (160 rows) and test.csv (80 rows) of separable toy text."""
    folder = tmp_path / "toy_data"
    folder.mkdir()
    for split, n, seed in (("train", 160, 1), ("test", 80, 2)):
        texts, labels = toy_texts(n, seed)
        pd.DataFrame({"text": texts, "label": labels}).to_csv(folder / f"{split}.csv", index=False)
    return folder


@pytest.fixture
def ag_news_dir() -> Path:
    path = Path(os.environ.get("DATA", SHARED / "data" / "ag_news"))
    if not (path / "test.parquet").exists() and not (path / "test.csv").exists():
        pytest.skip(f"real AG News data not found at {path} (set DATA=../shared/data/ag_news)")
    return path
