"""Faults and hostile inputs (issue 13): each case is planted, and each check also passes a good input.

Item numbers refer to the issue. No MiniLM, no shared data: tiny BERT and toy data only.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from common.models.classifier import TOKENIZER_FILES, load_classifier
from common.cli import UserError
from tests.conftest import copy_sources, toy_texts

TEXTS = toy_texts(6)[0]


def _int8_payload(tiny_bert: Path) -> dict:
    from common.models.classifier import tokenizer_files
    from common.models.modeling import load_model_folder
    from common.models.torch_int8 import FORMAT, SETTINGS, quantize_dynamic_int8

    model, tokenizer, _ = load_model_folder(tiny_bert)
    return {"format": FORMAT, "settings": dict(SETTINGS), "config": model.config.to_dict(), "pruning_spec": None,
            "tokenizer_files": tokenizer_files(tokenizer), "state_dict": quantize_dynamic_int8(model).state_dict()}


def _save(payload: dict, path: Path) -> Path:
    torch.save(payload, path)
    return path


def _exit_code_of_evaluation(model: Path, tmp_path: Path, toy_data: Path, caplog) -> tuple[int, str]:
    """Run the evaluation stage on ``model``; (exit code, the error lines it logged)."""
    from inference.run_inference_on_model import main

    output = tmp_path / "metrics" / "x.json"
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        try:
            code = main(["--model", str(model), "--variant", "x", "--output", str(output), "--data", str(toy_data),
                         "--device", "cpu", "--latency-requests", "2", "--test-samples", "8"])
        except SystemExit as exc:
            code = exc.code
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    if code != 0:
        assert not output.exists(), "a failed run must leave no metrics file"
    return code, "\n".join(errors)


# ----------------------------------------------------------------------------------------------- 1 security
@pytest.mark.parametrize("name", ["../../../escaped_by_payload.txt", "/tmp/escaped_by_payload_abs.txt",
                                  "sub/vocab.txt", "model.safetensors"])
def test_payload_tokenizer_names_outside_the_allow_list_are_refused(tiny_bert, tmp_path, name):
    payload = _int8_payload(tiny_bert)
    payload["tokenizer_files"][name] = "planted"
    path = _save(payload, tmp_path / "evil.pt")
    targets = [Path("/tmp/escaped_by_payload_abs.txt"), Path(__import__("tempfile").gettempdir()).parent
               / "escaped_by_payload.txt"]
    for target in targets:
        target.unlink(missing_ok=True)
    with pytest.raises(UserError, match="not among the allowed names"):
        load_classifier(path, device="cpu")
    assert not any(t.exists() for t in targets)


def test_payload_with_allowed_tokenizer_names_loads(tiny_bert, tmp_path):
    payload = _int8_payload(tiny_bert)
    assert set(payload["tokenizer_files"]) <= set(TOKENIZER_FILES)
    clf = load_classifier(_save(payload, tmp_path / "good.pt"), device="cpu")
    assert clf.predict_proba(TEXTS).shape == (len(TEXTS), 4)


# ----------------------------------------------------------------------------------------------- 3 silent wrong answers
def test_folder_without_tokenizer_files_is_refused(tiny_bert, tmp_path):
    broken = shutil.copytree(tiny_bert, tmp_path / "no_tokenizer")
    for name in TOKENIZER_FILES:
        (broken / name).unlink(missing_ok=True)
    with pytest.raises(UserError, match=r"no tokenizer: none of tokenizer\.json or vocab\.txt"):
        load_classifier(broken, device="cpu")
    load_classifier(tiny_bert, device="cpu")  # the intact folder loads


@pytest.mark.parametrize("drop,needle", [("classifier.", r"missing 2 tensors \(classifier\.bias, classifier\.weight\)"),
                                         ("encoder.layer.1.", r"missing 16 tensors \(bert\.encoder\.layer\.1\.")])
def test_weights_without_head_or_layers_are_refused(tiny_bert, tmp_path, drop, needle):
    from safetensors.torch import load_file, save_file

    broken = shutil.copytree(tiny_bert, tmp_path / "partial")
    state = load_file(broken / "model.safetensors")
    save_file({k: v for k, v in state.items() if drop not in k}, broken / "model.safetensors")
    with pytest.raises(UserError, match=needle):
        load_classifier(broken, device="cpu")


def test_weights_with_unexpected_tensors_are_refused(tiny_bert, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = shutil.copytree(tiny_bert, tmp_path / "extra")
    state = load_file(broken / "model.safetensors")
    state["bert.encoder.layer.7.output.dense.weight"] = torch.zeros(2, 2)
    save_file(state, broken / "model.safetensors")
    with pytest.raises(UserError, match=r"unexpected 1 tensors \(bert\.encoder\.layer\.7\.output\.dense\.weight\)"):
        load_classifier(broken, device="cpu")


def test_shrunk_and_masked_folders_with_missing_tensors_are_refused(tiny_bert, tmp_path):
    from safetensors.torch import load_file, save_file

    from common.models.modeling import save_model_folder, load_model_folder
    from common.models.pruning_spec import PruningSpec, shrink_model, shrunk_spec

    model, tokenizer, _ = load_model_folder(tiny_bert)
    spec = PruningSpec.full(model.config)
    spec.layers[0].heads = [0, 2]
    spec.layers[1].neurons = list(range(20))
    masked = tmp_path / "masked"
    save_model_folder(model, tokenizer, masked, spec)
    shrink_model(model, spec)
    shrunk = tmp_path / "shrunk"
    save_model_folder(model, tokenizer, shrunk, shrunk_spec(spec))
    for folder in (masked, shrunk):
        assert load_classifier(folder, device="cpu").predict_proba(TEXTS).shape == (len(TEXTS), 4)
        state = load_file(folder / "model.safetensors")
        save_file({k: v for k, v in state.items() if not k.startswith("classifier.")}, folder / "model.safetensors")
        with pytest.raises(UserError, match=r"missing 2 tensors \(classifier\.bias"):
            load_classifier(folder, device="cpu")


# ----------------------------------------------------------------------------------------------- 4 input types
@pytest.mark.parametrize("bad,needle", [("Stocks rally", "not a single str"),
                                        (b"Stocks rally", "not a single bytes"),
                                        (["ok", None], r"texts\[1\] is NoneType"),
                                        (["ok", 123], r"texts\[1\] is int"),
                                        ([float("nan"), "ok"], r"texts\[0\] is float"),
                                        (["ok", b"bytes"], r"texts\[1\] is bytes")])
def test_predict_rejects_a_bare_string_and_non_string_items(tiny_bert, bad, needle):
    clf = load_classifier(tiny_bert, device="cpu")
    with pytest.raises(TypeError, match=needle):
        clf.predict_proba(bad)
    assert clf.predict_proba(["Stocks rally"]).shape == (1, 4)
    assert clf.predict_proba(np.array(["Stocks rally", "goal"])).shape == (2, 4)  # numpy str_ items are str


# ----------------------------------------------------------------------------------------------- 5 data
def _data_folder(tmp_path: Path, train: pd.DataFrame, name: str = "d") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    texts, labels = toy_texts(8, 3)
    pd.DataFrame({"text": texts, "label": labels}).to_csv(folder / "test.csv", index=False)
    train.to_parquet(folder / "train.parquet") if name.endswith("parquet") else train.to_csv(folder / "train.csv",
                                                                                          index=False)
    return folder


@pytest.mark.parametrize("case,needle", [
    ("float_label", r"train\.csv line 4 has label '1\.7', not an integer"),
    ("none_text", r"train\.parquet row 2 has a missing text \((None|nan)\)"),
    ("nan_text", r"train\.parquet row 1 has a missing text \(nan\)"),
    ("empty_text", r"train\.csv line 3 has an empty text"),
    ("one_class", r"train\.csv has only class \['Sports'\]; training needs rows of at least two classes"),
])
def test_bad_training_data_names_file_row_and_fix(tmp_path, case, needle):
    from common.data import load_dataset

    texts, labels = toy_texts(8, 1)
    frame = pd.DataFrame({"text": texts, "label": labels})
    name = "d"
    if case == "float_label":
        frame["label"] = frame["label"].astype(float)
        frame.loc[2, "label"] = 1.7
    elif case in ("none_text", "nan_text"):
        name = "d_parquet"
        frame["text"] = frame["text"].astype(object)
        frame.loc[2 if case == "none_text" else 1, "text"] = None if case == "none_text" else float("nan")
    elif case == "empty_text":
        frame.loc[1, "text"] = "  "
    elif case == "one_class":
        frame["label"] = 1
    with pytest.raises(UserError, match=needle):
        load_dataset(_data_folder(tmp_path, frame, name))


def test_integral_float_labels_and_good_data_load(tmp_path):
    from common.data import load_dataset

    texts, labels = toy_texts(8, 1)
    frame = pd.DataFrame({"text": texts, "label": np.asarray(labels, dtype=float)})
    data = load_dataset(_data_folder(tmp_path, frame), validation_fraction=0)
    assert data.train.labels.tolist() == labels and data.train.texts == texts


def test_bad_data_ends_the_stage_with_exit_2_and_one_line(tmp_path, tiny_bert, caplog):
    texts, labels = toy_texts(8, 1)
    frame = pd.DataFrame({"text": texts, "label": np.asarray(labels, dtype=float)})
    frame.loc[0, "label"] = 0.5
    folder = tmp_path / "bad"
    folder.mkdir()
    frame.to_csv(folder / "test.csv", index=False)
    frame.to_csv(folder / "train.csv", index=False)
    code, errors = _exit_code_of_evaluation(tiny_bert, tmp_path, folder, caplog)
    assert code == 2 and "test.csv line 2 has label '0.5'" in errors and "Traceback" not in errors


# ----------------------------------------------------------------------------------------------- 7 unencodable text
def test_a_lone_surrogate_does_not_kill_the_batch(tiny_bert, tmp_path, caplog):
    import common.models.base as classifier_module

    from common.export.onnx_export import export_model

    onnx_path = tmp_path / "onnx" / "tiny.onnx"
    export_model(tiny_bert, onnx_path, data="", max_len=32)
    payload_path = _save(_int8_payload(tiny_bert), tmp_path / "tiny_int8.pt")
    texts = ["market shares rally", "bad \ud800 text", "goal by the striker"]
    for model in (tiny_bert, onnx_path, payload_path):
        classifier_module._warned_unencodable = False
        clf = load_classifier(model, device="cpu")
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            proba = clf.predict_proba(texts)
            clf.predict_proba(texts)
        assert proba.shape == (3, 4) and np.isfinite(proba).all()
        # the batch is scored as if the bad code point had been U+FFFD (same batch: int8 is batch-dependent)
        np.testing.assert_allclose(proba, clf.predict_proba([texts[0], "bad \ufffd text", texts[2]]), atol=1e-6)
        warnings = [r for r in caplog.records if "cannot encode" in r.getMessage()]
        assert len(warnings) == 1, "said once, not per text or per call"


# ----------------------------------------------------------------------------------------------- 8 one line, exit 2
def test_truncated_safetensors_is_one_line_exit_2(tiny_bert, tmp_path, toy_data, caplog):
    broken = shutil.copytree(tiny_bert, tmp_path / "truncated")
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    code, errors = _exit_code_of_evaluation(broken, tmp_path, toy_data, caplog)
    assert code == 2 and "model.safetensors is truncated or corrupt" in errors
    assert _exit_code_of_evaluation(tiny_bert, tmp_path, toy_data, caplog)[0] == 0


class _Planted:
    def __reduce__(self):
        return (os.system, ("touch planted_by_pickle",))


def test_malicious_model_pt_in_a_folder_is_refused_in_one_line(tiny_bert, tmp_path, toy_data, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = shutil.copytree(tiny_bert, tmp_path / "evil_folder")
    (folder / "model.safetensors").unlink()
    torch.save({"bert.embeddings.word_embeddings.weight": _Planted()}, folder / "model.pt")
    code, errors = _exit_code_of_evaluation(folder, tmp_path, toy_data, caplog)
    assert code == 2 and "is not a plain state dict this toolkit wrote (UnpicklingError" in errors
    assert len(errors.splitlines()) == 1 and not (tmp_path / "planted_by_pickle").exists()


def test_plain_state_dict_folder_still_loads(tiny_bert, tmp_path):
    from common.models.modeling import load_model_folder, save_model_folder

    model, tokenizer, _ = load_model_folder(tiny_bert)
    save_model_folder(model, tokenizer, tmp_path / "pt_folder", method="torch_save")
    np.testing.assert_allclose(load_classifier(tmp_path / "pt_folder", device="cpu").predict_proba(TEXTS),
                               load_classifier(tiny_bert, device="cpu").predict_proba(TEXTS), atol=1e-6)


@pytest.mark.parametrize("damage,needle", [
    ("empty", r"incomplete torch_dynamic_int8 payload \(missing or empty: state_dict\)"),
    ("partial", r"missing \d+ tensors \(bert\.encoder\.layer\.1\."),
    ("no_config", r"missing or empty: config"),
])
def test_int8_payload_with_empty_or_partial_state_dict_is_one_line_exit_2(tiny_bert, tmp_path, toy_data, caplog,
                                                                          damage, needle):
    payload = _int8_payload(tiny_bert)
    if damage == "empty":
        payload["state_dict"] = {}
    elif damage == "partial":
        payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if "layer.1." not in k}
    else:
        del payload["config"]
    code, errors = _exit_code_of_evaluation(_save(payload, tmp_path / "bad.pt"), tmp_path, toy_data, caplog)
    assert code == 2 and len(errors.splitlines()) == 1
    assert pytest.importorskip("re").search(needle, errors), errors


def _onnx_with_output(folder: Path, tokenizer_source: Path, output_name: str) -> Path:
    import onnx
    from onnx import TensorProto, helper

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "config.json"):
        shutil.copy(tokenizer_source / name, folder / name)
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])
    out = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", 4])
    # logits = one-hot-ish float of the first 4 token ids: enough to be a valid graph with 4 outputs per row
    nodes = [helper.make_node("Slice", ["input_ids", "starts", "ends", "axes"], ["first4"]),
             helper.make_node("Cast", ["first4"], [output_name], to=TensorProto.FLOAT)]
    inits = [helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in (("starts", 0), ("ends", 4), ("axes", 1))]
    graph = helper.make_graph(nodes, "g", [ids], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by older ONNX Runtime builds too
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    return path


def test_onnx_without_logits_output_is_refused_at_load(tiny_bert, tmp_path, toy_data, caplog):
    bad = _onnx_with_output(tmp_path / "bad_onnx", tiny_bert, "probabilities")
    with pytest.raises(UserError, match=r"has outputs \['probabilities'\] but no 'logits' output"):
        load_classifier(bad, device="cpu")
    code, errors = _exit_code_of_evaluation(bad, tmp_path, toy_data, caplog)
    assert code == 2 and len(errors.splitlines()) == 1
    good = _onnx_with_output(tmp_path / "good_onnx", tiny_bert, "logits")
    assert load_classifier(good, device="cpu").predict_logits(["a b c d e"]).shape == (1, 4)


# ----------------------------------------------------------------------------------------------- 10 stale temps
def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_stale_temps_of_a_killed_export_are_removed_by_the_next_run(tiny_bert, tmp_path):
    from common.manifest import _HOST
    from common.export.onnx_export import export_model

    folder = tmp_path / "onnx"
    folder.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        stale = folder / f".tiny.tmp-{_dead_pid()}@{_HOST}-abc123"       # a killed export of this target
        stale_json = folder / f".tiny.manifest.json.tmp-{_dead_pid()}@{_HOST}-x.tmp"
        live = folder / f".tiny.tmp-{sleeper.pid}@{_HOST}-def456"        # a concurrent run still writing
        foreign = folder / f".tiny.tmp-{_dead_pid()}@some_other_host-1"  # another machine's PID means nothing here
        other_target = folder / f".tiny_int8.tmp-{_dead_pid()}@{_HOST}-2"
        for path in (stale, live, foreign, other_target):
            path.mkdir()
            (path / "fp32.onnx").write_bytes(b"x" * 1000)
        stale_json.write_text("{")
        export_model(tiny_bert, folder / "tiny.onnx", data="", max_len=32)
        assert not stale.exists() and not stale_json.exists()
        assert live.exists() and foreign.exists() and other_target.exists()
        leftovers = sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
        assert leftovers == sorted([live.name, foreign.name, other_target.name])
    finally:
        sleeper.kill()
        sleeper.wait()


def test_atomic_writers_clean_their_own_targets_stale_temps(tmp_path):
    from common.manifest import _HOST, atomic_output_dir, atomic_output_file, write_json_atomic

    dead = _dead_pid()
    stale_dir = tmp_path / f".model.tmp-{dead}@{_HOST}"
    stale_dir.mkdir()
    stale_old = tmp_path / f".model.tmp-{dead}@{_HOST}-old"
    stale_old.mkdir()
    stale_file = tmp_path / f".table.tmp-{dead}@{_HOST}.csv"
    stale_file.write_text("partial")
    unparsable = tmp_path / ".model.tmp-notapid"
    unparsable.mkdir()
    with atomic_output_dir(tmp_path / "model") as tmp:
        (tmp / "manifest.json").write_text("{}")
    with atomic_output_file(tmp_path / "table.csv") as tmp:
        tmp.write_text("a\n")
    write_json_atomic(tmp_path / "x.json", {"a": 1})
    assert not stale_dir.exists() and not stale_old.exists() and not stale_file.exists()
    assert unparsable.exists(), "a temp whose owner cannot be told is kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.tmp-notapid", "model", "table.csv", "x.json"]


# ----------------------------------------------------------------------------------------------- 9, 11 checkpoints
FT_ARGS = ["--epochs", "2", "--learning-rate", "3e-3", "--batch-size", "16", "--max-len", "32", "--device", "cpu",
           "--validation-fraction", "0.1", "--seed", "0"]


def _cut_checkpoint(folder: Path, how: str) -> None:
    """What a kill -9 during the Trainer's checkpoint write leaves behind."""
    if how in ("cut_optimizer", "both"):
        optimizer = folder / "optimizer.pt"
        optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 3])
    if how in ("no_state", "both"):
        (folder / "trainer_state.json").unlink()


