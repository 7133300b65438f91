"""The one design check every explanation-drift stage runs (common/explain/design.py): it passes matching runs, stops
on each kind of mismatch naming the file, and the three stages word the same mismatch the same way."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from common.cli import UserError
from common.explain.design import (OTHER_SEED, SAME_SEED, LimeDesign, check_same_design, read_stage_csv,
                                single_setting)

TEXTS = {0: "goal match team", 3: "bank profit rises", 6: "chip maker wins"}
LABELS = {0: 1, 3: 2, 6: 3}


def design(path="other.csv", *, explained=None, seed=7, num_samples=500, texts=None, unit="instances"):
    return LimeDesign(Path(path), dict(LABELS if explained is None else explained), seed, num_samples,
                      dict(TEXTS if texts is None else texts), unit)


BASE = design("base.csv")


# ----------------------------------------------------------------------------------------------- negative
def test_matching_runs_pass_for_either_seed_rule_and_unknown_settings_are_not_compared():
    check_same_design(BASE, design(), SAME_SEED)
    check_same_design(BASE, design(seed=8), OTHER_SEED)
    # the deletion test's runs carry their settings as sets of strings
    check_same_design(design("b.csv", seed=frozenset({"7"}), num_samples=frozenset({"500"})),
                      design(seed=frozenset({"7"}), num_samples=frozenset({"500"})), SAME_SEED)
    # a CSV without seed/num_samples columns (None) cannot be checked on them, and is not refused for it
    check_same_design(BASE, design(seed=None, num_samples=None), SAME_SEED)
    check_same_design(BASE, design(seed=None), OTHER_SEED)
    # runs without texts are compared on instances and labels only
    check_same_design(LimeDesign(Path("b.csv"), LABELS, 7, 500), LimeDesign(Path("o.csv"), LABELS, 7, 500))


# ----------------------------------------------------------------------------------------------- positives
@pytest.mark.parametrize("other, rule, message", [
    (design(explained={0: 1, 3: 2}), SAME_SEED, "explains other instances than base.csv (1 of its instances missing"),
    (design(explained={**LABELS, 9: 0}), SAME_SEED, "1 extra, e.g. [9]"),
    (design(texts={**TEXTS, 3: "bank loss falls"}), SAME_SEED, "has another text than base.csv for instance 3"),
    (design(explained={**LABELS, 6: 0}), SAME_SEED, "explains label 0 for instance 6 but base.csv explains 3"),
    (design(num_samples=1000), SAME_SEED, "was explained with num_samples 1000 but base.csv with 500"),
    (design(seed=12), SAME_SEED, "was explained with LIME seed 12 but base.csv with 7"),
    (design(seed=frozenset({"7", "8"})), SAME_SEED, "LIME seed ['7', '8']"),
    (design(), OTHER_SEED, "was explained with the same LIME seed (7) as base.csv"),
])
def test_each_mismatch_stops_with_one_sentence_naming_the_file(other, rule, message):
    with pytest.raises(UserError) as exc:
        check_same_design(BASE, other, rule)
    text = str(exc.value)
    assert text.startswith("other.csv ") and message in text


def test_a_design_keyed_by_instance_and_label_names_its_unit():
    pairs = {(0, 1): None, (3, 2): None}
    with pytest.raises(UserError, match=r"explains other \(instance, label\) pairs than base.csv"):
        check_same_design(LimeDesign(Path("base.csv"), pairs, 7, 500, unit="(instance, label) pairs"),
                          LimeDesign(Path("other.csv"), {(0, 1): None, (3, 1): None}, 7, 500,
                                     unit="(instance, label) pairs"))


# ----------------------------------------------------------------------------------------------- reading
def test_single_setting_refuses_a_mixed_csv_and_reads_absent_or_blank_as_unknown(tmp_path):
    frame = pd.DataFrame({"seed": [7, 7], "num_samples": ["", ""], "mixed": [1, 2]})
    assert single_setting(frame, "seed", "a.csv") == 7
    assert single_setting(frame, "num_samples", "a.csv") is None
    assert single_setting(frame, "absent", "a.csv") is None
    with pytest.raises(UserError, match=r"a.csv mixes mixed values \[1, 2\]"):
        single_setting(frame, "mixed", "a.csv")


def test_read_stage_csv_keeps_words_as_text_and_names_a_bad_file(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("instance_id,word,weight\n0,nan,0.5\n0,1,0.25\n")
    frame = read_stage_csv(good, {"instance_id", "word"}, "run_lime_on_model", ("word",))
    assert frame.word.tolist() == ["nan", "1"]
    empty, lacking = tmp_path / "empty.csv", tmp_path / "lacking.csv"
    empty.write_text("instance_id,word\n")
    lacking.write_text("instance_id\n0\n")
    for path in (tmp_path / "missing.csv", empty, lacking):
        with pytest.raises(UserError) as exc:
            read_stage_csv(path, {"instance_id", "word"}, "run_lime_on_model", ("word",))
        assert str(path) in str(exc.value) and ("make" in str(exc.value) or "run_lime_on_model" in str(exc.value))


# ----------------------------------------------------------------------------------------------- one sentence
def _lime_csv(path: Path, *, num_samples: int, seed: int = 7) -> Path:
    rows = [{"instance_id": iid, "text": text, "true_label": LABELS[iid], "predicted_label": LABELS[iid],
             "explained_label": LABELS[iid], "word": word, "weight": 0.5 - 0.1 * rank, "rank": rank + 1,
             "intercept": 0.1, "score": 0.5, "local_pred": 0.4, "variant": path.stem, "seed": seed,
             "num_samples": num_samples}
            for iid, text in TEXTS.items() for rank, word in enumerate(text.split())]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_the_three_stages_refuse_the_same_mismatch_with_the_same_sentence(tmp_path):
    """LIME agreement, the deletion test and the POS analysis all call the one check."""
    from common.explain.deletion import check_same_design as deletion_check
    from common.explain.deletion import read_lime_run
    from common.explain.drift import check_comparable, read_explanations
    from common.explain.pos import check_design, load_shares

    base, other = _lime_csv(tmp_path / "base.csv", num_samples=500), _lime_csv(tmp_path / "other.csv", num_samples=999)
    noise = _lime_csv(tmp_path / "noise.csv", num_samples=500, seed=8)

    def pos_shares(path):
        return load_shares(path, lambda tokens: [(t, "NOUN") for t in tokens], 10, {})

    checks = [lambda: check_comparable(read_explanations(base), read_explanations(other), same_seed=True),
              lambda: deletion_check(read_lime_run(base), read_lime_run(other)),
              lambda: check_design(pos_shares(base), pos_shares(noise), [pos_shares(other)])]
    messages = []
    for check in checks:
        with pytest.raises(UserError) as exc:
            check()
        messages.append(str(exc.value))
    assert len(set(messages)) == 1, messages
    assert messages[0].startswith(f"{other} was explained with num_samples 999 but {base} with 500")
    # and each stage passes the matching runs
    check_comparable(read_explanations(base), read_explanations(base), same_seed=True)
    deletion_check(read_lime_run(base), read_lime_run(base))
    check_design(pos_shares(base), pos_shares(noise), [pos_shares(base)])
