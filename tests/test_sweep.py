"""`make sweep`: the pick rule (planted cases it must reject and must pick), the table and frontier plot from
planted benchmark records and pruning manifests (no models), bad input, and the Makefile's plan."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from common.cli import UserError
from common.explain.drift import HEADLINE, ROLE_NOISE_FLOOR, ROLE_VARIANT, SIMILARITY_COLUMNS, SIMILARITY_CSV
from common.schema import DELETION_COLUMNS, DELETION_CSV, DELETION_GATE
from common.report.sweep import pick, pick_sentences, refinetune_sentence, sweep_rows
from generate_outputs.sweep.build_sweep import main
from tests.conftest import copy_sources

ROOT = Path(__file__).resolve().parents[1]
BASE_ACC = 0.90
TEST_SHA = "t" * 64


def record(name: str, accuracy: float, throughput: float, kind: str = "onnx-int8", size_mb: float = 20.0) -> dict:
    """A benchmark record as common.bench.run writes it (the keys the sweep reads)."""
    return {"variant": name, "status": "ok", "kind": kind, "accuracy": accuracy, "n_test": 7600,
            "throughput_samples_per_s": throughput, "latency_ms_p50": 1000 / throughput, "size_mb": size_mb,
            "test_sha256": TEST_SHA}


def pruning_manifest(pct: int, after_pruning: float, after_refinetune: float) -> dict:
    """The keys of a pruning stage manifest (common.compress.pruning) that the sweep reads."""
    return {"stage": "structural_pruning", "arguments": {"epochs": 2}, "sparsity_requested_pct": float(pct),
            "sparsity_achieved": {"encoder_parameters": pct / 100 + 0.002, "heads": pct / 100},
            "accuracy_after_pruning": after_pruning, "accuracy_after_refinetune": after_refinetune,
            "source_accuracy": BASE_ACC, "training": {"train_wall_s": 10.0 * pct}}


PEER = {"variant": "optimum_int8", "status": "ok", "peer": True, "kind": "optimum-int8 (peer)", "accuracy": 0.899,
        "throughput_samples_per_s": 100.0, "latency_ms_p50": 8.0, "size_mb": 23.0,
        "peer_config": "AutoQuantizationConfig.avx2(is_static=False, per_channel=False)"}


def planted(deltas_pt: dict[int, float], speeds: dict[int, float] | None = None) -> tuple[dict, dict]:
    """Records (base fp32, base int8 and per pct a dynamic and a static int8) and pruning manifests, with each
    pct's accuracy at base + deltas_pt[pct] (static 0.1 pt lower, 5 % faster than dynamic)."""
    speeds = speeds or {p: 120.0 + 4 * p for p in deltas_pt}
    records = {"base": record("base", BASE_ACC, 50.0, kind="torch", size_mb=90.0),
               "base_onnx_int8": record("base_onnx_int8", BASE_ACC - 0.001, 110.0),
               "base_onnx_static": record("base_onnx_static", BASE_ACC - 0.001, 112.0, kind="onnx-int8-static")}
    pruning = {}
    for pct, delta in deltas_pt.items():
        accuracy = BASE_ACC + delta / 100
        records[f"pruned{pct}_onnx_int8"] = record(f"pruned{pct}_onnx_int8", accuracy, speeds[pct])
        records[f"pruned{pct}_onnx_static"] = record(f"pruned{pct}_onnx_static", accuracy - 0.001,
                                                     1.05 * speeds[pct], kind="onnx-int8-static")
        pruning[pct] = {**pruning_manifest(pct, accuracy - 0.05, accuracy), "encoder_sparsity": pct / 100 + 0.002,
                        "refinetune_wall_s": 10.0 * pct, "epochs": 2, "path": f"m{pct}.json"}
    for name, r in records.items():
        r["_path"] = f"{name}.bench.json"
    return records, pruning


def rows_for(deltas_pt, lime=None, deletion=None, peer=PEER, speeds=None, explained=True):
    """The sweep's rows. ``explained``: every graph ``equivalent`` on both gates unless ``lime`` / ``deletion`` say
    otherwise (a value ``""`` = never explained on that gate); False: only the verdicts given exist."""
    records, pruning = planted(deltas_pt, speeds)
    verdicts = []
    for given in (lime, deletion):
        v = {name: "equivalent" for name in records if name != "base"} if explained else {}
        v.update(given or {})
        verdicts.append({k: x for k, x in v.items() if x})
    return sweep_rows(records, pruning, peer, "base", *verdicts)


# ----------------------------------------------------------------------------------------------- the pick
def test_the_fastest_within_1pt_is_picked_and_a_faster_one_at_minus_1_5pt_is_rejected():
    rows = rows_for({20: -0.1, 40: -0.6, 60: -1.5})
    choice = pick(rows)
    # the planted positive: 60 % is faster, but 1.5 pt below base
    # same sparsity for both modes: the static graph (-0.7 pt, still within) is the faster one
    assert choice["variant"] == "pruned40_onnx_static"
    assert "pruned60_onnx_int8" in choice["rejected"] and "-1.50 pt" in choice["rejected"]["pruned60_onnx_int8"]
    text = " ".join(pick_sentences(choice, PEER, "base"))
    assert "pruned60_onnx_int8` (-1.50 pt)" in text and "also the most compressed eligible" in text


