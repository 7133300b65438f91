"""The OpenVINO loader: an IR (``x.xml`` + ``x.bin``) in the OpenVINO runtime as a :class:`~common.models.base.Classifier`.

The IR is one of our ONNX graphs converted by OpenVINO (``<variant>_ov``), or that conversion quantized to
static int8 by NNCF (``<variant>_ov_int8``), written by :mod:`common.export.openvino_export`. The tokenizer and
config are the ONNX graph's, in the same folder. Facts the exporter stamps into the IR's ``rt_info`` under
``bert_agnews`` (parameter counts, whether it is int8, the source graph) are read back; an IR written elsewhere
gets its counts from its source ONNX graph when it has one, else none.

**Runtime properties** (:func:`runtime_properties`), the same for every IR and for the OpenVINO peer's measurement:

* ``INFERENCE_NUM_THREADS`` = the thread count the benchmark gives every runtime (``THREADS``; 0 = OpenVINO's
  default, all cores), as ONNX Runtime's ``intra_op_num_threads``;
* ``PERFORMANCE_HINT`` = ``LATENCY`` (one stream: one request at a time uses every thread, as ONNX Runtime's
  session does; ``THROUGHPUT`` would run several streams for several requests in flight, which our callers never
  have) and ``NUM_STREAMS`` = 1;
* ``INFERENCE_PRECISION_HINT`` = ``f32``: OpenVINO may run fp32 layers in bf16 on a CPU with AMX/AVX512-BF16,
  which would break the fp32 parity rule (max |dlogit| <= 1e-4 against the ONNX graph); int8 layers stay int8.

Refusals, each one sentence: a missing or truncated ``.bin`` (OpenVINO's own check, or a size that differs from
the one the exporter recorded), an IR without the ``logits`` output or with inputs a BERT classifier does not
have, and no OpenVINO installed (``make setup`` installs it).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.models.base import Classifier

IR_SUFFIX = ".xml"
RT_INFO_ROOT = "bert_agnews"
# rt_info keys the exporter writes (strings; parameters and quantized as JSON).
RT_KEYS = ("parameters", "quantized", "activation_scales", "source", "label_names", "max_position_embeddings")
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ONNX_OUTPUT = "logits"
HOW_TO_INSTALL = "OpenVINO is not installed in this environment; run `make setup` (it installs openvino and nncf)."


def import_openvino():
    """The ``openvino`` module, or one sentence naming ``make setup``."""
    try:
        import openvino
    except ImportError:
        raise UserError(HOW_TO_INSTALL) from None
    return openvino


def runtime_properties(threads: int = 0, precision: str = "f32") -> dict:
    """The compile properties every OpenVINO model here runs with (see the module docstring)."""
    props = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_PRECISION_HINT": precision}
    if threads:
        props["INFERENCE_NUM_THREADS"] = str(int(threads))
    return props


def is_openvino_file(path: Path) -> bool:
    return path.is_file() and path.suffix == IR_SUFFIX


def bin_path(xml: str | os.PathLike) -> Path:
    return Path(xml).with_suffix(".bin")


def read_ir(path: str | os.PathLike, core=None):
    """``core.read_model`` of an IR, refused in one sentence when its weights are missing or truncated."""
    ov = import_openvino()
    path = Path(path)
    weights = bin_path(path)
    if not weights.is_file():
        raise UserError(f"{path} has no weights file {weights.name} beside it; rebuild it (`make {path}`).")
    recorded = _recorded_bin_bytes(path)
    if recorded is not None and weights.stat().st_size != recorded:
        raise UserError(f"{weights} is {weights.stat().st_size} bytes but its export wrote {recorded}: the IR is "
                        f"truncated or replaced; rebuild it (`make {path}`).")
    try:
        return (core or ov.Core()).read_model(str(path))
    except Exception as exc:
        first = next((line for line in str(exc).splitlines() if "bin file" in line or "weights" in line.lower()),
                     str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__)
        raise UserError(f"{path} is not a loadable OpenVINO IR ({first.strip()[:160]}); rebuild it "
                        f"(`make {path}`).") from None


def _recorded_bin_bytes(path: Path) -> int | None:
    from common.manifest import manifest_path_for

    manifest = manifest_path_for(path)
    try:
        return int(json.loads(manifest.read_text())["bin_bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def rt_facts(model) -> dict:
    """The ``bert_agnews`` facts an exporter stamped into a model's rt_info (strings)."""
    facts = {}
    for key in RT_KEYS:
        if model.has_rt_info([RT_INFO_ROOT, key]):
            facts[key] = model.get_rt_info([RT_INFO_ROOT, key]).astype(str)
    return facts


