"""POS analysis: NLTK tokens on the original text, markup, shares with CIs, the like-for-like three-way verdict."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SHARED

NOUNS = ["market", "team", "bank", "profit", "league", "chip", "minister", "treaty"]
VERBS = ["rises", "wins", "falls", "beats", "signs", "leads", "plays", "drops"]
DICT_TAGS = {**{w: "NOUN" for w in NOUNS}, **{w: "VERB" for w in VERBS}}


def dict_tagger(tokens):
    return [(t, DICT_TAGS.get(t, "X")) for t in tokens]


@pytest.fixture
def nltk_data(monkeypatch) -> Path:
    path = Path(os.environ.get("NLTK_DATA", SHARED / "nltk_data"))
    if not (path / "taggers" / "averaged_perceptron_tagger_eng").is_dir():
        pytest.skip(f"NLTK tagger not found under {path} (run `make nltk-data`)")
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(path)] + list(nltk.data.path))
    return path


# ----------------------------------------------------------------------------------------------- tokens and tags
def test_abbreviations_and_contractions_stay_nltk_tokens(nltk_data):
    from common.explain.pos_tagging import nltk_tagger, tagged_tokens, word_tags

    text = "The U.S. economy grew. Eriksson doesn't feel pressure."
    tokens = {text[a:b]: tag for a, b, tag in tagged_tokens(text, nltk_tagger())[0]}
    assert tokens["U.S."] == "NOUN" and "U" not in tokens and "S" not in tokens
    assert tokens["does"] == "VERB" and "n't" in tokens and tokens["."] == "."
    tags = word_tags(text, nltk_tagger())
    # LIME splits "U.S." into "U" and "S": both take the tag of the NLTK token that contains them
    assert tags["U"] == {"NOUN": 1.0} and tags["S"] == {"NOUN": 1.0}
    assert tags["economy"] == {"NOUN": 1.0} and tags["grew"] == {"VERB": 1.0}
    assert tags["doesn"] == {"VERB": 1.0}  # overlaps "does" by 4 characters, "n't" by 1


def test_html_markup_is_not_a_noun(nltk_data):
    import nltk

    from common.explain.pos_tagging import MARKUP, clean_text, nltk_tagger, word_tags

    text = "&lt;b&gt;Stocks&lt;/b&gt; rise at Apple Inc.&lt;AAPL.O&gt; as Bush #39;s  quot;plan quot; J amp;J gains"
    # the planted negative: tagging LIME's \W+ pieces (the old way) calls the escape residue nouns
    naive = dict(nltk.pos_tag(["lt", "b", "gt", "Stocks", "lt", "b", "gt", "rise"], tagset="universal"))
    assert naive["lt"] == "NOUN"
    tags = word_tags(text, nltk_tagger())
    for residue in ("lt", "gt", "b", "quot", "39", "amp"):
        assert tags[residue] == {MARKUP: 1.0}, residue
    assert tags["Stocks"] == {"NOUN": 1.0} and tags["AAPL"] == {"NOUN": 1.0} and tags["J"] == {"NOUN": 1.0}
    assert tags["s"] == {"PRT": 1.0}  # Bush's: the possessive, once the entity is decoded
    assert clean_text(text).text == "Stocks rise at Apple Inc.<AAPL.O> as Bush's \"plan\" J&J gains"


def test_repeated_word_splits_its_weight_over_its_occurrences_tags():
    from common.explain.pos import instance_shares
    from common.explain.pos_tagging import TAGS, word_tags

    def tagger(tokens):  # "plays" is a verb after "team", a noun after "the"
        return [(t, ("VERB" if i and tokens[i - 1] == "team" else "NOUN") if t == "plays" else DICT_TAGS.get(t, "DET"))
                for i, t in enumerate(tokens)]

    tags = word_tags("team plays the plays", tagger)
    assert tags["plays"] == {"VERB": 0.5, "NOUN": 0.5}
    shares = instance_shares({"plays": 0.4, "team": 0.4, "the": 0.01}, tags, top_k=2)
    assert shares[TAGS.index("VERB")] == pytest.approx(0.25) and shares[TAGS.index("NOUN")] == pytest.approx(0.75)
    assert shares.sum() == pytest.approx(1)  # "the" (rank 3) is outside the top 2


# ----------------------------------------------------------------------------------------------- verdict
def lime_csv(path: Path, weights_per_instance: list[dict[str, float]], texts: list[str], seed: int,
             variant: str, num_samples: int = 500) -> Path:
    rows = []
    for instance, (text, weights) in enumerate(zip(texts, weights_per_instance)):
        ranked = sorted(weights.items(), key=lambda wv: -abs(wv[1]))
        rows += [{"instance_id": instance, "text": text, "true_label": instance % 4, "predicted_label": instance % 4,
                  "explained_label": instance % 4, "word": w, "weight": v, "rank": r, "intercept": 0.1,
                  "score": 0.5, "local_pred": 0.4, "variant": variant, "seed": seed, "num_samples": num_samples}
                 for r, (w, v) in enumerate(ranked, 1)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def planted_runs(tmp_path: Path, n: int = 60):
    """base@42 and base@43 put their weight on nouns (with LIME-like noise); 'same' = base@42 itself;
    'verbs' keeps every label but moves the weight onto the verbs; 'control' (another fine-tune, the positive
    control) leans on the nouns too, with its own differences (a noun/verb mix of its own per instance)."""
    rng = np.random.default_rng(0)
    texts, base, noise, verbs, control = [], [], [], [], []
    for _ in range(n):
        nouns, vs = list(rng.choice(NOUNS, 5, replace=False)), list(rng.choice(VERBS, 5, replace=False))
        texts.append(" ".join(nouns + vs))
        signal = {**{w: rng.uniform(0.2, 0.5) for w in nouns}, **{w: rng.uniform(0.0, 0.1) for w in vs}}
        base.append({w: v + rng.normal(0, 0.05) for w, v in signal.items()})
        noise.append({w: v + rng.normal(0, 0.05) for w, v in signal.items()})
        verbs.append({**{w: rng.uniform(0.0, 0.1) for w in nouns}, **{w: rng.uniform(0.2, 0.5) for w in vs}})
        control.append({w: v + rng.normal(0, 0.05) + (rng.uniform(0.0, 0.25) if w in vs else 0.0)
                        for w, v in signal.items()})
    return {"base": lime_csv(tmp_path / "base.csv", base, texts, 42, "base"),
            "noise": lime_csv(tmp_path / "base_noise.csv", noise, texts, 43, "base"),
            "same": lime_csv(tmp_path / "same.csv", base, texts, 42, "same"),
            "verbs": lime_csv(tmp_path / "verbs.csv", verbs, texts, 42, "verbs"),
            "control": lime_csv(tmp_path / "control.csv", control, texts, 42, "control"), "texts": texts}


def test_planted_pos_drift_is_drifted_and_an_identical_variant_equivalent(tmp_path):
    from common.explain.pos import FLOOR, POS_COLUMNS, SHARE_COLUMNS, run_pos_analysis
    from common.explain.verdict import CONTROL_FRACTION

    runs = planted_runs(tmp_path)
    out = tmp_path / "out"
    summary = run_pos_analysis(str(runs["base"]), [str(runs["same"]), str(runs["verbs"])], str(out), {},
                               noise=str(runs["noise"]), tagger=dict_tagger, control=str(runs["control"]))
    verdicts = pd.read_csv(out / "pos_analysis.csv", keep_default_na=False)
    assert list(verdicts.columns) == POS_COLUMNS
    table = verdicts.set_index("variant")
    assert table.loc["same", "verdict"] == "equivalent" and float(table.loc["same", "extra_js_mean"]) == pytest.approx(0)
    assert table.loc["verbs", "verdict"] == "drifted" and float(table.loc["verbs", "lower"]) > 0
    control = table.loc["control"]
    assert control.verdict == "drifted" and float(control.extra_js_mean) > 0   # the control is not blind
    floor = table.loc[FLOOR]
    assert floor.verdict == "reference" and float(floor.js_mean) > 0 and int(floor.n) == 60
    # the margin is half the control's extra divergence, not a fraction of LIME's floor
    assert float(table.loc["verbs", "margin"]) == pytest.approx(CONTROL_FRACTION * float(control.extra_js_mean), rel=1e-4)
    assert summary["verbs"]["verdict"] == "drifted"
    # without a control nothing is equivalent (no anchor for the margin)
    run_pos_analysis(str(runs["base"]), [str(runs["same"])], str(tmp_path / "blind"), {}, noise=str(runs["noise"]),
                     tagger=dict_tagger)
    blind = pd.read_csv(tmp_path / "blind" / "pos_analysis.csv", keep_default_na=False).set_index("variant")
    assert blind.loc["same", "verdict"] == ""
    verdicts = verdicts.replace("", np.nan)
    for column in ("lower", "upper", "extra_js_mean"):
        verdicts[column] = pd.to_numeric(verdicts[column])
    # CIs contain the mean: the verdict's bounds and every tag share's 95 % interval
    judged = verdicts[verdicts.verdict != "reference"]       # bounds of mean d = extra - f x control's extra
    assert (judged.lower < judged.upper).all() or (judged.lower == judged.upper).all()
    shares = pd.read_csv(out / "pos_tag_shares.csv")
    assert list(shares.columns) == SHARE_COLUMNS
    assert (shares.lower <= shares.share + 1e-12).all() and (shares.share <= shares.upper + 1e-12).all()
    overall = shares[shares.scope == "all"].set_index(["variant", "tag"])
    assert overall.loc[("verbs", "VERB"), "share"] > 0.6 > overall.loc[("base", "VERB"), "share"]
    assert overall.loc[("base", "NOUN"), "upper"] - overall.loc[("base", "NOUN"), "lower"] > 0  # a real interval
    assert set(shares.scope) == {"all", "World", "Sports", "Business", "Sci/Tech"}
    md = (out / "pos_analysis.md").read_text()
    assert "| verbs" in md and "drifted" in md and "equivalent" in md and "positive control" in md
    manifest = json.loads((out / "pos_analysis.manifest.json").read_text())
    assert manifest["top_k"] == 10 and manifest["base_seed"] == 42 and manifest["noise_seed"] == 43


def test_a_small_shift_on_few_instances_is_inconclusive_with_n_to_decide(tmp_path):
    from common.explain.pos import run_pos_analysis

    runs = planted_runs(tmp_path, n=8)
    rng = np.random.default_rng(1)
    frame = pd.read_csv(runs["base"])
    # a little weight moved around: somewhere between equivalent and drifted on 8 instances
    frame["weight"] = frame["weight"] + rng.normal(0, 0.2, len(frame))
    frame["variant"] = "wobbly"
    frame.to_csv(tmp_path / "wobbly.csv", index=False)
    run_pos_analysis(str(runs["base"]), [str(tmp_path / "wobbly.csv")], str(tmp_path / "out"), {},
                     noise=str(runs["noise"]), tagger=dict_tagger, control=str(runs["control"]))
    row = pd.read_csv(tmp_path / "out" / "pos_analysis.csv").set_index("variant").loc["wobbly"]
    assert row.verdict == "inconclusive" and row.n_to_decide > 8


def test_every_series_has_its_own_colour():
    from common.explain.pos_report import series_colours

    for n in (3, 12, 17, 25):
        colours = series_colours(n)
        assert len({tuple(np.round(c, 4)) for c in colours}) == n


def test_stage_end_to_end_with_the_real_tagger(tmp_path, nltk_data):
    from analysis.nltk.nltk_analyze_all_models import main

    runs = planted_runs(tmp_path, n=12)
    out = tmp_path / "out"
    assert main(["--base", str(runs["base"]), "--noise", str(runs["noise"]), "--variant", str(runs["verbs"]),
                 "--variant", str(runs["same"]), "--positive-control", str(runs["control"]),
                 "--output-dir", str(out)]) == 0
    table = pd.read_csv(out / "pos_analysis.csv").set_index("variant")
    assert table.loc["same", "extra_js_mean"] == pytest.approx(0)
    assert table.loc["verbs", "js_mean"] > table.loc["same", "js_mean"]
    assert (out / "pos_analysis.png").stat().st_size > 10_000


# ----------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("change, message", [
    ("drop_instance", "explains other (instance, label) pairs"),
    ("other_seed", "LIME seed 7"),
    ("other_samples", "LIME samples"),
    ("noise_same_seed", "has the base's LIME seed"),
])
def test_mismatched_designs_stop_with_one_sentence(tmp_path, monkeypatch, caplog, change, message):
    from analysis.nltk.nltk_analyze_all_models import main
    from common.explain import pos as pos_analysis

    runs = planted_runs(tmp_path, n=10)
    target = runs["noise"] if change == "noise_same_seed" else runs["verbs"]
    frame = pd.read_csv(target)
    if change == "drop_instance":
        frame = frame[frame.instance_id != 3]
    elif change == "other_seed":
        frame["seed"] = 7
    elif change == "other_samples":
        frame["num_samples"] = 100
    else:
        frame["seed"] = 42
    frame.to_csv(target, index=False)
    monkeypatch.setattr(pos_analysis, "nltk_tagger", lambda: dict_tagger)
    with pytest.raises(SystemExit) as exc:
        main(["--base", str(runs["base"]), "--noise", str(runs["noise"]), "--variant", str(runs["verbs"]),
              "--output-dir", str(tmp_path / "out")])
    assert exc.value.code == 2
    assert message in caplog.text and str(target) in caplog.text and "Traceback" not in caplog.text
    assert not (tmp_path / "out" / "pos_analysis.md").exists()


def test_missing_tagger_is_a_user_error(tmp_path, monkeypatch, caplog):
    import nltk

    from analysis.nltk.nltk_analyze_all_models import main

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty_nltk_data")])
    runs = planted_runs(tmp_path, n=4)
    with pytest.raises(SystemExit) as exc:
        main(["--base", str(runs["base"]), "--noise", str(runs["noise"]), "--output-dir", str(tmp_path / "out")])
    assert exc.value.code == 2
    assert "make nltk-data" in caplog.text
    assert not (tmp_path / "out" / "pos_analysis.md").exists()
