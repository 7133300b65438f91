"""The seed's path of SP-LIME: runs ``generate_outputs/sp_lime/run_sp_lime_hf_model.py`` (same flags), so the
seed's documented command works verbatim:

    python generate_outputs/generate_lime_csv/run_sp_lime_hf_model.py --model_dir models/fine_tuned/bert_agnews \
        --output_prefix outputs/sp_lime_sets/base_model_sp_lime
"""
from __future__ import annotations

import sys

from generate_outputs.sp_lime.run_sp_lime_hf_model import main

if __name__ == "__main__":
    sys.exit(main())
