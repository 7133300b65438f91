"""Compression on the tiny BERT: importance, pruning + re-fine-tuning, shrinking, int8, 16-bit, properties.

Every stage runs through its ``main([...])``; the assertions are on manifests and on what the
artefacts compute (masked == shrunk logits, int8 reload == in-memory int8, zeroed weights).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.model_properties.run_model_properties import main as properties_main
from common.models.classifier import load_classifier
from common.cli import UserError
from common.data import Split, load_test_split
from common.models.modeling import load_model_folder
from common.models.pruning_spec import SPEC_FILE, PruningSpec
from common.compress.pruning import (_run_key, build_spec, compute_importance, select_heads, select_neurons,
                            shrunk_parameter_count, split_sparsity)
from export_onnx.save_shrunk_pytorch_model import main as alias_shrink_main
from inference.evaluate_agnews_quantized_16bit import main as half_main
from inference.run_inference_on_model import main as eval_main
from tests.conftest import make_tiny_bert, toy_texts
from tools.apply_shrink_to_model import main as shrink_main
from train.fine_tuning.run_fine_tune_bert_agnews import main as finetune_main
from train.pruning.run_structural_pruning import main as prune_main
from train.quantization.run_dynamic_quantization import main as quantize_main

PRUNE_ARGS = ["--epochs", "6", "--learning-rate", "3e-3", "--batch-size", "16", "--max-len", "32",
              "--device", "cpu", "--seed", "0", "--importance-samples", "64", "--validation-fraction", "0.1"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """tiny BERT fine-tuned on toy data -> pruned 50% (re-fine-tuned, distilled) -> shrunk (both save methods)."""
    root = tmp_path_factory.mktemp("compression")
    data = root / "toy_data"
    data.mkdir()
    for split, n, seed in (("train", 160, 1), ("test", 80, 2)):
        texts, labels = toy_texts(n, seed)
        pd.DataFrame({"text": texts, "label": labels}).to_csv(data / f"{split}.csv", index=False)
    tiny = root / "tiny"  # the teacher: a fine-tuned tiny model, as in the real pipeline
    assert finetune_main(["--base-model", str(make_tiny_bert(root / "tiny_init")), "--data", str(data),
                          "--output", str(tiny), "--epochs", "12", "--learning-rate", "3e-3", "--batch-size", "16",
                          "--max-len", "32", "--device", "cpu", "--validation-fraction", "0.1", "--seed", "0"]) == 0
    pruned = root / "pruned50"
    assert prune_main(["--model", str(tiny), "--sparsity", "50", "--output", str(pruned), "--data", str(data),
                       *PRUNE_ARGS]) == 0
    shrunk = root / "shrunk50"
    assert shrink_main(["--model_path", str(pruned), "--output_path_shrunk_model", str(shrunk),
                        "--save_method", "save_pretrained"]) == 0
    shrunk_ts = root / "shrunk50_ts"
    assert alias_shrink_main(["--model-path", str(pruned), "--output-path-shrunk-model", str(shrunk_ts),
                              "--save-method", "torch_save"]) == 0
    return {"root": root, "tiny": tiny, "data": data, "pruned": pruned, "shrunk": shrunk, "shrunk_ts": shrunk_ts}


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


# ----------------------------------------------------------------------------------------------- importance
def test_importance_scores_change_with_the_data(tiny_bert):
    model, tokenizer, _ = load_model_folder(tiny_bert)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a_texts, a_labels = toy_texts(32, seed=1)
    b_texts, b_labels = toy_texts(32, seed=7)
    a = compute_importance(model, tokenizer, Split(a_texts, np.array(a_labels)), max_len=32, progress=False)
    a_again = compute_importance(model, tokenizer, Split(a_texts, np.array(a_labels)), max_len=32, progress=False)
    b = compute_importance(model, tokenizer, Split(b_texts, np.array(b_labels)), max_len=32, progress=False)
    assert a["heads"].shape == (2, 4) and a["neurons"].shape == (2, 37)
    assert (a["heads"] >= 0).all() and a["heads"].sum() > 0 and a["neurons"].sum() > 0
    np.testing.assert_array_equal(a["heads"], a_again["heads"])  # deterministic for the same data
    assert not np.allclose(a["heads"], b["heads"]) and not np.allclose(a["neurons"], b["neurons"])
    # Scoring leaves the model as it was: same weights, trainable again, no hooks left behind.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())
    assert not model.bert.encoder.layer[0].output.dense._forward_pre_hooks


def test_head_selection_is_global_and_keeps_a_head_per_layer():
    importance = np.array([[1.0, 1.0, 1.0, 1.0], [0.01, 0.02, 5.0, 5.0]])
    kept = select_heads(importance, 25)  # 2 of 8 heads; normalised per layer, layer 1's two weak heads go
    assert kept == [[0, 1, 2, 3], [2, 3]]
    kept = select_heads(importance, 95)  # 8 requested, but every layer keeps one head
    assert [len(k) for k in kept] == [1, 1]
    neurons = select_neurons(np.arange(20, dtype=float).reshape(2, 10)[:, ::-1], 30)
    assert neurons == [[0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6]]  # per layer, the 30% smallest go


def test_head_ffn_ratio_moves_the_sparsity_between_heads_and_ffn_at_the_same_encoder_share(tiny_bert):
    from types import SimpleNamespace

    minilm = SimpleNamespace(hidden_size=384, intermediate_size=1536)  # attention: a third of the weights
    assert split_sparsity(50, 1.0, minilm) == pytest.approx((50, 50))
    assert split_sparsity(50, 0.5, minilm) == pytest.approx((30, 60))  # 30/3 + 2*60/3 = 50
    assert split_sparsity(50, 2.0, minilm) == pytest.approx((75, 37.5))
    with pytest.raises(UserError, match="--head-ffn-ratio 3"):
        split_sparsity(80, 3.0, minilm)  # 144 % of the heads
    with pytest.raises(UserError, match="must be > 0"):
        split_sparsity(50, 0.0, minilm)
    # On a real (tiny) config: the encoder share removed stays near 50 % whatever the ratio (rounding to whole
    # heads and neurons aside), while the heads removed grow with the ratio.
    model, _, _ = load_model_folder(tiny_bert)
    rng = np.random.default_rng(0)
    importance = {"heads": rng.random((2, 4)), "neurons": rng.random((2, 37))}
    encoder = shrunk_parameter_count(model.config, build_spec(model.config, importance, 0))["encoder"]
    heads_removed = []
    for ratio in (0.5, 1.0, 2.0):
        spec = build_spec(model.config, importance, 50, ratio)
        share = 1 - shrunk_parameter_count(model.config, spec)["encoder"] / encoder
        assert 0.4 < share < 0.6, (ratio, share)
        heads_removed.append(8 - sum(spec.heads_per_layer))
        assert spec.extra["head_ffn_ratio"] == ratio
    assert heads_removed[0] < heads_removed[1] < heads_removed[2]
    # the default ratio keeps the run key of models pruned before the flag existed; another one changes it
    assert "head_ffn_ratio" not in _run_key({"sparsity": 50.0, "head_ffn_ratio": 1.0}, tiny_bert)
    assert _run_key({"sparsity": 50.0, "head_ffn_ratio": 0.5}, tiny_bert)["head_ffn_ratio"] == 0.5


# ----------------------------------------------------------------------------------------------- pruning
def test_pruning_manifest_masks_and_recovery(chain):
    pruned = chain["pruned"]
    manifest = _manifest(pruned)
    spec = PruningSpec.load(pruned)
    assert not spec.shrunk
    assert sum(spec.heads_per_layer) == 4 and min(spec.heads_per_layer) >= 1  # 50% of 2x4 heads, global
    assert spec.neurons_per_layer == [19, 19]  # 50% of 37 per layer: round(18.5) = 18 dropped
    p = manifest["pruning"]
    assert p["heads_per_layer"] == spec.heads_per_layer and p["kept_heads"] == [l.heads for l in spec.layers]
    assert manifest["sparsity_achieved"]["heads"] == pytest.approx(0.5)
    assert manifest["sparsity_achieved"]["ffn_neurons"] == pytest.approx(18 / 37)
    assert 0.3 < manifest["sparsity_achieved"]["encoder_parameters"] < 0.6
    assert manifest["remaining_encoder_parameters"] == manifest["parameters_after_shrink"]["encoder"]
    assert manifest["distill"]["enabled"] and manifest["training"]["completed"]
    assert manifest["data"]["n_importance"] == 64
    # Re-fine-tuning with the masks fixed recovers the separable toy task (chance is 0.25).
    assert manifest["source_accuracy"] > 0.8
    assert manifest["accuracy_after_refinetune"] > 0.8, manifest["metrics"]
    assert manifest["accuracy_after_refinetune"] >= manifest["accuracy_after_pruning"]
    assert manifest["metrics"]["n_test"] == manifest["metrics_after_pruning"]["n_test"] == 80
    importance = json.loads((pruned / "importance.json").read_text())
    assert np.array(importance["head_importance_raw"]).shape == (2, 4)
    assert np.array(importance["neuron_importance_raw"]).shape == (2, 37)
    # Every weight feeding a pruned head or neuron is exactly zero after re-fine-tuning.
    model, _, _ = load_model_folder(pruned)
    for layer, keep in zip(model.bert.encoder.layer, spec.layers):
        for h in set(range(4)) - set(keep.heads):
            assert not layer.attention.self.value.weight[h * 8:(h + 1) * 8].any()
            assert not layer.attention.output.dense.weight[:, h * 8:(h + 1) * 8].any()
        dropped = sorted(set(range(37)) - set(keep.neurons))
        assert not layer.intermediate.dense.weight[dropped].any() and not layer.output.dense.weight[:, dropped].any()
    assert not (chain["root"] / "pruned50.checkpoints").exists()


def test_pruning_rerun_with_same_arguments_is_skipped(chain):
    pruned = chain["pruned"]
    before = (pruned / "model.safetensors").stat().st_mtime_ns
    assert prune_main(["--model", str(chain["tiny"]), "--sparsity", "50", "--output", str(pruned), "--data",
                       str(chain["data"]), *PRUNE_ARGS]) == 0
    assert (pruned / "model.safetensors").stat().st_mtime_ns == before


# ----------------------------------------------------------------------------------------------- shrinking
@pytest.mark.parametrize("which", ["shrunk", "shrunk_ts"])
def test_shrunk_equals_masked_and_reloads(chain, which):
    shrunk = chain[which]
    spec = PruningSpec.load(shrunk)
    assert spec.shrunk and spec.heads_per_layer == PruningSpec.load(chain["pruned"]).heads_per_layer
    if which == "shrunk_ts":
        assert (shrunk / "pytorch_model.bin").is_file() and not list(shrunk.glob("*.safetensors"))
        assert isinstance(torch.load(shrunk / "pytorch_model.bin", weights_only=True), dict)  # a state dict, no module
    model, _, _ = load_model_folder(shrunk)
    layer0 = model.bert.encoder.layer[0]
    assert layer0.attention.self.query.out_features == spec.heads_per_layer[0] * 8
    assert layer0.intermediate.dense.out_features == spec.neurons_per_layer[0]
    manifest = _manifest(shrunk)
    assert manifest["parity"]["max_abs_logit_diff"] <= 1e-5 and manifest["parity"]["n_texts"] == 64
    assert manifest["parameters_after"]["encoder"] < manifest["parameters_before"]["encoder"]
    # Real news-style texts (the shipped demo sample) and the toy test split, through load_classifier.
    texts = load_test_split("", 60, 0).texts + load_test_split(str(chain["data"]), 40, 0).texts
    masked = load_classifier(chain["pruned"], device="cpu").predict_logits(texts)
    clf = load_classifier(shrunk, device="cpu")
    assert clf.info["pruning"] == "shrunk"
    assert np.abs(clf.predict_logits(texts) - masked).max() <= 1e-5
    assert clf.parameter_count()["encoder"] == _manifest(chain["pruned"])["remaining_encoder_parameters"]


# ----------------------------------------------------------------------------------------------- int8
def test_int8_of_shrunk_model_round_trips(chain):
    from common.models.torch_int8 import quantize_dynamic_int8

    out = chain["root"] / "quantized" / "pruned50_8bit.pt"
    assert quantize_main(["--model", str(chain["shrunk"]), "--output", str(out), "--data", str(chain["data"]),
                          "--check-samples", "40"]) == 0
    manifest = json.loads(out.with_name("pruned50_8bit.manifest.json").read_text())
    assert manifest["source_pruning"] == "shrunk" and manifest["size_bytes_after"] == out.stat().st_size
    assert manifest["agreement"]["n_texts"] == 40 and manifest["agreement"]["prediction_agreement"] >= 0.9
    clf = load_classifier(out, device="cpu")
    assert clf.kind == "torch-int8" and clf.info["pruning"] == "shrunk"
    texts = load_test_split(str(chain["data"]), 40, 0).texts
    model, tokenizer, _ = load_model_folder(chain["shrunk"])
    from common.models.classifier import TorchClassifier

    in_memory = TorchClassifier(quantize_dynamic_int8(model), tokenizer, device="cpu").predict_logits(texts)
    np.testing.assert_allclose(clf.predict_logits(texts), in_memory, atol=1e-6)
    assert clf.parameter_count()["encoder"] == _manifest(chain["shrunk"])["parameters_after"]["encoder"]


def test_int8_of_base_model_is_smaller(tmp_path, tiny_bert, toy_data):
    out = tmp_path / "base_8bit.pt"
    assert quantize_main(["--model", str(tiny_bert), "--output", str(out), "--data", str(toy_data)]) == 0
    manifest = json.loads((tmp_path / "base_8bit.manifest.json").read_text())
    assert manifest["source_pruning"] is None and manifest["size_bytes_before"] > 0
    assert load_classifier(out, device="cpu").predict_proba(["a team goal"]).shape == (1, 4)


def test_int8_on_a_gpu_device_falls_back_to_cpu(tmp_path, tiny_bert, toy_data, caplog):
    """DEVICE=auto resolves to cuda on a GPU host; the int8 variant must still run (on CPU), not fail."""
    from common.models.classifier import load_payload
    from common.models.torch_int8 import _load

    out = tmp_path / "base_8bit.pt"
    assert quantize_main(["--model", str(tiny_bert), "--output", str(out), "--data", str(toy_data)]) == 0
    with caplog.at_level("WARNING"):
        clf = _load(load_payload(out), path=out, device="cuda", dtype="fp32")
    assert clf.device == "cpu" and "CPU only" in caplog.text
    texts = ["a team goal", "stocks fell sharply on friday"]
    np.testing.assert_array_equal(clf.predict_proba(texts), load_classifier(out, device="cpu").predict_proba(texts))


# ----------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("sparsity", ["-1", "96", "150"])
def test_sparsity_out_of_range_exits_2(tmp_path, tiny_bert, toy_data, sparsity, caplog):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        prune_main(["--model", str(tiny_bert), "--sparsity", sparsity, "--output", str(out), "--data", str(toy_data)])
    assert exc.value.code == 2 and "--sparsity" in caplog.text and not out.exists()


@pytest.mark.parametrize("flag", [["--distill-weight", "1.5"], ["--epochs", "0"], ["--importance-samples", "0"],
                                  ["--head-ffn-ratio", "0"], ["--sparsity", "90", "--head-ffn-ratio", "3"]])
def test_bad_pruning_flags_exit_2_before_any_work(tmp_path, tiny_bert, toy_data, flag):
    with pytest.raises(SystemExit) as exc:
        prune_main(["--model", str(tiny_bert), "--sparsity", "20", "--output", str(tmp_path / "o"),
                    "--data", str(toy_data), *flag])
    assert exc.value.code == 2 and not (tmp_path / "o").exists()


def test_missing_model_folder_exits_2(tmp_path, toy_data, caplog):
    with pytest.raises(SystemExit) as exc:
        prune_main(["--model", str(tmp_path / "nope"), "--sparsity", "20", "--output", str(tmp_path / "o"),
                    "--data", str(toy_data)])
    assert exc.value.code == 2 and "nope does not exist" in caplog.text
    with pytest.raises(SystemExit) as exc:
        shrink_main(["--model_path", str(tmp_path / "nope"), "--output_path_shrunk_model", str(tmp_path / "s")])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        quantize_main(["--model", str(tmp_path / "nope"), "--output", str(tmp_path / "q.pt")])
    assert exc.value.code == 2 and "does not exist" in caplog.text
    assert not any((tmp_path / n).exists() for n in ("o", "s", "q.pt"))


def test_shrunk_folder_without_spec_exits_2(chain, tmp_path, caplog):
    broken = tmp_path / "no_spec"
    shutil.copytree(chain["shrunk"], broken)
    (broken / SPEC_FILE).unlink()
    with pytest.raises(SystemExit) as exc:
        shrink_main(["--model_path", str(broken), "--output_path_shrunk_model", str(tmp_path / "s")])
    assert exc.value.code == 2 and SPEC_FILE in caplog.text and not (tmp_path / "s").exists()
    with pytest.raises(SystemExit) as exc:
        quantize_main(["--model", str(broken), "--output", str(tmp_path / "q.pt")])
    assert exc.value.code == 2 and not (tmp_path / "q.pt").exists()
    with pytest.raises(UserError, match=SPEC_FILE):
        load_classifier(broken, device="cpu")


def test_already_pruned_or_shrunk_inputs_are_refused(chain, tmp_path):
    with pytest.raises(SystemExit) as exc:
        prune_main(["--model", str(chain["pruned"]), "--sparsity", "20", "--output", str(tmp_path / "p")])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        shrink_main(["--model_path", str(chain["shrunk"]), "--output_path_shrunk_model", str(tmp_path / "s")])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        shrink_main(["--model_path", str(chain["tiny"]), "--output_path_shrunk_model", str(tmp_path / "s")])
    assert exc.value.code == 2


# ----------------------------------------------------------------------------------------------- 16-bit
def test_16bit_evaluation_matches_fp32_keys_and_predictions(chain, tmp_path):
    common = ["--model", str(chain["pruned"]), "--data", str(chain["data"]), "--test-samples", "40",
              "--device", "cpu", "--latency-requests", "3", "--max-len", "32"]
    assert eval_main([*common, "--variant", "p_fp32", "--output", str(tmp_path / "fp32.json")]) == 0
    fp32 = json.loads((tmp_path / "fp32.json").read_text())
    for dtype in ("fp16", "bf16"):
        out = tmp_path / f"{dtype}.json"
        assert half_main([*common, "--dtype", dtype, "--variant", f"p_{dtype}", "--output", str(out)]) == 0
        half = json.loads(out.read_text())
        assert set(half) == set(fp32) and half["dtype"] == dtype and half["n_test"] == 40
        # 16-bit rounding may flip a borderline prediction, not the model's behaviour.
        assert abs(half["accuracy"] - fp32["accuracy"]) <= 0.05
        agreement = np.mean(np.array(half["confusion_matrix"]) == np.array(fp32["confusion_matrix"]))
        assert agreement >= 0.75


# ----------------------------------------------------------------------------------------------- properties
def test_model_properties_of_every_variant_and_table(chain, tmp_path):
    from common.models.torch_int8 import quantize_dynamic_int8, save_quantized

    int8 = tmp_path / "s8.pt"
    model, tokenizer, spec = load_model_folder(chain["shrunk"])
    save_quantized(quantize_dynamic_int8(model), model.config, tokenizer, spec, int8)
    props_dir = tmp_path / "properties"
    variants = {"base": chain["tiny"], "pruned50_masked": chain["pruned"], "pruned50": chain["shrunk"],
                "pruned50_8bit": int8}
    for name, path in variants.items():
        assert properties_main(["--model", str(path), "--variant", name, "--output", str(props_dir / f"{name}.json")]) == 0
    props = {name: json.loads((props_dir / f"{name}.json").read_text()) for name in variants}
    spec = PruningSpec.load(chain["pruned"])
    assert props["base"]["heads_per_layer"] == [4, 4] and props["base"]["ffn_width_per_layer"] == [37, 37]
    for name in ("pruned50_masked", "pruned50", "pruned50_8bit"):
        assert props[name]["heads_per_layer"] == spec.heads_per_layer
        assert props[name]["ffn_width_per_layer"] == spec.neurons_per_layer
    assert props["pruned50_masked"]["heads_per_layer_physical"] == [4, 4]
    assert props["pruned50"]["heads_per_layer_physical"] == spec.heads_per_layer
    assert props["pruned50_masked"]["zero_fraction"] > props["base"]["zero_fraction"] + 0.2
    assert props["pruned50"]["parameters"]["encoder"] == _manifest(chain["pruned"])["remaining_encoder_parameters"]
    assert props["pruned50_8bit"]["parameters"] == props["pruned50"]["parameters"]
    assert props["pruned50_masked"]["parameters"]["total"] == props["base"]["parameters"]["total"]
    assert props["base"]["size_bytes"] > 0 and props["pruned50_8bit"]["format"] == "torch_dynamic_int8"
    table = props_dir / "properties.md"
    assert properties_main(["--table", str(props_dir), "--output", str(table)]) == 0
    text = table.read_text()
    assert all(f"| {name} " in text for name in variants)
    assert "/".join(map(str, spec.heads_per_layer)) in text
    # --variants: exactly the named JSONs (a JSON left by an earlier PRUNE_PCTS stays out); a missing one stops
    only = props_dir / "only.md"
    assert properties_main(["--table", str(props_dir), "--variants", "base", "pruned50", "--output", str(only)]) == 0
    assert "| base " in only.read_text() and "| pruned50 " in only.read_text()
    assert "pruned50_8bit" not in only.read_text() and "pruned50_masked" not in only.read_text()
    with pytest.raises(SystemExit) as exc:
        properties_main(["--table", str(props_dir), "--variants", "base", "pruned70", "--output",
                         str(props_dir / "missing.md")])
    assert exc.value.code == 2
    assert not (props_dir / "missing.md").exists()


# ----------------------------------------------------------------------------------------------- MiniLM
@pytest.mark.slow
def test_minilm_pruned_masks_equal_shrunk_on_real_news(ag_news_dir):
    """MiniLM-L6 with a 30% spec from real training rows: shrunk logits == masked logits on real test texts."""
    from common.data import load_dataset
    from common.models.modeling import new_classifier
    from common.models.pruning_spec import apply_mask_hooks, shrink_model
    from common.compress.pruning import build_spec
    from common.compress.shrink import model_logits

    torch.manual_seed(0)
    model, tokenizer = new_classifier("minilm")
    train = load_dataset(str(ag_news_dir), train_samples=48, seed=0, validation_fraction=0).train
    importance = compute_importance(model, tokenizer, train, max_len=64, batch_size=16, progress=False)
    spec = build_spec(model.config, importance, 30)
    assert sum(spec.heads_per_layer) == 72 - round(0.3 * 72) and min(spec.heads_per_layer) >= 1
    assert spec.neurons_per_layer == [1536 - round(0.3 * 1536)] * 6
    texts = load_test_split(str(ag_news_dir), 32, 0).texts
    hooks = apply_mask_hooks(model, spec)
    masked = model_logits(model, tokenizer, texts, max_len=64)
    hooks.remove()
    shrink_model(model, spec)
    assert np.abs(model_logits(model, tokenizer, texts, max_len=64) - masked).max() <= 1e-5
