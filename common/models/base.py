"""The :class:`Classifier` every artefact loads as: length-sorted, dynamically padded batches, probabilities.

Subclasses implement one batch's logits; :class:`TorchClassifier` is the torch one. This module imports
no loader: the loaders (:mod:`common.models.torch_int8`, :mod:`common.models.onnx_graph`, :mod:`common.models.mlp_student`)
import it, and :mod:`common.models.classifier` imports them, so the import graph has no cycle.
"""
from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np

from common import LABEL_NAMES
from common.cli import UserError
from common.padding import pad_rows

log = logging.getLogger(__name__)

DEFAULT_MAX_LEN = 128
DEFAULT_BATCH_SIZE = 32


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def check_texts(texts) -> list[str]:
    """``texts`` as a list of str, or :class:`TypeError` naming what is wrong.

    A TypeError (not a UserError): passing a bare string or a None is a programming error of the
    caller; stages validate their data (``common.data``) before it gets here.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"texts must be a sequence of strings, not a single {type(texts).__name__} "
                        f"({texts[:40]!r}); wrap one text in a list: predict_proba([text]).")
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(f"texts must be a sequence of strings, not {type(texts).__name__}.") from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__} ({text!r:.40}), not str; every text must be "
                            f"a string (drop or convert missing values before predicting).")
    return texts


_warned_unencodable = False


def clean_texts(texts: list[str]) -> list[str]:
    """Replace code points UTF-8 cannot encode (lone surrogates) with U+FFFD; warn once per process."""
    global _warned_unencodable
    cleaned = []
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            if not _warned_unencodable:
                log.warning("text %d (and maybe others) holds code points UTF-8 cannot encode (e.g. a lone "
                            "surrogate); they are replaced with U+FFFD so the batch still runs.", i)
                _warned_unencodable = True
            text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        cleaned.append(text)
    return cleaned


class Classifier:
    """Base class: subclasses implement ``_logits_batch(encoded_batch) -> np.ndarray``.

    ``encoded`` items are lists of token ids; the base class sorts them by
    length, pads each batch to its own longest item, and restores the order.
    """

    label_names: list[str] = LABEL_NAMES
    kind: str = "abstract"
    # True for dynamic int8: activation scales are computed per batch, so a text's output
    # depends on its batch mates (callers needing invariance fix the batch composition).
    batch_dependent: bool = False

    def __init__(self, tokenizer, max_len: int = DEFAULT_MAX_LEN, batch_size: int = DEFAULT_BATCH_SIZE,
                 progress: bool = False, threads: int = 0):
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.batch_size = batch_size
        self.progress = progress
        # CPU threads for formats with per-session thread pools (ONNX); torch uses set_threads globally.
        self.threads = threads
        self.info: dict = {}

    # -- to implement
    def _logits_batch(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                      token_type_ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- shared
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        texts = check_texts(texts)
        return self.tokenizer(clean_texts(texts), truncation=True, max_length=self.max_len,
                              add_special_tokens=True)["input_ids"]

    def predict_logits(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Logits ``(len(texts), 4)`` for a sequence of strings.

        ``texts`` must be a list/tuple/array of ``str``: a bare string (which would otherwise be read
        as one text per character) and non-string items (None, numbers, NaN, bytes) raise
        :class:`TypeError`, naming the first offending item. Unencodable code points (lone surrogates)
        are replaced, with one warning, so one bad text never costs the rest of its batch.
        """
        texts = check_texts(texts)
        if len(texts) == 0:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        batch_size = batch_size or self.batch_size
        ids = self.encode(texts)
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.empty((len(ids), len(self.label_names)), dtype=np.float32)
        starts = range(0, len(order), batch_size)
        if self.progress and len(starts) > 1:
            from tqdm import tqdm

            starts = tqdm(starts, desc=f"predict ({self.kind})", unit="batch", leave=False)
        pad_id = self.tokenizer.pad_token_id or 0
        for start in starts:
            idx = order[start:start + batch_size]
            input_ids, attention = pad_rows(ids, idx, pad_id)
            out[idx] = self._logits_batch(input_ids, attention, np.zeros_like(input_ids))
        return out

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Class probabilities ``(len(texts), 4)``; input rules as in :meth:`predict_logits`."""
        return softmax(self.predict_logits(texts, batch_size))

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return self.predict_logits(texts, batch_size).argmax(axis=1)

    __call__ = predict_proba


class TorchClassifier(Classifier):
    """A torch ``...ForSequenceClassification`` (full, masked, shrunk or dynamic-int8)."""

    kind = "torch"

    def __init__(self, model, tokenizer, device: str = "cpu", dtype: str = "fp32", **kwargs):
        import torch

        super().__init__(tokenizer, **kwargs)
        # Never feed more positions than the model has embeddings for.
        self.max_len = min(self.max_len, getattr(model.config, "max_position_embeddings", self.max_len))
        self.torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        self.device = device
        self.dtype = dtype
        self.model = model.to(device)
        if dtype != "fp32":
            self.model = self.model.to(self.torch_dtype)
        self.model.eval()

    def parameter_count(self) -> dict[str, int]:
        from common.models.modeling import count_parameters

        return count_parameters(self.model)

    def _logits_batch(self, input_ids, attention_mask, token_type_ids):
        import torch

        with torch.inference_mode():
            logits = self.model(input_ids=torch.from_numpy(input_ids).to(self.device),
                                attention_mask=torch.from_numpy(attention_mask).to(self.device),
                                token_type_ids=torch.from_numpy(token_type_ids).to(self.device)).logits
        return logits.float().cpu().numpy()


def load_payload(path: str | os.PathLike) -> dict:
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{path} is not a readable torch payload ({type(exc).__name__}); rebuild it.") from None
    if not isinstance(payload, dict) or "format" not in payload:
        raise UserError(f"{path} is a .pt file without a 'format' key; only payloads written by this toolkit "
                        f"load (state dict + spec, never a pickled module).")
    return payload
