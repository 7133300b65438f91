"""The part of speech of every LIME word: NLTK tags on the original text, mapped onto LIME's words.

Tagging. Each explained text is tagged in its ORIGINAL form (not LIME's ``\\W+`` pieces) with
NLTK's own word tokenizer (:class:`nltk.tokenize.NLTKWordTokenizer`, which keeps punctuation,
contractions and abbreviations: "U.S." is one token, "doesn't" is "does" + "n't") and the
averaged perceptron tagger, universal tagset. ``word_tokenize`` would need the punkt model, which
is not in the shared NLTK data, so sentences are split by :func:`sentence_spans` (a period, "!" or
"?" followed by space and a capital, except after an abbreviation such as "U.S." or "Inc.").

Markup. AG News carries escaped HTML: entities (``&lt;``, ``&quot;``, ``&#39;``), often with the
``&`` turned into a space (``doesn #39;t``, `` quot;``), and escaped tags (``&lt;b&gt;``). Entities
are decoded before tagging (a leading space stands for the lost ``&`` and goes with it, as AG News
always put one there: ``doesn #39;t`` -> ``doesn't``, ``Johnson  amp; Johnson`` -> ``Johnson & Johnson``), and
HTML tags (``<b>``, ``</a>``, ...) are removed. A LIME word that lies inside an entity or a removed
tag ("lt", "gt", "quot", "39", and the "b" of ``&lt;b&gt;``) gets the pseudo-tag ``MARKUP``: its
weight stays visible, but it is not counted as a noun. Escaped brackets around a ticker
(``&lt;TXN.N&gt;``) are decoded, not removed: the ticker is tagged like any token.

Mapping. LIME's words are the ``\\w+`` runs of the original text. Each occurrence gets the tag of
the NLTK token that overlaps it most, by character span in the original text ("U" and "S" of
"U.S." both get the tag of "U.S."). LIME has one weight per distinct word (all its occurrences
are removed together), so a word that occurs several times splits its |weight| over the tags of
its occurrences in proportion to their counts.
"""
from __future__ import annotations

import html
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from common.cli import UserError

UNIVERSAL_TAGS = ["NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X"]
MARKUP = "MARKUP"
TAGS = UNIVERSAL_TAGS + [MARKUP]
LIME_WORD = re.compile(r"\w+")  # the complement of LimeTextExplainer's default split_expression \W+
# "&name;" / "&#n;", or AG News's form with the "&" turned into a space: " quot;", " #39;"
ENTITY = re.compile(r"[& ](#\d{1,5}|[A-Za-z][A-Za-z0-9]{1,7});")
HTML_TAG = re.compile(r"</?(?:a|b|i|u|p|br|hr|em|strong|font|span|div|img|li|ul|ol|sup|sub|table|tr|td|h[1-6])"
                      r"(?:\s[^<>]*)?/?>", re.IGNORECASE)
SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
ABBREVIATION = re.compile(r"(?:^|\s)(?:(?:[A-Za-z]\.){2,}|[A-Z]\.|Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Inc|Corp|Co|Ltd|Bros|vs|"
                          r"No|Gen|Sen|Rep|Gov|Lt|Col|Sgt|Capt|Jan|Feb|Mar|Apr|Aug|Sept?|Oct|Nov|Dec)\.$")

Tagger = Callable[[Sequence[str]], list[tuple[str, str]]]  # one sentence's tokens -> (token, universal tag)


@dataclass
class CleanText:
    """The text the tagger sees, with each of its characters' span in the original text."""
    text: str
    origin: list[tuple[int, int]]
    markup: list[tuple[int, int]]  # original spans of entities and removed HTML tags


def _decode_entity(body: str) -> str | None:
    if body.startswith("#"):
        code = int(body[1:])
        if 128 <= code <= 159:  # the Windows-1252 code points AG News uses for quotes and dashes
            return bytes([code]).decode("cp1252", errors="replace")
        return chr(code) if 0 < code < 0x110000 else None
    decoded = html.unescape(f"&{body};")
    return None if decoded == f"&{body};" else decoded