def test_a_tie_in_sparsity_goes_to_the_faster_variant():
    rows = rows_for({20: -0.1, 40: -0.3})
    # static is 5 % faster than dynamic at the same pct and both are within 1 pt
    assert pick(rows)["variant"] == "pruned40_onnx_static"


def test_exactly_1pt_below_base_is_within_the_tolerance():
    rows = rows_for({20: -0.1, 40: -0.9})  # static at -1.0 pt exactly
    assert pick(rows)["variant"] == "pruned40_onnx_static"


def test_nothing_within_1pt_keeps_base():
    records, pruning = planted({40: -2.0, 60: -3.0})
    for name in ("base_onnx_int8", "base_onnx_static"):
        records[name]["accuracy"] = BASE_ACC - 0.02
    every = {n: "equivalent" for n in records}
    choice = pick(sweep_rows(records, pruning, PEER, "base", every, every))
    assert choice["variant"] is None and choice["most_compressed"] is None
    text = " ".join(pick_sentences(choice, PEER, "base"))
    assert text.startswith("**Keep `base`**") and "pruned60_onnx_int8` (-3.00 pt)" in text


def test_a_drifted_variant_is_rejected_when_verdicts_exist():
    lime = {"pruned60_onnx_static": "drifted", "pruned60_onnx_int8": "equivalent", "pruned40_onnx_static": "equivalent"}
    deletion = {"pruned60_onnx_static": "equivalent", "pruned60_onnx_int8": "drifted", "pruned40_onnx_static": "equivalent"}
    choice = pick(rows_for({40: -0.2, 60: -0.4}, lime, deletion))
    assert choice["variant"] == "pruned40_onnx_static"
    assert choice["rejected"] == {"pruned60_onnx_static": "LIME agreement drifted",
                                  "pruned60_onnx_int8": "deletion test drifted"}
    assert choice["undecided"] == []
    text = " ".join(pick_sentences(choice, PEER, "base"))
    assert "`equivalent` to base's on both" in text and "Unverified" not in text


def test_the_unexplained_variant_is_never_shipped_and_the_sweep_and_the_report_pick_the_same():
    """Issue 24's case, reproduced: base_onnx_int8 equivalent, pruned20_onnx_int8 inconclusive, pruned40_onnx_int8
    never explained. The old sweep shipped pruned40_onnx_int8 (not measuring was rewarded); now it is unverified,
    and the sweep and the report's recommend() pick base_onnx_int8 from the same verdicts."""
    from common.report.pick import recommend

    records, pruning = planted({20: -0.2, 40: -0.5}, speeds={20: 200.0, 40: 260.0})
    del records["base_onnx_static"]
    for pct in (20, 40):
        del records[f"pruned{pct}_onnx_static"]
    lime = {"base_onnx_int8": "equivalent", "pruned20_onnx_int8": "inconclusive"}
    deletion = {"base_onnx_int8": "equivalent", "pruned20_onnx_int8": "equivalent"}
    rows = sweep_rows(records, pruning, PEER, "base", lime, deletion)
    choice = pick(rows)
    assert choice["variant"] == "base_onnx_int8"
    assert choice["rejected"]["pruned40_onnx_int8"] == ("unverified: no LIME agreement verdict; "
                                                        "unverified: no deletion test verdict")
    assert choice["rejected"]["pruned20_onnx_int8"] == "LIME agreement inconclusive"
    assert choice["undecided"] == ["pruned40_onnx_int8"]        # inconclusive failed; unexplained is undecided
    text = " ".join(pick_sentences(choice, PEER, "base"))
    assert "Unverified, so not eligible" in text and "LIME_EXTRA='pruned40_onnx_int8'" in text
    # the report, from the same verdicts
    frame = pd.DataFrame([{"variant": r["variant"], "accuracy": r["accuracy"], "delta_acc_pt": r["accuracy_delta_pt"],
                           "throughput": r["throughput_samples_per_s"], "throughput_ratio": r["x_base"],
                           "x_best_peer": r["x_best_peer"], "size_mb": r["size_mb"], "expl_role": "variant",
                           "expl_verdict": lime.get(r["variant"]), "deletion_verdict": deletion.get(r["variant"]),
                           "expl_extra": 0.0, "expl_control_extra": 0.06, "expl_d": -0.03, "expl_upper": -0.01,
                           "expl_n": 100}
                          for r in rows] + [{"variant": "base", "accuracy": BASE_ACC, "delta_acc_pt": 0.0,
                                             "throughput": 50.0, "throughput_ratio": 1.0, "size_mb": 90.0}])
    assert recommend(frame).startswith("**Ship `base_onnx_int8`**")
    # one gate explained is not enough, on either gate (one test per gate)
    for missing in ("lime", "deletion"):
        one = {"lime": dict(lime), "deletion": dict(deletion)}
        one["lime" if missing == "deletion" else "deletion"]["pruned40_onnx_int8"] = "equivalent"
        choice = pick(sweep_rows(records, pruning, PEER, "base", one["lime"], one["deletion"]))
        label = "LIME agreement" if missing == "lime" else "deletion test"
        assert choice["variant"] == "base_onnx_int8"
        assert choice["rejected"]["pruned40_onnx_int8"] == f"unverified: no {label} verdict"
    # the planted negative: explained and equivalent on both, pruned40 ships
    lime["pruned40_onnx_int8"] = deletion["pruned40_onnx_int8"] = "equivalent"
    assert pick(sweep_rows(records, pruning, PEER, "base", lime, deletion))["variant"] == "pruned40_onnx_int8"


