"""Fused attention (com.microsoft::MultiHeadAttention per layer): torch parity with padding and per-layer head
counts, int8 on the fused graph, and the fallback that a wrong fused graph must take."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import common.export.attention as onnx_attention
from common.export.attention import FUSED_DOMAIN, FUSED_OP, fused_attempt, fused_ops_per_layer
from export_onnx.export_onnx import main
from tests.test_static_int8 import write_data

KEPT_HEADS = [[0, 2, 3], [1]]  # the tiny BERT has 4 heads per layer: 3 and 1 kept, as pruning leaves them
TEXTS = ["the match", "market shares profit bank today after the new report says the merger",
         "a chip", "election minister treaty embassy border parliament in the new report today"]


def _perturb(folder: Path, sharpen: bool) -> None:
    """Distinct biases and norms, as a trained model has (an untrained one's are bit-identical zeros and ones,
    which the exporter stores once). ``sharpen``: larger matrices than the init's std 0.02, so attention is far
    from uniform, logits are ~1, and a wrong head count or an ignored padding mask moves them past the
    parity tolerance."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if weight.ndim == 1:
                weight.add_(torch.randn(weight.shape, generator=generator) * 0.02)
            elif sharpen and "embeddings" not in name:
                weight.normal_(0.0, 0.3, generator=generator)
    model.save_pretrained(folder)


def _shrunk_tiny(tiny_bert: Path, data: Path, out: Path, sharpen: bool) -> Path:
    from common.models.pruning_spec import LayerSpec, PruningSpec
    from common.compress.shrink import shrink_folder

    _perturb(tiny_bert, sharpen)
    config = json.loads((tiny_bert / "config.json").read_text())
    spec = PruningSpec(num_heads=4, head_size=8, intermediate_size=config["intermediate_size"],
                       layers=[LayerSpec(heads=h, neurons=list(range(0, 37, 2))) for h in KEPT_HEADS])
    spec.save(tiny_bert)
    shrink_folder(tiny_bert, out, data=str(data), check_samples=16)
    return out


def _export(model: Path, output: Path, data: Path, *extra: str) -> dict:
    assert main(["--model", str(model), "--output", str(output), "--data", str(data), "--max-len", "64",
                 "--int8-samples", "80", *extra]) == 0
    return json.loads(output.with_name(output.stem + ".manifest.json").read_text())


def _ops(path: Path) -> list:
    return list(onnx.load(str(path)).graph.node)


def _session_logits(path: Path, tokenizer, texts: list[str], ignore_padding: bool = False) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = tokenizer(texts, padding=True, return_tensors="np")
    mask = np.ones_like(batch["attention_mask"]) if ignore_padding else batch["attention_mask"]
    return session.run(["logits"], {"input_ids": batch["input_ids"], "attention_mask": mask,
                                    "token_type_ids": batch["token_type_ids"]})[0]


@pytest.fixture
def shrunk(tiny_bert, tmp_path):
    """(a sharpened tiny BERT shrunk to 3 and 1 heads, toy data): for fp32 parity that can fail."""
    data = write_data(tmp_path / "data")
    return _shrunk_tiny(tiny_bert, data, tmp_path / "shrunk", sharpen=True), data


@pytest.fixture
def shrunk_smooth(tiny_bert, tmp_path):
    """The same without sharpening: int8 of a random model with sharp attention flips argmaxes at random."""
    data = write_data(tmp_path / "data")
    return _shrunk_tiny(tiny_bert, data, tmp_path / "shrunk", sharpen=False), data


