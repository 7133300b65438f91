"""Static (calibrated) int8 ONNX variants: parity with fp32, batch invariance, training-only calibration,
reproducible bytes, skip-if-done, and the Make chain that builds them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from common.models.classifier import load_classifier
from common.manifest import sha256_path
from export_onnx.export_onnx import main
from tests.conftest import sources_only, toy_texts
from tests.test_onnx_bench import make_long_bert

CALIB_ROWS = 48
SEED = 7


def write_data(folder: Path, splits=(("train", 64, 1), ("test", 80, 2))) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in splits:
        texts, labels = toy_texts(n, seed)
        pd.DataFrame({"text": texts, "label": labels}).to_csv(folder / f"{split}.csv", index=False)
    return folder


def static_args(fp32: Path, output: Path, data: Path, *extra: str) -> list[str]:
    return ["--model", str(fp32), "--int8", "--mode", "static", "--output", str(output), "--data", str(data),
            "--max-len", "128", "--calib-rows", str(CALIB_ROWS), "--seed", str(SEED), *extra]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """A tiny model's fp32 graph, its static int8 graph and its dynamic int8 graph, built through main([...])."""
    root = tmp_path_factory.mktemp("static")
    data = write_data(root / "data")
    model = make_long_bert(root / "tiny_bert")
    fp32 = root / "models" / "base.onnx"
    assert main(["--model", str(model), "--output", str(fp32), "--data", str(data), "--max-len", "128"]) == 0
    static = root / "models" / "base_static.onnx"
    assert main(static_args(fp32, static, data)) == 0
    dynamic = root / "models" / "base_int8.onnx"
    assert main(["--model", str(fp32), "--int8", "--output", str(dynamic), "--data", str(data), "--max-len", "128"]) == 0
    return {"root": root, "data": data, "fp32": fp32, "static": static, "dynamic": dynamic}


def manifest_of(graph: Path) -> dict:
    return json.loads(graph.with_name(graph.stem + ".manifest.json").read_text())


def test_static_graph_agrees_with_fp32_and_its_manifest_says_how_it_was_built(graphs):
    from common.data import load_split
    from common.prediction_cache import split_digest

    manifest = manifest_of(graphs["static"])
    # The same parity rule as dynamic int8: >= 99 % argmax agreement on held-out test rows, every attempt recorded.
    parity = manifest["parity"]["int8"]
    attempts = manifest["quantization"]["attempts"]
    assert parity["passed"] and parity["argmax_agreement"] >= 0.99 and parity["n_texts"] == 80
    assert attempts[-1]["outcome"] == "passed" and attempts[-1]["plan"] == manifest["quantization"]["plan"]
    quant = manifest["quantization"]
    # Only MatMuls with weights are quantized: attention's activation-by-activation MatMuls (2 per layer) stay fp32.
    graph = onnx.load(str(graphs["static"])).graph
    layers = len({n.name.split("/layer.")[1].split("/")[0] for n in graph.node if "/layer." in n.name})
    assert quant["matmuls_in_fp32"] >= 2 * layers and sum(n.op_type == "MatMul" for n in graph.node) >= 2 * layers
    assert quant["method"].endswith("quantize_static") and quant["quant_format"] == "QOperator"
    assert quant["activation_type"] == "QUInt8" and quant["weight_type"] == "QInt8" and quant["per_channel"]
    assert "skip_symbolic_shape=True" in quant["preprocessed"]
    # Calibration: exactly the seeded training rows, never test rows.
    calib = manifest["calibration"]
    train_rows = load_split(graphs["data"], "train", CALIB_ROWS, SEED)
    test_rows = load_split(graphs["data"], "test")
    assert calib["split"] == "train" and calib["rows"] == CALIB_ROWS and calib["seed"] == SEED
    assert calib["sha256"] == split_digest(train_rows.texts, train_rows.labels)
    assert not set(train_rows.texts) & set(test_rows.texts)
    assert manifest["seed"] == SEED and manifest["arguments"]["mode"] == "static"
    assert manifest["inputs"]["model"]["sha256"] == sha256_path(graphs["fp32"]) == manifest["run_key"]["source_sha256"]
    assert manifest["sha256"] == sha256_path(graphs["static"]) and "onnxruntime" in manifest["versions"]
    # The graph really is statically quantized: QOperator MatMuls, no per-batch DynamicQuantizeLinear.
    ops = {node.op_type for node in onnx.load(str(graphs["static"])).graph.node}
    assert "QLinearMatMul" in ops and "DynamicQuantizeLinear" not in ops
    assert "DynamicQuantizeLinear" in {n.op_type for n in onnx.load(str(graphs["dynamic"])).graph.node}
    # The recorded agreement is what the loader every consumer uses measures.
    texts = toy_texts(80, 2)[0]
    fp32_pred = load_classifier(graphs["fp32"], device="cpu").predict(texts)
    static_pred = load_classifier(graphs["static"], device="cpu").predict(texts)
    assert (static_pred == fp32_pred).mean() == pytest.approx(parity["argmax_agreement"])


