"""The report's shipping rule and table, on hand-made metric files with known answers."""
from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest

from common.report.build import DELETION_COLUMNS, build_report, recommend, variant_table


def _metrics(variant, acc, tput, size=10.0):
    return {"variant": variant, "accuracy": acc, "macro_f1": acc, "size_mb": size, "throughput_samples_per_s": tput,
            "latency_ms_p50": 1.0, "latency_ms_p95": 2.0, "peak_rss_mb": 100.0,
            "parameters": {"total": 1_000_000, "encoder": 600_000}}


def _lime(verdict, role="variant", n_to_decide=None, decides=""):
    """A similarity row as common.report.inputs reads it: the variant's extra, the control's (0.1), d and its bounds."""
    extra = {"equivalent": 0.004, "drifted": 0.2, "inconclusive": 0.05}[verdict]
    d = extra - 0.05
    return {"role": role, "extra": extra, "control_extra": 0.1, "d": d, "lower": d - 0.01, "upper": d + 0.01,
            "margin": 0.05, "verdict": verdict, "n": 100, "n_to_decide": n_to_decide, "decides": decides, "reason": ""}


def _deletion(verdict, n_to_decide=None, decides=""):
    return {"verdict": verdict, "n": 100, "n_to_decide": n_to_decide, "decides": decides, "reason": ""}


METRICS = {m["variant"]: m for m in [
    _metrics("base", 0.90, 100), _metrics("fast_but_wrong", 0.85, 900),  # loses 5 pt
    _metrics("fast_drifted", 0.895, 800), _metrics("fast_inconclusive", 0.897, 700),
    _metrics("good", 0.893, 500), _metrics("slow_ok", 0.90, 120), _metrics("control_seed43", 0.90, 1000)]}
SUMMARY = pd.DataFrame({"variant": list(METRICS),
                        "throughput_ratio_vs_base": [m["throughput_samples_per_s"] / 100 for m in METRICS.values()]})


def _similarity(**overrides):
    out = {"fast_drifted": _lime("equivalent"), "fast_inconclusive": _lime("equivalent"), "good": _lime("equivalent"),
           "slow_ok": _lime("equivalent"), "fast_but_wrong": _lime("equivalent"),
           "control_seed43": _lime("equivalent", role="positive_control")}
    return {**out, **overrides}


def _deletions(**overrides):
    out = {name: _deletion("equivalent") for name in METRICS if name != "base"}
    return {**out, **overrides}


def _pick(similarity: dict, deletion: dict | None, metrics: dict = METRICS) -> str:
    """The shipping paragraph for these gate results."""
    frame, _ = variant_table(metrics, SUMMARY, similarity, {}, deletion=deletion)
    return recommend(frame)


def test_clean_pick_names_the_runner_up_and_skips_the_control_and_the_inaccurate():
    similarity = _similarity(fast_drifted=_lime("drifted"),
                             fast_inconclusive=_lime("inconclusive", n_to_decide=340, decides="drifted"))
    frame, notes = variant_table(METRICS, SUMMARY, similarity, {}, deletion=_deletions())
    assert not notes
    assert abs(frame.set_index("variant").loc["fast_but_wrong", "delta_acc_pt"] + 5) < 1e-9
    text = recommend(frame)
    assert text.startswith("**Ship `good`**: 5.00x the base throughput")
    assert "`fast_drifted` (8.00x the base throughput: LIME agreement drifted), `fast_inconclusive` (7.00x the base " \
           "throughput: LIME agreement inconclusive, would be drifted at about 340 instances (80 % power))" in text
    assert "LIME agreement equivalent" in text and "deletion test equivalent" in text
    assert "Runner-up: `slow_ok` (1.20x the base throughput), which passes the same gates but is slower" in text
    assert "control_seed43" not in text and "fast_but_wrong" not in text  # a control is never a candidate
    assert "gate is missing" not in text


