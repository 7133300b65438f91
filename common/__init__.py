"""Shared logic for the BERT AG News compression and explanation toolkit.

Stage scripts are thin argparse entry points; everything they do lives here.
The one public entry point every consumer uses is :func:`common.classifier.load_classifier`.
"""

LABEL_NAMES = ["World", "Sports", "Business", "Sci/Tech"]
NUM_LABELS = len(LABEL_NAMES)