def test_batch_predictions_equal_one_by_one_for_static_not_for_dynamic(graphs):
    from common.bench.summary import reported_dtype
    from common.bench.worker import agreement_only

    texts = toy_texts(80, 2)[0] + ["market " * 60, "goal", "a new report on the chip market today"]
    static = load_classifier(graphs["static"], device="cpu", threads=1)
    dynamic = load_classifier(graphs["dynamic"], device="cpu", threads=1)
    # The loader knows which graphs are batch-dependent (LIME and deletion fix the batch only for those).
    assert static.kind == "onnx-int8-static" and dynamic.kind == "onnx-int8"
    assert reported_dtype({"kind": static.kind, "dtype": "fp32"}) == "int8 (w8a8 static)"
    assert reported_dtype({"kind": dynamic.kind, "dtype": "fp32"}) == "int8 (w8a8 dynamic)"
    assert not static.batch_dependent and static.info["activation_scales"] == "static"
    assert dynamic.batch_dependent and dynamic.info["activation_scales"] == "dynamic"
    one_by_one = np.stack([static.predict_logits([t], batch_size=1)[0] for t in texts])
    for batch_size in (32, 7):
        # Fixed scales: a text's logits do not depend on its batch mates or on the padding they bring.
        np.testing.assert_array_equal(static.predict_logits(texts, batch_size=batch_size), one_by_one)
    # Planted negative: dynamic int8 scales each batch by its own range, so its logits move with the batch
    # (on this tiny model the argmax happens not to flip; only the logits are asserted to differ).
    dyn_single = np.stack([dynamic.predict_logits([t], batch_size=1)[0] for t in texts])
    assert np.abs(dynamic.predict_logits(texts, batch_size=32) - dyn_single).max() > 1e-4
    # The benchmark's own batch-vs-one-by-one measurement gives the static graph 100 %.
    measured = agreement_only(graphs["static"], str(graphs["data"]), 0, 128, "cpu", "fp32", 1, 32, SEED, 0)
    assert measured["batch_agreement"] == 1.0 and measured["batch_agreement_flips"] == 0
    assert measured["batch_agreement_n"] == 80


