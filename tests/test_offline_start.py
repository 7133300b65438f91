"""Offline start (issue 14): with the hub unreachable, a build that needs it fails fast, in one line,
and leaves no knob stamp; a build from a local folder is not held up by the probe.

The hub is made unreachable on purpose (``HF_ENDPOINT`` at a closed local port), so these tests behave the
same with or without network.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.cli import UserError
from common.hubcheck import hub_knobs, hub_problem
from tests.conftest import REPO

CLOSED_PORT = "http://127.0.0.1:9"


def offline_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "TRANSFORMERS_", "MAKE", "MFLAGS")) and k not in ("DATA", "BASE_MODEL")}
    env.update(HF_ENDPOINT=CLOSED_PORT, **extra)
    return env


def run_make(cwd: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    """make in a copy of the sources at ``cwd`` (a clean clone: no models/, no stamps)."""
    for name in ("Makefile", "common", "tools"):
        if not (cwd / name).exists():
            (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(
                REPO / name, cwd / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                           if (REPO / name).is_dir() else {}))
    start = time.monotonic()
    done = subprocess.run(["make", "--no-print-directory", f"PYTHON={sys.executable}", *args], cwd=cwd,
                          env=offline_env(**env), capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - start


def test_make_report_offline_without_data_fails_fast_in_one_line(tmp_path):
    done, seconds = run_make(tmp_path, "report")
    assert done.returncode != 0 and seconds < 5, (seconds, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "hub is unreachable" in lines[0] and "DATA=ag_news" in lines[0], done.stderr
    assert not (tmp_path / "models").exists()  # no stamp for a build that did not start


def test_make_with_a_local_data_folder_writes_its_stamps(tmp_path):
    """The planted negative: the probe does not block a build whose data is local."""
    (tmp_path / "data").mkdir()
    done, _ = run_make(tmp_path, "models/.knobs/train", "DATA=data")
    assert done.returncode == 0, done.stderr
    assert "DATA=data" in (tmp_path / "models/.knobs/train").read_text()


def test_hub_problem_only_when_the_hub_is_needed(tmp_path, monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", CLOSED_PORT)
    assert hub_knobs(str(tmp_path), "minilm") == [] and hub_problem(str(tmp_path), "minilm") is None
    assert hub_knobs("ag_news", str(tmp_path)) == ["DATA=ag_news"]
    assert hub_knobs(str(tmp_path), "bert-base-uncased") == ["BASE_MODEL=bert-base-uncased"]
    assert "BASE_MODEL=bert-base-uncased" in hub_problem(str(tmp_path), "bert-base-uncased")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the user asks for the cache: the libraries fail fast themselves
    assert hub_problem("ag_news", "minilm") is None


def test_loading_hub_data_offline_is_one_quick_user_error(monkeypatch):
    from common.data import load_test_split

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", CLOSED_PORT)
    start = time.monotonic()
    with pytest.raises(UserError, match="hub is unreachable"):
        load_test_split("ag_news")
    assert time.monotonic() - start < 5
