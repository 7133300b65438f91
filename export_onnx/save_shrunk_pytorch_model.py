"""Alias of ``tools/apply_shrink_to_model.py`` kept where the seed had it: same flags, same code path.

    python -m export_onnx.save_shrunk_pytorch_model --model_path models/pruned/bert_agnews_20pct \
        --output_path_shrunk_model models/shrunk/pruned20 --save_method torch_save
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: rerun as `python -m` runs it (script_shim.py)
    __import__("runpy").run_path(str(Path(__file__).resolve().parents[1] / "script_shim.py"))["run_as_module"](__file__)

from tools.apply_shrink_to_model import main  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