def test_a_sibling_that_drifted_is_a_note_on_an_unverified_graph_never_a_verdict():
    """pruned60's dynamic graph is LIME-drifted and its static graph was not explained: the static graph is
    unverified (never eligible), and the note names the drifted sibling. Planted negatives: a sibling that is
    equivalent or inconclusive adds no note, and the graph is still unverified; a more pruned model's drift
    notes nothing on a less pruned one; base's graphs are never noted."""
    lime = {"pruned60_onnx_int8": "drifted", "pruned60_onnx_static": ""}
    deletion = {"pruned60_onnx_static": ""}
    choice = pick(rows_for({40: -0.2, 60: -0.7}, lime, deletion, speeds={40: 220.0, 60: 300.0}))
    assert choice["variant"] == "pruned40_onnx_static"
    assert choice["rejected"] == {
        "pruned60_onnx_static": "unverified: no LIME agreement verdict; `pruned60_onnx_int8` (the same pruned model) "
                                "drifted; unverified: no deletion test verdict",
        "pruned60_onnx_int8": "LIME agreement drifted"}
    text = " ".join(pick_sentences(choice, PEER, "base"))
    assert "Without the explanation gates the fastest within 1 pt would be `pruned60_onnx_static` (315.0 samples/s " \
           "= 3.15x the best peer, -0.80 pt), but its unverified" in text
    for sibling_verdict in ("equivalent", "inconclusive"):
        choice = pick(rows_for({40: -0.2, 60: -0.7}, {"pruned60_onnx_int8": sibling_verdict, "pruned60_onnx_static": ""}))
        assert choice["variant"] != "pruned60_onnx_static"
        assert "unverified" in choice["rejected"]["pruned60_onnx_static"]
        assert "drifted" not in choice["rejected"]["pruned60_onnx_static"]
    # a less pruned model's drift is noted on the more pruned ones; a more pruned one's on nothing
    choice = pick(rows_for({40: -0.2, 60: -0.7}, {"pruned40_onnx_int8": "drifted", "pruned60_onnx_int8": ""}))
    assert "; ".join(choice["failures"]["pruned60_onnx_int8"]) == (
        "unverified: no LIME agreement verdict; `pruned40_onnx_int8` (less pruned) drifted")
    choice = pick(rows_for({40: -0.2, 60: -0.7}, {"pruned60_onnx_int8": "drifted", "pruned40_onnx_int8": ""}))
    assert "; ".join(choice["failures"]["pruned40_onnx_int8"]) == "unverified: no LIME agreement verdict"
    rows = rows_for({40: -0.2}, {"base_onnx_int8": "drifted", "base_onnx_static": ""})
    choice = pick([r for r in rows if not r["variant"].startswith("pruned")])
    assert choice["variant"] is None
    assert "; ".join(choice["failures"]["base_onnx_static"]) == "unverified: no LIME agreement verdict"
    # inconclusive is not said to be a different reasoning; keeping base still says what the gates cost
    choice = pick(rows_for({60: -0.7}, {"pruned60_onnx_int8": "inconclusive", "pruned60_onnx_static": "inconclusive",
                                        "base_onnx_int8": "drifted", "base_onnx_static": "drifted"}))
    text = " ".join(pick_sentences(choice, PEER, "base"))
    assert choice["variant"] is None and text.startswith("**Keep `base`**")
    assert "would be `pruned60_onnx_static`" in text and "not shown to match base's" in text
    # the ungated sentence is silent when the gates cost nothing
    choice = pick(rows_for({40: -0.2, 60: -0.7}))
    assert "Without the explanation gates" not in " ".join(pick_sentences(choice, PEER, "base"))


def test_an_inconclusive_verdict_is_not_equivalent():
    lime = {"pruned60_onnx_static": "inconclusive", "pruned60_onnx_int8": "inconclusive"}
    choice = pick(rows_for({40: -0.2, 60: -0.4}, lime))
    assert choice["variant"] == "pruned40_onnx_static"


def test_the_fastest_equivalent_variant_is_picked_and_the_most_compressed_is_named():
    """The planted negative of the rejections above: within 1 pt, both gates equivalent; the pick is the fastest
    (the report's rule) and the more compressed, slower one is named for a user who cares about size."""
    rows = rows_for({20: 0.0, 60: -0.8}, speeds={20: 400.0, 60: 300.0})
    choice = pick(rows)
    assert choice["variant"] == "pruned20_onnx_static"
    assert choice["most_compressed"] == "pruned60_onnx_static" and choice["rejected"] == {}
    text = " ".join(pick_sentences(choice, PEER, "base"))
    assert "most compressed eligible variant is `pruned60_onnx_static`" in text