def test_calibration_needs_the_train_split_and_never_falls_back_to_test(graphs, tmp_path, capsys):
    test_only = write_data(tmp_path / "test_only", splits=(("test", 80, 2),))
    out = tmp_path / "out" / "base_static.onnx"
    with pytest.raises(SystemExit) as exit_info:
        main(static_args(graphs["fp32"], out, test_only))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "No train split" in err and str(test_only) in err and "Traceback" not in err
    assert not out.exists() and not out.with_name("base_static.manifest.json").exists()
    # Bad flags are one sentence and exit 2 as well.
    for argv in (static_args(graphs["fp32"], out, graphs["data"], "--calib-rows", "0"),
                 ["--model", str(graphs["fp32"]), "--mode", "static", "--output", str(out), "--data", str(graphs["data"])],
                 static_args(graphs["fp32"], out, graphs["data"], "--static-format", "qdq_u4")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert not out.exists()


def test_same_seed_same_bytes_and_a_finished_graph_is_kept(graphs, tmp_path, caplog):
    again = tmp_path / "again" / "base_static.onnx"
    assert main(static_args(graphs["fp32"], again, graphs["data"])) == 0
    assert sha256_path(again) == sha256_path(graphs["static"])
    # Another seed draws other calibration rows: recorded, and the scales change.
    other = tmp_path / "other" / "base_static.onnx"
    assert main(static_args(graphs["fp32"], other, graphs["data"], "--seed", str(SEED + 1))) == 0
    assert manifest_of(other)["calibration"]["sha256"] != manifest_of(again)["calibration"]["sha256"]
    assert sha256_path(other) != sha256_path(again)
    # Rerun with the same arguments and inputs: nothing is rebuilt; with another calibration size it is.
    before = manifest_of(again)["created"], sha256_path(again)
    caplog.clear()
    assert main(static_args(graphs["fp32"], again, graphs["data"])) == 0
    assert "nothing to do" in caplog.text and (manifest_of(again)["created"], sha256_path(again)) == before
    assert main(static_args(graphs["fp32"], again, graphs["data"], "--calib-rows", "16")) == 0
    assert manifest_of(again)["calibration"]["rows"] == 16


# ----------------------------------------------------------------------------------------------- Make
@pytest.fixture()
def source_tree(tmp_path):
    """The sources only (no venvs, models, outputs or .git: the interop venv alone is ~2 GB)."""
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    root = Path(__file__).resolve().parents[1]
    dst = tmp_path / "repo"
    shutil.copytree(root, dst, symlinks=True, ignore=sources_only(root))
    # `make -t` touches files but creates no folders (the real recipes create their own)
    for folder in ("models/fine_tuned/bert_agnews", "models/pruned/bert_agnews_20pct", "models/shrunk/pruned20",
                   "models/onnx"):
        (dst / folder).mkdir(parents=True)
    return dst


def test_make_builds_the_static_graph_from_the_chain_and_nothing_else(source_tree):
    from tests.test_makefile import make, stages

    dry = make(source_tree, "-n", "models/onnx/pruned20_static.onnx")
    assert stages(dry) == ["train.fine_tuning.run_fine_tune_bert_agnews", "train.pruning.run_structural_pruning",
                           "tools.apply_shrink_to_model", "export_onnx.export_onnx", "export_onnx.export_onnx"]
    last = dry.strip().split("export_onnx.export_onnx")[-1]
    assert "--model models/onnx/pruned20.onnx" in last and "--mode static" in last
    assert "--calib-rows 128" in last and "--static-format qoperator_u8" in last and "--seed 42" in last
    assert stages(make(source_tree, "-n", "models/onnx/base_static.onnx")) == [
        "train.fine_tuning.run_fine_tune_bert_agnews", "export_onnx.export_onnx", "export_onnx.export_onnx"]
    # A calibration knob rebuilds the static graph only.
    make(source_tree, "-t", "models/onnx/pruned20_static.onnx")
    assert stages(make(source_tree, "-n", "models/onnx/pruned20_static.onnx")) == []
    assert stages(make(source_tree, "-n", "models/onnx/pruned20_static.onnx", "CALIB_ROWS=64")) == [
        "export_onnx.export_onnx"]


def test_static_variants_are_in_the_one_table_benchmarked_and_explained(source_tree):
    from common.variants import artefact, model_path
    from tests.test_makefile import make

    assert artefact("pruned20_onnx_static") == "models/onnx/pruned20_static.onnx"
    assert model_path("base_onnx_static") == "models/onnx/base_static.onnx"
    assert artefact("pruned20_onnx") == "models/onnx/pruned20.onnx"  # the new rows shadow nothing
    # Make lists them among the benchmark's and LIME's variants.
    for name in ("BENCH_VARIANTS", "LIME_VARIANTS"):
        listed = make(source_tree, "-n", "--eval", "print-%: ; @echo $($*)", f"print-{name}").split()
        assert {"base_onnx_static", "pruned20_onnx_static", "pruned30_onnx_static"} <= set(listed), name


def test_format_comparison_tool_measures_every_format_beside_dynamic(graphs, tmp_path):
    from tools.static_int8_formats import main as formats_main

    out = tmp_path / "m" / "static_formats.md"
    assert formats_main(["--model", str(graphs["fp32"]), "--output", str(out), "--data", str(graphs["data"]),
                         "--max-len", "128", "--texts", "40", "--calib-rows", "32", "--threads", "1"]) == 0
    rows = {r["variant"]: r for r in json.loads(out.with_name("static_formats.manifest.json").read_text())["rows"]}
    assert list(rows) == ["fp32", "dynamic", "qoperator_u8", "qoperator_s8", "qdq_u8", "qdq_s8"]
    assert rows["fp32"]["batch_agreement"] == 1.0 and rows["dynamic"]["ratio_to_dynamic"] == 1.0
    for name in ("qoperator_u8", "qoperator_s8", "qdq_u8", "qdq_s8"):
        row = rows[name]
        assert row["status"] == "ok" or row["status"].startswith("failed the int8 parity rule"), row
        if row["status"] == "ok":
            assert row["batch_agreement"] == 1.0 and row["agreement_with_fp32"] >= 0.99 and row["ratio_to_dynamic"] > 0
    assert "| qoperator_u8" in out.read_text()
    # Bad input: one sentence, exit 2, nothing written.
    with pytest.raises(SystemExit) as exit_info:
        formats_main(["--model", str(graphs["fp32"]), "--output", str(tmp_path / "x.txt"), "--data", str(graphs["data"])])
    assert exit_info.value.code == 2 and not (tmp_path / "x.txt").exists()


def test_feed_reader_reads_every_feed_once_and_rewinds():
    """ONNX Runtime's CalibrationDataReader protocol: each feed once, then None; rewind starts over."""
    from common.quantize.ort_static import FeedReader

    feeds = [{"input_ids": np.full((1, 2), i, dtype=np.int64)} for i in range(3)]
    reader = FeedReader(feeds)
    first = [reader.get_next() for _ in range(4)]
    assert [f["input_ids"][0, 0] for f in first[:3]] == [0, 1, 2] and first[3] is None
    reader.rewind()
    assert reader.get_next()["input_ids"][0, 0] == 0


def test_plans_quantize_weight_matmuls_and_the_fallback_keeps_ffn_outputs_in_fp32(graphs):
    from common.quantize.ort_static import FFN_OUTPUT_FP32, MATMULS_ONLY, STATIC_PLANS, WEIGHT_MATMULS, nodes_for_plan

    assert STATIC_PLANS == (WEIGHT_MATMULS, FFN_OUTPUT_FP32, MATMULS_ONLY)
    graph = onnx.load(str(graphs["fp32"])).graph
    matmuls = [n for n in graph.node if n.op_type == "MatMul"]
    weights = {i.name for i in graph.initializer}
    (types, first), (_, fallback) = nodes_for_plan(graph, WEIGHT_MATMULS), nodes_for_plan(graph, FFN_OUTPUT_FP32)
    gathers = {n.name for n in graph.node if n.op_type == "Gather" and any(i in weights for i in n.input)}
    # never an activation-by-activation MatMul (attention scores and context)
    assert types == ["MatMul", "Gather"] and gathers and gathers <= set(first)
    assert set(first) - gathers == {n.name for n in matmuls if any(i in weights for i in n.input)}
    assert len(set(first) - gathers) < len(matmuls)
    last_types, last = nodes_for_plan(graph, MATMULS_ONLY)
    assert last_types == ["MatMul"] and set(last) == set(fallback) - gathers
    ffn_out = set(first) - set(fallback)
    layers = {n.name.split("/layer.")[1].split("/")[0] for n in matmuls if "/layer." in n.name}
    assert len(ffn_out) == len(layers) and all("/output/dense/" in n and "attention" not in n for n in ffn_out)
    with pytest.raises(ValueError):
        nodes_for_plan(graph, "everything")


def test_a_plan_failing_the_parity_rule_falls_back_to_the_next_and_both_are_recorded(graphs, tmp_path):
    """Planted failure: the first plan writes the reference's graph with negated logits (it cannot agree); the
    rule records that attempt and keeps the second plan's graph."""
    from common.data import load_split
    from common.export.onnx_export import quantize_with_fallback
    from common.quantize.ort_static import WEIGHT_MATMULS

    class Ladder:
        choices = ("planted_wrong", WEIGHT_MATMULS)

        def __call__(self, source, output, plan):
            if plan != "planted_wrong":
                shutil.copy(graphs["static"], output)
                return {"plan": plan}
            # the reference's graph with its logits negated: every argmax moves to the argmin
            model = onnx.load(str(graphs["fp32"]))
            name = model.graph.output[0].name
            for node in model.graph.node:
                node.output[:] = [f"{name}_pre" if o == name else o for o in node.output]
            model.graph.node.append(onnx.helper.make_node("Neg", [f"{name}_pre"], [name]))
            onnx.save(model, str(output))
            return {"plan": plan}

    def load(path):
        return load_classifier(path, device="cpu")

    test = load_split(graphs["data"], "test")
    for sidecar in graphs["fp32"].parent.iterdir():  # config.json and the tokenizer the loader reads
        if sidecar.suffix != ".onnx" and not sidecar.name.endswith("manifest.json") and sidecar.is_file():
            shutil.copy(sidecar, tmp_path / sidecar.name)
    settings, agreement = quantize_with_fallback(Ladder(), graphs["fp32"], tmp_path / "int8.onnx",
                                                 load(graphs["fp32"]), load, test)
    assert [a["plan"] for a in settings["attempts"]] == ["planted_wrong", WEIGHT_MATMULS]
    assert settings["attempts"][0]["outcome"] != "passed" and "argmax_agreement" not in settings["attempts"][0]
    assert settings["attempts"][1]["outcome"] == "passed" and agreement["argmax_agreement"] >= 0.99