def test_checkpoint_completeness_check_can_fail(tmp_path, toy_data):
    from common.compress.training import checkpoint_problem
    from train.fine_tuning.run_fine_tune_bert_agnews import main

    from tests.conftest import make_tiny_bert

    tiny = make_tiny_bert(tmp_path / "tiny")
    out = tmp_path / "ft"
    main(["--base-model", str(tiny), "--data", str(toy_data), "--output", str(out), *FT_ARGS, "--save-steps", "5",
          "--max-steps-this-run", "5"])
    checkpoint = tmp_path / "ft.checkpoints" / "checkpoint-5"
    assert checkpoint_problem(checkpoint) is None
    for how, needle in (("cut_optimizer", "optimizer.pt cut or corrupt"), ("no_state", "no trainer_state.json")):
        damaged = shutil.copytree(checkpoint, tmp_path / how)
        _cut_checkpoint(damaged, how)
        assert needle in checkpoint_problem(damaged)
    weights = shutil.copytree(checkpoint, tmp_path / "cut_weights")
    data = (weights / "model.safetensors").read_bytes()
    (weights / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert "model.safetensors cut or corrupt" in checkpoint_problem(weights)


@pytest.mark.parametrize("damage,resumed", [("newest", "checkpoint-5"), ("all", None)])
def test_fine_tune_rerun_after_a_cut_checkpoint_finishes(tmp_path, toy_data, caplog, damage, resumed):
    from train.fine_tuning.run_fine_tune_bert_agnews import main

    from tests.conftest import make_tiny_bert

    tiny = make_tiny_bert(tmp_path / "tiny")
    out = tmp_path / "ft"
    args = ["--base-model", str(tiny), "--data", str(toy_data), "--output", str(out), *FT_ARGS, "--save-steps", "5"]
    assert main([*args, "--max-steps-this-run", "10"]) == 0
    checkpoints = tmp_path / "ft.checkpoints"
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-5"]
    _cut_checkpoint(checkpoints / "checkpoint-10", "both")
    if damage == "all":
        _cut_checkpoint(checkpoints / "checkpoint-5", "no_state")
    caplog.clear()
    caplog.set_level(logging.WARNING)
    assert main(args) == 0
    training = json.loads((out / "manifest.json").read_text())["training"]
    assert training["global_step"] == training["max_steps"] == 9 * 2
    if resumed:
        assert training["resumed_from"].endswith(resumed)
    else:
        assert training["resumed_from"] is None and "training starts over" in caplog.text
    assert "checkpoint-10 is incomplete (no trainer_state.json)" in caplog.text


def test_pruning_rerun_after_a_cut_checkpoint_finishes(tmp_path, tiny_bert, toy_data, caplog):
    from train.pruning.run_structural_pruning import main as prune_main

    out = tmp_path / "pruned"
    args = ["--model", str(tiny_bert), "--sparsity", "50", "--output", str(out), "--data", str(toy_data),
            "--importance-samples", "32", *FT_ARGS, "--save-steps", "4"]
    assert prune_main([*args, "--max-steps-this-run", "8"]) == 0
    checkpoints = tmp_path / "pruned.checkpoints"
    _cut_checkpoint(checkpoints / "checkpoint-8", "cut_optimizer")
    caplog.set_level(logging.WARNING)
    assert prune_main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    training = manifest["training"]
    assert training["resumed_from"].endswith("checkpoint-4")
    assert training["global_step"] == training["max_steps"]
    assert "checkpoint-8 is incomplete (optimizer.pt cut or corrupt" in caplog.text


def test_auto_save_steps_gives_about_ten_checkpoints_per_run(tmp_path, toy_data):
    from common.compress.training import AUTO_CHECKPOINTS_PER_RUN
    from train.fine_tuning.run_fine_tune_bert_agnews import main

    from tests.conftest import make_tiny_bert

    tiny = make_tiny_bert(tmp_path / "tiny")
    out = tmp_path / "ft"
    # 144 rows / batch 16 = 9 steps per epoch, 4 epochs = 36 steps: auto -> every ceil(3.6) = 4 steps
    args = ["--base-model", str(tiny), "--data", str(toy_data), "--output", str(out), *FT_ARGS, "--epochs", "4"]
    assert main([*args, "--max-steps-this-run", "9"]) == 0
    assert sorted(p.name for p in (tmp_path / "ft.checkpoints").glob("checkpoint-*")) == ["checkpoint-8",
                                                                                             "checkpoint-9"]
    assert main(args) == 0
    training = json.loads((out / "manifest.json").read_text())["training"]
    assert training["save_steps"] == 4 and 36 // training["save_steps"] in range(AUTO_CHECKPOINTS_PER_RUN - 1,
                                                                                   AUTO_CHECKPOINTS_PER_RUN + 1)
    # a changed SAVE_STEPS alone does not rebuild the model (it does not change what is trained)
    before = (out / "model.safetensors").stat().st_mtime_ns
    assert main([*args, "--save-steps", "7"]) == 0
    assert (out / "model.safetensors").stat().st_mtime_ns == before


