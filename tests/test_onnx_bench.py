"""ONNX export (parity, dynamic shapes, int8, optimizer), the .onnx loader, the monitor and the benchmark."""
from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from common.models.classifier import load_classifier
from tests.conftest import toy_texts, write_vocab

EXPORT = "export_onnx.export_onnx"


def make_long_bert(folder: Path, seed: int = 0) -> Path:
    """Tiny BERT with 128 positions (the shared fixture has 64), so length-128 inputs are valid."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from common.models.modeling import label_config

    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(folder)
    tokenizer = BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    config = BertConfig(vocab_size=len(vocab.read_text().split()), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=37, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **label_config())
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    # Spread the logits so argmax is decided by the input, not by near-ties of a random head.
    with torch.no_grad():
        model.classifier.weight.mul_(20.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model, its fp32 ONNX export and its int8 export, built once through main([...])."""
    from export_onnx.export_onnx import main
    import pandas as pd

    root = tmp_path_factory.mktemp("onnx")
    data = root / "data"
    data.mkdir()
    for split, n, seed in (("train", 40, 1), ("test", 80, 2)):
        texts, labels = toy_texts(n, seed)
        pd.DataFrame({"text": texts, "label": labels}).to_csv(data / f"{split}.csv", index=False)
    model = make_long_bert(root / "tiny_bert")
    onnx_path = root / "models" / "base.onnx"
    assert main(["--model", str(model), "--output", str(onnx_path), "--data", str(data), "--max-len", "128"]) == 0
    int8_path = root / "models" / "base_int8.onnx"
    assert main(["--model", str(onnx_path), "--int8", "--output", str(int8_path), "--data", str(data),
                 "--max-len", "128"]) == 0
    return {"root": root, "data": data, "model": model, "onnx": onnx_path, "int8": int8_path}


def _torch_logits(model_dir: Path, input_ids, attention_mask):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(attention_mask),
                     token_type_ids=torch.zeros_like(torch.from_numpy(input_ids))).logits.numpy()


# ----------------------------------------------------------------------------------------------- export
def test_export_writes_parity_checked_graph_with_manifest_and_sidecars(exported):
    from common.manifest import sha256_path

    manifest = json.loads((exported["onnx"].parent / "base.manifest.json").read_text())
    fp32 = manifest["parity"]["fp32"]
    assert fp32["passed"] and fp32["max_abs_logit_diff"] <= 1e-4 and fp32["n_texts"] >= 40
    assert set(fp32["by_batching"]) == {"batch32", "batch7", "batch1"}
    assert manifest["opset"] >= 17 and manifest["export"]["exporter"].startswith("torchscript")
    assert manifest["source_sha256"] == sha256_path(exported["model"])
    assert manifest["sha256"] == sha256_path(exported["onnx"])
    assert manifest["optimizer"] == {"requested": False, "outcome": "not requested"}
    graph = onnx.load(str(exported["onnx"]))
    assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in graph.graph.output] == ["logits"]
    # Optimum's ORTModelForSequenceClassification needs config.json + tokenizer in the folder.
    folder = exported["onnx"].parent
    assert json.loads((folder / "config.json").read_text())["id2label"]["3"] == "Sci/Tech"
    assert (folder / "tokenizer.json").is_file()


