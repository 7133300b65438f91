"""The seed's path of SP-LIME: runs ``generate_outputs/sp_lime/run_sp_lime_hf_model.py`` (same flags), so the
seed's documented command works verbatim:

    python generate_outputs/generate_lime_csv/run_sp_lime_hf_model.py --model_dir models/fine_tuned/bert_agnews \
        --output_prefix outputs/sp_lime_sets/base_model_sp_lime
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from generate_outputs.sp_lime.run_sp_lime_hf_model import build_parser, main  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