def test_fastest_but_drifted_is_named_in_the_picks_paragraph():
    text = _pick(_similarity(fast_drifted=_lime("drifted")), _deletions())
    assert "**Ship `fast_inconclusive`**" in text
    assert "The fastest variant within 1 pt is not it: `fast_drifted` (8.00x the base throughput: " \
           "LIME agreement drifted)" in text
    assert "Runner-up: `good`" in text


def test_fastest_but_inconclusive_on_the_deletion_test_is_not_shipped():
    text = _pick(_similarity(), _deletions(fast_drifted=_deletion("inconclusive", n_to_decide=250, decides="equivalent"),
                                           fast_inconclusive=_deletion("drifted")))
    assert "**Ship `good`**" in text
    assert "`fast_drifted` (8.00x the base throughput: deletion test inconclusive, would be equivalent at about 250 " \
           "instances (80 % power))" in text
    assert "`fast_inconclusive` (7.00x the base throughput: deletion test drifted)" in text


def test_missing_gates_are_said_and_nothing_passing_keeps_base():
    """No verdict, no ship (issue 24): a gate that was not built leaves every variant unverified on it, and a
    variant a gate did not judge does not pass it, in the report as in the sweep."""
    # no deletion.csv: nothing is verified on the deletion test, so base is kept and the missing gate is said
    text = _pick(_similarity(fast_drifted=_lime("drifted")), None)
    assert text.startswith("**No compressed variant passes the explanation gates: keep `base`.**")
    assert "The deletion gate is missing" in text and "unverified on it" in text
    assert "`fast_inconclusive` (7.00x the base throughput: unverified: no deletion test verdict)" in text
    # neither gate: accuracy and speed alone never ship a variant
    text = _pick({}, None, metrics={k: m for k, m in METRICS.items() if k != "control_seed43"})
    assert text.startswith("**No compressed variant passes the explanation gates: keep `base`.**")
    # a variant a gate did not judge does not pass it (one case per gate)
    similarity = {"fast_drifted": _lime("drifted"), "good": _lime("inconclusive", n_to_decide=900, decides="equivalent")}
    text = _pick(similarity, _deletions())
    assert text.startswith("**No compressed variant passes the explanation gates: keep `base`.**")
    assert "`slow_ok` (1.20x the base throughput: unverified: no LIME agreement verdict)" in text
    assert "would be equivalent at about 900 instances (80 % power)" in text
    text = _pick(_similarity(), {n: v for n, v in _deletions().items() if n not in ("good", "fast_inconclusive",
                                                                                 "fast_drifted", "fast_but_wrong")})
    assert "**Ship `slow_ok`**" in text and "`good` (5.00x the base throughput: unverified: no deletion test verdict)" in text
    # the planted negative: both gates equivalent, the fastest within 1 pt ships
    assert _pick(_similarity(), _deletions()).startswith("**Ship `fast_drifted`**")


