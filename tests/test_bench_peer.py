"""The benchmark's peers (Optimum's and OpenVINO's int8: x_<peer>, x_best_peer), their timing protocol and the
latency thread setting. Speed is never asserted."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from common.bench.peers.optimum import PEER_NAME, cached_build_is_current, optimum_config_for
from common.bench.peers import openvino as ov_peer
from common.bench.summary import summary_row, best_variant, picks
from common.bench.timing import best_latency, logits_in_order, pad_batches, thread_settings
from common.schema import BEST_PEER, LATENCY_THREADS, PEER_CONFIG, PEER_NAMES, SUMMARY_COLUMNS, THROUGHPUT_VS_PEER
from tests.conftest import REPO, toy_texts

PEER_PYTHON = REPO / ".venv-interop" / "bin" / "python"
OV_PEER_PYTHON = REPO / ".venv-openvino" / "bin" / "python"
OV_PEER_NAME = ov_peer.PEER_NAME
needs_peer_venv = pytest.mark.skipif(not PEER_PYTHON.is_file(),
                                     reason="Optimum's venv is missing (make .venv-interop/.installed)")
needs_both_peer_venvs = pytest.mark.skipif(not (PEER_PYTHON.is_file() and OV_PEER_PYTHON.is_file()),
                                           reason="a peer venv is missing (make .venv-interop/.installed "
                                                  ".venv-openvino/.installed)")


def _result(name: str, accuracy: float, throughput: float, p50: float, **extra) -> dict:
    return {"variant": name, "status": "ok", "kind": "onnx-int8", "dtype": "fp32", "accuracy": accuracy,
            "throughput_samples_per_s": throughput, "latency_ms_p50": p50, "latency_ms_p95": 2 * p50,
            LATENCY_THREADS: 1, "size_mb": 10.0, **extra}


def _planted_rows(openvino_speed: float = 200.0):
    base = _result("base", 0.90, 100.0, 10.0)
    optimum = _result(PEER_NAME, 0.895, 160.0, 4.5, peer=True, kind="optimum-int8 (peer)",
                      peer_config="AutoQuantizationConfig.avx2(is_static=False, per_channel=True)")
    openvino = _result(OV_PEER_NAME, 0.894, openvino_speed, 4.0, peer=True, kind="openvino-int8 (peer)",
                       peer_config="optimum-intel OVQuantizer + NNCF int8 (300 training rows; precision f32)")
    ours = [base, _result("pruned30_onnx_int8", 0.893, 300.0, 5.0),  # -0.7 pt: eligible
            _result("pruned60_onnx_int8", 0.85, 900.0, 1.0),        # -5 pt: fastest, never picked
            _result("base_onnx_int8", 0.90, 250.0, 2.0)]
    peers = [optimum, openvino]
    return [summary_row(r, base, peers) for r in ours + peers]


def test_the_peer_modules_and_the_summary_columns_name_the_same_peers():
    from common.bench.peers import PEERS
    from common.bench.peers.registry import peer_modules

    assert tuple(m.PEER_NAME for m in peer_modules()) == PEER_NAMES and PEERS == ("optimum", "openvino")
    assert {f"x_{name}" for name in PEER_NAMES} <= set(SUMMARY_COLUMNS) and BEST_PEER in SUMMARY_COLUMNS


def test_ratios_are_computed_from_the_rows_against_each_peer_and_the_best():
    rows = {r["variant"]: r for r in _planted_rows()}
    # the best peer is the faster one (OpenVINO's, 200 samples/s); each peer keeps its own column
    assert rows["pruned30_onnx_int8"][THROUGHPUT_VS_PEER] == 1.5 and rows["base"][THROUGHPUT_VS_PEER] == 0.5
    assert rows["pruned30_onnx_int8"][f"x_{PEER_NAME}"] == 300.0 / 160.0
    assert rows["pruned30_onnx_int8"][f"x_{OV_PEER_NAME}"] == 1.5
    assert all(r[BEST_PEER] == OV_PEER_NAME for r in rows.values())
    assert rows["pruned30_onnx_int8"]["throughput_ratio"] == 3.0
    assert rows[OV_PEER_NAME][THROUGHPUT_VS_PEER] == 1.0 and rows[PEER_NAME][THROUGHPUT_VS_PEER] == 0.8
    assert rows[PEER_NAME][PEER_CONFIG].startswith("AutoQuant") and rows[OV_PEER_NAME][PEER_CONFIG]
    assert not rows["base"].get(PEER_CONFIG)  # only the peers are marked as peers
    # the best moves with the numbers: a slower OpenVINO makes Optimum's int8 the best peer
    slow = {r["variant"]: r for r in _planted_rows(openvino_speed=120.0)}
    assert slow["base"][BEST_PEER] == PEER_NAME and slow["pruned30_onnx_int8"][THROUGHPUT_VS_PEER] == 300.0 / 160.0
    # a peer that was not measured is in no ratio; without any peer there is no ratio (never a made-up one)
    base = _result("base", 0.9, 100.0, 10.0)
    failed = {"variant": OV_PEER_NAME, "status": "failed: the OpenVINO build failed (x)", "peer": True}
    one = summary_row(_result("x", 0.9, 300.0, 1.0), base, [_result(PEER_NAME, 0.9, 150.0, 2.0, peer=True), failed])
    assert one[THROUGHPUT_VS_PEER] == 2.0 and one.get(f"x_{OV_PEER_NAME}") is None and one[BEST_PEER] == PEER_NAME
    alone = summary_row(base, base, None)
    assert alone.get(THROUGHPUT_VS_PEER) is None and alone["throughput_ratio"] == 1.0 and alone.get(BEST_PEER) is None


def test_picks_stay_within_one_point_and_never_pick_the_peer():
    rows = _planted_rows()
    throughput, latency = picks(rows, batch_size=32)
    # the fastest row (-5 pt) and the peer (faster p50 than most) are planted to tempt a wrong pick
    assert throughput.startswith("For throughput, pick `pruned30_onnx_int8`")
    assert f"1.50x the best peer's ({OV_PEER_NAME}) 200.0" in throughput
    assert latency.startswith("For latency, pick `base_onnx_int8`") and "2.00x faster than the best peer's 4.00 ms" in latency
    assert best_variant(rows, "base")["variant"] == "pruned30_onnx_int8"
    only_far = [r for r in rows if r["variant"] in ("pruned60_onnx_int8", PEER_NAME, OV_PEER_NAME)]
    assert picks(only_far, 32) == ["No variant is within 1 pt of the baseline's accuracy, so none is picked."]


def test_best_thread_latency_selection():
    by_threads = {"1": {"latency_ms_p50": 5.0, "latency_ms_p95": 6.0},
                  "2": {"latency_ms_p50": 3.0, "latency_ms_p95": 9.0},
                  "4": {"latency_ms_p50": 3.5, "latency_ms_p95": 4.0}}
    best = best_latency(by_threads)
    assert best[LATENCY_THREADS] == 2 and best["latency_ms_p95"] == 9.0  # p95 comes with the chosen setting
    by_threads["1"]["latency_ms_p50"] = 3.0  # a tie: the fewer threads win
    assert best_latency(by_threads)[LATENCY_THREADS] == 1
    with pytest.raises(ValueError):
        best_latency({})
    assert thread_settings(1) == [1] and thread_settings(2) == [1, 2]
    assert thread_settings(6) == [1, 2, 4, 6] and thread_settings(8) == [1, 2, 4, 8]


def test_optimum_config_follows_the_cpu_flags():
    assert optimum_config_for("flags\t: fpu sse avx2 avx512f avx512_vnni\n", "x86_64") == "avx512_vnni"
    assert optimum_config_for("flags\t: fpu avx2 avx512f\n", "x86_64") == "avx512"
    assert optimum_config_for("flags\t: fpu sse4_2 avx2\n", "x86_64") == "avx2"
    assert optimum_config_for("Features\t: fp asimd\n", "aarch64") == "arm64"
    assert optimum_config_for("flags\t: fpu sse4_2\n", "x86_64") is None


def test_cached_build_is_reused_only_for_the_same_base(tmp_path):
    facts = {"base_sha256": "a" * 64, "builder_sha256": "b" * 64, "config": "avx2"}
    cache = tmp_path / "peer"
    cache.mkdir()
    assert not cached_build_is_current(cache, facts)  # nothing built yet
    (cache / "peer.json").write_text(json.dumps({**facts, "per_channel": True}))
    (cache / "model_quantized.onnx").write_bytes(b"graph")
    assert cached_build_is_current(cache, facts)
    assert not cached_build_is_current(cache, {**facts, "base_sha256": "c" * 64})  # the base model changed
    assert not cached_build_is_current(cache, {**facts, "config": "avx512_vnni"})


def test_both_sides_pad_and_batch_like_the_classifier(tiny_bert):
    """The protocol's batches give the logits the classifier's own batching gives (same padding, same order)."""
    from common.models.classifier import load_classifier

    clf = load_classifier(tiny_bert, device="cpu")
    texts = toy_texts(37)[0] + ["one", "a much longer text than the others with many words in it"]
    ids = clf.encode(texts)
    ours = logits_in_order(clf._logits_batch, ids, 8, clf.tokenizer.pad_token_id)
    np.testing.assert_allclose(ours, clf.predict_logits(texts, batch_size=8), atol=1e-5)
    batches, order = pad_batches(ids, 8, 0)
    assert [len(ids[i]) for i in order] == sorted(len(x) for x in ids)  # length-sorted
    assert all(b[0].shape[1] == b[1].sum(axis=1).max() for b in batches)  # each padded to its own longest


def _bench(tmp_path, model, data, *extra) -> Path:
    from inference.run_onnx_benchmark import main

    out = tmp_path / "metrics"
    assert main(["--output-dir", str(out), "--record-suffix", ".bench.json", "--data", str(data), "--max-len", "64",
                 "--device", "cpu", "--threads", "1", "--latency-threads", "1", "2", "--latency-requests", "3",
                 "--throughput-texts", "16", "--test-samples", "40", "--agreement-rows", "8",
                 "--variant", f"base={model}", *extra]) == 0
    return out


def test_without_the_peer_summary_says_how_to_get_it(tiny_bert, toy_data, tmp_path):
    out = _bench(tmp_path, tiny_bert, toy_data)
    md = (out / "summary.md").read_text()
    assert f"the peer `{PEER_NAME}` was not measured (no --peer optimum=PYTHON" in md
    assert "make .venv-interop/.installed" in md and "make .venv-openvino/.installed" in md
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["variant"] for r in rows] == ["base"] and rows[0][THROUGHPUT_VS_PEER] == ""
    assert tuple(rows[0]) == SUMMARY_COLUMNS and rows[0][LATENCY_THREADS] in ("1", "2")
    for name in PEER_NAMES:  # every peer has a record saying why it has no numbers
        record = json.loads((out / f"{name}.bench.json").read_text())
        assert record["status"].startswith("skipped") and "accuracy" not in record
    base = json.loads((out / "base.bench.json").read_text())
    assert set(base["latency_by_threads"]) == {"1", "2"}
    assert base["latency_ms_p50"] == min(b["latency_ms_p50"] for b in base["latency_by_threads"].values())
    assert md.rstrip().splitlines()[-1].startswith("For throughput, pick `base`")


@pytest.mark.parametrize("peer, says", [("openvino=/no-venv/python", "make .venv-openvino/.installed"),
                                         ("tflite=/usr/bin/python3", "unknown peer"),
                                         ("optimum", "must be PEER=PYTHON")])
def test_a_bad_peer_flag_is_one_sentence(tiny_bert, toy_data, tmp_path, capsys, peer, says):
    from inference.run_onnx_benchmark import main

    with pytest.raises(SystemExit) as exc:
        main(["--output-dir", str(tmp_path / "m"), "--data", str(toy_data), "--variant", f"base={tiny_bert}",
              "--peer", peer])
    assert exc.value.code == 2 and not (tmp_path / "m" / "summary.csv").exists()
    assert says in capsys.readouterr().err


@needs_both_peer_venvs
def test_both_peers_built_as_their_users_build_them_and_measured_with_the_same_protocol(tiny_bert, toy_data, tmp_path):
    caches = tmp_path / "peers"
    flags = ("--peer", f"optimum={PEER_PYTHON}", "--peer", f"openvino={OV_PEER_PYTHON}", "--peer-cache-dir", str(caches))
    out = _bench(tmp_path, tiny_bert, toy_data, *flags)
    cache = caches / PEER_NAME
    rows = {r["variant"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert list(rows) == ["base", PEER_NAME, OV_PEER_NAME]
    peer = json.loads((out / f"{PEER_NAME}.bench.json").read_text())
    base = json.loads((out / "base.bench.json").read_text())
    assert peer["status"] == "ok" and peer["n_test"] == base["n_test"] == 40
    assert peer["peer_build"]["config"] == optimum_config_for(Path("/proc/cpuinfo").read_text(), "x86_64")
    assert rows[PEER_NAME][PEER_CONFIG].startswith(f"AutoQuantizationConfig.{peer['peer_build']['config']}(")
    assert peer["peer_build"]["base_sha256"] == base["model_sha256"]  # built from the baseline's folder
    # same protocol: the same rows at the same batch size and threads, latency at the same thread counts
    for key in ("throughput_n_texts", "throughput_batch_size", "throughput_repeats", "threads", "latency_requests"):
        assert peer[key] == base[key], key
    assert set(peer["latency_by_threads"]) == set(base["latency_by_threads"]) == {"1", "2"}
    # each ratio is the rows' numbers divided; x_best_peer is against the faster peer of the run
    ov = json.loads((out / f"{OV_PEER_NAME}.bench.json").read_text())
    assert ov["status"] == "ok" and ov["n_test"] == 40 and ov["peer_build"]["base_sha256"] == base["model_sha256"]
    from common.data import load_split

    # calibrated on training rows only: the seeded subset our side chose (all of the toy split's, fewer than 300)
    train = load_split(str(toy_data), "train", ov_peer.PEER_CALIB_ROWS, 42)
    assert ov["peer_build"]["calibration_rows"] == len(train) <= ov_peer.PEER_CALIB_ROWS
    assert set(ov["latency_by_threads"]) == {"1", "2"} and ov["threads"] == base["threads"]
    assert ov["batch_agreement_n"] == 8 and abs(ov["accuracy"] - base["accuracy"]) <= 0.15
    assert float(rows["base"][f"x_{PEER_NAME}"]) == pytest.approx(
        base["throughput_samples_per_s"] / peer["throughput_samples_per_s"], rel=1e-9)
    assert float(rows["base"][f"x_{OV_PEER_NAME}"]) == pytest.approx(
        base["throughput_samples_per_s"] / ov["throughput_samples_per_s"], rel=1e-9)
    best = max((peer, ov), key=lambda r: r["throughput_samples_per_s"])
    assert rows["base"][BEST_PEER] == best["variant"]
    assert float(rows["base"][THROUGHPUT_VS_PEER]) == pytest.approx(
        base["throughput_samples_per_s"] / best["throughput_samples_per_s"], rel=1e-9)
    assert float(rows[best["variant"]][THROUGHPUT_VS_PEER]) == 1.0
    # the peer's accuracy comes from its own logits on the same 40 rows: int8 of the same model agrees closely
    assert sum(map(sum, peer["confusion_matrix"])) == 40 and abs(peer["accuracy"] - base["accuracy"]) <= 0.1
    # batch agreement on the same 8 rows as ours (a share of 8, its flips counted)
    assert peer["batch_agreement_n"] == base["batch_agreement_n"] == 8 and peer["batch_agreement_rows"] == 8
    assert peer["batch_agreement"] == 1 - peer["batch_agreement_flips"] / 8 and rows[PEER_NAME]["batch_agreement"]
    md = (out / "summary.md").read_text()
    assert f"**{PEER_NAME}** (peer)" in md and f"**{OV_PEER_NAME}** (peer)" in md and "not measured" not in md
    assert f"here `{best['variant']}`" in md and "the best peer's" in md
    built = [(caches / name / "peer.json").stat().st_mtime_ns for name in PEER_NAMES]
    _bench(tmp_path, tiny_bert, toy_data, *flags)
    # same base folder (and calibration rows): both builds are reused
    assert [(caches / name / "peer.json").stat().st_mtime_ns for name in PEER_NAMES] == built


def test_batch_agreement_counts_flips_caused_by_batch_mates():
    """The peer's agreement: a model whose scores depend on the batch (as dynamic int8's activation scales do)
    flips rows; a batch-invariant one agrees on all of them; the rows are the ones our variants use."""
    from common.bench.timing import agreement_indices, batch_vs_single
    from common.bench.worker import agreement_texts

    rng = np.random.default_rng(0)
    ids = [list(rng.integers(5, 50, size=rng.integers(3, 12))) for _ in range(40)]

    def invariant(input_ids, attention, _types):
        total = (input_ids * attention).sum(axis=1, keepdims=True).astype(np.float32)
        return np.concatenate([total % 7, total % 5], axis=1)

    def batch_dependent(input_ids, attention, types):  # planted: the row's score minus its batch's mean
        logits = invariant(input_ids, attention, types)
        return logits - logits.mean(axis=0, keepdims=True) * np.array([[1.0, -1.0]], dtype=np.float32)

    same = batch_vs_single(invariant, ids, 8, 0)
    assert same["batch_agreement"] == 1.0 and same["batch_agreement_flips"] == 0 and same["batch_agreement_n"] == 40
    flipped = batch_vs_single(batch_dependent, ids, 8, 0)
    assert flipped["batch_agreement_flips"] > 0 and flipped["batch_agreement"] < 1.0
    texts = [f"t{i}" for i in range(40)]
    chosen = agreement_indices(40, 10, 42)
    assert chosen == sorted(chosen) and len(set(chosen)) == 10 and chosen == agreement_indices(40, 10, 42)
    assert agreement_texts(texts, 10, 42) == [texts[i] for i in chosen]
    assert agreement_indices(40, 0, 42) == list(range(40))


def test_half_precision_is_skipped_only_on_a_cpu_without_native_support():
    from common.bench.cpu import half_skip_reason

    avx2 = "flags\t: fpu sse2 avx2 fma\n"
    sapphire = "flags\t: avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16\n"
    assert half_skip_reason("bf16", "cpu", avx2).startswith("skipped: this CPU has no native bf16")
    assert half_skip_reason("fp16", "cpu", avx2).startswith("skipped: this CPU has no native fp16")
    assert half_skip_reason("bf16", "cpu", sapphire) is None and half_skip_reason("fp16", "cpu", sapphire) is None
    # bf16 alone (Cooper Lake): fp16 is still emulated.
    cooper = "flags\t: avx2 avx512f avx512_bf16\n"
    assert half_skip_reason("bf16", "cpu", cooper) is None and half_skip_reason("fp16", "cpu", cooper)
    # A GPU, an fp32 variant, or a cpuinfo without flags: measure.
    assert half_skip_reason("fp16", "cuda", avx2) is None and half_skip_reason("fp32", "cpu", avx2) is None
    assert half_skip_reason("bf16", "cpu", "") is None