def test_fused_graph_equals_torch_on_padded_batches_with_per_layer_head_counts(shrunk, tmp_path):
    import torch

    from common.models.modeling import load_model_folder

    folder, data = shrunk
    fused = tmp_path / "onnx" / "pruned.onnx"
    manifest = _export(folder, fused, data, "--fused-attention")
    record = manifest["fused_attention"]
    assert record["outcome"] == "applied" and record["heads_per_layer"] == [3, 1]
    assert record["fused_ops_per_layer"] == [1, 1] and record["parity"]["passed"]
    assert manifest["parity"]["fp32"]["passed"] and manifest["export"]["attention"] == f"{FUSED_DOMAIN}::{FUSED_OP}"
    nodes = _ops(fused)
    attention = [n for n in nodes if n.op_type == FUSED_OP]
    assert [next(a.i for a in n.attribute if a.name == "num_heads") for n in attention] == [3, 1]
    assert not any(n.op_type == "Softmax" for n in nodes)  # the eager core is gone, not duplicated

    model, tokenizer, _ = load_model_folder(folder)
    with torch.no_grad():
        batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
        reference = model.eval()(**batch).logits.numpy()
    padded = _session_logits(fused, tokenizer, TEXTS)
    one_by_one = np.concatenate([_session_logits(fused, tokenizer, [t]) for t in TEXTS])
    assert np.abs(reference).max() > 0.1  # the sharpened model's logits are not all ~0
    assert np.abs(padded - reference).max() <= 1e-5
    assert np.abs(padded - one_by_one).max() <= 1e-5
    # The comparison can fail: the same graph fed a mask that ignores padding computes something else.
    assert np.abs(_session_logits(fused, tokenizer, TEXTS, ignore_padding=True) - one_by_one).max() > 1e-2


def test_dynamic_and_static_int8_quantize_the_fused_graph(shrunk_smooth, tmp_path):
    folder, data = shrunk_smooth
    fp32 = tmp_path / "onnx" / "pruned.onnx"
    _export(folder, fp32, data, "--fused-attention")
    for mode, quantized_op in (("dynamic", "MatMulInteger"), ("static", "QLinearMatMul")):
        out = tmp_path / "onnx" / f"pruned_{mode}.onnx"
        manifest = _export(fp32, out, data, "--int8", "--mode", mode, "--calib-rows", "48")
        assert manifest["parity"]["int8"]["passed"] and manifest["parity"]["int8"]["argmax_agreement"] >= 0.99
        assert manifest["fused_attention"]["outcome"] == "applied"
        assert manifest["fused_attention"]["fused_ops_per_layer"] == [1, 1]  # read from the int8 graph itself
        ops = [n.op_type for n in _ops(out)]
        # The Q/K/V projections sit outside the fused op, so they are quantized like every other MatMul.
        assert ops.count(quantized_op) >= 6 * 2 and "MatMul" not in ops and ops.count(FUSED_OP) == 2


def test_a_wrong_head_count_fails_parity_and_falls_back_to_the_plain_graph(shrunk, tmp_path, monkeypatch):
    folder, data = shrunk
    original = onnx_attention.fused_copy
    # Planted: 1 head where 3 are kept (head size 24 instead of 8) - a graph that runs but computes another function.
    monkeypatch.setattr(onnx_attention, "fused_copy", lambda model, num_heads=None: original(model, [1, 1]))
    out = tmp_path / "onnx" / "pruned.onnx"
    manifest = _export(folder, out, data, "--fused-attention")
    record = manifest["fused_attention"]
    assert record["outcome"] == "fell back to the plain graph"
    assert record["reason"].startswith("ParityError") and "Δlogit" in record["reason"]
    assert manifest["export"]["attention"] == "eager" and manifest["parity"]["fp32"]["passed"]
    assert not any(n.op_type == FUSED_OP for n in _ops(out))


def test_a_graph_without_one_fused_op_per_layer_is_not_kept(tiny_bert, tmp_path):
    """The op-count gate: a graph that passes parity but holds no fused op (planted: the plain export) is refused."""
    from common.models.modeling import load_model_folder
    from common.export.onnx_export import torch_to_onnx

    model, tokenizer, _ = load_model_folder(tiny_bert)
    plain, fused = tmp_path / "plain.onnx", tmp_path / "fused.onnx"
    torch_to_onnx(model, tokenizer, plain)
    torch_to_onnx(model, tokenizer, fused, fused_attention=True)
    assert fused_ops_per_layer(plain, 2) == [0, 0] and fused_ops_per_layer(fused, 2) == [1, 1]
    passed = ({"heads_per_layer": [4, 4]}, {"fp32": {"max_abs_logit_diff": 0.0},
                                            "fp32_argmax_agreement": {"argmax_agreement": 1.0}})
    record, exported = fused_attempt(lambda fused_flag: passed, plain, 2)
    assert exported is None and record["outcome"] == "fell back to the plain graph"
    assert "[0, 0]" in record["reason"]
    record, exported = fused_attempt(lambda fused_flag: passed, fused, 2)
    assert exported is passed and record["outcome"] == "applied" and record["fused_ops_per_layer"] == [1, 1]


