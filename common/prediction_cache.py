"""Content keys for data and predictions, and the one on-disk cache of a model's predictions.

A cached prediction is valid exactly when its key matches: the key is a digest of the model's
fingerprint (:func:`common.manifest.artefact_fingerprint`), the texts and every setting that changes
the result, so a rebuilt model, other texts or another ``max_len`` never reuse a stale file. The file
lies beside the outputs that use it, and is written atomically: a killed run leaves no half cache.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from common.manifest import artefact_fingerprint, atomic_output_file, digest, write_json_atomic

log = logging.getLogger(__name__)

def split_digest(texts: Sequence[str], labels: Sequence[int]) -> str:
    """sha256 of a labelled split, row by row (``label<TAB>text``): the data's identity in manifests."""
    hasher = hashlib.sha256()
    for text, label in zip(texts, labels):
        hasher.update(f"{int(label)}\t{text}\n".encode())
    return hasher.hexdigest()


def prediction_key(model: str | os.PathLike, texts: Sequence[str], **settings) -> str:
    """The key of ``model``'s predictions on ``texts`` under ``settings`` (e.g. ``max_len``)."""
    texts_digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return digest({"model": artefact_fingerprint(Path(model)), "texts": texts_digest, "n": len(texts), **settings})


def cache_path(cache_dir: str | os.PathLike, prefix: str, key: str, suffix: str) -> Path:
    """The cache file of ``key``: the whole key is in the name, so a name selects exactly one result."""
    return Path(cache_dir) / f"{prefix}{key}{suffix}"


def _read(path: Path, key: str) -> np.ndarray | None:
    if not path.is_file():
        return None
    with contextlib.suppress(ValueError, KeyError, OSError, TypeError):
        if path.suffix == ".json":
            stored = json.loads(path.read_text())
            return np.asarray(stored["values"]) if stored["key"] == key else None
        return np.load(path) if key in path.name else None
    return None


def cached_predictions(path: str | os.PathLike, key: str, compute: Callable[[], np.ndarray],
                       meta: dict | None = None) -> np.ndarray:
    """``compute()``'s array, read from ``path`` when it holds ``key``'s result, else computed and written.

    ``path`` comes from :func:`cache_path`. ``.json`` (small and readable: the key and ``meta`` are stored
    beside the values) or ``.npy`` (large arrays: the key is the file name).
    """
    path = Path(path)
    cached = _read(path, key)
    if cached is not None:
        log.info("Predictions from cache %s", path)
        return cached
    values = np.asarray(compute())
    if path.suffix == ".json":
        write_json_atomic(path, {"key": key, **(meta or {}), "values": values.tolist()})
    else:
        with atomic_output_file(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, values)
    return values
