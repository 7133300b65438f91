"""Variant name -> the artefact it is and the dtype it runs in: the one table Make and Python both read.

Make reads what ``python3 common/variants.py`` prints (once per parse, into ``VARIANT_TABLE``), so
``$(call artefact,pruned20_8bit)`` and :func:`artefact` answer from the same rows. ``%`` in a row is a pruning percentage; rows are tried in order and the first whose name
pattern matches wins (``pruned%_masked_onnx``, ``pruned%_onnx_int8`` and ``pruned%_onnx_static`` before
``pruned%_onnx`` before ``pruned%``; ``pruned%_ov_int8`` before ``pruned%_ov``). ``_ov`` names are OpenVINO IRs of
the same name's ONNX graph (``pruned20_ov`` is models/onnx/pruned20.onnx converted; ``pruned20_ov_int8`` that
conversion in NNCF static int8), the file Make builds being the ``.xml``. A folder
artefact's file is its ``manifest.json`` (written last). Stdlib only: Make runs it before any venv exists.
"""
from __future__ import annotations

FT = "models/fine_tuned/bert_agnews"
# name pattern -> the file Make builds for it; the seed's folders, so names show lineage left to right.
TABLE = (
    ("base", f"{FT}/manifest.json"),
    ("base_fp16", f"{FT}/manifest.json"),
    ("base_bf16", f"{FT}/manifest.json"),
    ("base_8bit", "models/quantized/bert_agnews_8bit.pt"),
    ("base_onnx", "models/onnx/base.onnx"),
    ("base_onnx_int8", "models/onnx/base_int8.onnx"),
    ("base_onnx_static", "models/onnx/base_static.onnx"),
    ("base_ov", "models/onnx/base_ov.xml"),
    ("base_ov_int8", "models/onnx/base_ov_int8.xml"),
    ("control_seed%_ov", "models/onnx/control_seed%_ov.xml"),
    ("control_seed%_ov_int8", "models/onnx/control_seed%_ov_int8.xml"),
    ("pruned%_ov_int8", "models/onnx/pruned%_ov_int8.xml"),
    ("pruned%_ov", "models/onnx/pruned%_ov.xml"),
    ("pruned%_masked_onnx", "models/onnx/pruned%_masked.onnx"),
    ("pruned%_onnx_int8", "models/onnx/pruned%_int8.onnx"),
    ("pruned%_onnx_static", "models/onnx/pruned%_static.onnx"),
    ("pruned%_onnx", "models/onnx/pruned%.onnx"),
    ("pruned%_masked", "models/pruned/bert_agnews_%pct/manifest.json"),
    ("pruned%_8bit", "models/quantized/pruned%_8bit.pt"),
    ("pruned%", "models/shrunk/pruned%/manifest.json"),
)
# What a loader reports as ``Classifier.kind`` -> (the dtype the benchmark's summary shows, None: the variant's own
# fp32/fp16/bf16; the sparsity sweep's quantization mode, None: not a sweep graph). The summary and the sweep read
# this one table, so a new quantization is its loader module plus one row here (and a TABLE row for its name).
KINDS = {
    "torch": (None, "fp32"),
    "onnx": (None, "fp32"),
    "mlp": (None, None),
    "torch-int8": ("int8 (w8a8 dynamic)", None),
    "onnx-int8": ("int8 (w8a8 dynamic)", "dynamic"),
    "onnx-int8-static": ("int8 (w8a8 static)", "static"),
    "openvino": (None, "ov_fp32"),
    "openvino-int8": ("int8 (w8a8 static, NNCF)", "ov_int8"),
}
# The sweep's modes in the order its tables list them (ov_*: the same graphs run by OpenVINO).
SWEEP_MODES = ("fp32", "dynamic", "static", "ov_fp32", "ov_int8")
# Each mode in words (the sweep's pick sentence).
MODE_TEXT = {"fp32": "fp32 (no quantization)", "dynamic": "ONNX Runtime dynamic int8",
             "static": "ONNX Runtime static int8", "ov_fp32": "OpenVINO fp32", "ov_int8": "OpenVINO NNCF static int8"}


def reported_dtype(kind: str | None, dtype: str | None) -> str | None:
    """The dtype a summary shows for a record of ``kind`` whose own dtype is ``dtype``."""
    return KINDS.get(kind, (None, None))[0] or dtype


def sweep_mode(kind: str | None) -> str:
    """The sweep's quantization mode of a graph of ``kind`` (fp32 for anything unquantized or unknown)."""
    return KINDS.get(kind, (None, None))[1] or "fp32"


# A torch folder named with one of these suffixes is evaluated in that dtype (any name, not only the table's).
HALF_SUFFIXES = {"_fp16": "fp16", "_bf16": "bf16"}


def dtype_for(variant: str) -> str:
    """fp16/bf16 variants are torch folders evaluated in the dtype their name ends with."""
    for suffix, dtype in HALF_SUFFIXES.items():
        if variant.endswith(suffix):
            return dtype
    return "fp32"


def _match(pattern: str, name: str) -> str | None:
    """The text ``%`` stands for when ``name`` matches ``pattern`` (as Make's ``$(filter)``: it may be empty),
    else None."""
    if "%" not in pattern:
        return "" if name == pattern else None
    prefix, suffix = pattern.split("%", 1)
    if len(name) < len(prefix) + len(suffix) or not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    return name[len(prefix):len(name) - len(suffix)]


def artefact(variant: str) -> str:
    """The file Make builds for ``variant``; ValueError for a name no row matches."""
    for pattern, target in TABLE:
        stem = _match(pattern, variant)
        if stem is not None:
            return target.replace("%", stem)
    raise ValueError(f"unknown variant {variant!r}: no row of common/variants.py's TABLE matches it")


def model_path(variant: str) -> str:
    """The path ``load_classifier`` takes: the folder for a folder artefact."""
    target = artefact(variant)
    return target[: -len("/manifest.json")] if target.endswith("/manifest.json") else target


def make_rows() -> str:
    """The table on one line for Make's ``VARIANT_TABLE``: rows ``pattern=file=dtype``, in order."""
    return " ".join(f"{pattern}={target}={dtype_for(pattern)}" for pattern, target in TABLE)


if __name__ == "__main__":
    print(make_rows())
