"""LIME's text explainer and its text handling, in one place below every package that needs them.

The LIME stages explain with :func:`make_explainer`; the deletion test removes words and the function recipe
(:mod:`common.compress.function_matching`) draws word-deleted copies exactly as that explainer splits a text
(:func:`lime_indexed_string`: its bow, split expression and mask, read from the explainer itself, so the three
cannot diverge).
"""
from __future__ import annotations

import functools

from common import LABEL_NAMES


def make_explainer(seed: int):
    from lime.lime_text import LimeTextExplainer

    return LimeTextExplainer(class_names=list(LABEL_NAMES), random_state=seed, feature_selection="none")


@functools.lru_cache(maxsize=1)
def lime_text_settings() -> tuple:
    """(bow, split_expression, mask_string) of the explainer the LIME stage uses."""
    explainer = make_explainer(0)
    return explainer.bow, explainer.split_expression, explainer.mask_string


def lime_indexed_string(text: str):
    """The text as LIME's explainer splits it."""
    from lime.lime_text import IndexedString

    bow, split_expression, mask_string = lime_text_settings()
    return IndexedString(text, bow=bow, split_expression=split_expression, mask_string=mask_string)
