"""One loader for every artefact: ``load_classifier(path) -> Classifier``.

Formats are detected from the artefact itself, never from its name:

* a folder with ``config.json`` - a fine-tuned, pruned (masked) or shrunk torch model
  (``pruning_spec.json`` beside the weights says which);
* a ``.pt`` file - a payload dict whose ``format`` key names its loader
  (``torch_dynamic_int8``, ``mlp_bow``, ...), loaded with ``weights_only=True``;
* a ``.onnx`` file - ONNX Runtime, tokenizer and config from the same folder;
* a ``.xml`` file - an OpenVINO IR (its ``.bin`` beside it) in the OpenVINO runtime, tokenizer from the same folder.

Every loader is imported here by name and registered in :data:`_LOADERS` or :data:`_PAYLOAD_LOADERS`;
loader modules import only :mod:`common.models.base`, never this module, so the import graph has
no cycle. Adding a format is a loader module plus one entry in one of the two tables. Every classifier
exposes ``predict_proba(texts) -> np.ndarray (n, 4)`` and ``label_names``; batches are sorted by token
length, padded dynamically and re-ordered back.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from common.models import onnx_graph as onnx_models, openvino_graph as openvino_models, torch_int8 as quantization
from common.models.base import (DEFAULT_BATCH_SIZE, DEFAULT_MAX_LEN, Classifier, TorchClassifier, check_texts,
                                    load_payload, softmax)
from common.cli import UserError
from common.models import mlp_student as mlp_model
from common.models.tokenizer_files import (TOKENIZER_FILES, TOKENIZER_VOCAB_FILES, check_tokenizer_folder, tokenizer_files,
                                    tokenizer_from_files)

# The base's and the tokenizer files' names are re-exported: consumers import from this one entry point.
__all__ = ["load_classifier", "Classifier", "TorchClassifier", "DEFAULT_BATCH_SIZE", "DEFAULT_MAX_LEN", "check_texts",
           "load_payload", "softmax", "TOKENIZER_FILES", "TOKENIZER_VOCAB_FILES", "check_tokenizer_folder",
           "tokenizer_files", "tokenizer_from_files"]


def _check_dtype(dtype: str) -> str:
    if dtype not in ("fp32", "fp16", "bf16"):
        raise UserError(f"--dtype {dtype!r} is not supported; use fp32, fp16 or bf16.")
    return dtype


def load_classifier(path: str | os.PathLike, device: str = "auto", dtype: str = "fp32",
                    max_len: int = DEFAULT_MAX_LEN, batch_size: int = DEFAULT_BATCH_SIZE,
                    progress: bool = False, **options) -> Classifier:
    """Load any artefact this toolkit writes as a :class:`Classifier`.

    ``device``: auto|cpu|cuda[:N]. ``dtype``: fp32|fp16|bf16 (torch models).
    ``options`` are passed to the format's loader (e.g. ``threads`` for ONNX).
    """
    from common.cli import resolve_device

    path = Path(path)
    if not path.exists():
        raise UserError(f"Model {path} does not exist; build it first (see `make help`) or fix the path.")
    device = resolve_device(device)
    _check_dtype(dtype)
    common_kwargs = dict(device=device, dtype=dtype, max_len=max_len, batch_size=batch_size, progress=progress)
    for name, detect, loader in _LOADERS:
        if detect(path):
            classifier = loader(path, **common_kwargs, **options)
            classifier.info.setdefault("format", name)
            classifier.info.setdefault("path", str(path))
            return classifier
    raise UserError(f"{path} is not a model this toolkit can load (expected a model folder, a .pt payload, an "
                    f".onnx file or an OpenVINO .xml).")


def _load_torch_folder(path: Path, device, dtype, **kwargs) -> Classifier:
    from common.models.modeling import load_model_folder

    model, tokenizer, spec = load_model_folder(path)
    clf = TorchClassifier(model, tokenizer, device=device, dtype=dtype, **kwargs)
    clf.info["pruning"] = None if spec is None else ("shrunk" if spec.shrunk else "masked")
    return clf


def _load_payload(path: Path, **kwargs) -> Classifier:
    payload = load_payload(path)
    loader = _PAYLOAD_LOADERS.get(payload["format"])
    if loader is None:
        raise UserError(f"{path} has payload format {payload['format']!r}, which this version cannot load.")
    return loader(payload, path=path, **kwargs)


# .pt payloads by their ``format`` key.
_PAYLOAD_LOADERS: dict[str, Callable[..., Classifier]] = {
    quantization.FORMAT: quantization._load,
    mlp_model.PAYLOAD_FORMAT: mlp_model.load_student,
}
# (name, detect, load), tried in order.
_LOADERS: list[tuple[str, Callable[[Path], bool], Callable[..., Classifier]]] = [
    ("torch_folder", lambda p: p.is_dir() and (p / "config.json").is_file(), _load_torch_folder),
    ("torch_payload", lambda p: p.is_file() and p.suffix == ".pt", _load_payload),
    ("onnx", onnx_models.is_onnx_file, onnx_models.load_onnx),
    ("openvino", openvino_models.is_openvino_file, openvino_models.load_openvino),
]