# ----------------------------------------------------------------------------------------------- the whole report
def _write_fixture_outputs(root):
    """Every input the report reads, as the stages write them (sub-reports link their own PNGs)."""
    from tests.test_lime_drift import _add, _noise_draws, _true_weights, run_stage, write_lime_csv

    outputs = root / "outputs"
    metrics_dir, reports, sp = outputs / "metrics", outputs / "reports", outputs / "sp_lime_sets"
    for folder in (metrics_dir / "properties", reports, sp, root / "lime"):
        folder.mkdir(parents=True, exist_ok=True)
    for m in METRICS.values():
        if m["variant"] != "control_seed43":
            (metrics_dir / f"{m['variant']}.json").write_text(json.dumps(m))
    SUMMARY.to_csv(metrics_dir / "summary.csv", index=False)
    (metrics_dir / "summary.md").write_text("# Benchmark\n\n![pareto](pareto.png)\n")
    (metrics_dir / "properties" / "properties.md").write_text("# Properties\n\n| a |\n|---|\n| 1 |\n")
    png = b"\x89PNG\r\n\x1a\n"
    for path in (metrics_dir / "pareto.png", reports / "pos_analysis.png", reports / "mlp_sweep.png",
                 sp / "base_global_features.png"):
        path.write_bytes(png)
    (reports / "pos_analysis.md").write_text("# POS\n\n![POS shares](pos_analysis.png)\n")
    (reports / "pos_analysis.csv").write_text("variant,n,js_mean,extra_js_mean,lower,upper,margin,verdict,n_to_decide\n"
                                              "good,40,0.01,0.001,0,0.002,0.003,equivalent,\n")
    (sp / "base_sp_lime.md").write_text("# SP\n\n![global features](base_global_features.png)\n")
    (reports / "mlp.md").write_text("# MLP\n\nno plots\n")
    (reports / "mlp_sweep.md").write_text("# Sweep\n\n![accuracy vs lambda](mlp_sweep.png)\n")
    # LIME: base, noise, a negative control (identical), a variant, a positive control that is equivalent
    rng = np.random.default_rng(0)
    true = _true_weights(40, rng)
    noise_s, noise_s1 = _noise_draws(true, 1, 0.06), _noise_draws(true, 2, 0.06)
    lime = root / "lime"
    write_lime_csv(lime / "base.csv", _add(true, noise_s), seed=1, variant="base")
    write_lime_csv(lime / "base_noise.csv", _add(true, noise_s1), seed=2, variant="base_noise")
    for name in ("base_onnx", "good", "control_seed43"):
        write_lime_csv(lime / f"{name}.csv", _add(true, noise_s), seed=1, variant=name)
        write_lime_csv(lime / f"{name}.rerun.csv", _add(true, noise_s1), seed=2, variant=name)
    assert run_stage(lime, reports, "base_onnx", "good", control="control_seed43",
                     extra=["--negative-control", "base_onnx",
                            "--curve", f"1000={lime / 'base.csv'},{lime / 'base_noise.csv'}"]) == 0
    return outputs


def test_report_links_resolve_once_each_and_the_drift_table_shows_controls(tmp_path):
    outputs = _write_fixture_outputs(tmp_path)
    out = outputs / "reports" / "report.md"
    text = build_report(outputs, tmp_path / "models", out, "SEED=1")
    assert out.read_text() == text
    links = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    assert len(images) >= 6
    for target in links:
        assert (out.parent / target).is_file(), f"{target} does not resolve from {out.parent}"
    normalised = [os.path.normpath(t) for t in images]
    assert len(normalised) == len(set(normalised)), "an image is linked twice"
    assert "../sp_lime_sets/base_global_features.png" in images
    good_row = next(line for line in text.splitlines() if line.startswith("| good "))
    assert good_row.rstrip(" |").endswith("equivalent")  # the POS verdict, read by POS_COLUMNS
    # base is the reference: no agreement value in its row
    base_row = next(line for line in text.splitlines() if line.startswith("| base "))
    assert [cell.strip() for cell in base_row.split("|")[-5:-2]] == ["–", "–", "–"]  # LIME extra, verdicts
    # the drift table: controls marked, the variant between them, the missing deletion test said
    drift = text.split("## Explanation drift vs base")[1].split("###")[0]
    order = [drift.index(f"| {n}") for n in ("base_onnx", "good", "control_seed43")]
    assert order == sorted(order)
    assert "negative control" in drift and "positive control" in drift and "not built" in drift
    assert "The LIME agreement is blind here" in drift  # a control identical to base cannot anchor a margin
    # the pick: the control is never shipped, the missing deletion gate is said
    pick = text.split("## Which variant should I ship?")[1].split("## Every variant")[0]
    assert "control_seed43" not in pick.split("Runner-up")[0] and "The deletion gate is missing" in pick
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["stage"] == "report" and manifest["gates_present"] == {"lime_agreement": True, "deletion": False}
    assert "lime_similarity" in manifest["inputs"] and manifest["recommendation"] in text


