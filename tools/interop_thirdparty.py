"""The third-party side of ``make interop``: load every artefact with the clients people already have.

    .venv-interop/bin/python tools/interop_thirdparty.py --reference outputs/metrics/interop_reference.json \
        --output outputs/metrics/interop_thirdparty.json

Runs in a throwaway venv (Optimum + ONNX Runtime + the transformers < 4.58 they pin; for the OpenVINO IRs,
optimum-intel's venv, .venv-openvino, with the transformers < 5.6 it pins) and therefore imports
nothing from this toolkit - only the standard library, torch, transformers and Optimum. It reads the texts,
``max_len`` and the artefact list from the reference file ``tools/interop.py`` wrote, and writes the logits
each third-party loader gives, one text at a time: dynamic int8 computes its activation scales per batch, so
only batches of one compare like with like. An artefact that fails to load is recorded with its error (the
comparison then fails it) instead of stopping the run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import metadata


def package_versions() -> dict:
    versions = {}
    for name in ("torch", "transformers", "optimum", "optimum-onnx", "onnxruntime", "optimum-intel", "openvino"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def load_hf_folder(path: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    # Shrunk folders carry their own modeling file (auto_map); full-size ones load as stock BERT either way.
    model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
    loader = f"transformers {package_versions()['transformers']} {type(model).__name__}"
    return model, AutoTokenizer.from_pretrained(path), loader


def load_onnx_graph(path: str):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    folder, file_name = os.path.split(os.path.abspath(path))
    model = ORTModelForSequenceClassification.from_pretrained(folder, file_name=file_name)
    loader = f"optimum-onnx {package_versions()['optimum-onnx']} ORTModelForSequenceClassification"
    return model, AutoTokenizer.from_pretrained(folder), loader


def load_openvino_ir(path: str):
    from optimum.intel import OVModelForSequenceClassification
    from transformers import AutoTokenizer

    folder, file_name = os.path.split(os.path.abspath(path))
    # fp32 inference, as the toolkit runs its IRs (OpenVINO may pick bf16 on a CPU with AVX512-BF16/AMX)
    model = OVModelForSequenceClassification.from_pretrained(folder, file_name=file_name,
                                                             ov_config={"INFERENCE_PRECISION_HINT": "f32"})
    loader = f"optimum-intel {package_versions()['optimum-intel']} OVModelForSequenceClassification"
    return model, AutoTokenizer.from_pretrained(folder), loader


LOADERS = {"onnx": load_onnx_graph, "hf_folder": load_hf_folder, "openvino": load_openvino_ir}


def logits_one_by_one(model, tokenizer, texts: list[str], max_len: int) -> list[list[float]]:
    import torch

    rows = []
    with torch.no_grad():
        for text in texts:
            encoded = tokenizer(text, truncation=True, max_length=max_len, return_tensors="pt")
            rows.append([float(x) for x in model(**encoded).logits[0]])
    return rows


def run_all(reference: dict) -> dict:
    results = {}
    for artefact in reference["artefacts"]:
        name, path, kind = artefact["name"], artefact["path"], artefact["kind"]
        loader = {"onnx": "optimum-onnx ORTModelForSequenceClassification",
                  "hf_folder": "transformers AutoModelForSequenceClassification",
                  "openvino": "optimum-intel OVModelForSequenceClassification"}.get(kind, kind)
        try:
            model, tokenizer, loader = LOADERS[kind](path)
            results[name] = {"loader": loader,
                             "logits": logits_one_by_one(model, tokenizer, reference["texts"], reference["max_len"])}
        except Exception as exc:  # recorded, then judged a failure by the comparison
            results[name] = {"loader": loader, "error": f"{exc.__class__.__name__}: {str(exc)[:300]}"}
        print(f"{name}: {'error' if 'error' in results[name] else 'ok'} ({results[name]['loader']})", file=sys.stderr)
    return {"versions": package_versions(), "python": sys.version.split()[0], "results": results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="JSON written by tools/interop.py (texts, artefacts)")
    parser.add_argument("--output", required=True, help="JSON to write: the third-party logits per artefact")
    args = parser.parse_args(argv)
    with open(args.reference) as fh:
        reference = json.load(fh)
    out = run_all(reference)
    tmp = f"{args.output}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(out, fh)
    os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
