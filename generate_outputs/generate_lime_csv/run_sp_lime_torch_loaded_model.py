"""The seed's other SP-LIME path: the same script as ``run_sp_lime_hf_model.py`` beside it (one loader serves
every model type now), e.g. ``python generate_outputs/generate_lime_csv/run_sp_lime_torch_loaded_model.py
--model_dir models/fine_tuned/bert_agnews --output_prefix outputs/sp_lime_sets/base_model_sp_lime``."""
from __future__ import annotations

import sys

from generate_outputs.generate_lime_csv.run_sp_lime_hf_model import main

if __name__ == "__main__":
    sys.exit(main())
