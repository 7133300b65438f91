"""CPU thread counts in one place: torch's intra-op pool and the share of cores each torchrun rank gets.

ONNX Runtime sessions take their own count (``Classifier.threads``), set from the same numbers.
"""
from __future__ import annotations

import os


def set_threads(threads: int) -> int:
    """Set torch's intra-op threads (0 = all cores); returns the effective count."""
    import torch

    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def default_threads(threads: int) -> int:
    """0 = the cores divided among the ranks on this node."""
    if threads:
        return threads
    local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")) or 1)
    return max(1, (os.cpu_count() or 1) // max(local, 1))


def set_rank_threads(threads: int) -> int:
    """:func:`set_threads` with 0 meaning this rank's share of the node's cores (torchrun-aware stages)."""
    return set_threads(default_threads(threads))
