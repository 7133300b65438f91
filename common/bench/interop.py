"""Do this toolkit's artefacts work in third-party tools? (``make interop``)

The toolkit computes reference logits for each artefact (``load_classifier``, one text at a time), then
``tools/interop_thirdparty.py`` loads the same artefacts in another venv - Optimum's
``ORTModelForSequenceClassification`` for ONNX graphs, plain transformers (``trust_remote_code`` for shrunk
folders) for HF folders - with no toolkit code importable, and writes its logits. Each artefact passes when
every text's max |Δlogit| is within :data:`ATOL` and every argmax agrees; an artefact that does not load fails.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import REPO_ROOT
from common.cli import UserError
from common.manifest import base_manifest, manifest_path_for, write_json_atomic, write_text_atomic
from common.stage import StageConfig, flag, shared_flag

log = logging.getLogger(__name__)

# Same graph / same weights, batch of one: only float summation order may differ between the runtimes.
ATOL = 1e-4
THIRDPARTY_SCRIPT = REPO_ROOT / "tools" / "interop_thirdparty.py"


@dataclass
class InteropRow:
    artefact: str
    path: str
    kind: str
    loader: str
    max_abs_dlogit: float | None
    argmax_agreement: float | None
    passed: bool
    error: str | None = None


def artefact_kind(path: str | os.PathLike) -> str:
    path = Path(path)
    if path.is_file() and path.suffix == ".onnx":
        return "onnx"
    if path.is_file() and path.suffix == ".xml":
        return "openvino"
    if path.is_dir() and (path / "config.json").is_file():
        return "hf_folder"
    raise UserError(f"--artefact {path} is neither an .onnx graph, an OpenVINO .xml nor a model folder with config.json; third-party "
                    f"loaders take only those (build it first, or leave it out).")


def parse_artefacts(specs: list[str]) -> dict[str, Path]:
    artefacts = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--artefact {spec!r} must be NAME=PATH, e.g. --artefact base=models/fine_tuned/bert_agnews.")
        if not Path(path).exists():
            raise UserError(f"--artefact {name}={path}: {path} does not exist; build it first (see `make help`).")
        artefacts[name] = Path(path)
    if not artefacts:
        raise UserError("no --artefact given; pass at least one NAME=PATH.")
    return artefacts


def reference_logits(artefacts: dict[str, Path], texts: list[str], max_len: int) -> dict:
    """The toolkit's logits per artefact, one text per batch (dynamic int8 is batch-dependent)."""
    from tqdm import tqdm

    from common.models.classifier import load_classifier

    entries = []
    for name, path in tqdm(artefacts.items(), desc="toolkit logits", unit="artefact"):
        classifier = load_classifier(path, device="cpu", max_len=max_len)
        entries.append({"name": name, "path": str(Path(path).resolve()), "kind": artefact_kind(path),
                        "logits": classifier.predict_logits(texts, batch_size=1).tolist()})
    return {"texts": list(texts), "max_len": max_len, "artefacts": entries}


def check_interop_python(python: str, flag: str = "--interop-python", venv: str = ".venv-interop") -> str:
    """An absolute path (the script runs from a scratch cwd); not resolved, which would leave the venv."""
    if not python or not Path(python).is_file():
        raise UserError(f"{flag} {python or '(none)'} does not exist; create the venv with "
                        f"`make {venv}/.installed` (downloads it from PyPI).")
    return os.path.abspath(python)