# ----------------------------------------------------------------------------------------------- 2 Makefile
# ``$$`` is make's escape for ``$``: the shell would see ``$(touch PWNED_SUB)``.
HOSTILE = {"DATA": "x'; touch PWNED_DATA; echo '", "BASE_MODEL": "m\"; touch PWNED_BASE; `touch PWNED_TICK` $$(touch PWNED_SUB)"}
AS_GIVEN = {k: v.replace("$$", "$") for k, v in HOSTILE.items()}


@pytest.fixture()
def source_tree(tmp_path):
    """A copy of the sources only, plus a fake interpreter that records its arguments."""
    dst = copy_sources(tmp_path / "repo")
    fake = tmp_path / "fakepy"
    fake.write_text(f"#!{__import__('sys').executable}\nimport json, os, sys\n"
                    "with open(os.environ['ARGV_LOG'], 'a') as fh:\n    fh.write(json.dumps(sys.argv[1:]) + '\\n')\n")
    fake.chmod(0o755)
    return dst, fake


def _make(tree: Path, fake: Path, *args: str, check: bool = True, offline: bool = True) -> subprocess.CompletedProcess:
    # HF_HUB_OFFLINE: the hostile BASE_MODEL looks like a hub id; offline mode skips the hub probe so the
    # recipes themselves are exercised (the probe's own quoting is checked with offline=False).
    env = dict(os.environ, ARGV_LOG=str(tree / "argv.jsonl"), **({"HF_HUB_OFFLINE": "1"} if offline else {}))
    res = subprocess.run(["make", "--no-print-directory", f"PYTHON={fake}", *args], cwd=tree, capture_output=True,
                         text=True, timeout=300, env=env)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def _pwned(tree: Path) -> list[str]:
    return sorted(p.name for p in tree.rglob("PWNED*"))


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_hostile_knob_values_reach_the_shell_as_data(source_tree):
    tree, fake = source_tree
    hostile = [f"{k}={v}" for k, v in HOSTILE.items()]
    _make(tree, fake, "help", *hostile)
    _make(tree, fake, "-n", "report", *hostile)
    _make(tree, fake, "-n", "demo", *hostile)  # the demo re-invokes make with DATA passed on
    assert _pwned(tree) == []
    # the hub probe (a build that needs the hub) gets the values as data too
    probe = _make(tree, fake, "report", *hostile, check=False, offline=False)
    assert _pwned(tree) == []
    if probe.returncode != 0:  # no hub here: refused before any stamp was written
        assert not (tree / "models" / ".knobs").exists()
    # Run the fine-tuning recipe for real (the fake interpreter records what it was given).
    _make(tree, fake, "models/fine_tuned/bert_agnews/manifest.json", *hostile)
    assert _pwned(tree) == []
    argv = json.loads((tree / "argv.jsonl").read_text().splitlines()[-1])
    assert argv[argv.index("--data") + 1] == AS_GIVEN["DATA"]
    assert argv[argv.index("--base-model") + 1] == AS_GIVEN["BASE_MODEL"]
    assert argv[argv.index("--save-steps") + 1] == "0"
    stamp = (tree / "models" / ".knobs" / "train").read_text()
    assert f"DATA={AS_GIVEN['DATA']} " in stamp and f"BASE_MODEL={AS_GIVEN['BASE_MODEL']} " in stamp
    # Every python stage of the whole pipeline, as make would run it, gets DATA as one literal argument.
    dry = _make(tree, fake, "-n", "report", *hostile).stdout.replace("\\\n", " ")
    commands = [line for line in dry.splitlines() if line.startswith("PYTHONUNBUFFERED=1 ")]
    assert len(commands) > 15
    (tree / "argv.jsonl").unlink()
    for command in commands:
        subprocess.run(["bash", "-c", command], cwd=tree, check=True, env=dict(os.environ, ARGV_LOG=str(tree / "argv.jsonl")))
    assert _pwned(tree) == []
    runs = [json.loads(line) for line in (tree / "argv.jsonl").read_text().splitlines()]
    with_data = [a for a in runs if "--data" in a]
    assert len(with_data) > 10 and all(a[a.index("--data") + 1] == AS_GIVEN["DATA"] for a in with_data)
    knobs = next(a for a in runs if "--knobs" in a)
    assert f"DATA={AS_GIVEN['DATA']} " in knobs[knobs.index("--knobs") + 1]


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
@pytest.mark.parametrize("knob,value,needle", [
    ("EPOCHS", "2; touch PWNED_EPOCHS", "EPOCHS=2; touch PWNED_EPOCHS is not a number"),
    ("SEED", "1 + $$(touch PWNED_SEED)", "is not a whole number"),  # would run inside $(( SEED + 1 ))
    ("DEVICE", "cpu;touch PWNED_DEVICE", "DEVICE=cpu;touch PWNED_DEVICE is not a plain word"),
    ("PRUNE_PCTS", "20 30;touch${IFS}PWNED_PCT", "PRUNE_PCTS=20 30;touch"),
    ("LIME_VARIANTS", "base|touch PWNED_LIME", "is not a list of variant names"),
])
def test_non_numeric_or_non_word_knobs_are_refused_before_any_recipe(source_tree, knob, value, needle):
    tree, fake = source_tree
    res = _make(tree, fake, "-n", "report", f"{knob}={value}", check=False)
    assert res.returncode != 0 and needle in res.stderr
    assert _pwned(tree) == [] and not (tree / "models").exists()
    ok = _make(tree, fake, "-n", "report", f"{knob}={ {'EPOCHS': '1.5', 'SEED': '7', 'DEVICE': 'cuda:1', 'PRUNE_PCTS': '10 40', 'LIME_VARIANTS': 'base pruned20'}[knob]}")
    assert "-m " in ok.stdout


