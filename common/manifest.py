"""JSON manifests beside every artefact, and atomic writes.

A manifest records what built an artefact (arguments, seed, input hashes,
library versions, git commit, wall time) and what it measured (``metrics``).
Reports and tests read manifests, never logs.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import sys
import subprocess
import tempfile
import socket
import time
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

LIBRARIES = (
    "torch", "transformers", "accelerate", "tokenizers", "onnx", "onnxruntime", "numpy",
    "scikit-learn", "lime", "nltk", "pandas",
)


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if res.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return res.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def digest(obj) -> str:
    """The one content key of a JSON-able object (run keys, caches): sha256 of its sorted-key JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def artefact_fingerprint(path: str | os.PathLike) -> str:
    """A model's identity for caches and run keys: its manifest's hash when it has one (cheap), else its
    content hash."""
    path = Path(path)
    manifest = manifest_path_for(path)
    return sha256_file(manifest) if manifest.is_file() else sha256_path(path)


def code_fingerprint() -> str:
    """Hash of the toolkit's own source files this process has imported (paths relative to the repository,
    contents): two runs with the same fingerprint ran the same code. Tests and virtual environments are
    left out."""
    root = Path(__file__).resolve().parent.parent
    files = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py"):
            continue
        path = Path(file).resolve()
        if root not in path.parents or not path.is_file():  # generated modules name files that do not exist
            continue
        relative = path.relative_to(root)
        if relative.parts[0] in ("tests",) or relative.parts[0].startswith(".venv"):
            continue
        files.add(relative)
    return digest({str(f): sha256_file(root / f) for f in sorted(files)})


def companion_files(path: str | os.PathLike) -> list[Path]:
    """The files one artefact file is made of: an OpenVINO IR ``x.xml`` is its ``x.bin`` too (the weights), an
    ``.onnx`` with external weights its ``.onnx.data``; anything else is itself."""
    path = Path(path)
    extra = [path.with_suffix(".bin")] if path.suffix == ".xml" else [Path(f"{path}.data")] \
        if path.suffix == ".onnx" else []
    return [path] + [p for p in extra if p.is_file()]


def sha256_path(path: str | os.PathLike) -> str:
    """Hash of a file (with its :func:`companion_files`), or of every file in a folder (names and contents,
    sorted)."""
    path = Path(path)
    if path.is_file():
        files = companion_files(path)
        if len(files) == 1:
            return sha256_file(path)
        return digest({f.name: sha256_file(f) for f in files})
    folder_digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        folder_digest.update(str(file.relative_to(path)).encode())
        folder_digest.update(sha256_file(file).encode())
    return folder_digest.hexdigest()


def manifest_path_for(artefact: str | os.PathLike) -> Path:
    """Folder -> ``folder/manifest.json``; file ``x.pt`` -> ``x.manifest.json`` beside it."""
    artefact = Path(artefact)
    if artefact.is_dir() or artefact.suffix == "":
        return artefact / "manifest.json"
    return artefact.with_name(artefact.stem + ".manifest.json")


def base_manifest(stage: str, args: dict[str, Any], seed: int | None = None,
                  inputs: dict[str, str | os.PathLike] | None = None) -> dict[str, Any]:
    """The fields every manifest shares; stages add ``metrics`` and their own keys."""
    return {
        "stage": stage,
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in args.items()},
        "seed": seed,
        "inputs": {name: {"path": str(p), "sha256": sha256_path(p)} for name, p in (inputs or {}).items()
                   if p is not None and Path(p).exists()},
        "versions": library_versions(),
        "git_commit": git_commit(),
        "host": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                 "cpu_count": os.cpu_count()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _json_default(obj):
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ------------------------------------------------------------------------------------ temporary siblings
# Temporary siblings are named ``.<target name or stem>.tmp-<pid>@<host>...``: a run killed with -9 cannot
# remove its own, so the next run of the same target removes those whose owner process is gone. The host
# is part of the tag so a PID of another machine or container sharing the folder is never taken for a
# dead local process.
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "localhost"
_OWNER = re.compile(r"(\d+)@([A-Za-z0-9_]+)")


