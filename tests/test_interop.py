"""``make interop``: third-party loaders vs the toolkit (issue 14).

The verdict is tested with planted failures (drifted logits, a flipped argmax, an artefact that did not
load) and a planted pass; the stage runs end to end on tiny folders with this venv's transformers as the
third-party side; with ``.venv-interop`` present (``make .venv-interop/.installed``) a slow test runs Optimum.
"""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from common.cli import UserError
from common.bench.interop import ATOL, THIRDPARTY_SCRIPT, compare, parse_artefacts
from common.models.modeling import load_model_folder, save_model_folder
from common.models.pruning_spec import LayerSpec, PruningSpec
from tests.conftest import REPO, make_tiny_bert
from tools.apply_shrink_to_model import main as shrink_main
from tools.interop import main as interop_main

INTEROP_PYTHON = REPO / ".venv-interop" / "bin" / "python"


def _reference(logits: np.ndarray) -> dict:
    return {"texts": ["t"] * len(logits), "max_len": 32,
            "artefacts": [{"name": "m", "path": "/m", "kind": "onnx", "logits": logits.tolist()}]}


def _theirs(logits: np.ndarray | None, error: str | None = None) -> dict:
    result = {"loader": "x"} | ({"error": error} if error else {"logits": logits.tolist()})
    return {"versions": {}, "results": {"m": result}}


def test_compare_passes_equal_logits_and_fails_planted_drift():
    ours = np.array([[2.0, 0.0, -1.0, 0.5], [0.1, 0.3, 0.0, -0.2]])
    (row,) = compare(_reference(ours), _theirs(ours + ATOL / 2))
    assert row.passed and row.max_abs_dlogit == pytest.approx(ATOL / 2) and row.argmax_agreement == 1.0
    (row,) = compare(_reference(ours), _theirs(ours + 3 * ATOL))  # drift, same argmax
    assert not row.passed and row.argmax_agreement == 1.0
    flipped = ours.copy()
    flipped[1] = [0.1, 0.3, 0.30001, -0.2]  # tiny change that flips an argmax
    (row,) = compare(_reference(ours), _theirs(flipped), atol=1.0)
    assert not row.passed and row.argmax_agreement == 0.5
    (row,) = compare(_reference(ours), _theirs(None, error="OSError: no file"))
    assert not row.passed and row.error == "OSError: no file" and row.max_abs_dlogit is None
    (row,) = compare(_reference(ours), _theirs(ours[:1]))
    assert not row.passed and "shape" in row.error


def test_thirdparty_script_imports_no_toolkit_code():
    tree = ast.parse(THIRDPARTY_SCRIPT.read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module}
    toolkit = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
    assert modules and not modules & toolkit, modules & toolkit


def test_bad_artefact_flag_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="NAME=PATH"):
        parse_artefacts(["no-equals-sign"])
    with pytest.raises(UserError, match="does not exist"):
        parse_artefacts([f"x={tmp_path / 'missing'}"])
    output = tmp_path / "interop.md"
    with pytest.raises(SystemExit) as exit_info:
        interop_main(["--interop-python", sys.executable, "--output", str(output), "--artefact", "bad"])
    assert exit_info.value.code == 2 and not output.exists()


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("interop")
    full = make_tiny_bert(root / "full", seed=1)
    model, tokenizer, _ = load_model_folder(full)
    pruned = root / "masked"
    save_model_folder(model, tokenizer, pruned, PruningSpec(4, 8, 37, [LayerSpec([1, 3], list(range(20))),
                                                                        LayerSpec([0], list(range(5, 37)))]))
    shrunk = root / "shrunk"
    assert shrink_main(["--model_path", str(pruned), "--output_path_shrunk_model", str(shrunk),
                        "--save_method", "torch_save", "--check-samples", "8"]) == 0
    return {"base": full, "pruned_masked": pruned, "pruned": shrunk}


