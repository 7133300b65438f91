"""Run a stage script given as a file exactly as ``python -m`` runs it from the repository root.

``python train/pruning/run_structural_pruning.py ...`` puts the script's own folder, not the repository,
first on ``sys.path``, so ``import common`` fails; ``python -m train.pruning.run_structural_pruning`` (what
the Makefile runs) does not have that problem. A script whose ``__package__`` is empty (run as a file) hands
over here first, with ``runpy.run_path(<root>/script_shim.py)["run_as_module"](__file__)``, and this one
place reruns it as its module: both ways run the same code with the same ``__package__``, and nothing else
in the repository touches ``sys.path``. Stdlib only.
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def module_name(script: str) -> str:
    """``train/pruning/run_structural_pruning.py`` (any cwd) -> ``train.pruning.run_structural_pruning``."""
    return ".".join(Path(script).resolve().relative_to(ROOT).with_suffix("").parts)


def run_as_module(script: str) -> None:
    # `python -m` puts the cwd first on sys.path; here the repository takes the script folder's place.
    sys.path[0] = str(ROOT)
    runpy.run_module(module_name(script), run_name="__main__", alter_sys=True)
    # A script that returns without sys.exit must not fall through into its file-run copy.
    raise SystemExit(0)

