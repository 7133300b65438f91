"""The seed's other SP-LIME path: the same script as ``run_sp_lime_hf_model.py`` beside it (one loader serves
every model type now), e.g. ``python generate_outputs/generate_lime_csv/run_sp_lime_torch_loaded_model.py
--model_dir models/fine_tuned/bert_agnews --output_prefix outputs/sp_lime_sets/base_model_sp_lime``."""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: rerun as `python -m` runs it (script_shim.py)
    __import__("runpy").run_path(str(Path(__file__).resolve().parents[2] / "script_shim.py"))["run_as_module"](__file__)

from generate_outputs.generate_lime_csv.run_sp_lime_hf_model import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