def run_thirdparty(python: str, reference_file: Path, output_file: Path, timeout_s: int = 3600) -> dict:
    """Run the third-party script in ``python``'s venv, from a scratch cwd with no toolkit on its path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="interop-") as scratch:
        env.setdefault("HF_MODULES_CACHE", str(Path(scratch) / "modules"))
        done = subprocess.run([python, str(THIRDPARTY_SCRIPT), "--reference", str(reference_file.resolve()),
                               "--output", str(output_file.resolve())], cwd=scratch, env=env, capture_output=True,
                              text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"the third-party script failed in {python} (exit {done.returncode}): {done.stderr[-2000:]}")
    with open(output_file) as fh:
        return json.load(fh)


def compare(reference: dict, thirdparty: dict, atol: float = ATOL) -> list[InteropRow]:
    rows = []
    for entry in reference["artefacts"]:
        got = thirdparty["results"].get(entry["name"], {"loader": "-", "error": "not run by the third-party script"})
        fields = dict(artefact=entry["name"], path=entry["path"], kind=entry["kind"], loader=got.get("loader", "-"))
        if "error" in got:
            rows.append(InteropRow(**fields, max_abs_dlogit=None, argmax_agreement=None, passed=False,
                                   error=got["error"]))
            continue
        ours, theirs = np.asarray(entry["logits"], dtype=np.float64), np.asarray(got["logits"], dtype=np.float64)
        if ours.shape != theirs.shape:
            rows.append(InteropRow(**fields, max_abs_dlogit=None, argmax_agreement=None, passed=False,
                                   error=f"logits shape {theirs.shape} != toolkit's {ours.shape}"))
            continue
        max_diff = float(np.abs(ours - theirs).max())
        agreement = float((ours.argmax(1) == theirs.argmax(1)).mean())
        rows.append(InteropRow(**fields, max_abs_dlogit=max_diff, argmax_agreement=agreement,
                               passed=bool(max_diff <= atol and agreement == 1.0)))
    return rows


def render_table(rows: list[InteropRow], atol: float, n_texts: int, versions: dict) -> str:
    from tabulate import tabulate

    table = [[r.artefact, r.kind, r.loader,
              "-" if r.max_abs_dlogit is None else f"{r.max_abs_dlogit:.2e}",
              "-" if r.argmax_agreement is None else f"{r.argmax_agreement:.3f}",
              "pass" if r.passed else f"FAIL{': ' + r.error if r.error else ''}"] for r in rows]
    libs = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    return ("# Third-party loaders vs the toolkit\n\n"
            f"{n_texts} test texts, one per batch, logits compared with `load_classifier`'s. "
            f"Pass: max |Δlogit| ≤ {atol:g} and every argmax agrees. Third-party venv: {libs}; "
            "no toolkit code importable there.\n\n"
            + tabulate(table, headers=["artefact", "kind", "loader", "max abs Δlogit", "argmax agreement", "result"],
                       tablefmt="github", disable_numparse=True) + "\n")


def interop_check(artefacts: dict[str, Path], texts: list[str], output: Path, python: str, max_len: int,
                  args: dict, seed: int, atol: float = ATOL, openvino_python: str = "") -> list[InteropRow]:
    """Write ``output`` (Markdown table) and its JSON manifest; returns the rows. OpenVINO IRs are loaded in
    ``openvino_python``'s venv (optimum-intel), everything else in ``python``'s (Optimum + ONNX Runtime)."""
    start = time.time()
    output = Path(output)
    kinds = {name: artefact_kind(path) for name, path in artefacts.items()}
    venvs = {"openvino": check_interop_python(openvino_python, "--openvino-python", ".venv-openvino")
             if "openvino" in kinds.values() else None,
             "other": check_interop_python(python) if any(k != "openvino" for k in kinds.values()) else None}
    output.parent.mkdir(parents=True, exist_ok=True)
    reference = reference_logits(artefacts, texts, max_len)
    thirdparty = {"versions": {}, "results": {}}
    with tempfile.TemporaryDirectory(prefix=".interop-", dir=output.parent) as work:
        for group, venv in venvs.items():
            if venv is None:
                continue
            part = {**reference, "artefacts": [a for a in reference["artefacts"]
                                               if (a["kind"] == "openvino") == (group == "openvino")]}
            reference_file, thirdparty_file = Path(work) / f"reference_{group}.json", Path(work) / f"tp_{group}.json"
            reference_file.write_text(json.dumps(part))
            got = run_thirdparty(venv, reference_file, thirdparty_file)
            thirdparty["results"].update(got["results"])
            thirdparty["versions"].update({k: v for k, v in got["versions"].items() if v})
            thirdparty["python"] = got.get("python")
    rows = compare(reference, thirdparty, atol)
    manifest = base_manifest("interop", args, seed=seed, inputs={name: path for name, path in artefacts.items()})
    manifest.update({"atol": atol, "n_texts": len(texts), "thirdparty_versions": thirdparty["versions"],
                     "thirdparty_python": thirdparty.get("python"), "rows": [r.__dict__ for r in rows],
                     "all_passed": all(r.passed for r in rows), "wall_time_s": time.time() - start})
    write_text_atomic(output, render_table(rows, atol, len(texts), thirdparty["versions"]))
    write_json_atomic(manifest_path_for(output), manifest)
    for row in rows:
        log.info("%s via %s: max |dlogit| %s, argmax agreement %s -> %s", row.artefact, row.loader,
                 row.max_abs_dlogit, row.argmax_agreement, "pass" if row.passed else f"FAIL {row.error or ''}")
    return rows


@dataclass(frozen=True)
class InteropConfig(StageConfig):
    """``tools/interop.py``'s flags."""

    artefact: list[str] = flag([], action="append", metavar="NAME=PATH",
                               help="an .onnx graph or a model folder (repeat)")
    interop_python: str = flag(help="python of the third-party venv (.venv-interop/bin/python)")
    openvino_python: str = flag("", help="python of optimum-intel's venv (.venv-openvino/bin/python), for the "
                                         "OpenVINO IRs among the artefacts")
    output: str = flag(help="Markdown table to write (outputs/metrics/interop.md)")
    data: str = shared_flag("data")
    n_texts: int = flag(32, help="stratified test texts compared")
    max_len: int = shared_flag("max_len")
    atol: float = flag(ATOL, help="max |dlogit| for a pass")
    seed: int = shared_flag("seed")


def run(config: InteropConfig) -> int:
    from common.data import load_test_split

    artefacts = parse_artefacts(config.artefact)
    texts = load_test_split(config.data, config.n_texts, config.seed).texts
    interop_check(artefacts, texts, Path(config.output), config.interop_python, config.max_len, config.to_dict(),
                  config.seed, config.atol, openvino_python=config.openvino_python)
    return 0
