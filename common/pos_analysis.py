"""Which parts of speech carry a model's LIME weight, and how a variant shifts that.

Each explained text is tagged in context with NLTK's averaged perceptron tagger (universal
tagset), on the same tokens LIME perturbs (split on ``\\W+``). A word that occurs several
times with different tags splits its |weight| over its tags in proportion to their counts.
Per variant (overall and per explained class) the |weight| mass per tag is normalised to a
distribution; each variant is compared with base by the difference per tag and by the
Jensen-Shannon divergence (base 2, 0 = identical, 1 = disjoint).
"""
from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from common import LABEL_NAMES
from common.cli import UserError

log = logging.getLogger(__name__)

UNIVERSAL_TAGS = ["NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X"]
LIME_SPLIT = re.compile(r"\W+")  # LimeTextExplainer's default split_expression

Tagger = Callable[[Sequence[str]], list[tuple[str, str]]]


def lime_tokens(text: str) -> list[str]:
    return [t for t in LIME_SPLIT.split(text) if t]


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


def word_tag_shares(tagged: Iterable[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """word -> {tag: share of its occurrences}."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for word, tag in tagged:
        counts[word][tag] += 1
    return {w: {t: n / sum(c.values()) for t, n in c.items()} for w, c in counts.items()}


def tag_mass(tagged: Iterable[tuple[str, str]], weights: dict[str, float]) -> dict[str, float]:
    """|weight| mass per tag for one explained text; words the tagger never saw count as X."""
    shares = word_tag_shares(tagged)
    mass: dict[str, float] = defaultdict(float)
    for word, weight in weights.items():
        for tag, share in shares.get(word, {"X": 1.0}).items():
            mass[tag] += abs(weight) * share
    return dict(mass)


def normalise(mass: dict[str, float]) -> np.ndarray:
    vec = np.array([mass.get(t, 0.0) for t in UNIVERSAL_TAGS], dtype=float)
    total = vec.sum()
    return vec / total if total > 0 else vec


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    return float(jensenshannon(p, q, base=2) ** 2)


def masses_for_csv(path: str | Path, tagger: Tagger) -> tuple[str, dict[str, dict[str, float]]]:
    """(variant name, {"all" | class name: {tag: |weight| mass}}) of one LIME CSV."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"LIME CSV {path} does not exist; build it with `make {path}` first.")
    frame = pd.read_csv(path, keep_default_na=False, dtype={"word": str, "text": str})
    missing = {"instance_id", "text", "word", "weight", "explained_label"} - set(frame.columns)
    if missing:
        raise UserError(f"{path} lacks columns {sorted(missing)}; it is not a run_lime_on_model CSV.")
    name = str(frame["variant"].iloc[0]) if "variant" in frame.columns and len(frame) else path.stem
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (_, label), group in frame.groupby(["instance_id", "explained_label"], sort=True):
        text = str(group["text"].iloc[0])
        mass = tag_mass(tagger(lime_tokens(text)), dict(zip(group["word"].astype(str), group["weight"].astype(float))))
        for scope in ("all", LABEL_NAMES[int(label)]):
            for tag, value in mass.items():
                out[scope][tag] += value
    return name, {k: dict(v) for k, v in out.items()}


def pos_table(base: tuple[str, dict], variants: list[tuple[str, dict]]) -> list[dict]:
    """Long rows: variant, scope, tag, mass, share, base_share, diff_vs_base, js_vs_base."""
    base_name, base_mass = base
    rows = []
    for name, masses in [base] + variants:
        for scope in ["all"] + [c for c in LABEL_NAMES if c in base_mass or c in masses]:
            share = normalise(masses.get(scope, {}))
            base_share = normalise(base_mass.get(scope, {}))
            js = js_divergence(share, base_share)
            for i, tag in enumerate(UNIVERSAL_TAGS):
                rows.append({"variant": name, "scope": scope, "tag": tag,
                             "mass": masses.get(scope, {}).get(tag, 0.0), "share": share[i],
                             "base_share": base_share[i], "diff_vs_base": share[i] - base_share[i],
                             "js_vs_base": js})
    return rows


def run_pos_analysis(base: str, variants: list[str], output_dir: str, args: dict, tagger: Tagger | None = None,
                     noise: str | None = None) -> dict:
    """``noise`` (base explained with another LIME seed) is shown as the row ``noise_floor``: the JS
    divergence LIME's own randomness produces, to read the variants' divergences against."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from tabulate import tabulate

    from common.manifest import base_manifest, write_json_atomic, write_text_atomic

    tagger = tagger or nltk_tagger()
    output_dir = Path(output_dir)
    base_result = masses_for_csv(base, tagger)
    base_result = ("base", base_result[1])
    variant_results = [("noise_floor", masses_for_csv(noise, tagger)[1])] if noise else []
    for path in variants or []:
        name, masses = masses_for_csv(path, tagger)
        taken = {"base", "noise_floor"} | {n for n, _ in variant_results}
        if name in taken:  # two files with one variant name: tell them apart by file name
            name = Path(path).stem if Path(path).stem not in taken else f"{name}_{len(variant_results) + 1}"
        variant_results.append((name, masses))
    frame = pd.DataFrame(pos_table(base_result, variant_results))
    write_text_atomic(output_dir / "pos_analysis.csv", frame.to_csv(index=False, float_format="%.6g"))

    overall = frame[frame.scope == "all"]
    shares = overall.pivot(index="variant", columns="tag", values="share")[UNIVERSAL_TAGS]
    order = ["base"] + [n for n, _ in variant_results]
    shares = shares.loc[[n for n in order if n in shares.index]]
    js = frame.groupby(["variant", "scope"])["js_vs_base"].first().unstack("scope")
    js = js.loc[[n for n in order if n in js.index]]
    used = [t for t in UNIVERSAL_TAGS if shares[t].max() > 0]
    share_table = [[n] + [f"{shares.loc[n, t]:.3f}" for t in used] + [f"{js.loc[n, 'all']:.4f}"] for n in shares.index]
    diff_table = [[n] + [f"{shares.loc[n, t] - shares.loc['base', t]:+.3f}" for t in used] for n in shares.index
                  if n != "base"]
    scopes = [c for c in LABEL_NAMES if c in js.columns]
    js_table = [[n] + [f"{js.loc[n, c]:.4f}" for c in scopes] for n in js.index if n != "base"]
    lines = ["# Parts of speech carrying LIME weight", "",
             f"NLTK perceptron tagger, universal tagset, tagged in context. Share of |weight| mass per tag; "
             f"JS = Jensen-Shannon divergence to base (base 2).", "",
             tabulate(share_table, headers=["variant"] + used + ["JS vs base"], tablefmt="github"), ""]
    if diff_table:
        lines += ["## Difference vs base (share points)", "",
                  tabulate(diff_table, headers=["variant"] + used, tablefmt="github", disable_numparse=True), "",
                  "## JS divergence vs base per explained class", "",
                  tabulate(js_table, headers=["variant"] + scopes, tablefmt="github"), ""]
    lines += ["![POS shares](pos_analysis.png)", ""]

    fig, ax = plt.subplots(figsize=(max(8, len(used) * 0.9), 4.5))
    width = 0.8 / max(len(shares.index), 1)
    for i, name in enumerate(shares.index):
        ax.bar(np.arange(len(used)) + i * width, shares.loc[name, used], width, label=name)
    ax.set_xticks(np.arange(len(used)) + 0.4 - width / 2, used)
    ax.set_ylabel("share of |LIME weight|")
    ax.set_title("LIME weight mass per universal POS tag")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(output_dir / "pos_analysis.png", dpi=110)
    plt.close(fig)

    summary = {n: {"js_vs_base": float(js.loc[n, "all"]), "shares": {t: float(shares.loc[n, t]) for t in used}}
               for n in shares.index}
    manifest = base_manifest("pos_analysis", args, None,
                             inputs={"base": base, "noise": noise, **{f"variant_{i}": p for i, p in enumerate(variants or [])}})
    manifest["metrics"] = summary
    write_json_atomic(output_dir / "pos_analysis.manifest.json", manifest)
    write_text_atomic(output_dir / "pos_analysis.md", "\n".join(lines))  # the Make target, last
    log.info("Wrote %s", output_dir / "pos_analysis.md")
    return summary
