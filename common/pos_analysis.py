"""Which parts of speech carry a model's LIME weight, and whether a variant shifts that beyond LIME's noise.

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

Shares. Per explained instance, the top ``TOP_K`` (10) words by |weight| for the explained class;
the share of a tag is that tag's part of their |weight|. A variant's share of a tag is the mean of
the per-instance shares, with a 95 % percentile bootstrap CI over instances.

Verdict, like for like (the design of the LIME agreement verdict). The variant is explained with
the base's LIME seed S and compared with base explained with seed S+1 (``base_noise.csv``); the
floor is base@S against the same base@S+1, on the same instances. Per instance, extra divergence =
JS(tag shares of variant@S, base@S+1) - JS(base@S, base@S+1) (Jensen-Shannon divergence, base 2:
0 = identical, 1 = disjoint). :func:`common.verdict.judge` (one-sided: only more divergence is
worse) with margin = ``MARGIN_FRACTION`` (0.25) x mean JS(base@S, base@S+1): ``equivalent`` when
the 95 % upper bound of the mean extra divergence is below a quarter of LIME's own seed-to-seed
divergence, ``drifted`` when the lower bound is above it, else ``inconclusive``.
"""
from __future__ import annotations

import html
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from common import LABEL_NAMES
from common.cli import UserError
from common.schema import POS_COLUMNS, POS_CSV

log = logging.getLogger(__name__)

UNIVERSAL_TAGS = ["NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X"]
MARKUP = "MARKUP"
TAGS = UNIVERSAL_TAGS + [MARKUP]
TOP_K = 10
MARGIN_FRACTION = 0.25
BOOTSTRAP_SEED = 0
SHARE_COLUMNS = ["variant", "scope", "tag", "share", "lower", "upper", "n"]
SHOWN_SHARE = 0.01  # tags below this share in every run are left out of the table and plot (not the CSV)
FLOOR = "noise_floor"
REFERENCE = "reference"

LIME_WORD = re.compile(r"\w+")  # the complement of LimeTextExplainer's default split_expression \W+
# "&name;" / "&#n;", or AG News's form with the "&" turned into a space: " quot;", " #39;"
ENTITY = re.compile(r"[& ](#\d{1,5}|[A-Za-z][A-Za-z0-9]{1,7});")
HTML_TAG = re.compile(r"</?(?:a|b|i|u|p|br|hr|em|strong|font|span|div|img|li|ul|ol|sup|sub|table|tr|td|h[1-6])"
                      r"(?:\s[^<>]*)?/?>", re.IGNORECASE)
SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
ABBREVIATION = re.compile(r"(?:^|\s)(?:(?:[A-Za-z]\.){2,}|[A-Z]\.|Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Inc|Corp|Co|Ltd|Bros|vs|"
                          r"No|Gen|Sen|Rep|Gov|Lt|Col|Sgt|Capt|Jan|Feb|Mar|Apr|Aug|Sept?|Oct|Nov|Dec)\.$")

Tagger = Callable[[Sequence[str]], list[tuple[str, str]]]  # one sentence's tokens -> (token, universal tag)


# ----------------------------------------------------------------------------------------------- tagging
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


# ----------------------------------------------------------------------------------------------- shares
def instance_shares(weights: dict[str, float], tags: dict[str, dict[str, float]], top_k: int = TOP_K) -> np.ndarray:
    """Share of each tag (in ``TAGS`` order) in the |weight| of the instance's top ``top_k`` words."""
    top = sorted(weights.items(), key=lambda wv: (-abs(wv[1]), wv[0]))[:top_k]
    mass = np.zeros(len(TAGS))
    for word, weight in top:
        for tag, share in tags.get(word, {"X": 1.0}).items():
            mass[TAGS.index(tag)] += abs(weight) * share
    total = mass.sum()
    return mass / total if total > 0 else mass


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    return float(jensenshannon(p, q, base=2) ** 2)


@dataclass
class ExplainedShares:
    """Per-instance tag shares of one LIME CSV, keyed by (instance_id, explained_label)."""
    name: str
    path: str
    shares: dict[tuple[int, int], np.ndarray]
    seed: int | None
    num_samples: int | None


def _single_value(frame, column: str, path: Path) -> int | None:
    if column not in frame.columns:
        return None
    values = [v for v in frame[column].unique() if str(v) != ""]
    if len(values) > 1:
        raise UserError(f"{path} mixes several values of {column} ({sorted(values)[:4]}); explain it in one run.")
    return int(values[0]) if len(values) else None