def test_without_verdicts_nothing_ships_and_the_deciding_command_is_named():
    choice = pick(rows_for({30: -0.2, 50: -0.5}, explained=False))
    text = " ".join(pick_sentences(choice, PEER, "base"))
    assert choice["variant"] is None and text.startswith("**Keep `base`**")
    command = re.search(r"`(make sweep LIME_EXTRA=[^`]+)`", text).group(1)
    assert command.split("LIME_EXTRA=")[1].strip("'").split() == choice["undecided"]
    assert choice["undecided"][0] == "pruned50_onnx_static" and "keep LIME_EXTRA on later" in text


def test_the_pick_says_whether_it_reaches_2x_the_peer_with_the_measured_ratio():
    choice = pick(rows_for({40: -0.2}, speeds={40: 250.0}))  # static: 262.5 samples/s = 2.62x the peer's 100
    assert "It reaches the 2.0x-the-best-peer target: 2.62x" in " ".join(pick_sentences(choice, PEER, "base"))
    choice = pick(rows_for({40: -0.2}, speeds={40: 150.0}))
    assert "It falls short of the 2.0x-the-best-peer target: 1.57x" in " ".join(pick_sentences(choice, PEER, "base"))
    skipped = {"variant": "optimum_int8", "status": "skipped: no --peer optimum=PYTHON (its venv) was given"}
    rows = rows_for({40: -0.2}, peer=skipped)
    assert all(r["x_best_peer"] is None for r in rows)
    text = " ".join(pick_sentences(pick(rows), skipped, "base"))
    assert "No peer was measured (`optimum_int8`: skipped: no --peer optimum" in text and "not checked" in text
    # two peers: the target is against the faster one, and an unmeasured one is named, never used
    faster = {**PEER, "variant": "openvino_int8", "throughput_samples_per_s": 125.0}
    rows = rows_for({40: -0.2}, peer=[PEER, faster], speeds={40: 250.0})
    text = " ".join(pick_sentences(pick(rows), [PEER, faster], "base"))
    assert "It reaches the 2.0x-the-best-peer target: 2.10x the throughput of `openvino_int8`" in text
    rows = rows_for({40: -0.2}, peer=[PEER, {**faster, "status": "failed: build"}], speeds={40: 250.0})
    text = " ".join(pick_sentences(pick(rows), [PEER, {**faster, "status": "failed: build"}], "base"))
    assert "2.62x the throughput of `optimum_int8`" in text and "`openvino_int8` (failed: build)" in text


@pytest.mark.parametrize("refinetune, grows", [
    ({20: 0.899, 40: 0.897, 60: 0.880}, True),  # 0.1 -> 2.0 pt: more epochs may pay
    ({20: 0.899, 40: 0.896, 60: 0.897}, False),  # flat within noise
])
def test_the_refinetune_sentence_says_when_the_drop_grows_with_sparsity(refinetune, grows):
    pruning = {p: {"accuracy_after_pruning": acc - 0.03, "accuracy_after_refinetune": acc, "source_accuracy": BASE_ACC,
                   "epochs": 2} for p, acc in refinetune.items()}
    text = refinetune_sentence(pruning, BASE_ACC)
    assert ("grows with sparsity" in text and "may pay" in text) == grows
    assert ("does not grow" in text) == (not grows)
    assert "+0.10 pt at 20 %" in text


# ----------------------------------------------------------------------------------------------- the stage
def write_inputs(folder: Path, deltas_pt: dict[int, float], peer: dict | None = PEER) -> list[str]:
    """Planted records and pruning manifests on disk; the stage's argv."""
    records, pruning = planted(deltas_pt)
    bench = folder / "sweep"
    bench.mkdir(parents=True)
    argv = ["--output-dir", str(folder / "out"), "--reports-dir", str(folder / "reports"), "--baseline", "base"]
    for name, r in records.items():
        path = bench / f"{name}.bench.json"
        path.write_text(json.dumps({k: v for k, v in r.items() if k != "_path"}))
        argv += ["--record", str(path)]
    for pct, p in pruning.items():
        path = folder / "models" / f"bert_agnews_{pct}pct" / "manifest.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(pruning_manifest(pct, p["accuracy_after_pruning"], p["accuracy_after_refinetune"])))
        argv += ["--pruning-manifest", str(path)]
    if peer is not None:
        (bench / "optimum_int8.bench.json").write_text(json.dumps(peer))
        argv += ["--peer-record", str(bench / "optimum_int8.bench.json")]
    return argv


def write_verdicts(folder: Path, verdicts: dict[str, tuple[str, str]]) -> None:
    """lime_similarity.csv and deletion.csv with variant -> (LIME verdict, deletion verdict)."""
    folder.mkdir(parents=True, exist_ok=True)
    lime = [{c: None for c in SIMILARITY_COLUMNS} | {"variant": v, "role": ROLE_VARIANT, "metric": HEADLINE,
                                                      "verdict": lv, "n": 100} for v, (lv, _) in verdicts.items()]
    lime.append({c: None for c in SIMILARITY_COLUMNS} | {"variant": "base", "role": ROLE_NOISE_FLOOR, "metric": HEADLINE})
    pd.DataFrame(lime, columns=SIMILARITY_COLUMNS).to_csv(folder / SIMILARITY_CSV, index=False)
    pd.DataFrame([{c: None for c in DELETION_COLUMNS} | {"variant": v, "check": DELETION_GATE, "verdict": dv, "n": 100}
                  for v, (_, dv) in verdicts.items()], columns=DELETION_COLUMNS).to_csv(folder / DELETION_CSV, index=False)