def _run(folders: dict[str, Path], python: Path, output: Path) -> dict:
    argv = ["--interop-python", str(python), "--output", str(output), "--n-texts", "8", "--max-len", "32"]
    for name, path in folders.items():
        argv += ["--artefact", f"{name}={path}"]
    assert interop_main(argv) == 0
    return json.loads(output.with_name("interop.manifest.json").read_text())


def test_interop_stage_on_hf_folders(tiny_folders, tmp_path):
    """This venv's transformers plays the third party: HF folders (shrunk via remote code) must match."""
    manifest = _run(tiny_folders, Path(sys.executable), tmp_path / "interop.md")
    rows = {row["artefact"]: row for row in manifest["rows"]}
    assert set(rows) == set(tiny_folders) and manifest["all_passed"] and manifest["atol"] == ATOL
    assert "ShrunkBertForSequenceClassification" in rows["pruned"]["loader"]
    assert all(row["max_abs_dlogit"] <= ATOL and row["argmax_agreement"] == 1.0 for row in rows.values())
    table = (tmp_path / "interop.md").read_text()
    assert table.count("| pass ") == 3 and "FAIL" not in table


@pytest.mark.slow
def test_interop_venv_loads_onnx_with_optimum(tiny_folders, tmp_path):
    if not INTEROP_PYTHON.exists():
        pytest.skip("no .venv-interop; run `make .venv-interop/.installed` (downloads Optimum)")
    from export_onnx.export_onnx import main as export_main

    graphs = {}
    for name in ("base", "pruned"):
        graphs[f"{name}_onnx"] = tmp_path / "onnx" / f"{name}.onnx"
        assert export_main(["--model", str(tiny_folders[name]), "--output", str(graphs[f"{name}_onnx"]),
                            "--max-len", "32"]) == 0
    manifest = _run(tiny_folders | graphs, INTEROP_PYTHON, tmp_path / "interop.md")
    rows = {row["artefact"]: row for row in manifest["rows"]}
    assert manifest["thirdparty_versions"]["optimum-onnx"] and manifest["all_passed"], rows
    assert rows["pruned_onnx"]["loader"].startswith("optimum-onnx")


def test_make_interop_covers_every_graph_and_folder():
    """The target's list comes from PRUNE_PCTS: every ONNX graph and HF folder, no toolkit-only .pt payload."""
    import subprocess

    # -B: print the recipe even where a built tree has it up to date; -n writes no stamp.
    done = subprocess.run(["make", "--no-print-directory", "-n", "-B", "interop", "PYTHON=python3", "DATA=data",
                           "PRUNE_PCTS=20 30"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (command,) = [line for line in done.stdout.replace("\\\n", " ").splitlines() if "-m tools.interop" in line]
    named = dict(arg.split("=", 1) for arg in command.split("--artefact ")[1:] for arg in [arg.split()[0]])
    graphs = {f"{v}_onnx": f"models/onnx/{v}.onnx" for v in ("base", "pruned20", "pruned30", "pruned20_masked",
                                                               "pruned30_masked")}
    graphs |= {f"{v}_onnx_int8": f"models/onnx/{v}_int8.onnx" for v in ("base", "pruned20", "pruned30")}
    graphs |= {f"{v}_onnx_static": f"models/onnx/{v}_static.onnx" for v in ("base", "pruned20", "pruned30")}
    graphs |= {f"{v}_ov": f"models/onnx/{v}_ov.xml" for v in ("base", "pruned20", "pruned30")}
    graphs |= {f"{v}_ov_int8": f"models/onnx/{v}_ov_int8.xml" for v in ("base", "pruned20", "pruned30")}
    folders = {"base": "models/fine_tuned/bert_agnews", "pruned20": "models/shrunk/pruned20",
               "pruned20_masked": "models/pruned/bert_agnews_20pct", "pruned30": "models/shrunk/pruned30",
               "pruned30_masked": "models/pruned/bert_agnews_30pct"}
    assert named == graphs | folders
    assert "--interop-python .venv-interop/bin/python" in command
    assert "--openvino-python .venv-openvino/bin/python" in command