def temp_tag() -> str:
    """This process's owner tag for temporary sibling names."""
    return f"{os.getpid()}@{_HOST}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(final: str | os.PathLike) -> list[Path]:
    """Remove temporary siblings of ``final`` left by dead processes of this host; returns what went."""
    final = Path(final)
    if not final.parent.is_dir():
        return []
    removed = []
    for prefix in sorted({f".{final.name}.tmp-", f".{final.stem}.tmp-"}):
        for entry in final.parent.glob(glob_escape(prefix) + "*"):
            owner = _OWNER.match(entry.name[len(prefix):])
            if owner is None or owner.group(2) != _HOST or _process_alive(int(owner.group(1))):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            log.warning("removed %s, left by a killed run (process %s is gone)", entry, owner.group(1))
            removed.append(entry)
    return removed


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def move_aside(path: Path, why: str, redo: str) -> Path:
    """Rename a file a resumed stage cannot read back to ``<name>.unreadable-<time>-<pid>`` (kept for inspection,
    never deleted) and say so in one warning: ``<path> <why>; moved it to ... and <redo>.``"""
    path = Path(path)
    aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    log.warning("%s %s; moved it to %s (kept for inspection, not used) and %s.", path, why, aside, redo)
    return aside


def _naming_a_full_disk(path: Path):
    from common.cli import naming_a_full_disk  # imported here: cli imports numpy, this module stays stdlib at import

    return naming_a_full_disk(path)


def _write_atomic(path: str | os.PathLike, write) -> Path:
    """``write(file_handle)`` into a temporary sibling, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{temp_tag()}-", suffix=".tmp", dir=path.parent)
    with _naming_a_full_disk(path):  # raised after the cleanup below: no temporary is left
        try:
            with os.fdopen(fd, "w") as fh:
                write(fh)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return path


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    def write(fh):
        json.dump(data, fh, indent=2, sort_keys=False, default=_json_default)
        fh.write("\n")

    return _write_atomic(path, write)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return _write_atomic(path, lambda fh: fh.write(text))


def write_table_report(output: str | os.PathLike, heading: str, rows: list[dict], columns: list[str],
                       manifest: dict) -> str:
    """A measuring tool's outputs: ``manifest`` beside ``output``, then ``output`` (Markdown: the heading
    paragraph and ``rows`` as a table of ``columns``). Returns the table."""
    from tabulate import tabulate

    table = tabulate([[row.get(c) for c in columns] for row in rows], headers=columns, tablefmt="github",
                     floatfmt=".3f")
    write_json_atomic(manifest_path_for(output), manifest)
    write_text_atomic(output, f"{heading}\n\n{table}\n")
    return table


def read_manifest(artefact_or_manifest: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(artefact_or_manifest)
    if path.suffix != ".json":
        path = manifest_path_for(path)
    if not path.is_file():
        return None
    with open(path) as fh:
        return json.load(fh)


@contextlib.contextmanager
def atomic_output_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``final``.

    A killed or failed run leaves no folder at ``final`` that looks finished.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final)
    tmp = final.with_name(f".{final.name}.tmp-{temp_tag()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    with _naming_a_full_disk(final):
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if final.exists():
        old = final.with_name(f".{final.name}.tmp-{temp_tag()}-old")  # a stale temp too if killed here
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_output_file(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it is renamed to ``final``."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final)
    tmp = final.with_name(f".{final.stem}.tmp-{temp_tag()}{final.suffix}")
    with _naming_a_full_disk(final):
        try:
            yield tmp
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        os.replace(tmp, final)


def size_on_disk(path: str | os.PathLike) -> int:
    """Bytes of the weights of an artefact (a file with its :func:`companion_files`, or every file in a folder)."""
    path = Path(path)
    if path.is_file():
        return sum(f.stat().st_size for f in companion_files(path))
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