# ----------------------------------------------------------------------------------------------- 12 manifests
def test_properties_table_writes_a_manifest_naming_what_it_read(tiny_bert, tmp_path):
    from analysis.model_properties.run_model_properties import main
    from common.manifest import sha256_file

    folder = tmp_path / "properties"
    assert main(["--model", str(tiny_bert), "--variant", "base", "--output", str(folder / "base.json")]) == 0
    payload = _save(_int8_payload(tiny_bert), tmp_path / "tiny_int8.pt")
    assert main(["--model", str(payload), "--variant", "base_8bit", "--output", str(folder / "base_8bit.json")]) == 0
    table = folder / "properties.md"
    for _ in range(2):  # a rerun must not take its own manifest for a variant
        assert main(["--table", str(folder), "--output", str(table)]) == 0
    manifest = json.loads((folder / "properties.manifest.json").read_text())
    assert manifest["stage"] == "model_properties_table" and manifest["variants"] == ["base", "base_8bit"]
    assert manifest["inputs"]["base_8bit"]["sha256"] == sha256_file(folder / "base_8bit.json")
    assert manifest["sha256"] == __import__("hashlib").sha256(table.read_bytes()).hexdigest()
    assert manifest["arguments"]["table"] == str(folder) and manifest["git_commit"] is not None
    assert "| base_8bit " in table.read_text()


