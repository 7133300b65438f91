"""What a person reads of the POS analysis: the Markdown table and the plot of tag shares and verdicts."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common.explain.verdict import ALPHA, CONTROL_FRACTION

from common.explain.pos_tagging import MARKUP, TAGS

SHOWN_SHARE = 0.01  # tags below this share in every run are left out of the table and plot (not the CSV)


def shown_tags(shares) -> list[str]:
    """The tags at or above ``SHOWN_SHARE`` in some run (all classes)."""
    overall = shares[shares.scope == "all"]
    return [t for t in TAGS if overall[overall.tag == t].share.max() >= SHOWN_SHARE]


def series_colours(n: int) -> list:
    """``n`` distinct colours: tab10, then tab20's light shades (other hues first), then a wide colormap.

    matplotlib's default cycle has 10 colours, so the 11th series used to repeat the first."""
    import matplotlib

    if n <= 20:
        tab20 = matplotlib.colormaps["tab20"]
        return [tab20(2 * i) for i in range(10)][:n] + [tab20(2 * i + 1) for i in range(10)][:max(n - 10, 0)]
    return [matplotlib.colormaps["turbo"](x) for x in np.linspace(0.03, 0.97, n)]


def plot_pos(shares, verdict_rows: list[dict], used: list[str], path: Path, top_k: int) -> list:
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
    judged = verdict_rows[1:]  # the first row is the noise floor, the reference (see pos_verdicts)
    for y, row in enumerate(judged):
        if row["margin"] is None or not np.isfinite(row["margin"]):
            right.plot([row["extra_js_mean"]], [y], "o", color=colours.get(row["variant"], "black"), mfc="none")
            continue
        d = row["extra_js_mean"] - row["margin"]  # mean d = extra - f x control's extra
        right.errorbar(d, y, xerr=[[d - row["lower"]], [row["upper"] - d]],
                       fmt="o", color=colours.get(row["variant"], "black"), capsize=3)
    right.axvline(0, color="black", linestyle="--", linewidth=1, label="0: half the control's extra JS")
    right.set_yticks(range(len(judged)), [f"{r['variant']}: {r['verdict'] or 'no control'}" for r in judged],
                     fontsize=7)
    right.invert_yaxis()
    right.set_xlabel("d = extra JS - 0.5 x control's (bounds)")
    right.set_title("POS drift verdict", fontsize=10)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [colours[n] for n in names]


def pos_markdown(verdict_rows: list[dict], shares, used: list[str], top_k: int, control: str | None) -> str:
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
             f"JS = JS(variant@S, base@S+1) − JS(base@S, base@S+1) (Jensen-Shannon, base 2; LIME's own seed-to-seed "
             f"JS: {num(floor['js_mean'])}). d = extra JS − {CONTROL_FRACTION:g} × the positive control's "
             f"(`{control or 'none given'}`) on the same instance; margin = {CONTROL_FRACTION:g} × the control's mean "
             f"extra JS. `equivalent` when the upper bound of mean d (at α/m, Bonferroni) is below 0, `drifted` when "
             f"the {(1 - ALPHA) * 100:.0f} % lower bound is above 0, else `inconclusive` (n to decide: instances that would "
             "decide it at 80 % power). Without a control there is no verdict. Not a shipping gate.", "",
             tabulate([[r["variant"], r["n"], num(r["js_mean"]), num(r["extra_js_mean"], "+.4f"),
                        f"[{num(r['lower'], '+.4f')}, {num(r['upper'], '+.4f')}]" if r["lower"] is not None else "–",
                        num(r["margin"]), r["verdict"], r["n_to_decide"] if r["n_to_decide"] is not None else "–"]
                       for r in verdict_rows],
                      headers=["variant", "n", "JS vs base@S+1", "extra JS", "bounds of d", "margin", "verdict",
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
