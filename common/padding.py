"""Dynamic padding: a batch of token-id rows padded to its own longest row (numpy only).

Shared by the classifiers' batched prediction and the benchmark's timing protocol, which the Optimum peer's
process imports too (so this module imports nothing but numpy).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def pad_rows(ids: Sequence[Sequence[int]], idx: Sequence[int], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``input_ids`` and ``attention_mask`` (int64) of the rows ``idx`` of ``ids``, padded with ``pad_id``."""
    longest = max(len(ids[i]) for i in idx)
    input_ids = np.full((len(idx), longest), pad_id, dtype=np.int64)
    attention = np.zeros((len(idx), longest), dtype=np.int64)
    for row, i in enumerate(idx):
        input_ids[row, :len(ids[i])] = ids[i]
        attention[row, :len(ids[i])] = 1
    return input_ids, attention