def test_inference_session_dynamic_batch_and_sequence(exported):
    import onnxruntime as ort

    session = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch, length in ((1, 5), (7, 5), (1, 128), (7, 128)):
        input_ids = rng.integers(5, 40, size=(batch, length)).astype(np.int64)
        attention_mask = np.ones_like(input_ids)
        attention_mask[-1, length // 2:] = 0  # a padded row
        feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": np.zeros_like(input_ids)}
        (logits,) = session.run(["logits"], feed)
        assert logits.shape == (batch, 4)
        np.testing.assert_allclose(logits, _torch_logits(exported["model"], input_ids, attention_mask), atol=1e-4)


def test_load_classifier_onnx_matches_torch(exported):
    texts = toy_texts(20, 5)[0] + ["market " * 200, ""]
    torch_clf = load_classifier(exported["model"], device="cpu")
    onnx_clf = load_classifier(exported["onnx"], device="cpu", threads=1)
    assert onnx_clf.kind == "onnx" and onnx_clf.info["format"] == "onnx"
    assert onnx_clf.session.get_session_options().intra_op_num_threads == 1
    np.testing.assert_allclose(onnx_clf.predict_proba(texts), torch_clf.predict_proba(texts), atol=1e-5)
    torch_params = torch_clf.parameter_count()["total"]
    # Counted from initializers: the exporter stores identical tensors once (a random model's zero
    # biases and unit LayerNorm weights), so the count may be a little lower, never higher.
    assert 0.95 * torch_params <= onnx_clf.parameter_count()["total"] <= torch_params


def test_int8_export_records_agreement(exported):
    manifest = json.loads((exported["int8"].parent / "base_int8.manifest.json").read_text())
    int8 = manifest["parity"]["int8"]
    assert int8["passed"] and int8["argmax_agreement"] >= 0.99
    assert int8["n_texts"] == 80 and "fewer than 500" in int8["note"]
    assert manifest["quantization"]["method"].endswith("quantize_dynamic")
    assert manifest["source_parity_fp32"]["passed"]
    clf = load_classifier(exported["int8"], device="cpu")
    assert clf.kind == "onnx-int8"
    assert exported["int8"].stat().st_size < exported["onnx"].stat().st_size
    texts = toy_texts(80, 2)[0]
    fp32 = load_classifier(exported["onnx"], device="cpu").predict(texts)
    assert (clf.predict(texts) == fp32).mean() == pytest.approx(int8["argmax_agreement"])


def test_parity_check_catches_corrupted_weight(exported, tmp_path):
    from common.export.onnx_export import ParityError, check_fp32_parity
    from common.models.onnx_graph import OnnxClassifier, load_onnx_tokenizer

    model = onnx.load(str(exported["onnx"]))
    target = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)) if "embeddings" not in t.name else 0)
    weights = numpy_helper.to_array(target).copy()
    weights.flat[0] += 0.5
    target.CopyFrom(numpy_helper.from_array(weights, target.name))
    corrupted = tmp_path / "corrupted.onnx"
    onnx.save(model, str(corrupted))
    tokenizer = load_onnx_tokenizer(exported["onnx"])
    reference = load_classifier(exported["model"], device="cpu")
    with pytest.raises(ParityError, match="max"):
        check_fp32_parity(reference, OnnxClassifier(corrupted, tokenizer), toy_texts(30)[0])


def test_failed_parity_writes_nothing(exported, tmp_path, monkeypatch):
    """End to end: an exporter that corrupts a weight -> exit 2, no .onnx, no manifest."""
    import common.export.onnx_export as om
    from export_onnx.export_onnx import main

    real_export = om.torch_to_onnx

    def corrupting_export(model, tokenizer, output, opset=om.OPSET):
        info = real_export(model, tokenizer, output, opset)
        graph = onnx.load(str(output))
        target = next(t for t in graph.graph.initializer if "classifier" in t.name and len(t.dims) == 2)
        weights = numpy_helper.to_array(target) * 3.0
        target.CopyFrom(numpy_helper.from_array(weights, target.name))
        onnx.save(graph, str(output))
        return info

    monkeypatch.setattr(om, "torch_to_onnx", corrupting_export)
    output = tmp_path / "out" / "bad.onnx"
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(exported["model"]), "--output", str(output), "--data", str(exported["data"])])
    assert exit_info.value.code == 2
    assert not output.exists() and not (output.parent / "bad.manifest.json").exists()
    assert not any(p.name.startswith(".bad") for p in output.parent.iterdir())