def test_the_stage_writes_the_table_the_frontier_and_the_manifest(tmp_path):
    from PIL import Image

    argv = write_inputs(tmp_path, {20: -0.1, 40: -0.5, 60: -1.6})
    records, _ = planted({20: -0.1, 40: -0.5, 60: -1.6})
    write_verdicts(tmp_path / "reports", {n: ("equivalent", "equivalent") for n in records if n != "base"})
    assert main(argv) == 0
    out = tmp_path / "out"
    table = pd.read_csv(out / "sweep.csv")
    assert len(table) == 3 + 2 * 3
    row = table.set_index("variant").loc["pruned40_onnx_static"]
    assert row["quantization"] == "static" and row["sparsity_requested_pct"] == 40
    assert row["encoder_sparsity"] == pytest.approx(0.402)
    assert row["accuracy_delta_pt"] == pytest.approx(-0.6)
    assert row["x_best_peer"] == pytest.approx(1.05 * 280 / 100) and row["x_base"] == pytest.approx(1.05 * 280 / 50)
    assert row["accuracy_after_refinetune"] - row["accuracy_after_pruning"] == pytest.approx(0.05)
    assert row["refinetune_wall_s"] == pytest.approx(400)
    assert table["pick"].sum() == 1 and table.loc[table["pick"], "variant"].item() == "pruned40_onnx_static"
    assert not table.set_index("variant").loc["pruned60_onnx_int8", "eligible"]
    markdown = (out / "sweep.md").read_text()
    assert "| **pruned40_onnx_static** (pick)" in markdown and "optimum_int8 (best peer)" in markdown
    assert "**Ship `pruned40_onnx_static`**" in markdown and "x-the-best-peer target: 2.94x" in markdown
    assert "grows with sparsity" in markdown  # 60 % lost 1.6 pt after re-fine-tuning, 20 % 0.1 pt
    assert "](frontier.png)" in markdown
    manifest = json.loads((out / "sweep.manifest.json").read_text())
    assert manifest["pick"] == "pruned40_onnx_static" and manifest["pick_x_best_peer"] == pytest.approx(2.94)
    assert "pruning_60" in manifest["inputs"] and "record_base" in manifest["inputs"]
    with Image.open(out / "frontier.png") as image:
        assert image.format == "PNG" and image.size[0] > 600 and len(image.getcolors(1 << 20)) > 50


def test_the_stage_reads_the_explanation_verdicts_when_they_exist(tmp_path):
    argv = write_inputs(tmp_path, {20: -0.1, 40: -0.5})
    reports = tmp_path / "reports"
    reports.mkdir()
    lime = pd.DataFrame([{c: None for c in SIMILARITY_COLUMNS} | {"variant": v, "role": ROLE_VARIANT, "metric": HEADLINE,
                                                                   "verdict": verdict, "n": 100}
                         for v, verdict in (("pruned40_onnx_static", "drifted"), ("pruned40_onnx_int8", "equivalent"))]
                        + [{c: None for c in SIMILARITY_COLUMNS} | {"variant": "base", "role": ROLE_NOISE_FLOOR,
                                                                     "metric": HEADLINE}], columns=SIMILARITY_COLUMNS)
    lime.to_csv(reports / SIMILARITY_CSV, index=False)
    pd.DataFrame([{c: None for c in DELETION_COLUMNS} | {"variant": "pruned40_onnx_int8", "check": DELETION_GATE,
                                                         "verdict": "equivalent", "n": 100}],
                 columns=DELETION_COLUMNS).to_csv(reports / DELETION_CSV, index=False)
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "out" / "sweep.csv").set_index("variant")
    assert table.loc["pruned40_onnx_static", "lime_verdict"] == "drifted"
    assert table.loc["pruned40_onnx_int8", "pick"] and not table.loc["pruned40_onnx_static", "eligible"]
    failed = "LIME agreement drifted; unverified: no deletion test verdict"
    assert f"`pruned40_onnx_static` ({failed})" in (tmp_path / "out" / "sweep.md").read_text()
    assert table.loc["pruned40_onnx_static", "explanation_failures"] == failed
    assert pd.isna(table.loc["pruned40_onnx_int8", "explanation_failures"])  # equivalent on both: nothing failed
    # never explained: unverified, and no note (a more pruned model's drift says nothing about a less pruned one)
    assert table.loc["pruned20_onnx_int8", "explanation_failures"] == (
        "unverified: no LIME agreement verdict; unverified: no deletion test verdict")
    assert not table.loc["pruned20_onnx_int8", "eligible"]
    manifest = json.loads((tmp_path / "out" / "sweep.manifest.json").read_text())
    assert manifest["pick"] == "pruned40_onnx_int8" and "pruned40_onnx_static" in manifest["rejected_faster"]


