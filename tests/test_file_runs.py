"""Stage scripts run as files from any folder because the toolkit is an installed package (``make setup``:
``pip install -e .``), not through a preamble of their own: no script touches ``sys.path``, ``runpy`` or
``__package__``, and a file run is the module run (same flags, same exit codes)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

FILE_RUNS = ["train/pruning/run_structural_pruning.py", "train_mlp_models/train_mlp_xai_loss.py",
             "export_onnx/save_shrunk_pytorch_model.py"]
SCRIPT_DIRS = ("train", "inference", "export_onnx", "tools", "generate_outputs", "analysis", "train_mlp_models")
PREAMBLE = re.compile(r"__package__|\brunpy\b|script_shim|sys\.path\.(insert|append)|#\s*noqa:\s*E402")


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


def preamble_lines(root) -> list[str]:
    """``file:line`` of every run-as-module preamble or sys.path edit in the scripts and packages under ``root``."""
    found = []
    for folder in (*SCRIPT_DIRS, "common"):
        for path in sorted((root / folder).rglob("*.py")) if (root / folder).is_dir() else []:
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if PREAMBLE.search(line) and not line.lstrip().startswith(("#", '"', "'")):
                    found.append(f"{path.relative_to(root)}:{number}")
    return found


def test_the_preamble_scan_finds_a_planted_one(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "stage.py").write_text(
        'import sys\nif not __package__:\n    __import__("runpy").run_path("x")\nfrom common.cli import UserError  # noqa: E402\n')
    (tmp_path / "train" / "clean.py").write_text("import sys\nfrom common.cli import UserError\n")
    assert preamble_lines(tmp_path) == ["train/stage.py:2", "train/stage.py:3", "train/stage.py:4"]


def test_no_script_carries_a_preamble_or_edits_sys_path():
    assert preamble_lines(REPO) == []
    assert not (REPO / "script_shim.py").exists()


def test_the_toolkit_is_an_installed_package():
    """`make setup` installed it: the distribution is known to pip's metadata, and points at this checkout."""
    from importlib import metadata

    import common

    assert metadata.version("bert-agnews-toolkit")
    assert common.REPO_ROOT == REPO


def test_no_source_file_is_ignored_by_git():
    """A code folder named like an artefact folder (common/models/ vs models/) must not be hidden from commits."""
    import shutil

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    sources = [str(p.relative_to(REPO)) for folder in (*SCRIPT_DIRS, "common", "tests")
               for p in sorted((REPO / folder).rglob("*.py")) if "__pycache__" not in p.parts]
    done = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=REPO, input="\n".join(sources),
                          capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    assert done.stdout.split() == []