def test_optimize_applied_or_falls_back_cleanly(exported, tmp_path, monkeypatch):
    import common.export.onnx_export as om
    from export_onnx.export_onnx import main

    out = tmp_path / "opt" / "m_int8.onnx"
    assert main(["--model", str(exported["onnx"]), "--int8", "--optimize", "--output", str(out),
                 "--data", str(exported["data"])]) == 0
    optimizer = json.loads((out.parent / "m_int8.manifest.json").read_text())["optimizer"]
    assert optimizer["outcome"].startswith("applied") and optimizer["parity"]["passed"]
    assert optimizer["fused_operators"].get("SkipLayerNormalization", 0) > 0

    def refuse(source, output):
        raise RuntimeError("fusion refused a pruned shape")

    monkeypatch.setattr(om, "optimize_graph", refuse)
    out2 = tmp_path / "opt" / "m2.onnx"
    assert main(["--model", str(exported["model"]), "--optimize", "--output", str(out2),
                 "--data", str(exported["data"])]) == 0
    optimizer = json.loads((out2.parent / "m2.manifest.json").read_text())["optimizer"]
    assert optimizer["outcome"].startswith("fell back") and "pruned shape" in optimizer["error"]
    assert load_classifier(out2, device="cpu").predict_proba(["goal match"]).shape == (1, 4)