def test_export_leaves_the_model_in_eval_mode(tiny_bert, tmp_path):
    """The exporter restores its wrapper's training mode recursively; dropout must not come back on."""
    from common.models.modeling import load_model_folder
    from common.export.onnx_export import torch_to_onnx

    model, tokenizer, _ = load_model_folder(tiny_bert)
    for fused in (False, True):
        torch_to_onnx(model, tokenizer, tmp_path / f"{fused}.onnx", fused_attention=fused)
        assert not any(module.training for module in model.modules())
    assert not any(isinstance(m, onnx_attention.FusedSelfAttention) for m in model.modules())  # a copy was fused


def test_fused_attention_on_an_onnx_source_is_a_clear_error(shrunk, tmp_path, capsys):
    folder, data = shrunk
    fp32 = tmp_path / "onnx" / "pruned.onnx"
    _export(folder, fp32, data)
    out = tmp_path / "onnx" / "again.onnx"
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(fp32), "--int8", "--fused-attention", "--output", str(out), "--data", str(data)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--fused-attention" in err and "Traceback" not in err
    assert not out.exists()


def test_the_fused_graph_reads_as_the_same_model(shrunk_smooth, tmp_path):
    """Parameter counts and per-layer widths read from the graph (the properties table, the loader) do not
    change with the fusion: the merged Q/K/V bias is the same numbers in one initializer."""
    from common.bench.properties import onnx_properties
    from common.models.onnx_graph import initializer_counts

    folder, data = shrunk_smooth
    plain, fused = tmp_path / "plain" / "pruned.onnx", tmp_path / "fused" / "pruned.onnx"
    _export(folder, plain, data)
    _export(folder, fused, data, "--fused-attention")
    assert initializer_counts(fused) == initializer_counts(plain)
    plain_props, fused_props = onnx_properties(plain), onnx_properties(fused)
    assert fused_props["heads_per_layer_physical"] == plain_props["heads_per_layer_physical"] == [3, 1]
    for key in ("parameters", "ffn_width_per_layer_physical"):
        assert fused_props[key] == plain_props[key]


def test_comparison_tool_builds_checks_and_times_plain_against_fused(shrunk_smooth, tmp_path, capsys):
    from tools.fused_attention_compare import main as compare_main

    folder, data = shrunk_smooth
    out = tmp_path / "metrics" / "fused.md"
    assert compare_main(["--models", str(folder), "--output", str(out), "--data", str(data), "--texts", "40",
                         "--threads", "1", "--rounds", "2", "--calib-rows", "48", "--int8-samples", "80"]) == 0
    rows = json.loads(out.with_name("fused.manifest.json").read_text())["rows"]
    assert {(r["attention"], r["precision"]) for r in rows} == {(a, p) for a in ("plain", "fused")
                                                              for p in ("fp32", "int8_dynamic", "int8_static")}
    for row in rows:
        assert row["status"] == "ok" and row["samples_per_s"] > 0 and len(row["passes"]) == 2
        fused = row["attention"] == "fused"
        assert row["fused_ops_per_layer"] == ([1, 1] if fused else None)
        assert (row["ratio_to_plain"] == 1.0) != fused  # plain rows are the reference
    table = out.read_text()
    assert table.count("| shrunk ") == 6 and "host load" in table
    with pytest.raises(SystemExit) as exit_info:  # not a model folder: one sentence, exit 2, nothing written
        compare_main(["--models", str(tmp_path / "nope"), "--output", str(tmp_path / "x.md"), "--data", str(data)])
    assert exit_info.value.code == 2 and "--models" in capsys.readouterr().err and not (tmp_path / "x.md").exists()
