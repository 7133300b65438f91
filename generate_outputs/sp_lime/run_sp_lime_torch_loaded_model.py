"""Alias of run_sp_lime_hf_model (the seed project had one SP-LIME script per model type; one loader now
serves every type, so both names run the same code with the same flags)."""
from __future__ import annotations

import sys

from generate_outputs.sp_lime.run_sp_lime_hf_model import main

if __name__ == "__main__":
    sys.exit(main())