def test_without_a_peer_the_sweep_still_runs_and_says_so(tmp_path):
    argv = write_inputs(tmp_path, {20: -0.1}, peer={"variant": "optimum_int8", "status": "skipped: no venv"})
    assert main(argv) == 0
    markdown = (tmp_path / "out" / "sweep.md").read_text()
    assert "the peer `optimum_int8` was not measured (skipped: no venv)" in markdown and "peer)" not in markdown


@pytest.mark.parametrize("damage, named", [
    (lambda argv, root: (root / "sweep" / "pruned40_onnx_int8.bench.json").unlink(), "pruned40_onnx_int8.bench.json"),
    (lambda argv, root: (root / "models" / "bert_agnews_40pct" / "manifest.json").write_text(
        json.dumps({"sparsity_requested_pct": 40})), "bert_agnews_40pct/manifest.json"),
    (lambda argv, root: argv.__setitem__(argv.index(str(root / "models" / "bert_agnews_40pct" / "manifest.json")),
                                         str(root / "models" / "bert_agnews_20pct" / "manifest.json")),
     "pruned40_onnx_int8.bench.json is variant pruned40_onnx_int8 but no --pruning-manifest has sparsity 40"),
    (lambda argv, root: (root / "sweep" / "base.bench.json").write_text(json.dumps(
        {"variant": "base", "status": "failed: killed"})), "baseline base has no usable benchmark record"),
])
def test_bad_input_is_one_sentence_exit_2_and_nothing_written(tmp_path, caplog, damage, named):
    argv = write_inputs(tmp_path, {20: -0.1, 40: -0.5})
    damage(argv, tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and named in caplog.text and "Traceback" not in caplog.text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_records_of_different_test_rows_are_refused(tmp_path):
    from common.report.sweep import load_records

    records, _ = planted({20: -0.1})
    paths = []
    for name, r in records.items():
        path = tmp_path / f"{name}.bench.json"
        path.write_text(json.dumps({**r, "test_sha256": "other" if name == "pruned20_onnx_int8" else TEST_SHA}))
        paths.append(str(path))
    with pytest.raises(UserError, match="different test rows"):
        load_records(paths)
    # the planted negative: the same rows load
    (tmp_path / "pruned20_onnx_int8.bench.json").write_text(json.dumps(records["pruned20_onnx_int8"]))
    assert len(load_records(paths)) == len(records)


# ----------------------------------------------------------------------------------------------- the Makefile
@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_sweep_plans_the_chain_one_bench_run_and_the_sweep_stage(tmp_path):
    tree = copy_sources(tmp_path / "repo", ROOT)
    done = subprocess.run(["make", "--no-print-directory", "-n", "sweep", "SWEEP_PCTS=40", "PYTHON=python3", "DATA=data"],
                          cwd=tree, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    commands = [line for line in done.stdout.splitlines() if " -m " in line]
    stages = [re.search(r"-m ([a-z_.]+)", line).group(1) for line in commands]
    assert stages.count("train.pruning.run_structural_pruning") == 1
    prune = commands[stages.index("train.pruning.run_structural_pruning")]
    assert "--sparsity 40 " in prune  # not a stem such as 40_int8
    chain = [i for i, line in enumerate(commands) if "pruned40" in line or "bert_agnews_40pct" in line]
    planned = [stages[i] for i in chain]
    assert planned[:3] == ["train.pruning.run_structural_pruning", "tools.apply_shrink_to_model",
                           "export_onnx.export_onnx"]
    int8 = [commands[i] for i in chain if "--int8" in commands[i]]
    # ONNX Runtime dynamic and static int8, OpenVINO's NNCF int8 (and its fp32 IR), each from the fp32 graph
    assert len(int8) == 3 and sum("--mode static" in c for c in int8) == 1
    assert [c for c in int8 if "export_onnx.export_openvino" in c and "--model models/onnx/pruned40.onnx" in c
            and "--output models/onnx/pruned40_ov_int8.xml" in c]
    assert any("export_onnx.export_openvino" in commands[i] and "--output models/onnx/pruned40_ov.xml" in commands[i]
               for i in chain)
    assert stages.count("inference.run_onnx_benchmark") == 1
    bench = commands[stages.index("inference.run_onnx_benchmark")]
    assert "--output-dir outputs/sweep" in bench
    assert sorted(re.findall(r"--variant ([a-z0-9_]+)=", bench)) == sorted(
        ["base", "base_onnx_int8", "base_onnx_static", "base_ov", "base_ov_int8", "pruned40_onnx_int8",
         "pruned40_onnx_static", "pruned40_ov", "pruned40_ov_int8"])
    assert stages[-1] == "generate_outputs.sweep.build_sweep" and stages.index("inference.run_onnx_benchmark") < len(stages) - 1
    sweep = done.stdout[done.stdout.index("generate_outputs.sweep.build_sweep"):]
    assert "--pruning-manifest models/pruned/bert_agnews_40pct/manifest.json" in sweep
    assert "--peer-record outputs/sweep/optimum_int8.bench.json" in sweep
    assert "--peer-record outputs/sweep/openvino_int8.bench.json" in sweep
    # nothing of the other percentages, LIME or the main benchmark
    assert not re.search(r"pruned(20|30)|bert_agnews_(20|30)pct", done.stdout)
    assert not any(s.startswith("generate_outputs.generate_lime_csv") for s in stages)
    assert "outputs/metrics" not in done.stdout
    assert not (tree / "models" / ".knobs").exists()  # a dry run writes no stamps


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_lime_extra_explains_the_pick_beside_the_report_variants_and_feeds_the_sweep(tmp_path):
    """The command the sweep names (`make sweep LIME_EXTRA=<pick>`): LIME of the pick's own int8 graph, the
    pick added to the report's verdict lists (which keep their variants and the negative control), then the
    sweep stage; planted negative: without LIME_EXTRA and without built verdicts the sweep plans no LIME."""
    tree = copy_sources(tmp_path / "repo", ROOT)

    def plan(*args):
        done = subprocess.run(["make", "--no-print-directory", "-n", *args, "PYTHON=python3", "DATA=data"], cwd=tree,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
        return done.stdout

    text = plan("sweep", "SWEEP_PCTS=40", "LIME_EXTRA=pruned40_onnx_int8")
    lime = [line for line in text.splitlines() if "run_lime_on_model" in line and "--variant pruned40_onnx_int8" in line]
    assert len(lime) == 1 and "--model models/onnx/pruned40_int8.onnx" in lime[0]
    similarity = text[text.index("run_pipeline.sh"):].split("\n\n")[0]
    assert "--variant outputs/lime/pruned40_onnx_int8.csv" in similarity
    assert "--variant outputs/lime/pruned20_onnx.csv" in similarity and "--negative-control base_onnx" in similarity
    assert "--rerun pruned40_onnx_int8=outputs/lime/pruned40_onnx_int8.rerun.csv" in similarity
    deletion = text[text.index("build_deletion_report"):]
    assert "--variant outputs/deletion/pruned40_onnx_int8.csv" in deletion
    assert text.index("build_deletion_report") < text.index("generate_outputs.sweep.build_sweep")
    # a LIME_VARIANTS given to make is extended, not replaced
    text = plan("outputs/reports/lime_similarity.md", "LIME_VARIANTS=base base_onnx", "LIME_EXTRA=pruned40_onnx_int8")
    assert re.findall(r"--variant outputs/lime/([a-z0-9_]+)\.csv", text[text.index("run_pipeline.sh"):]) == [
        "base_onnx", "pruned40_onnx_int8", "control_seed43"]
    assert "run_lime_on_model" not in plan("sweep", "SWEEP_PCTS=40")


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_a_built_sweep_is_a_report_input(tmp_path):
    """Once outputs/sweep/sweep.md exists the report depends on it (a newer sweep rebuilds the report only);
    planted negative: before it exists, the report does not plan the sweep."""
    tree = copy_sources(tmp_path / "repo", ROOT)
    from tests.test_stage_deps import REPORT_FOLDERS

    for folder in (*REPORT_FOLDERS, "outputs/sweep", "models/fine_tuned/bert_agnews", "models/pruned/bert_agnews_20pct",
                   "models/pruned/bert_agnews_30pct", "models/shrunk/pruned20", "models/shrunk/pruned30", "models/onnx",
                   "models/quantized", "outputs/metrics/properties"):
        (tree / folder).mkdir(parents=True, exist_ok=True)
    knobs = ["PYTHON=python3", "DATA=data", "OPTIMUM_PEER=0"]

    def run(*args):
        done = subprocess.run(["make", "--no-print-directory", *args, *knobs], cwd=tree, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return re.findall(r"-m ([a-z_.]+)", done.stdout)

    assert "generate_outputs.sweep.build_sweep" not in run("-n", "report")
    run("-t", "report")
    assert run("-n", "report") == []
    (tree / "outputs/sweep/sweep.md").write_text("# sweep\n")  # newer than the report
    assert run("-n", "report") == ["generate_outputs.report.build_report"]


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_a_changed_sweep_list_reruns_the_bench_and_the_stage_only(tmp_path):
    tree = copy_sources(tmp_path / "repo", ROOT)
    for folder in ("models/fine_tuned/bert_agnews", "models/pruned/bert_agnews_40pct", "models/pruned/bert_agnews_50pct",
                   "models/shrunk/pruned40", "models/shrunk/pruned50", "models/onnx", "outputs/sweep"):
        (tree / folder).mkdir(parents=True)
    knobs = ["PYTHON=python3", "DATA=data"]

    def run(*args):
        done = subprocess.run(["make", "--no-print-directory", *args, *knobs], cwd=tree, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return re.findall(r"-m ([a-z_.]+)", done.stdout)

    run("-t", "sweep", "SWEEP_PCTS=40 50")
    assert run("-n", "sweep", "SWEEP_PCTS=40 50") == []
    assert run("-n", "sweep", "SWEEP_PCTS=40") == ["inference.run_onnx_benchmark", "generate_outputs.sweep.build_sweep"]


def test_the_stage_config_is_its_flags_and_refuses_an_unknown_key():
    """The stage contract tests/test_config_entry.py checks for every config_entry stage, for this one."""
    import dataclasses

    from common.stage import StageConfig
    from common.report.sweep import SweepConfig

    parsed = vars(main.build_parser().parse_args(["--record", "b.bench.json"]))
    assert issubclass(SweepConfig, StageConfig) and SweepConfig.__dataclass_params__.frozen
    assert SweepConfig.from_dict(parsed).to_dict() == parsed and list(parsed) == [
        f.name for f in dataclasses.fields(SweepConfig)]
    with pytest.raises(UserError, match="nonsense_knob"):
        SweepConfig.from_dict({**parsed, "nonsense_knob": 1})
    with pytest.raises(UserError, match="--record"):
        SweepConfig.from_dict({**parsed, "record": []})


# ----------------------------------------------------------------------------------------------- end to end
def test_the_sweep_end_to_end_on_the_tiny_model(tmp_path):
    """prune 50 % -> shrink -> export -> dynamic + static int8 -> one benchmark run -> the sweep,
    every stage through its main([...]) on toy data, as `make sweep SWEEP_PCTS=50` chains them."""
    from export_onnx.export_onnx import main as export_main
    from inference.run_onnx_benchmark import main as bench_main
    from tests.conftest import toy_texts
    from tests.test_onnx_bench import make_long_bert
    from tools.apply_shrink_to_model import main as shrink_main
    from train.pruning.run_structural_pruning import main as prune_main

    data = tmp_path / "data"
    data.mkdir()
    for split, n, seed in (("train", 160, 1), ("test", 80, 2)):
        texts, labels = toy_texts(n, seed)
        pd.DataFrame({"text": texts, "label": labels}).to_csv(data / f"{split}.csv", index=False)
    train = ["--learning-rate", "1e-5", "--batch-size", "16", "--max-len", "32", "--device", "cpu", "--seed", "0",
             "--validation-fraction", "0.1", "--data", str(data)]
    # An untrained tiny BERT whose head spreads the logits (tests/test_onnx_bench.py): a fine-tuned one this small
    # has logits too close for int8 to pass the export's 99 % argmax parity, which is not what is tested here.
    base = make_long_bert(tmp_path / "base")
    pruned = tmp_path / "models" / "pruned" / "bert_agnews_50pct"
    assert prune_main(["--model", str(base), "--sparsity", "50", "--output", str(pruned), "--epochs", "1",
                       "--importance-samples", "64", *train]) == 0
    shrunk = tmp_path / "models" / "shrunk" / "pruned50"
    assert shrink_main(["--model_path", str(pruned), "--output_path_shrunk_model", str(shrunk),
                        "--save_method", "save_pretrained"]) == 0
    onnx = tmp_path / "models" / "onnx"
    # base's own int8 graphs are left out: each benchmarked variant costs two worker processes (~10 s here)
    variants = {"base": base}
    graph = onnx / "pruned50.onnx"
    assert export_main(["--model", str(shrunk), "--output", str(graph), "--data", str(data), "--max-len", "32"]) == 0
    for suffix, extra in (("int8", []), ("static", ["--mode", "static", "--calib-rows", "32", "--seed", "0"])):
        out = onnx / f"pruned50_{suffix}.onnx"
        assert export_main(["--model", str(graph), "--int8", *extra, "--output", str(out), "--data", str(data),
                            "--max-len", "32"]) == 0
        variants[f"pruned50_onnx_{suffix}"] = out
    bench = tmp_path / "outputs" / "sweep"
    assert bench_main(["--output-dir", str(bench), "--record-suffix", ".bench.json", "--data", str(data),
                       "--max-len", "32", "--device", "cpu", "--threads", "1", "--latency-threads", "1",
                       "--latency-requests", "5", "--throughput-texts", "40", "--agreement-rows", "40",
                       "--baseline", "base", *[f"--variant={n}={p}" for n, p in variants.items()]]) == 0
    assert main(["--output-dir", str(bench), "--reports-dir", str(tmp_path / "reports"), "--pruning-manifest",
                 str(pruned / "manifest.json"), "--peer-record", str(bench / "optimum_int8.bench.json"),
                 *[f"--record={bench / f'{n}.bench.json'}" for n in variants]]) == 0
    table = pd.read_csv(bench / "sweep.csv").set_index("variant")
    manifest = json.loads((pruned / "manifest.json").read_text())
    assert table.loc["pruned50_onnx_static", "quantization"] == "static"
    assert table.loc["pruned50_onnx_int8", "quantization"] == "dynamic"
    assert table.loc["pruned50_onnx_int8", "encoder_sparsity"] == pytest.approx(
        manifest["sparsity_achieved"]["encoder_parameters"])
    assert table.loc["pruned50_onnx_int8", "accuracy_after_refinetune"] == pytest.approx(
        manifest["accuracy_after_refinetune"])
    assert table["x_best_peer"].isna().all()  # no --peer-python: the record says skipped
    # nothing was explained: nothing is eligible, base is kept, and the graphs within 1 pt are named as undecided
    within = table[(table.index != "base") & (table["accuracy_delta_pt"] >= -1.0 - 1e-9)]
    assert not table["pick"].any() and not table["eligible"].any()
    assert "**Keep `base`**" in (bench / "sweep.md").read_text()
    undecided = json.loads((bench / "sweep.manifest.json").read_text())["undecided"]
    assert set(undecided) == set(within.index)
    assert (bench / "frontier.png").read_bytes()[:4] == b"\x89PNG"
