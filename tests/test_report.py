"""The report's recommendation rule and table, on hand-made metric files with known answers."""
from __future__ import annotations

import json

import pandas as pd

from common.report import build_report, recommend, variant_table


def _metrics(variant, acc, tput, size=10.0):
    return {"variant": variant, "accuracy": acc, "macro_f1": acc, "size_mb": size, "throughput_samples_per_s": tput,
            "latency_ms_p50": 1.0, "latency_ms_p95": 2.0, "peak_rss_mb": 100.0,
            "parameters": {"total": 1_000_000, "encoder": 600_000}}


def test_recommendation_respects_accuracy_and_noise_floor():
    metrics = {m["variant"]: m for m in [
        _metrics("base", 0.90, 100), _metrics("fast_but_wrong", 0.85, 900),      # loses 5 pt
        _metrics("fast_but_drifts", 0.895, 800), _metrics("good", 0.893, 500), _metrics("slow_ok", 0.90, 120)]}
    summary = pd.DataFrame({"variant": list(metrics),
                            "throughput_ratio_vs_base": [m["throughput_samples_per_s"] / 100 for m in metrics.values()]})
    similarity = {"base": {"spearman_mean": 0.8, "verdict": "within"},
                  "fast_but_drifts": {"spearman_mean": 0.3, "verdict": "beyond"},
                  "good": {"spearman_mean": 0.78, "verdict": "within"},
                  "slow_ok": {"spearman_mean": 0.79, "verdict": "within"}}
    frame, notes = variant_table(metrics, summary, similarity, {})
    assert not notes
    assert frame.set_index("variant").loc["fast_but_wrong", "delta_acc_pt"] == -5.000000000000004 or \
        abs(frame.set_index("variant").loc["fast_but_wrong", "delta_acc_pt"] + 5) < 1e-9
    text = recommend(frame)
    assert "`good`" in text and "5.00x" in text and "cross-seed" not in text
    # the strict cross-seed check is reported with the pick when it was run
    similarity["good"].update(cross_seed_delta=-0.04, cross_seed_detectable=True)
    frame, _ = variant_table(metrics, summary, similarity, {})
    assert "its drift is detectable through LIME's noise (Δ Spearman -0.040)" in recommend(frame)
    similarity["good"].update(cross_seed_delta=0.001, cross_seed_detectable=False)
    frame, _ = variant_table(metrics, summary, similarity, {})
    assert "is not detectable" in recommend(frame)
    # Without explanation results the pick falls back to accuracy + speed, and says so.
    frame, _ = variant_table(metrics, summary, {}, {})
    text = recommend(frame)
    assert "`fast_but_drifts`" in text and "accuracy and speed alone" in text


def test_report_lists_every_variant_and_missing_sections(tmp_path):
    metrics_dir = tmp_path / "outputs" / "metrics"
    metrics_dir.mkdir(parents=True)
    for m in (_metrics("base", 0.9, 100), _metrics("pruned30", 0.89, 160)):
        (metrics_dir / f"{m['variant']}.json").write_text(json.dumps(m))
    out = tmp_path / "outputs" / "reports" / "report.md"
    text = build_report(tmp_path / "outputs", tmp_path / "models", out, "SEED=1")
    assert out.read_text() == text
    assert "| pruned30" in text and "| base" in text
    assert "SEED=1" in text and "Not built" in text
    assert "`pruned30`" in text  # within 1 pt and faster; no LIME -> caveat
    assert pd.read_csv(out.with_suffix(".csv"))["variant"].tolist() == ["base", "pruned30"]