def source_onnx(path: str | os.PathLike) -> Path:
    """The ONNX graph an IR was converted from (its rt_info, else the manifest); UserError when unknown."""
    from common.manifest import read_manifest

    path = Path(path)
    facts = rt_facts(read_ir(path))
    source = facts.get("source") or (read_manifest(path) or {}).get("source")
    if not source:
        raise UserError(f"{path} does not record the ONNX graph it was converted from; properties need it.")
    source = Path(source)
    if not source.is_absolute() and not source.exists():
        source = path.parent / source.name
    if not source.is_file():
        raise UserError(f"{path} was converted from {source}, which no longer exists; rebuild it (`make {source}`).")
    return source


class OpenVinoClassifier(Classifier):
    """An OpenVINO IR on the CPU; tokenizer (and config) from the same folder."""

    kind = "openvino"

    def __init__(self, path: str | os.PathLike, tokenizer, device: str = "cpu", threads: int = 0, **kwargs):
        ov = import_openvino()
        super().__init__(tokenizer, threads=threads, **kwargs)
        if not device.startswith("cpu"):
            raise UserError(f"{path}: OpenVINO variants run on the CPU here; use --device cpu (the CUDA image runs "
                            f"the ONNX graphs on the GPU instead).")
        self.path = Path(path)
        core = ov.Core()
        model = read_ir(self.path, core)
        self.input_names = [i.get_any_name() for i in model.inputs]
        unknown = set(self.input_names) - set(ONNX_INPUTS)
        if unknown:
            raise UserError(f"{self.path} expects inputs {sorted(unknown)}, which a BERT classifier does not have.")
        outputs = [name for o in model.outputs for name in o.get_names()]
        if ONNX_OUTPUT not in outputs:
            raise UserError(f"{self.path} has outputs {outputs[:4]} but no {ONNX_OUTPUT!r} output; convert it with "
                            f"export_onnx.export_openvino from a graph export_onnx wrote.")
        self._meta = rt_facts(model)
        if "max_position_embeddings" in self._meta:
            self.max_len = min(self.max_len, int(self._meta["max_position_embeddings"]))
        self.properties = runtime_properties(threads)
        self.compiled = core.compile_model(model, "CPU", self.properties)
        self.request = self.compiled.create_infer_request()
        self.device = "cpu"
        quantized = json.loads(self._meta["quantized"]) if "quantized" in self._meta else _has_int8(model)
        self.info.update({"runtime": f"openvino {ov.get_version()}", "threads": int(threads or 0),
                          "properties": self.properties, "quantized": quantized})
        if quantized:
            # NNCF's post-training quantization fixes every activation scale at build time (static).
            self.kind = "openvino-int8"
            self.info["activation_scales"] = "static"

    def parameter_count(self) -> dict[str, int] | None:
        if "parameters" in self._meta:
            return json.loads(self._meta["parameters"])
        return None

    def _logits_batch(self, input_ids, attention_mask, token_type_ids):
        feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        self.request.infer({k: feed[k] for k in self.input_names})
        return np.asarray(self.request.get_tensor(ONNX_OUTPUT).data, dtype=np.float32).copy()


def _has_int8(model) -> bool:
    """Whether a model holds NNCF's fake-quantize nodes (an IR written elsewhere, without our rt_info)."""
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def load_openvino(path: Path, device: str, dtype: str, threads: int = 0, **kwargs) -> Classifier:
    from common.models.onnx_graph import load_onnx_tokenizer

    if dtype != "fp32":
        raise UserError(f"{path} is an OpenVINO IR with fixed weight types; --dtype {dtype} does not apply "
                        f"(use fp32).")
    return OpenVinoClassifier(path, load_onnx_tokenizer(path), device=device, threads=threads, **kwargs)