def load_shares(path: str | Path, tagger: Tagger, top_k: int, cache: dict[str, dict]) -> ExplainedShares:
    """Read one run_lime_on_model CSV; ``cache`` (text -> word tags) is shared across files of the same texts."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"LIME CSV {path} does not exist; build it with `make {path}` first.")
    frame = pd.read_csv(path, keep_default_na=False, dtype={"word": str, "text": str})
    missing = {"instance_id", "text", "word", "weight", "explained_label"} - set(frame.columns)
    if missing:
        raise UserError(f"{path} lacks columns {sorted(missing)}; it is not a run_lime_on_model CSV.")
    if frame.empty:
        raise UserError(f"{path} has no explanations; rebuild it with `make {path}`.")
    name = str(frame["variant"].iloc[0]) if "variant" in frame.columns else path.stem
    shares = {}
    for (instance, label), group in frame.groupby(["instance_id", "explained_label"], sort=True):
        text = str(group["text"].iloc[0])
        if text not in cache:
            cache[text] = word_tags(text, tagger)
        shares[(int(instance), int(label))] = instance_shares(
            dict(zip(group["word"].astype(str), group["weight"].astype(float))), cache[text], top_k)
    return ExplainedShares(name, str(path), shares, _single_value(frame, "seed", path),
                           _single_value(frame, "num_samples", path))


def check_design(base: ExplainedShares, noise: ExplainedShares, variants: list[ExplainedShares]) -> None:
    """Same instances, labels and sample counts everywhere; variants on base's seed, the floor on another."""
    for other in [noise] + variants:
        if set(other.shares) != set(base.shares):
            only_other, only_base = len(set(other.shares) - set(base.shares)), len(set(base.shares) - set(other.shares))
            raise UserError(f"{other.path} explains other (instance, label) pairs than the base {base.path} "
                            f"({only_other} only there, {only_base} only in base); explain the same instances.")
        if None not in (other.num_samples, base.num_samples) and other.num_samples != base.num_samples:
            raise UserError(f"{other.path} used {other.num_samples} LIME samples, the base {base.path} "
                            f"{base.num_samples}; explain both with the same LIME_SAMPLES.")
    for variant in variants:
        if None not in (variant.seed, base.seed) and variant.seed != base.seed:
            raise UserError(f"{variant.path} was explained with LIME seed {variant.seed}, the base with {base.seed}; "
                            f"variants must use the base's seed so they are judged like the noise floor.")
    if None not in (noise.seed, base.seed) and noise.seed == base.seed:
        raise UserError(f"The noise run {noise.path} has the base's LIME seed {base.seed}; it must use another "
                        f"seed (outputs/lime/base_noise.csv uses SEED+1).")


def _matrix(explained: ExplainedShares, keys: list) -> np.ndarray:
    return np.array([explained.shares[k] for k in keys]).reshape(len(keys), len(TAGS))


def share_rows(name: str, matrix: np.ndarray, keys: list) -> list[dict]:
    """Long rows (SHARE_COLUMNS): mean share per tag with its 95 % bootstrap CI, overall and per class."""
    from common.verdict import bootstrap_means

    labels = np.array([label for _, label in keys])
    rows = []
    for scope, mask in [("all", np.ones(len(keys), dtype=bool))] + [
            (LABEL_NAMES[c], labels == c) for c in range(len(LABEL_NAMES)) if (labels == c).any()]:
        values = matrix[mask]
        means = values.mean(axis=0)
        boot = bootstrap_means(values, BOOTSTRAP_SEED)
        lower, upper = np.quantile(boot, [0.025, 0.975], axis=0)
        rows += [{"variant": name, "scope": scope, "tag": tag, "share": float(means[i]), "lower": float(lower[i]),
                  "upper": float(upper[i]), "n": int(mask.sum())} for i, tag in enumerate(TAGS)]
    return rows


def pos_verdicts(base: ExplainedShares, noise: ExplainedShares, variants: list[ExplainedShares],
                 margin_fraction: float = MARGIN_FRACTION) -> tuple[list[dict], dict]:
    """(rows with POS_COLUMNS, per-instance values) for the floor and each variant; see the module docstring."""
    from common.verdict import judge

    keys = sorted(base.shares)
    base_m, noise_m = _matrix(base, keys), _matrix(noise, keys)
    floor = np.array([js_divergence(b, n) for b, n in zip(base_m, noise_m)])
    finite = np.isfinite(floor)
    if finite.sum() < 2:
        raise UserError(f"{base.path} and {noise.path} share fewer than 2 instances with LIME weight; "
                        f"explain more instances (LIME_INSTANCES).")
    floor_mean = float(floor[finite].mean())
    if not floor_mean > 0:
        raise UserError(f"The base run {base.path} and the noise run {noise.path} give identical tag shares, so "
                        f"there is no noise floor to scale the margin; check that {noise.path} used another seed.")
    margin = margin_fraction * floor_mean
    rows = [{"variant": FLOOR, "n": int(finite.sum()), "js_mean": floor_mean, "extra_js_mean": 0.0, "lower": None,
             "upper": None, "margin": margin, "verdict": REFERENCE, "n_to_decide": None}]
    per_instance = {FLOOR: floor}
    for variant in variants:
        js = np.array([js_divergence(v, n) for v, n in zip(_matrix(variant, keys), noise_m)])
        extra = js - floor
        result = judge(extra, margin, two_sided=False, seed=BOOTSTRAP_SEED)
        rows.append({"variant": variant.name, "n": result["n"], "js_mean": float(np.nanmean(js)),
                     "extra_js_mean": result["mean"], "lower": result["lower"], "upper": result["upper"],
                     "margin": margin, "verdict": result["verdict"], "n_to_decide": result["n_to_decide"]})
        per_instance[variant.name] = extra
    return rows, per_instance


