"""Stage scripts run as files from any folder through one shim (script_shim.py), with no sys.path edits of
their own, and a file run is the module run: same flags, same exit codes."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import script_shim
from tests.conftest import REPO

FILE_RUNS = ["train/pruning/run_structural_pruning.py", "train_mlp_models/train_mlp_xai_loss.py",
             "export_onnx/save_shrunk_pytorch_model.py"]


def _run_file(script: str, *args: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("script", FILE_RUNS)
def test_script_runs_as_a_file_from_another_folder(script, tmp_path):
    done = _run_file(script, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-800:]
    # argparse names the script the user ran, as with `python -m`
    assert done.stdout.startswith(f"usage: {script.rsplit('/', 1)[-1]}")


def test_a_file_run_keeps_the_exit_code_of_a_user_error(tmp_path):
    done = _run_file("train/quantization/run_dynamic_quantization.py", "--model", str(tmp_path / "missing"),
                     "--output", str(tmp_path / "q.pt"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-800:]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "q.pt").exists()


def test_module_name_is_the_python_m_name_and_refuses_files_outside_the_repository(tmp_path):
    assert script_shim.module_name(str(REPO / "train/pruning/run_structural_pruning.py")) == \
        "train.pruning.run_structural_pruning"
    with pytest.raises(ValueError):
        script_shim.module_name(str(tmp_path / "elsewhere.py"))


def test_a_script_without_the_shim_cannot_import_the_repository_as_a_file(tmp_path):
    """The negative control: the shim is what makes the file runs above work."""
    folder = tmp_path / "pkg"
    folder.mkdir()
    script = folder / "stage.py"
    script.write_text("import common.cli\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr


def test_no_script_edits_sys_path():
    """script_shim.py is the one place that touches sys.path (tests may)."""
    offenders = [str(p.relative_to(REPO)) for p in sorted(REPO.rglob("*.py"))
                 if p.relative_to(REPO).parts[0] not in ("tests", "script_shim.py")
                 and not p.relative_to(REPO).parts[0].startswith(".")
                 and "sys.path.insert" in p.read_text(encoding="utf-8")]
    assert offenders == []
