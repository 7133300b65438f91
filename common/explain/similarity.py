"""How alike two explanations of one text are: signed rank-biased overlap, rank correlations, top-k overlap.

An explanation is a word -> LIME weight map. :func:`pair_metrics` gives every metric for one pair; the
paired verdict built on them is in :mod:`common.explain.drift`, and the MLP students' agreement with
BERT's explanations uses them too.

**Headline metric: signed rank-biased overlap** (RBO, Webber, Moffat & Zobel 2010, ``p = 0.9``,
extrapolated). Each explanation is the list of its words ranked by |weight| (ties by the word, so the
order is deterministic). At depth d, ``X_d`` is the number of words that are in both top-d prefixes *and*
whose weights have the same sign on both sides (a word that supports the class on one side and opposes it
on the other is not shared). With list lengths s <= l::

    RBO_ext = (1-p)/p * [ sum_{d=1..l} X_d/d p^d + sum_{d=s+1..l} X_s (d-s)/(s d) p^d ]
              + [ (X_l - X_s)/l + X_s/s ] p^l

Identical lists give 1, disjoint (or all sign-flipped) lists 0. The weight on depth d decays like p^d,
so the top few words carry most of it (with p = 0.9 the top 10 carry ~86 %), and the ranks of near-zero
weights, which dominate Spearman over every word, barely count.

Secondary metrics (same design, own verdicts in the CSV): ``spearman`` / ``kendall`` (rank correlation
over the union of words, a missing word weighs 0), ``jaccard_top5`` / ``jaccard_top10`` (overlap of the
top-k words by |weight|), ``sign_top5`` (share of the reference's top-5 words with the same sign on the
other side), ``cosine`` (of the weight vectors).
"""
from __future__ import annotations

import numpy as np

RBO_P = 0.9
METRICS = ["rbo", "spearman", "kendall", "jaccard_top5", "jaccard_top10", "sign_top5", "cosine"]


def ranked_words(weights: dict[str, float]) -> list[str]:
    """Words by decreasing |weight|, ties by the word (deterministic)."""
    return [w for w, _ in sorted(weights.items(), key=lambda kv: (-abs(kv[1]), kv[0]))]


def _top(weights: dict[str, float], k: int) -> list[str]:
    return ranked_words(weights)[:k]


def signed_rbo(a: dict[str, float], b: dict[str, float], p: float = RBO_P) -> float:
    """Extrapolated rank-biased overlap of the |weight| rankings, a word shared only with the same sign
    on both sides (see the module docstring)."""
    short, long_ = ranked_words(a), ranked_words(b)
    if len(short) > len(long_):
        short, long_ = long_, short
    s, l = len(short), len(long_)
    if s == 0:
        return float("nan")
    seen_short, seen_long = set(), set()
    overlap = 0
    overlaps = np.zeros(l + 1)
    for d in range(1, l + 1):
        if d <= s:
            word = short[d - 1]
            seen_short.add(word)
            overlap += word in seen_long and np.sign(a[word]) == np.sign(b[word])
        word = long_[d - 1]
        seen_long.add(word)
        overlap += word in seen_short and np.sign(a[word]) == np.sign(b[word])
        overlaps[d] = overlap
    depths = np.arange(1, l + 1)
    powers = p ** depths
    total = float(np.sum(overlaps[1:] / depths * powers))
    x_s, x_l = overlaps[s], overlaps[l]
    if l > s:
        tail = depths[s:]
        total += float(np.sum(x_s * (tail - s) / (s * tail) * powers[s:]))
    return float((1 - p) / p * total + ((x_l - x_s) / l + x_s / s) * p ** l)


def jaccard_top_k(a: dict[str, float], b: dict[str, float], k: int) -> float:
    top_a, top_b = set(_top(a, k)), set(_top(b, k))
    union = top_a | top_b
    return len(top_a & top_b) / len(union) if union else float("nan")


def sign_agreement_top_k(base: dict[str, float], other: dict[str, float], k: int) -> float:
    top = _top(base, k)
    if not top:
        return float("nan")
    return float(np.mean([np.sign(base[w]) == np.sign(other.get(w, 0.0)) for w in top]))


def pair_metrics(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """All metrics for one instance; ``a`` is the reference (``sign_top5`` uses its top words)."""
    from scipy.stats import kendalltau, spearmanr

    words = sorted(set(a) | set(b))
    va = np.array([a.get(w, 0.0) for w in words])
    vb = np.array([b.get(w, 0.0) for w in words])
    out = {"rbo": signed_rbo(a, b)}
    if len(words) >= 2 and np.ptp(va) > 0 and np.ptp(vb) > 0:
        out["spearman"] = float(spearmanr(va, vb).statistic)
        out["kendall"] = float(kendalltau(va, vb).statistic)
    else:  # a constant vector has no ranking
        out["spearman"] = out["kendall"] = float("nan")
    out["jaccard_top5"] = jaccard_top_k(a, b, 5)
    out["jaccard_top10"] = jaccard_top_k(a, b, 10)
    out["sign_top5"] = sign_agreement_top_k(a, b, 5)
    norm = float(np.linalg.norm(va) * np.linalg.norm(vb))
    out["cosine"] = float(va @ vb / norm) if norm > 0 else float("nan")
    return out