# ----------------------------------------------------------------------------------------------- 6 batch dependence
class _BatchMeanClassifier:
    """A planted batch-dependent model: each row's logits are shifted by its batch's mean length."""

    batch_dependent = True

    def predict_logits(self, texts, batch_size=None):
        texts = list(texts)
        batch_size = batch_size or len(texts)
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            block = texts[start:start + batch_size]
            mean = np.mean([len(t) for t in block])
            for i, text in enumerate(block):
                out[start + i, 0] = len(text) - mean + 0.5
        return out


def test_batch_agreement_detects_batch_dependence_and_passes_a_batch_invariant_model(tiny_bert):
    from common.bench.worker import BATCH_AGREEMENT, batch_agreement

    texts = [("word " * n).strip() for n in (1, 2, 3, 5, 8, 13, 2, 1)]
    planted = batch_agreement(_BatchMeanClassifier(), texts, batch_size=4)
    assert planted[BATCH_AGREEMENT] < 1.0 and planted["batch_agreement_flips"] > 0
    clean = batch_agreement(load_classifier(tiny_bert, device="cpu"), toy_texts(24)[0], batch_size=8)
    assert clean[BATCH_AGREEMENT] == 1.0 and clean["batch_agreement_n"] == 24


def test_benchmark_reports_batch_agreement_for_every_variant(tiny_bert, tmp_path, toy_data):
    import csv

    from common.bench.run import BATCH_AGREEMENT, SUMMARY_COLUMNS
    from inference.run_onnx_benchmark import main

    int8 = _save(_int8_payload(tiny_bert), tmp_path / "base_8bit.pt")
    out = tmp_path / "metrics"
    argv = ["--output-dir", str(out), "--data", str(toy_data), "--max-len", "64", "--device", "cpu",
            "--threads", "1", "--baseline", "base", "--latency-requests", "3", "--throughput-texts", "16",
            "--batch-size", "16", "--test-samples", "40", "--variant", f"base={tiny_bert}", "--variant",
            f"base_8bit={int8}"]
    assert main(argv) == 0
    assert BATCH_AGREEMENT in SUMMARY_COLUMNS
    rows = {r["variant"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert float(rows["base"][BATCH_AGREEMENT]) == 1.0
    assert 0.0 <= float(rows["base_8bit"][BATCH_AGREEMENT]) <= 1.0
    for name in rows:
        metrics = json.loads((out / f"{name}.json").read_text())
        assert metrics["batch_agreement_n"] == 40 and metrics["batch_agreement_batch_size"] == 16
        assert metrics[BATCH_AGREEMENT] == pytest.approx(float(rows[name][BATCH_AGREEMENT]))
    header = next(line for line in (out / "summary.md").read_text().splitlines() if line.startswith("| variant"))
    assert f" {BATCH_AGREEMENT} |" in header


def test_batch_agreement_is_reused_only_at_the_same_batch_size_and_rows(tmp_path):
    from common.bench.worker import BATCH_AGREEMENT, agreement_texts, reusable_agreement

    previous = tmp_path / "v.json"
    measured = {BATCH_AGREEMENT: 0.97, "batch_agreement_flips": 3, "batch_agreement_n": 100,
                "batch_agreement_batch_size": 32, "batch_agreement_rows": 100}
    previous.write_text(json.dumps(measured))
    assert reusable_agreement(previous, 32, 100) == measured
    assert reusable_agreement(previous, 16, 100) is None
    assert reusable_agreement(previous, 32, 1000) is None  # another subset of rows
    previous.write_text(json.dumps({"accuracy": 0.9}))  # measured before the column existed
    assert reusable_agreement(previous, 32, 100) is None
    # the subset: seeded, in file order, all rows for 0
    texts = [f"t{i}" for i in range(50)]
    assert agreement_texts(texts, 0, 1) == texts and agreement_texts(texts, 80, 1) == texts
    sub = agreement_texts(texts, 10, 1)
    assert len(sub) == 10 and sub == sorted(sub, key=texts.index) and sub == agreement_texts(texts, 10, 1)
    assert sub != agreement_texts(texts, 10, 2)


def _lime_weights(csv_path: Path) -> pd.DataFrame:
    frame = pd.read_csv(csv_path)
    timing = [c for c in frame.columns if "second" in c or "time" in c or c.endswith("_s")]
    return frame.drop(columns=timing)


def test_lime_of_dynamic_int8_does_not_depend_on_batch_size(tiny_bert, tmp_path, toy_data, monkeypatch):
    from generate_outputs.generate_lime_csv.run_lime_on_model import main

    int8 = _save(_int8_payload(tiny_bert), tmp_path / "base_8bit.pt")

    def explain(batch_size: int, name: str) -> pd.DataFrame:
        output = tmp_path / f"{name}.csv"
        assert main(["--model", str(int8), "--variant", "base_8bit", "--n-instances", "4", "--num-samples", "80",
                     "--seed", "3", "--output", str(output), "--data", str(toy_data), "--max-len", "64",
                     "--threads", "1", "--batch-size", str(batch_size), "--device", "cpu"]) == 0
        return _lime_weights(output)

    small, large = explain(4, "b4"), explain(64, "b64")
    assert len(small) > 0
    pd.testing.assert_frame_equal(small, large)
    # Planted: without the fixed batch composition the same runs differ, so the check above can fail.
    from common.models import torch_int8 as quantization

    original = quantization._load

    def not_flagged(*args, **kwargs):
        clf = original(*args, **kwargs)
        clf.batch_dependent = False
        return clf

    monkeypatch.setitem(__import__("common.models.classifier", fromlist=["_PAYLOAD_LOADERS"])._PAYLOAD_LOADERS,
                        quantization.FORMAT, not_flagged)
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(explain(4, "p4"), explain(64, "p64"))
