"""The ``.onnx`` loader: an exported graph in ONNX Runtime as a :class:`~common.models.base.Classifier`.

The tokenizer and config come from the graph's folder; label names, the position limit, the parameter
count and whether the weights are int8 come from the graph's metadata (written by
:mod:`common.export.onnx_export`), or are counted from its initializers for a graph written elsewhere.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from common.models.base import Classifier
from common.cli import UserError

ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ONNX_OUTPUT = "logits"
META_PREFIX = "bert_agnews."
# Metadata of a statically quantized graph (common.quantize.ort_static): its activation scales were fixed at build
# time, so a text's prediction does not depend on its batch mates.
ACTIVATION_SCALES_KEY = "activation_scales"
STATIC_SCALES = "static"


def is_static(meta: dict) -> bool:
    return meta.get(ACTIVATION_SCALES_KEY) == STATIC_SCALES


def onnx_group(name: str) -> str:
    """The part of the model an ONNX initializer belongs to: embeddings, encoder or head (the properties
    table and the parameter counts use this one rule, so both agree)."""
    dotted = f".{name}."
    if ".embeddings." in dotted:
        return "embeddings"
    if ".pooler." in dotted or ".classifier." in dotted:
        return "head"
    return "encoder"  # by elimination: exporters rename the encoder's MatMul weights (onnx::MatMul_N)


def initializer_counts(path: str | os.PathLike) -> tuple[dict[str, int], bool]:
    """(weights counted from initializers, whether the graph holds int8-quantized weights).

    int8 weights count once; scales, zero points and shape constants do not. The exporter
    stores bit-identical tensors once, so an untrained model (equal zero biases) counts
    slightly fewer than torch does.
    """
    import onnx

    groups = {"embeddings": 0, "encoder": 0, "head": 0}
    quantized = False
    for tensor in onnx.load(str(path)).graph.initializer:
        quantized = quantized or tensor.name.endswith("_quantized")
        if tensor.name.endswith(("_scale", "_zero_point")) or len(tensor.dims) == 0:
            continue
        numel = int(np.prod(tensor.dims))
        if numel <= 1 or (tensor.data_type == onnx.TensorProto.INT64 and len(tensor.dims) == 1):
            continue
        name = tensor.name[: -len("_quantized")] if tensor.name.endswith("_quantized") else tensor.name
        groups[onnx_group(name)] += numel
    groups["total"] = groups["embeddings"] + groups["encoder"] + groups["head"]
    return groups, quantized



def _providers(device: str) -> list:
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise UserError(f"--device {device}: this onnxruntime build has no CUDA provider; install "
                        f"onnxruntime-gpu or use --device cpu.")
    device_id = int(device.split(":", 1)[1]) if ":" in device else 0
    return [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]


def onnx_metadata(session) -> dict:
    meta = session.get_modelmeta().custom_metadata_map
    return {k[len(META_PREFIX):]: v for k, v in meta.items() if k.startswith(META_PREFIX)}


class OnnxClassifier(Classifier):
    """An ``.onnx`` graph in ONNX Runtime; tokenizer (and config) from the same folder."""

    kind = "onnx"

    def __init__(self, path: str | os.PathLike, tokenizer, device: str = "cpu", threads: int = 0, **kwargs):
        import onnxruntime as ort

        super().__init__(tokenizer, threads=threads, **kwargs)
        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or 0)  # 0 = ONNX Runtime's default (all cores)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=_providers(device))
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"{self.path} is not a loadable ONNX graph ({type(exc).__name__}: "
                            f"{str(exc)[:200]}); rebuild it with export_onnx.") from None
        self.device = device
        self.input_names = [i.name for i in self.session.get_inputs()]
        unknown = set(self.input_names) - set(ONNX_INPUTS)
        if unknown:
            raise UserError(f"{self.path} expects inputs {sorted(unknown)}, which a BERT classifier does not have.")
        outputs = [o.name for o in self.session.get_outputs()]
        if ONNX_OUTPUT not in outputs:
            # Checked here, not at the first predict: a wrong graph must fail before any work is done.
            raise UserError(f"{self.path} has outputs {outputs[:4]} but no {ONNX_OUTPUT!r} output; export it with "
                            f"export_onnx, which names the classifier output {ONNX_OUTPUT!r}.")
        meta = onnx_metadata(self.session)
        if "max_position_embeddings" in meta:
            self.max_len = min(self.max_len, int(meta["max_position_embeddings"]))
        self._meta = meta
        self.info.update({"providers": self.session.get_providers(), "threads": int(threads or 0),
                          "quantized": self._facts()[1]})
        if self.info["quantized"]:
            # Dynamic int8 scales activations per batch; a static graph's scales are fixed at build time.
            self.batch_dependent = not is_static(meta)
            self.info["activation_scales"] = "dynamic" if self.batch_dependent else "static"
            self.kind = "onnx-int8" if self.batch_dependent else "onnx-int8-static"

    def _facts(self) -> tuple[dict[str, int], bool]:
        if "parameters" in self._meta and "quantized" in self._meta:
            return json.loads(self._meta["parameters"]), json.loads(self._meta["quantized"])
        if not hasattr(self, "_facts_cache"):  # a graph not written by export_onnx: read it once
            self._facts_cache = initializer_counts(self.path)
        return self._facts_cache

    def parameter_count(self) -> dict[str, int]:
        """Weights counted from the graph's initializers (see :func:`initializer_counts`)."""
        return dict(self._facts()[0])

    def _logits_batch(self, input_ids, attention_mask, token_type_ids):
        feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return self.session.run([ONNX_OUTPUT], {k: feed[k] for k in self.input_names})[0].astype(np.float32)


def load_onnx_tokenizer(path: Path):
    from transformers import AutoTokenizer

    folder = path.parent
    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        raise UserError(f"{path} has no tokenizer beside it ({folder}/tokenizer.json); re-export it with "
                        f"export_onnx, which writes config.json and the tokenizer next to the .onnx.")
    return AutoTokenizer.from_pretrained(folder)


def is_onnx_file(path: Path) -> bool:
    return path.is_file() and path.suffix == ".onnx"


def load_onnx(path: Path, device: str, dtype: str, threads: int = 0, **kwargs) -> Classifier:
    if dtype != "fp32":
        raise UserError(f"{path} is an ONNX graph with fixed weight types; --dtype {dtype} does not apply (use fp32).")
    return OnnxClassifier(path, load_onnx_tokenizer(path), device=device, threads=threads, **kwargs)
