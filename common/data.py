"""AG News loading: hub name or a local folder, several file formats, seeded splits.

``DATA`` is either ``ag_news`` (Hugging Face hub, needs network) or a folder with
``train`` and ``test`` files in parquet, csv or jsonl. Two schemas are accepted:
the Hugging Face one (``text``, ``label`` 0-3) and AG News's original CSV (no
header; class 1-4, title, description), where text = title + " " + description.

The test split is never used for training or model selection: the validation
slice is carved from train with a seeded, class-stratified split.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import LABEL_NAMES, NUM_LABELS
from common.cli import UserError
from common.prediction_cache import split_digest

HUB_NAME = "ag_news"
EXTENSIONS = (".parquet", ".csv", ".jsonl", ".json")
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"


@dataclass
class Split:
    texts: list[str]
    labels: np.ndarray  # int64, values in 0..3

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx) -> "Split":
        idx = np.asarray(idx, dtype=np.int64)
        return Split([self.texts[i] for i in idx], self.labels[idx])


@dataclass
class Dataset:
    train: Split
    validation: Split
    test: Split
    source: str
    content_hash: str


def _find_split_file(folder: Path, split: str) -> Path:
    for ext in EXTENSIONS:
        candidate = folder / f"{split}{ext}"
        if candidate.is_file():
            return candidate
    raise UserError(
        f"No {split} split in data folder {folder}: add {split}.parquet, {split}.csv or {split}.jsonl there "
        f"(columns text,label) or point DATA at another folder.")


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=path.suffix == ".jsonl")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if not {"text", "label"} <= set(frame.columns):
            # AG News's original CSV has no header: class index, title, description.
            raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
            if raw.shape[1] == 3 and raw.iloc[:, 0].str.fullmatch(r"\s*\d+\s*").all():
                labels = raw.iloc[:, 0].astype(int) - 1
                text = (raw.iloc[:, 1].str.strip() + " " + raw.iloc[:, 2].str.strip()).str.strip()
                return pd.DataFrame({"text": text, "label": labels, "_original_csv": True})
        return frame
    except UserError:
        raise
    except Exception as exc:  # malformed file of any format
        raise UserError(f"Could not read {path} ({type(exc).__name__}: {exc}); check the file is valid "
                        f"{path.suffix.lstrip('.')}.") from None


_HEADERLESS: set[Path] = set()


def _normalise(frame: pd.DataFrame, path: Path) -> Split:
    if "_original_csv" in frame.columns:
        _HEADERLESS.add(path)
    if "_original_csv" not in frame.columns and not {"text", "label"} <= set(frame.columns):
        raise UserError(
            f"{path} has columns {list(frame.columns)[:6]}; expected text,label (labels 0-3) or AG News's original "
            f"headerless CSV (class 1-4,title,description): rename the columns or convert the file.")
    if len(frame) == 0:
        raise UserError(f"{path} has no rows; supply a non-empty split.")
    labels = _integer_labels(frame["label"], path)
    bad = labels[(labels < 0) | (labels >= NUM_LABELS)]
    if bad.size:
        row = int(np.flatnonzero((labels < 0) | (labels >= NUM_LABELS))[0])
        raise UserError(f"{path} has labels outside 0-3 ({_row_ref(path, row)}: {int(bad[0])}); use 0-3 "
                        f"({', '.join(LABEL_NAMES)}) or the original CSV's 1-4 without a header.")
    return Split(_checked_texts(frame["text"], path), labels)


def _row_ref(path: Path, row: int) -> str:
    """Where a user finds data row ``row`` (0-based) in ``path``: a line for text files, a row index for parquet."""
    if path.suffix == ".csv":
        # AG News's original CSV has no header line; the text,label schema has one.
        return f"line {row + 1}" if path in _HEADERLESS else f"line {row + 2}"
    if path.suffix == ".jsonl":
        return f"line {row + 1}"
    return f"row {row}"


def _integer_labels(column: pd.Series, path: Path) -> np.ndarray:
    """Labels as int64; a non-number or a fraction (1.7 would silently become 1) names its row."""
    numeric = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(numeric) | (numeric != np.floor(numeric))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(f"{path} {_row_ref(path, row)} has label {column.iloc[row]!r}, not an integer; labels must "
                        f"be integers 0-3: fix or drop that row.")
    return numeric.astype(np.int64)


def _checked_texts(column: pd.Series, path: Path) -> list[str]:
    """Texts as str; a missing (None/NaN), non-string or blank text names its row instead of becoming ''."""
    texts = column.tolist()
    for row, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{path} {_row_ref(path, row)} has {'an empty' if isinstance(text, str) else 'a missing'} "
                            f"text ({text!r:.40}); fill it in or drop that row.")
    return texts


def check_training_classes(split: Split, path: str | os.PathLike) -> None:
    """A classifier cannot learn from one class: refuse a training split with fewer than two."""
    classes = np.unique(split.labels)
    if len(classes) < 2:
        raise UserError(f"The training split {path} has only class {[LABEL_NAMES[c] for c in classes]}; training "
                        f"needs rows of at least two classes (all four for AG News): use the full train file.")


def _hash_split(split: Split) -> str:
    return split_digest(split.texts, split.labels)


def _load_hub() -> tuple[Split, Split]:
    from common.hubcheck import hub_problem

    problem = hub_problem(HUB_NAME)  # one quick probe instead of ~30 s of the libraries' retries
    if problem:
        raise UserError(problem)
    try:
        import datasets
    except ImportError:  # pragma: no cover
        raise UserError("DATA=ag_news needs the `datasets` package; run `make setup`.") from None
    try:
        ds = datasets.load_dataset(HUB_NAME)
    except Exception as exc:
        raise UserError(f"Could not download {HUB_NAME} from the Hugging Face hub ({type(exc).__name__}); "
                        f"set DATA to a local folder with train/test files instead.") from None
    return (Split(list(ds["train"]["text"]), np.asarray(ds["train"]["label"], dtype=np.int64)),
            Split(list(ds["test"]["text"]), np.asarray(ds["test"]["label"], dtype=np.int64)))


def read_split(data: str | os.PathLike, split: str) -> tuple[Split, Path]:
    folder = Path(data)
    if not folder.is_dir():
        raise UserError(f"Data folder {folder} does not exist; set DATA to a folder with train and test files "
                        f"or to {HUB_NAME} (hub access needed).")
    path = _find_split_file(folder, split)
    return _normalise(_read_table(path), path), path


def stratified_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded, class-stratified choice of ``n`` indices (sorted); all when n<=0 or n>=len."""
    total = len(labels)
    if n <= 0 or n >= total:
        return np.arange(total)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    # Largest-remainder allocation keeps class proportions and the exact total.
    quota = counts / total * n
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take))[: n - take.sum()]:
        take[i] += 1
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def load_dataset(data: str | os.PathLike = "", train_samples: int = 0, seed: int = 42,
                 validation_fraction: float = 0.05) -> Dataset:
    """Load train/validation/test. ``data`` empty -> the shipped demo sample."""
    data = str(data) if data else str(DEMO_DATA)
    if data == HUB_NAME and not Path(data).exists():
        train, test = _load_hub()
    else:
        train, train_path = read_split(data, "train")
        test, _ = read_split(data, "test")
        check_training_classes(train, train_path)
    train = train.subset(stratified_indices(train.labels, train_samples, seed))
    n_val = max(1, int(round(len(train) * validation_fraction))) if validation_fraction > 0 else 0
    if n_val:
        val_idx = stratified_indices(train.labels, n_val, seed + 1)
        mask = np.ones(len(train), dtype=bool)
        mask[val_idx] = False
        validation, train = train.subset(val_idx), train.subset(np.flatnonzero(mask))
    else:
        validation = Split([], np.zeros(0, dtype=np.int64))
    content_hash = hashlib.sha256((_hash_split(train) + _hash_split(validation) + _hash_split(test)).encode())
    return Dataset(train, validation, test, source=data, content_hash=content_hash.hexdigest())


def load_split(data: str | os.PathLike = "", split: str = "test", limit: int = 0, seed: int = 42) -> Split:
    """One split, ``train`` or ``test``, whole (optionally a seeded stratified subset of ``limit`` rows); the
    other split is never read from a folder."""
    data = str(data) if data else str(DEMO_DATA)
    if data == HUB_NAME and not Path(data).exists():
        rows = dict(zip(("train", "test"), _load_hub()))[split]
    else:
        rows, _ = read_split(data, split)
    return rows.subset(stratified_indices(rows.labels, limit, seed))


def load_test_split(data: str | os.PathLike = "", limit: int = 0, seed: int = 42) -> Split:
    """The test split (optionally a seeded stratified subset of ``limit`` rows)."""
    return load_split(data, "test", limit, seed)
