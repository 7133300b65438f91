"""Shared logic for the BERT AG News compression and explanation toolkit.

Stage scripts are thin argparse entry points; everything they do lives here, one subpackage per concern
(the map and "where to add X": ``common/README.md``). The one public entry point every consumer uses is
:func:`common.models.classifier.load_classifier`.
"""
from pathlib import Path

LABEL_NAMES = ["World", "Sports", "Business", "Sci/Tech"]
NUM_LABELS = len(LABEL_NAMES)
# The checkout the package is installed from (``pip install -e .``): stage scripts, tools and the
# Makefile live beside it, and some stages run a tool script in another venv.
REPO_ROOT = Path(__file__).resolve().parent.parent