def test_export_user_errors(exported, tmp_path):
    from export_onnx.export_onnx import main

    for argv in (["--model", str(tmp_path / "missing"), "--output", str(tmp_path / "x.onnx")],
                 ["--model", str(exported["onnx"]), "--output", str(tmp_path / "x.onnx")],
                 ["--model", str(exported["model"]), "--output", str(tmp_path / "x.txt")]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert not (tmp_path / "x.onnx").exists()


# ----------------------------------------------------------------------------------------------- monitor
def test_monitor_context_manager_writes_rows_with_expected_columns(tmp_path):
    from analysis.monitoring import COLUMNS, ResourceMonitor

    output = tmp_path / "mon.csv"
    with ResourceMonitor(output, interval=0.05) as monitor:
        block = np.ones((4_000_000,))  # ~30 MB the sampler should see
        deadline = __import__("time").monotonic() + 0.4
        while __import__("time").monotonic() < deadline:
            block = block * 1.0
    rows = list(csv.DictReader(output.open()))
    assert tuple(rows[0].keys()) == COLUMNS == ("timestamp", "elapsed_s", "cpu_percent", "rss_mb", "gpu_mem_mb",
                                                "gpu_util_percent")
    assert len(rows) >= 4
    assert all(float(r["rss_mb"]) > 10 for r in rows)
    timestamps = [float(r["timestamp"]) for r in rows]
    assert timestamps == sorted(timestamps)
    summary = monitor.summary()
    assert summary["samples"] == len(rows) and summary["peak_rss_mb"] == max(float(r["rss_mb"]) for r in rows)


def test_monitor_cli_wraps_a_command_and_passes_its_exit_code(tmp_path):
    from analysis.monitoring.monitor import main

    output, summary = tmp_path / "cmd.csv", tmp_path / "cmd.json"
    code = main(["--output", str(output), "--interval", "0.05", "--summary", str(summary), "--",
                 sys.executable, "-c", "import time; x = bytearray(50_000_000); time.sleep(0.5); raise SystemExit(3)"])
    assert code == 3
    rows = list(csv.DictReader(output.open()))
    assert len(rows) >= 3 and max(float(r["rss_mb"]) for r in rows) > 40  # the child's 50 MB buffer
    data = json.loads(summary.read_text())
    assert data["exit_code"] == 3 and data["samples"] == len(rows)


def test_no_gpu_is_reported_cleanly(tmp_path, monkeypatch):
    """NVML missing or failing -> 'no GPU', empty GPU columns, no exception."""
    import pynvml

    from common.bench.monitoring import GpuProbe, ResourceMonitor

    def no_library():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", no_library)
    probe = GpuProbe()
    assert not probe.available and probe.status.startswith("no GPU")
    assert probe.read() == (None, None)
    with ResourceMonitor(tmp_path / "m.csv", interval=0.05, gpu=probe) as monitor:
        __import__("time").sleep(0.15)
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert rows and all(r["gpu_mem_mb"] == "" and r["gpu_util_percent"] == "" for r in rows)
    summary = monitor.summary()
    assert summary["gpu_mem_peak_mb"] is None and summary["gpu_status"].startswith("no GPU")

    monkeypatch.setitem(sys.modules, "pynvml", None)  # package not installed at all
    assert GpuProbe().status.startswith("no GPU")


# ----------------------------------------------------------------------------------------------- benchmark
def test_benchmark_end_to_end(exported, tmp_path, monkeypatch):
    import common.bench.run
    from common.bench.run import SUMMARY_COLUMNS, reusable_accuracy
    from common.manifest import sha256_path
    from inference.run_onnx_benchmark import main

    broken = tmp_path / "broken" / "broken.onnx"  # beside a valid tokenizer: only the graph is bad
    broken.parent.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken.parent / name).write_bytes((exported["onnx"].parent / name).read_bytes())
    broken.write_text("not a graph")
    out = tmp_path / "metrics"
    argv = ["--output-dir", str(out), "--data", str(exported["data"]), "--max-len", "128", "--device", "cpu",
            "--threads", "1", "--baseline", "base", "--latency-requests", "5", "--throughput-texts", "40",
            "--monitor-interval", "0.1",
            "--variant", f"base={exported['model']}", "--variant", f"base_onnx={exported['onnx']}",
            "--variant", f"base_onnx_int8={exported['int8']}", "--variant", f"broken_onnx={broken}",
            "--variant", f"base_bf16={exported['model']}"]
    # A CPU without native bf16: the bf16 variant is skipped with the reason, not timed for minutes.
    monkeypatch.setattr(common.bench.run, "read_cpuinfo", lambda: "flags\t: fpu sse2 avx2 fma\n")
    assert main(argv) == 0
    rows = {r["variant"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert list(rows) == ["base", "base_onnx", "base_onnx_int8", "broken_onnx", "base_bf16"]
    assert rows["base_bf16"]["status"].startswith("skipped: this CPU has no native bf16")
    assert "accuracy" not in json.loads((out / "base_bf16.json").read_text())
    bench_manifest = json.loads((out / "summary.manifest.json").read_text())
    assert bench_manifest["skipped"] == ["base_bf16"] and bench_manifest["failed"] == ["broken_onnx"]
    assert tuple(next(iter(rows.values())).keys()) == SUMMARY_COLUMNS
    assert float(rows["base"]["throughput_ratio"]) == 1.0 and float(rows["base"]["accuracy_delta_pt"]) == 0.0
    assert rows["broken_onnx"]["status"].startswith("failed") and "not a loadable ONNX graph" in rows["broken_onnx"]["status"]
    # fp32 ONNX computes the same function: identical accuracy, measured by the same code.
    assert rows["base_onnx"]["accuracy"] == rows["base"]["accuracy"]
    assert rows["base_onnx"]["kind"] == "onnx" and rows["base_onnx_int8"]["kind"] == "onnx-int8"
    for name in ("base", "base_onnx", "base_onnx_int8"):
        metrics = json.loads((out / f"{name}.json").read_text())
        for key in ("accuracy", "macro_f1", "confusion_matrix", "latency_ms_p50", "latency_ms_p99",
                    "throughput_samples_per_s", "size_mb", "parameters", "peak_rss_mb", "threads", "device"):
            assert key in metrics, key
        assert metrics["n_test"] == 80 and metrics["threads"] == 1 and metrics["monitor"]["samples"] >= 1
        assert metrics["gpu_status"] and metrics["model_sha256"] == sha256_path(metrics["model"])
        assert (out / "monitor" / f"{name}.csv").is_file()
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    # The baseline is timed again after the other variants and the faster run is kept (ratios never inflated).
    base = json.loads((out / "base.json").read_text())
    runs = base["baseline_speed_runs"]
    assert len(runs["throughput_samples_per_s"]) == 2 and runs["end_status"] == "ok"
    assert base["throughput_samples_per_s"] == max(runs["throughput_samples_per_s"])
    assert base["accuracy_source"].startswith("measured")
    md = (out / "summary.md").read_text()
    assert "measured at the start and again at the end of the run" in md
    assert "Skipped variants:\n- `base_bf16`: this CPU has no native bf16" in md
    assert "| base_onnx_int8" in md and "broken_onnx" in md and "torch 2.13" in md
    # A second run may reuse accuracy for an identical artefact, never for a changed one.
    settings = {"data": str(exported["data"]), "test_samples": 0, "max_len": 128, "seed": 42, "dtype": "fp32",
                "test_sha256": json.loads((out / "base.json").read_text())["test_sha256"]}
    reused = reusable_accuracy(out / "base_onnx.json", sha256_path(exported["onnx"]), settings)
    assert reused is not None and reused["accuracy"] == float(rows["base_onnx"]["accuracy"])
    assert reusable_accuracy(out / "base_onnx.json", "0" * 64, settings) is None
    assert reusable_accuracy(out / "base_onnx.json", sha256_path(exported["onnx"]), {**settings, "max_len": 64}) is None


def test_benchmark_user_errors(exported, tmp_path):
    from inference.run_onnx_benchmark import main

    for argv in (["--variant", f"base={tmp_path / 'missing'}"],
                 ["--variant", f"x={exported['onnx']}", "--baseline", "base"],
                 ["--variant", "no-equals-sign"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["--output-dir", str(tmp_path / "m"), "--data", str(exported["data"])] + argv)
        assert exit_info.value.code == 2
    assert not (tmp_path / "m" / "summary.csv").exists()


def test_shrunk_and_masked_models_export_with_parity(exported, tmp_path):
    """Per-layer head counts differ after shrinking; the export and the optimizer must cope."""
    from common.models.modeling import load_model_folder, save_model_folder
    from common.models.pruning_spec import LayerSpec, PruningSpec, shrink_model, shrunk_spec, zero_pruned_weights
    from export_onnx.export_onnx import main

    model, tokenizer, _ = load_model_folder(exported["model"])
    spec = PruningSpec(num_heads=4, head_size=8, intermediate_size=37,
                       layers=[LayerSpec([0, 2, 3], list(range(0, 37, 2))), LayerSpec([1], list(range(5, 30)))])
    zero_pruned_weights(model, spec)
    save_model_folder(model, tokenizer, tmp_path / "masked", spec)
    shrink_model(model, spec)
    save_model_folder(model, tokenizer, tmp_path / "shrunk", shrunk_spec(spec))
    outputs = {}
    for name in ("masked", "shrunk"):
        outputs[name] = tmp_path / "onnx" / f"{name}.onnx"
        assert main(["--model", str(tmp_path / name), "--output", str(outputs[name]), "--data", str(exported["data"]),
                     "--optimize"]) == 0
        manifest = json.loads((tmp_path / "onnx" / f"{name}.manifest.json").read_text())
        assert manifest["pruning"] == name and manifest["parity"]["fp32"]["max_abs_logit_diff"] <= 1e-4
        assert manifest["optimizer"]["outcome"] in ("applied", "applied without attention fusion",
                                                    "fell back to the unoptimized graph")
        assert (manifest["optimizer"]["outcome"] == "applied") == any(
            "Attention" in op for op in manifest["optimizer"].get("fused_operators", {}))
    texts = toy_texts(30, 7)[0]
    masked = load_classifier(outputs["masked"], device="cpu")
    shrunk = load_classifier(outputs["shrunk"], device="cpu")
    np.testing.assert_allclose(shrunk.predict_logits(texts), masked.predict_logits(texts), atol=1e-4)
    assert shrunk.parameter_count()["total"] < masked.parameter_count()["total"]
    assert outputs["shrunk"].stat().st_size < outputs["masked"].stat().st_size


@pytest.mark.slow
def test_minilm_export_parity_on_ag_news(ag_news_dir, tmp_path):
    """The real architecture (MiniLM-L6-H384, 12 heads) exported and checked on real AG News texts."""
    from common.models.modeling import new_classifier, save_model_folder
    from export_onnx.export_onnx import main

    model, tokenizer = new_classifier("minilm")
    save_model_folder(model, tokenizer, tmp_path / "minilm")
    output = tmp_path / "onnx" / "minilm.onnx"
    assert main(["--model", str(tmp_path / "minilm"), "--output", str(output), "--data", str(ag_news_dir),
                 "--int8-samples", "100"]) == 0
    parity = json.loads((tmp_path / "onnx" / "minilm.manifest.json").read_text())["parity"]
    assert parity["fp32"]["max_abs_logit_diff"] <= 1e-4 and parity["fp32"]["n_texts"] == 49


def test_int8_retries_without_embedding_quantization_then_fails_cleanly(exported, tmp_path, monkeypatch):
    import common.export.onnx_export as om
    from export_onnx.export_onnx import main

    real_check = om.check_int8_agreement
    calls = []

    def first_attempt_fails(reference, candidate, texts, labels=None, **kwargs):
        calls.append(candidate.path)
        result = real_check(reference, candidate, texts, labels, **kwargs)
        if len(calls) == 1:
            raise om.ParityError("agrees on only 98.40% (simulated)")
        return result

    monkeypatch.setattr(om, "check_int8_agreement", first_attempt_fails)
    out = tmp_path / "q" / "m_int8.onnx"
    assert main(["--model", str(exported["onnx"]), "--int8", "--output", str(out), "--data", str(exported["data"])]) == 0
    quant = json.loads((out.parent / "m_int8.manifest.json").read_text())["quantization"]
    assert [a["op_types"] for a in quant["attempts"]] == [["MatMul", "Gather"], ["MatMul"]]
    assert quant["op_types"] == ["MatMul"] and quant["attempts"][1]["outcome"] == "passed"
    assert quant["ffn_output_fp32"] is False

    # Two failures: the third choice keeps every layer's FFN output projection in fp32.
    calls.clear()

    def two_attempts_fail(reference, candidate, texts, labels=None, **kwargs):
        calls.append(candidate.path)
        if len(calls) <= 2:
            raise om.ParityError("agrees on only 98.80% (simulated)")
        return real_check(reference, candidate, texts, labels, **kwargs)

    monkeypatch.setattr(om, "check_int8_agreement", two_attempts_fail)
    third = tmp_path / "q" / "third_int8.onnx"
    assert main(["--model", str(exported["onnx"]), "--int8", "--output", str(third), "--data", str(exported["data"])]) == 0
    quant = json.loads((third.parent / "third_int8.manifest.json").read_text())["quantization"]
    assert [a["outcome"] for a in quant["attempts"]][-1] == "passed" and len(quant["attempts"]) == 3
    assert quant["op_types"] == ["MatMul"] and quant["ffn_output_fp32"] is True
    graph = onnx.load(str(third)).graph
    float_ffn = [n.name for n in graph.node if n.op_type == "MatMul" and re.search(r"layer\.\d+/output/dense/MatMul", n.name)]
    assert len(float_ffn) == quant["nodes_in_fp32"] >= 1  # those MatMuls stayed float; the others became integer ops

    def always_fails(*args, **kwargs):
        raise om.ParityError("agrees on only 50% (simulated)")

    monkeypatch.setattr(om, "check_int8_agreement", always_fails)
    bad = tmp_path / "q" / "bad_int8.onnx"
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(exported["onnx"]), "--int8", "--output", str(bad), "--data", str(exported["data"])])
    assert exit_info.value.code == 2 and not bad.exists() and not (bad.parent / "bad_int8.manifest.json").exists()
