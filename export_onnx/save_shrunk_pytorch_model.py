"""Alias of ``tools/apply_shrink_to_model.py`` kept where the seed had it: same flags, same code path.

    python -m export_onnx.save_shrunk_pytorch_model --model_path models/pruned/bert_agnews_20pct \
        --output_path_shrunk_model models/shrunk/pruned20 --save_method torch_save
"""
from __future__ import annotations

import sys

from tools.apply_shrink_to_model import main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
