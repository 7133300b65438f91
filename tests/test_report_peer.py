"""The report's speed claims against the best peer (the faster of Optimum's and OpenVINO's int8) and its latency
pick, on hand-made records."""
from __future__ import annotations

import pandas as pd

from common.report.build import peer_paragraph
from common.report.pick import latency_pick, recommend, variant_table
from tests.test_bench_peer import OV_PEER_PYTHON, PEER_PYTHON, _bench, needs_both_peer_venvs
from tests.test_report import METRICS, _deletions, _lime, _similarity

PEER_ROW = {"variant": "optimum_int8", "status": "ok", "accuracy": 0.899, "throughput_samples_per_s": 200.0,
            "latency_ms_p50": 4.0, "peer_config": "AutoQuantizationConfig.avx2(is_static=False, per_channel=False)"}
# The slower peer of the planted run: in the paragraph, never the reference of a ratio.
OV_ROW = {"variant": "openvino_int8", "status": "ok", "accuracy": 0.898, "throughput_samples_per_s": 150.0,
          "latency_ms_p50": 5.0, "peer_config": "optimum-intel OVQuantizer + NNCF int8 (300 training rows)"}


def _summary(with_peer: dict | None = PEER_ROW, other: dict | None = OV_ROW) -> pd.DataFrame:
    peers = [p for p in (with_peer, other) if p]
    ok = [p for p in peers if p["status"] == "ok"]
    best = max(ok, key=lambda p: p["throughput_samples_per_s"]) if ok else None
    rows = [{"variant": name, "status": "ok", "throughput_samples_per_s": m["throughput_samples_per_s"],
             "x_best_peer": m["throughput_samples_per_s"] / best["throughput_samples_per_s"] if best else None,
             "best_peer": best["variant"] if best else None, "peer_config": None} for name, m in METRICS.items()]
    return pd.DataFrame(rows + peers)


def _latencies(**p50) -> dict:
    return {name: {**m, "latency_ms_p50": p50.get(name, 10.0), "latency_threads": 1} for name, m in METRICS.items()}


def test_speed_is_stated_against_the_peer_next_to_base():
    frame, _ = variant_table(METRICS, _summary(), _similarity(fast_drifted=_lime("drifted"),
                                                              fast_inconclusive=_lime("drifted")), {},
                             deletion=_deletions())
    assert frame.set_index("variant").loc["good", "x_best_peer"] == 2.5
    text = recommend(frame)
    assert text.startswith("**Ship `good`**: 5.00x the base throughput (2.50x the best peer, optimum_int8)")
    paragraph = peer_paragraph(_summary(), frame)
    assert "AutoQuantizationConfig.avx2" in paragraph and "200.0 samples/s" in paragraph
    assert "NNCF int8" in paragraph and "150.0 samples/s" in paragraph  # every peer is described
    assert "The best peer here is **`optimum_int8`**" in paragraph
    # the fastest within 1 pt regardless of the gates (fast_but_wrong loses 5 pt and is left out)
    assert "`fast_drifted` at **4.00x the best peer's throughput** (8.00x base fp32)" in paragraph
    # planted: a faster OpenVINO becomes the best peer, and the ratios follow it
    fast_ov = {**OV_ROW, "throughput_samples_per_s": 400.0}
    frame, _ = variant_table(METRICS, _summary(PEER_ROW, fast_ov), _similarity(fast_drifted=_lime("drifted"),
                                                                             fast_inconclusive=_lime("drifted")),
                             {}, deletion=_deletions())
    assert "The best peer here is **`openvino_int8`**" in peer_paragraph(_summary(PEER_ROW, fast_ov), frame)
    assert recommend(frame).startswith("**Ship `good`**: 5.00x the base throughput (1.25x the best peer, "
                                       "openvino_int8)")


def test_a_missing_or_skipped_peer_is_said_not_invented():
    frame, _ = variant_table(METRICS, _summary(None, None), _similarity(), {}, deletion=_deletions())
    assert frame["x_best_peer"].isna().all()
    assert "best peer" not in recommend(frame)
    assert "No peer is in this benchmark" in peer_paragraph(_summary(None, None), frame)
    skipped = {**PEER_ROW, "status": "skipped: no .venv-interop", "throughput_samples_per_s": None}
    ov_skipped = {**OV_ROW, "status": "skipped: no .venv-openvino", "throughput_samples_per_s": None}
    text = peer_paragraph(_summary(skipped, ov_skipped), frame)
    assert "was not measured (skipped: no .venv-interop)" in text and "oversells" in text
    # one peer measured: it is the best, and the other's absence is said
    one = peer_paragraph(_summary(skipped, OV_ROW), frame)
    assert "The best peer here is **`openvino_int8`**" in one and "`optimum_int8` was not measured" in one
    assert "No peer is in this benchmark" in peer_paragraph(None, frame)


def test_the_latency_pick_applies_the_same_gates_to_batch_one_p50():
    metrics = _latencies(fast_drifted=2.0, fast_but_wrong=1.0, slow_ok=3.0, good=5.0, base=12.0)
    similarity = _similarity(fast_drifted=_lime("drifted"))
    frame, _ = variant_table(metrics, _summary(), similarity, {}, deletion=_deletions())
    text = latency_pick(frame)
    # the quickest (fast_but_wrong, -5 pt) and the drifted one are passed over; slow_ok is quickest of the rest
    assert text.startswith("For one request at a time (latency), pick `slow_ok`: batch-1 p50 3.00 ms at 1 thread(s)")
    assert "4.00x faster than base's" in text
    # planted negative: with fast_drifted equivalent it wins latency
    frame, _ = variant_table(metrics, _summary(), _similarity(), {}, deletion=_deletions())
    assert "pick `fast_drifted`" in latency_pick(frame)
    # nothing passes: keep base
    frame, _ = variant_table(metrics, _summary(), {k: _lime("drifted") for k in _similarity()}, {},
                             deletion=_deletions())
    assert "keep `base`" in latency_pick(frame)


@needs_both_peer_venvs
def test_the_report_reads_a_real_benchmark_with_the_peers(tiny_bert, toy_data, tmp_path):
    """The benchmark's own summary.csv and records (tiny model, both peers built and measured) into the report."""
    import json

    from common.report.build import build_report

    out = _bench(tmp_path, tiny_bert, toy_data, "--peer", f"optimum={PEER_PYTHON}", "--peer",
                 f"openvino={OV_PEER_PYTHON}", "--peer-cache-dir", str(tmp_path / "peers"))
    peers = [json.loads((out / f"{name}.bench.json").read_text()) for name in ("optimum_int8", "openvino_int8")]
    peer = max(peers, key=lambda p: p["throughput_samples_per_s"])
    report = tmp_path / "reports" / "report.md"
    text = build_report(tmp_path, tmp_path / "models", report, "SEED=42", metrics=[out / "base.bench.json"])
    pick = text.split("## Which variant should I ship?")[1].split("## Every variant")[0]
    assert f"({peer['peer_config']})" in pick.replace("`", "")
    assert f"{peer['throughput_samples_per_s']:.1f} samples/s at batch 32" in pick
    assert "No compressed variant stays within 1 pt" in pick  # base alone: nothing to pick, nothing invented
    row = next(line for line in text.splitlines() if line.startswith("| base "))
    base = json.loads((out / "base.bench.json").read_text())
    assert f"{base['throughput_samples_per_s'] / peer['throughput_samples_per_s']:.3f}" in row  # x peer