# ----------------------------------------------------------------------------------------------- outputs
def series_colours(n: int) -> list:
    """``n`` distinct colours: tab10, then tab20's light shades (other hues first), then a wide colormap.

    matplotlib's default cycle has 10 colours, so the 11th series used to repeat the first."""
    import matplotlib

    if n <= 20:
        tab20 = matplotlib.colormaps["tab20"]
        return [tab20(2 * i) for i in range(10)][:n] + [tab20(2 * i + 1) for i in range(10)][:max(n - 10, 0)]
    return [matplotlib.colormaps["turbo"](x) for x in np.linspace(0.03, 0.97, n)]


def _plot(shares, verdict_rows: list[dict], used: list[str], path: Path, top_k: int) -> list:
    """Tag shares with CIs (left) and each variant's extra JS with its bounds against the margin (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(shares["variant"]))
    colours = dict(zip(names, series_colours(len(names))))
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(11, len(used) * 1.1 + 6), 5.5),
                                      gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.85 / max(len(names), 1)
    overall = shares[shares.scope == "all"].set_index(["variant", "tag"])
    for i, name in enumerate(names):
        rows = overall.loc[name].loc[used]
        left.bar(np.arange(len(used)) + i * width, rows.share, width, color=colours[name], label=name,
                 yerr=[rows.share - rows.lower, rows.upper - rows.share], error_kw={"elinewidth": 0.6, "capsize": 1})
    left.set_xticks(np.arange(len(used)) + 0.425 - width / 2, used)
    left.set_ylabel(f"share of the top-{top_k} |LIME weight| (95 % CI)")
    left.set_title("LIME weight per universal POS tag", fontsize=10)
    left.legend(fontsize=7, ncol=2)
    judged = [r for r in verdict_rows if r["verdict"] != REFERENCE]
    for y, row in enumerate(judged):
        right.errorbar(row["extra_js_mean"], y, xerr=[[row["extra_js_mean"] - row["lower"]],
                                                      [row["upper"] - row["extra_js_mean"]]],
                       fmt="o", color=colours.get(row["variant"], "black"), capsize=3)
    if judged:
        right.axvline(judged[0]["margin"], color="black", linestyle="--", linewidth=1, label="margin")
    right.axvline(0, color="grey", linewidth=0.8)
    right.set_yticks(range(len(judged)), [f"{r['variant']}: {r['verdict']}" for r in judged], fontsize=7)
    right.invert_yaxis()
    right.set_xlabel("extra JS (one-sided 95 % bounds)")
    right.set_title("POS drift verdict", fontsize=10)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [colours[n] for n in names]


def _markdown(verdict_rows: list[dict], shares, used: list[str], top_k: int, margin_fraction: float) -> str:
    from tabulate import tabulate

    floor = verdict_rows[0]

    def num(value, spec=".4f"):
        return "–" if value is None or (isinstance(value, float) and not np.isfinite(value)) else format(value, spec)

    lines = ["# Parts of speech carrying LIME weight", "",
             f"Original texts tagged with NLTK's word tokenizer and perceptron tagger (universal tagset); LIME's "
             f"words mapped onto those tokens by character span; HTML entities/tags in the text are tagged "
             f"{MARKUP}. Per instance, each tag's share of the |weight| of the top {top_k} words; a variant's share "
             f"is the mean over instances (95 % bootstrap CI).", "",
             f"Verdict, like for like: variant@S vs base@S+1, paired per instance with base@S vs base@S+1. Extra "
             f"JS = JS(variant@S, base@S+1) − JS(base@S, base@S+1) (Jensen-Shannon, base 2). Margin = "
             f"{margin_fraction} × LIME's own seed-to-seed JS ({num(floor['js_mean'])}) = {num(floor['margin'])}; "
             f"`equivalent` when the one-sided 95 % upper bound is below it, `drifted` when the lower bound is "
             f"above it, else `inconclusive` (n to decide: instances that would decide it at the same spread).", "",
             tabulate([[r["variant"], r["n"], num(r["js_mean"]), num(r["extra_js_mean"], "+.4f"),
                        f"[{num(r['lower'], '+.4f')}, {num(r['upper'], '+.4f')}]" if r["lower"] is not None else "–",
                        num(r["margin"]), r["verdict"], r["n_to_decide"] if r["n_to_decide"] is not None else "–"]
                       for r in verdict_rows],
                      headers=["variant", "n", "JS vs base@S+1", "extra JS", "one-sided 95 % bounds", "margin", "verdict",
                               "n to decide"], tablefmt="github", disable_numparse=True), "",
             "## Tag shares (all classes, 95 % CI)", "",
             f"Tags under {SHOWN_SHARE:.0%} in every run are left out here; `pos_tag_shares.csv` has every tag and "
             f"the shares per explained class.", ""]
    overall = shares[shares.scope == "all"].set_index(["variant", "tag"])
    names = list(dict.fromkeys(shares["variant"]))
    lines += [tabulate([[name] + [f"{overall.loc[(name, t), 'share']:.3f} [{overall.loc[(name, t), 'lower']:.3f}, "
                                  f"{overall.loc[(name, t), 'upper']:.3f}]" for t in used] for name in names],
                       headers=["variant"] + used, tablefmt="github", disable_numparse=True), ""]
    return "\n".join(lines)


def run_pos_analysis(base: str, variants: list[str], output_dir: str, args: dict, noise: str,
                     tagger: Tagger | None = None, top_k: int = TOP_K) -> dict:
    """Writes pos_analysis.csv (POS_COLUMNS), pos_tag_shares.csv (SHARE_COLUMNS), .png, .manifest.json, .md."""
    import pandas as pd

    from common.manifest import base_manifest, write_json_atomic, write_text_atomic

    if top_k < 1:
        raise UserError(f"--top-k must be at least 1 (got {top_k}).")
    tagger = tagger or nltk_tagger()
    output_dir = Path(output_dir)
    cache: dict[str, dict] = {}
    base_shares = load_shares(base, tagger, top_k, cache)
    base_shares.name = "base"
    noise_shares = load_shares(noise, tagger, top_k, cache)
    noise_shares.name = FLOOR
    variant_shares = []
    for path in variants or []:
        loaded = load_shares(path, tagger, top_k, cache)
        taken = {"base", FLOOR} | {v.name for v in variant_shares}
        if loaded.name in taken:  # two files with one variant name: tell them apart by file name
            stem = Path(path).stem
            loaded.name = stem if stem not in taken else f"{loaded.name}_{len(variant_shares) + 1}"
        variant_shares.append(loaded)
    check_design(base_shares, noise_shares, variant_shares)
    verdict_rows, _ = pos_verdicts(base_shares, noise_shares, variant_shares)

    keys = sorted(base_shares.shares)
    shares = pd.DataFrame([row for explained in [base_shares, noise_shares] + variant_shares
                           for row in share_rows(explained.name, _matrix(explained, keys), keys)],
                          columns=SHARE_COLUMNS)
    overall = shares[shares.scope == "all"]
    used = [t for t in TAGS if overall[overall.tag == t].share.max() >= SHOWN_SHARE]
    verdicts = pd.DataFrame(verdict_rows, columns=POS_COLUMNS)
    write_text_atomic(output_dir / POS_CSV, verdicts.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(output_dir / "pos_tag_shares.csv", shares.to_csv(index=False, float_format="%.6g"))
    _plot(shares, verdict_rows, used, output_dir / "pos_analysis.png", top_k)

    summary = {r["variant"]: {k: r[k] for k in POS_COLUMNS if k != "variant"} for r in verdict_rows}
    manifest = base_manifest("pos_analysis", args, None,
                             inputs={"base": base, "noise": noise, **{f"variant_{i}": p for i, p in enumerate(variants or [])}})
    manifest.update({"top_k": top_k, "margin_fraction": MARGIN_FRACTION, "bootstrap_seed": BOOTSTRAP_SEED,
                     "base_seed": base_shares.seed, "noise_seed": noise_shares.seed,
                     "num_samples": base_shares.num_samples, "metrics": summary})
    write_json_atomic(output_dir / "pos_analysis.manifest.json", manifest)
    write_text_atomic(output_dir / "pos_analysis.md", _markdown(verdict_rows, shares, used, top_k, MARGIN_FRACTION))
    log.info("Wrote %s", output_dir / "pos_analysis.md")  # the Make target, last
    return summary
