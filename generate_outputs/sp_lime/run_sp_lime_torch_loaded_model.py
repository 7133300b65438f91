"""Alias of run_sp_lime_hf_model (the seed project had one SP-LIME script per model type; one loader now
serves every type, so both names run the same code with the same flags)."""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from generate_outputs.sp_lime.run_sp_lime_hf_model import build_parser, main  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