def clean_text(raw: str) -> CleanText:
    """Decode HTML entities and drop HTML tags, keeping every character's origin (see the module docstring)."""
    chars: list[str] = []
    origin: list[tuple[int, int]] = []
    markup: list[tuple[int, int]] = []
    position = 0
    for match in ENTITY.finditer(raw):
        decoded = _decode_entity(match.group(1))  # a leading space is the lost "&": it goes too
        if decoded is None:
            continue
        start = match.start()
        for i in range(position, start):
            chars.append(raw[i])
            origin.append((i, i + 1))
        chars.extend(decoded)
        origin.extend([(start, match.end())] * len(decoded))
        markup.append((start, match.end()))
        position = match.end()
    for i in range(position, len(raw)):
        chars.append(raw[i])
        origin.append((i, i + 1))
    text = "".join(chars)
    keep = np.ones(len(text), dtype=bool)
    for match in HTML_TAG.finditer(text):
        keep[match.start():match.end()] = False
        markup.append((origin[match.start()][0], origin[match.end() - 1][1]))
    return CleanText(text="".join(c for c, k in zip(text, keep) if k),
                     origin=[o for o, k in zip(origin, keep) if k], markup=markup)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence spans without punkt: split after . ! ? + space + a capital, but not after an abbreviation."""
    spans, start = [], 0
    for match in SENTENCE_END.finditer(text):
        if text[match.start()] == "." and ABBREVIATION.search(text[start:match.start() + 1]):
            continue
        spans.append((start, match.end()))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def tagged_tokens(raw: str, tagger: Tagger) -> tuple[list[tuple[int, int, str]], list[tuple[int, int]]]:
    """([(start, end, tag)] of NLTK's tokens in original offsets, markup spans) of one text."""
    from nltk.tokenize import NLTKWordTokenizer

    tokenizer = NLTKWordTokenizer()
    clean = clean_text(raw)
    out = []
    for s_start, s_end in sentence_spans(clean.text):
        sentence = clean.text[s_start:s_end]
        spans = list(tokenizer.span_tokenize(sentence))
        tokens = [sentence[a:b] for a, b in spans]
        # the tagger learned Penn Treebank quotes: `` opening, '' closing
        words = [("``" if a == 0 or sentence[a - 1].isspace() else "''") if t == '"' else t
                 for t, (a, b) in zip(tokens, spans)]
        for (a, b), (_, tag) in zip(spans, tagger(words)):
            out.append((clean.origin[s_start + a][0], clean.origin[s_start + b - 1][1], tag))
    return out, clean.markup


def word_tags(raw: str, tagger: Tagger) -> dict[str, dict[str, float]]:
    """LIME word -> {tag: share of its occurrences} (see the module docstring for the mapping)."""
    tokens, markup = tagged_tokens(raw, tagger)
    counts: dict[str, Counter] = defaultdict(Counter)
    for match in LIME_WORD.finditer(raw):
        start, end = match.span()
        if any(m_start <= start and end <= m_end for m_start, m_end in markup):
            tag = MARKUP
        else:
            overlaps = [(min(end, t_end) - max(start, t_start), -t_start, tag) for t_start, t_end, tag in tokens]
            best = max(overlaps, default=(0, 0, "X"))
            tag = best[2] if best[0] > 0 else "X"
        counts[match.group()][tag] += 1
    return {word: {tag: n / sum(c.values()) for tag, n in c.items()} for word, c in counts.items()}


def nltk_tagger() -> Tagger:
    """NLTK's perceptron tagger mapped to the universal tagset; UserError naming `make nltk-data` if absent."""
    import nltk

    def tag(tokens: Sequence[str]) -> list[tuple[str, str]]:
        return nltk.pos_tag(list(tokens), tagset="universal")

    try:  # look the data up explicitly: nltk caches a loaded tagger, but not where it came from
        nltk.data.find("taggers/averaged_perceptron_tagger_eng/")
        nltk.data.find("taggers/universal_tagset/")
        tag(["The", "model", "runs", "fast"])
    except LookupError:
        raise UserError("NLTK's POS tagger (averaged_perceptron_tagger_eng + universal_tagset) is not in NLTK_DATA; "
                        "run `make nltk-data` or set NLTK_DATA to a folder that has it.") from None
    return tag
