"""Alias of run_sp_lime_hf_model (the seed project had one SP-LIME script per model type; one loader now
serves every type, so both names run the same code with the same flags)."""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: rerun as `python -m` runs it (script_shim.py)
    __import__("runpy").run_path(str(Path(__file__).resolve().parents[2] / "script_shim.py"))["run_as_module"](__file__)

from generate_outputs.sp_lime.run_sp_lime_hf_model import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