def test_report_reads_the_deletion_gate_and_rejects_a_malformed_file(tmp_path, capsys):
    from generate_outputs.report.build_report import main

    outputs = _write_fixture_outputs(tmp_path)
    deletion = pd.DataFrame([
        {"variant": v, "check": check, "mean": 0.0, "control_mean": 0.1, "margin": 0.05, "d_mean": -0.05,
         "lower": -0.06, "upper": -0.04, "p_equivalent": 0.001, "alpha_equivalent": 0.05, "verdict": verdict,
         "n": 100, "n_excluded": 0, "n_to_decide": None, "decides": "", "reason": ""}
        for v, verdict in (("good", "drifted"), ("base_onnx", "equivalent"), ("control_seed43", "equivalent"))
        for check in ("same_evidence", "own_faithfulness")])
    deletion.loc[deletion.check == "own_faithfulness", "verdict"] = "equivalent"  # only the gate row counts
    deletion[DELETION_COLUMNS].to_csv(outputs / "reports" / "deletion.csv", index=False)
    out = outputs / "reports" / "report.md"
    assert main(["--outputs", str(outputs), "--models", str(tmp_path / "models"), "--output", str(out)]) == 0
    text = out.read_text()
    good_row = next(line for line in text.split("## Explanation drift")[1].splitlines() if line.startswith("| good"))
    assert "drifted" in good_row
    pick = text.split("## Which variant should I ship?")[1].split("## Every variant")[0]
    assert "deletion test drifted" in pick and "gate is missing" not in pick
    # a deletion.csv without the agreed columns stops with one sentence naming it, no report written
    out.unlink()
    (outputs / "reports" / "deletion.csv").write_text("variant,verdict\ngood,equivalent\n")
    with pytest.raises(SystemExit) as exc:
        main(["--outputs", str(outputs), "--models", str(tmp_path / "models"), "--output", str(out)])
    assert exc.value.code == 2 and not out.exists()
    assert "deletion.csv lacks columns" in capsys.readouterr().err


def test_drift_table_keeps_the_variants_order_with_the_controls_at_the_ends():
    from common.explain.drift import ROLE_NEGATIVE_CONTROL, ROLE_POSITIVE_CONTROL
    from common.report.build import drift_section

    names = ["pruned30", "control_seed43", "base_8bit", "base_onnx", "pruned20_onnx_int8", "base_onnx_static"]
    roles = {"base_onnx": ROLE_NEGATIVE_CONTROL, "control_seed43": ROLE_POSITIVE_CONTROL}
    similarity = {n: {"role": roles.get(n, "variant"), "verdict": "equivalent", "n": 10} for n in names}
    deletion = {n: {"verdict": "equivalent", "n": 10} for n in [*names, "only_deleted"]}
    text = drift_section(similarity, {}, deletion)
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")][1:]
    assert rows == ["base_onnx", "pruned30", "base_8bit", "pruned20_onnx_int8", "base_onnx_static", "only_deleted",
                    "control_seed43"]


def test_the_sweep_is_in_the_report_once_built_with_its_pick_and_frontier(tmp_path):
    outputs = _write_fixture_outputs(tmp_path)
    out = outputs / "reports" / "report.md"
    text = build_report(outputs, tmp_path / "models", out, "SEED=1")
    section = text.split("## Sparsity sweep")[1].split("\n## ")[0]
    assert "Not built: `make sweep`" in section and "sweep" not in json.loads(
        out.with_suffix(".manifest.json").read_text())["inputs"]
    sweep = outputs / "sweep"
    sweep.mkdir()
    (sweep / "frontier.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (sweep / "sweep.csv").write_text("variant,pick\npruned50_onnx_int8,True\n")
    (sweep / "sweep.md").write_text("# Sparsity sweep\n\n**Ship `pruned50_onnx_int8`**: 2.01x the peer.\n\n"
                                    "![accuracy vs throughput](frontier.png)\n")
    text = build_report(outputs, tmp_path / "models", out, "SEED=1")
    section = text.split("## Sparsity sweep")[1].split("\n## ")[0]
    assert "Not built" not in section and "**Ship `pruned50_onnx_int8`**: 2.01x the peer." in section
    assert "![accuracy vs throughput](../sweep/frontier.png)" in section  # rebased: resolves from the report
    assert (out.parent / "../sweep/frontier.png").is_file()
    assert "sweep" in json.loads(out.with_suffix(".manifest.json").read_text())["inputs"]
