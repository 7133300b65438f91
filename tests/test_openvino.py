"""OpenVINO as a backend for our graphs (issue 25): the IR's fp32 parity and the NNCF int8's agreement with the
ONNX graph, batch invariance, a planted parity failure that leaves nothing, the loader's refusals of a broken IR,
optimum-intel loading our IRs in a process that cannot import the toolkit, and the Make chain that builds them."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from common.cli import UserError
from common.models.classifier import load_classifier
from export_onnx.export_onnx import main as export_main
from export_onnx.export_openvino import main as ov_main
from tests.conftest import REPO, copy_sources
from tests.test_onnx_bench import make_long_bert
from tests.test_static_int8 import write_data

pytest.importorskip("openvino")
pytest.importorskip("nncf")

OV_PYTHON = REPO / ".venv-openvino" / "bin" / "python"
CALIB_ROWS = 48
SEED = 7


@pytest.fixture(scope="module")
def irs(tmp_path_factory):
    """A tiny model's fp32 ONNX graph, its OpenVINO IR and its NNCF int8 IR, built through main([...])."""
    root = tmp_path_factory.mktemp("openvino")
    data = write_data(root / "data")
    model = make_long_bert(root / "tiny_bert")
    onnx = root / "models" / "base.onnx"
    assert export_main(["--model", str(model), "--output", str(onnx), "--data", str(data), "--max-len", "128"]) == 0
    fp32, int8 = root / "models" / "base_ov.xml", root / "models" / "base_ov_int8.xml"
    assert ov_main(["--model", str(onnx), "--output", str(fp32), "--data", str(data), "--max-len", "128"]) == 0
    assert ov_main(["--model", str(onnx), "--int8", "--output", str(int8), "--data", str(data), "--max-len", "128",
                    "--calib-rows", str(CALIB_ROWS), "--seed", str(SEED)]) == 0
    return {"root": root, "data": data, "onnx": onnx, "fp32": fp32, "int8": int8}


def manifest_of(ir: Path) -> dict:
    return json.loads(ir.with_name(ir.stem + ".manifest.json").read_text())


def test_the_fp32_ir_computes_the_onnx_graphs_function(irs):
    from common.data import load_split

    manifest = manifest_of(irs["fp32"])
    parity = manifest["parity"]["fp32"]
    assert parity["passed"] and parity["max_abs_logit_diff"] <= 1e-4 and parity["atol"] == 1e-4
    assert manifest["source_sha256"] == manifest["inputs"]["model"]["sha256"] and not manifest["int8"]
    assert manifest["runtime_properties"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert manifest["runtime_properties"]["PERFORMANCE_HINT"] == "LATENCY"
    # an independent check on other texts: the IR in the toolkit's loader against the ONNX graph in ONNX Runtime
    texts = load_split(irs["data"], "train", 40, 3).texts
    ours, onnx = load_classifier(irs["fp32"], device="cpu"), load_classifier(irs["onnx"], device="cpu")
    assert ours.kind == "openvino" and ours.info["format"] == "openvino" and not ours.batch_dependent
    assert np.abs(ours.predict_logits(texts) - onnx.predict_logits(texts)).max() <= 1e-4
    # fp32 weights are stored as fp32 (OpenVINO's save_model would halve them by default)
    assert manifest["bin_bytes"] >= 3.0 * manifest["parameters"]["total"]  # fp16 would be 2 bytes per weight


def test_the_int8_ir_agrees_with_fp32_is_batch_invariant_and_calibrates_on_training_rows(irs):
    from common.data import load_split
    from common.prediction_cache import split_digest

    manifest = manifest_of(irs["int8"])
    agreement = manifest["parity"]["int8"]
    assert agreement["passed"] and agreement["argmax_agreement"] >= 0.99 and agreement["n_texts"] == 80
    quant = manifest["quantization"]
    assert quant["tool"] == "nncf.quantize" and quant["model_type"] == "TRANSFORMER"
    assert quant["attempts"][-1]["outcome"] == "passed" and quant["attempts"][-1]["plan"] == quant["plan"]
    calib = manifest["calibration"]
    train = load_split(irs["data"], "train", CALIB_ROWS, SEED)
    assert calib["split"] == "train" and calib["rows"] == CALIB_ROWS and calib["seed"] == SEED
    assert calib["sha256"] == split_digest(train.texts, train.labels)
    assert not set(train.texts) & set(load_split(irs["data"], "test").texts)
    clf = load_classifier(irs["int8"], device="cpu")
    assert clf.kind == "openvino-int8" and clf.info["quantized"] and clf.info["activation_scales"] == "static"
    import openvino as ov

    assert any(op.get_type_name() == "FakeQuantize" for op in ov.Core().read_model(str(irs["int8"])).get_ops())
    # static scales: a text gets the same class alone as in a batch of 16
    texts = load_split(irs["data"], "test", 32, 1).texts
    batched = clf.predict_logits(texts, batch_size=16)
    alone = np.stack([clf.predict_logits([t], batch_size=1)[0] for t in texts])
    assert (batched.argmax(1) == alone.argmax(1)).all()


def test_an_unchanged_rerun_keeps_the_ir_and_the_parameter_counts_are_the_source_graphs(irs):
    before = irs["int8"].stat().st_mtime_ns, manifest_of(irs["int8"])["sha256"]
    assert ov_main(["--model", str(irs["onnx"]), "--int8", "--output", str(irs["int8"]), "--data", str(irs["data"]),
                    "--max-len", "128", "--calib-rows", str(CALIB_ROWS), "--seed", str(SEED)]) == 0
    assert manifest_of(irs["int8"])["sha256"] == before[1]
    ours, onnx = load_classifier(irs["int8"], device="cpu"), load_classifier(irs["onnx"], device="cpu")
    assert ours.parameter_count() == onnx.parameter_count()


def _leftovers(folder: Path, stem: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((stem, f".{stem}")))


def test_a_planted_parity_failure_leaves_nothing_behind(irs, monkeypatch):
    from common.export import openvino_export
    from common.export.parity import ParityError, check_fp32_parity

    # fp32: a tolerance nothing meets
    monkeypatch.setattr(openvino_export, "check_fp32_parity",
                        lambda ref, cand, texts, what: check_fp32_parity(ref, cand, texts, atol=-1.0, what=what))
    out = irs["root"] / "models" / "planted_ov.xml"
    with pytest.raises(ParityError, match="OpenVINO conversion"):
        openvino_export.export_openvino(irs["onnx"], out, data=str(irs["data"]), max_len=128)
    assert _leftovers(out.parent, "planted_ov") == []
    monkeypatch.undo()

    # int8: an agreement floor no model meets, so every fallback plan is tried and fails
    from common.export.parity import check_int8_agreement

    real = openvino_export.nncf_quantize
    tried = []

    def recorded(model, feeds, patterns):
        tried.append(patterns)
        return real(model, feeds, patterns)

    monkeypatch.setattr(openvino_export, "check_int8_agreement",
                        lambda ref, cand, texts, labels, what: check_int8_agreement(ref, cand, texts, labels,
                                                                                    min_agreement=1.01, what=what))
    monkeypatch.setattr(openvino_export, "nncf_quantize", recorded)
    out = irs["root"] / "models" / "planted_ov_int8.xml"
    with pytest.raises(ParityError, match="agrees with the fp32 graph on only"):
        openvino_export.export_openvino(irs["onnx"], out, data=str(irs["data"]), max_len=128, int8=True,
                                        calib_rows=CALIB_ROWS, seed=SEED)
    assert len(tried) == len(openvino_export.OV_INT8_PLANS)  # every fallback plan was tried
    assert tried[1] and tried[2]  # the fallbacks keep FFN (then attention) output projections out of int8
    assert _leftovers(out.parent, "planted_ov_int8") == []


def test_the_loader_refuses_a_broken_ir_in_one_sentence(irs, tmp_path):
    broken = tmp_path / "ir"
    shutil.copytree(irs["root"] / "models", broken)
    xml, weights = broken / "base_ov.xml", broken / "base_ov.bin"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated: the recorded size no longer matches
    with pytest.raises(UserError, match="truncated or replaced; rebuild it"):
        load_classifier(xml, device="cpu")
    (broken / "base_ov.manifest.json").unlink()  # no manifest: OpenVINO's own check refuses it
    with pytest.raises(UserError, match="is not a loadable OpenVINO IR"):
        load_classifier(xml, device="cpu")
    weights.unlink()
    with pytest.raises(UserError, match="has no weights file base_ov.bin"):
        load_classifier(xml, device="cpu")
    # planted negative: the intact copy loads
    assert load_classifier(broken / "base_ov_int8.xml", device="cpu").kind == "openvino-int8"


def test_bad_input_is_one_sentence_and_writes_nothing(irs, tmp_path, capsys):
    int8_onnx = tmp_path / "int8.onnx"
    assert export_main(["--model", str(irs["onnx"]), "--int8", "--output", str(int8_onnx), "--data",
                        str(irs["data"]), "--max-len", "128"]) == 0
    for args, says in ((["--model", str(int8_onnx), "--output", str(tmp_path / "a.xml")], "already int8"),
                       (["--model", str(irs["fp32"]), "--output", str(tmp_path / "b.xml")], "must be an fp32 .onnx"),
                       (["--model", str(irs["onnx"]), "--output", str(tmp_path / "c.bin")], "must end in .xml"),
                       (["--model", str(irs["onnx"]), "--int8", "--calib-rows", "0", "--output",
                         str(tmp_path / "d.xml")], "--calib-rows 0 must be >= 1")):
        with pytest.raises(SystemExit) as exc:
            ov_main([*args, "--data", str(irs["data"])])
        assert exc.value.code == 2 and says in capsys.readouterr().err
    assert not list(tmp_path.glob("*.xml")) and not list(tmp_path.glob("*.bin"))


def test_without_openvino_the_message_names_make_setup(monkeypatch):
    import builtins

    from common.models import openvino_graph

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(UserError, match=r"run `make setup` \(it installs openvino and nncf\)"):
        openvino_graph.import_openvino()


@pytest.mark.skipif(not OV_PYTHON.is_file(), reason="no .venv-openvino (make .venv-openvino/.installed)")
def test_optimum_intel_loads_our_irs_in_a_process_without_the_toolkit(irs, tmp_path):
    """``make interop``'s OpenVINO half: optimum-intel's OVModelForSequenceClassification, in its own venv, from a
    scratch folder with no toolkit on the path, gives the toolkit's logits."""
    from common.bench.interop import interop_check
    from common.data import load_test_split

    texts = load_test_split(str(irs["data"]), 12, 0).texts
    rows = interop_check({"base_ov": irs["fp32"], "base_ov_int8": irs["int8"]}, texts, tmp_path / "interop.md", "",
                         128, {}, 0, openvino_python=str(OV_PYTHON))
    assert all(r.passed for r in rows), rows
    assert all(r.kind == "openvino" and r.loader.startswith("optimum-intel") for r in rows)
    check = subprocess.run([str(OV_PYTHON), "-c", "import common"], cwd=tmp_path, capture_output=True,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert check.returncode != 0  # that venv cannot import the toolkit


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_plans_the_chain_to_an_openvino_int8_graph(tmp_path):
    tree = copy_sources(tmp_path / "repo", REPO)
    done = subprocess.run(["make", "--no-print-directory", "-n", "models/onnx/pruned20_ov_int8.xml",
                           "PYTHON=python3", "DATA=data"], cwd=tree, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    stages = [line.split(" -m ")[1].split()[0] for line in done.stdout.splitlines() if " -m " in line]
    assert stages == ["train.fine_tuning.run_fine_tune_bert_agnews", "train.pruning.run_structural_pruning",
                      "tools.apply_shrink_to_model", "export_onnx.export_onnx", "export_onnx.export_openvino"]
    last = done.stdout.replace("\\\n", " ").splitlines()[-1]
    assert "--model models/onnx/pruned20.onnx --int8 --calib-rows 128" in last
    assert "--output models/onnx/pruned20_ov_int8.xml" in last
    fp32 = subprocess.run(["make", "--no-print-directory", "-n", "models/onnx/base_ov.xml", "PYTHON=python3",
                           "DATA=data"], cwd=tree, capture_output=True, text=True, timeout=120)
    assert fp32.returncode == 0 and fp32.stdout.count("export_onnx.export_openvino") == 1
    assert "--int8" not in fp32.stdout.split("export_onnx.export_openvino")[1]
