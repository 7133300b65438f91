"""Static (calibrated) int8 for ONNX graphs: calibration rows, the calibration reader and ``quantize_static``.

Dynamic int8 computes one activation scale per input tensor, so a text's prediction depends on the other
texts in its batch. Static quantization fixes every activation scale from calibration data once, at build
time: a text then gets the same prediction alone or in any batch.

* Calibration reads **training** rows only (a seeded, class-stratified choice of ``--calib-rows``), never
  test rows, which the parity check holds out.
* The rows are batched exactly as evaluation batches them (the classifier's length-sorted batches, each
  padded to its longest text, truncated at ``--max-len``), so the calibrated ranges include what padding
  positions produce at inference time.
* The graph is pre-processed first (``quant_pre_process``); symbolic shape inference fails on these graphs,
  so it is skipped (ONNX shape inference and the graph optimizer still run).
* **What is quantized** (:data:`STATIC_PLANS`, tried in order under the int8 parity rule: the first that keeps
  >= 99 % argmax agreement with fp32 wins and every attempt is recorded): MatMuls and embedding Gathers that
  hold a weight, never the activation-by-activation MatMuls of attention (scores, context), whose fixed scales
  cost the most; then the same with each layer's FFN output projection in fp32 (the MatMul after GELU, whose
  input range is dominated by a few outliers, so one fixed u8 scale leaves the bulk of its values a handful
  of levels); then that without the Gathers. Measured on the fine-tuned MiniLM (AG News, 500 test texts, 128
  calibration rows, QOperator u8, MinMax): every MatMul 97.2 %; weight MatMuls 98.2 % (512 calibration rows:
  97.8 %); weight MatMuls + Gathers 97.4 %; FFN outputs in fp32: 99.0 % with the Gathers (32.5 MB), 99.2 %
  without (66.6 MB); dynamic int8 99.2 % (22 MB). Percentile calibration cannot run on length-sorted batches
  of different lengths (its histogram needs one shape).

The stage that uses this (parity check, fallback, manifest, graph metadata, atomic write) is
:func:`common.export.onnx_export.export_model`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from common.models.base import DEFAULT_BATCH_SIZE, Classifier
from common.cli import UserError

log = logging.getLogger(__name__)

CALIB_ROWS = 128
# The default is the format that ran fastest with batch-invariant predictions when the formats were compared
# (tools/static_int8_formats.py; the numbers: analysis/RESULTS.md, "Design measurements").
STATIC_FORMATS = {
    "qoperator_u8": ("QOperator", "QUInt8"),
    "qoperator_s8": ("QOperator", "QInt8"),
    "qdq_u8": ("QDQ", "QUInt8"),
    "qdq_s8": ("QDQ", "QInt8"),
}
DEFAULT_STATIC_FORMAT = "qoperator_u8"


@contextlib.contextmanager
def quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizers log one INFO line per tensor on the root logger: keep the stage log readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def check_static_format(name: str) -> tuple[str, str]:
    if name not in STATIC_FORMATS:
        raise UserError(f"--static-format {name!r} is not one of {', '.join(STATIC_FORMATS)}; pick one of them.")
    return STATIC_FORMATS[name]


def calibration_split(data: str, rows: int, seed: int):
    """``rows`` seeded, class-stratified training rows (all of them when the split is smaller)."""
    from common.data import load_split

    if rows < 1:
        raise UserError(f"--calib-rows {rows} must be >= 1 (training rows that calibrate the activation scales).")
    split = load_split(data, "train", rows, seed)
    if len(split) == 0:
        raise UserError(f"--data {data!r} has an empty train split; static int8 calibrates on training rows.")
    return split


class _FeedRecorder(Classifier):
    """Batches texts exactly as every classifier does (sorted, padded per batch) and keeps the feeds."""

    kind = "calibration"

    def __init__(self, tokenizer, input_names: Sequence[str], **kwargs):
        super().__init__(tokenizer, **kwargs)
        self.input_names = list(input_names)
        self.feeds: list[dict[str, np.ndarray]] = []

    def _logits_batch(self, input_ids, attention_mask, token_type_ids):
        feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        self.feeds.append({name: feed[name] for name in self.input_names})
        return np.zeros((len(input_ids), len(self.label_names)), dtype=np.float32)


def calibration_feeds(texts: Sequence[str], tokenizer, input_names: Sequence[str], max_len: int,
                      batch_size: int = DEFAULT_BATCH_SIZE) -> list[dict[str, np.ndarray]]:
    recorder = _FeedRecorder(tokenizer, input_names, max_len=max_len, batch_size=batch_size)
    recorder.predict_logits(texts)
    return recorder.feeds


class FeedReader:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over prepared feeds (a fresh one per attempt)."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]):
        self._all = list(feeds)
        self._feeds = iter(self._all)

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self):
        """Back to the first feed (calibration methods that read the data twice call it)."""
        self._feeds = iter(self._all)


def preprocess(source: str | os.PathLike, output: str | os.PathLike) -> None:
    """ONNX Runtime's recommended pre-processing before static quantization."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(source), str(output), skip_symbolic_shape=True)


# The plans, tried in order: (name, op types quantized where they hold a weight initializer, FFN output
# projections kept in fp32). Gather is the embedding tables' lookup (most of a small BERT's bytes).
WEIGHT_MATMULS = "weights"
FFN_OUTPUT_FP32 = "weights_ffn_output_fp32"
MATMULS_ONLY = "matmul_weights_ffn_output_fp32"
_PLANS = {WEIGHT_MATMULS: (("MatMul", "Gather"), False), FFN_OUTPUT_FP32: (("MatMul", "Gather"), True),
          MATMULS_ONLY: (("MatMul",), True)}
STATIC_PLANS = tuple(_PLANS)
# A layer's FFN output projection, as the exporter names it (transformers' module path: layer.N.output.dense;
# the attention block's own output.dense sits under .attention.)
_FFN_OUTPUT = re.compile(r"layer\.\d+/output/dense/MatMul")


def ffn_output_nodes(graph) -> list[str]:
    """The MatMul nodes of every layer's FFN output projection."""
    return [n.name for n in graph.node if n.op_type == "MatMul" and _FFN_OUTPUT.search(n.name)]


def nodes_for_plan(graph, plan: str) -> tuple[list[str], list[str]]:
    """(op types, node names) ``plan`` quantizes: nodes of those types with a weight initializer, minus each
    layer's FFN output projection where the plan keeps them in fp32."""
    if plan not in _PLANS:
        raise ValueError(f"unknown static int8 plan {plan!r}")
    op_types, ffn_output_fp32 = _PLANS[plan]
    weights = {init.name for init in graph.initializer}
    chosen = [n.name for n in graph.node if n.op_type in op_types and any(i in weights for i in n.input)]
    if ffn_output_fp32:
        in_fp32 = set(ffn_output_nodes(graph))
        chosen = [name for name in chosen if name not in in_fp32]
    return list(op_types), chosen


@dataclass(frozen=True)
class StaticQuantizer:
    """``quantize(source, output, plan) -> settings``; ``choices`` are the plans the parity rule tries in turn
    (:func:`common.export.onnx_export.quantize_with_fallback`)."""

    feeds: tuple
    static_format: str = DEFAULT_STATIC_FORMAT
    choices: tuple = STATIC_PLANS

    def __call__(self, source: str | os.PathLike, output: str | os.PathLike, plan: str) -> dict:
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        quant_format, activation_type = check_static_format(self.static_format)
        graph = onnx.load(str(source), load_external_data=False).graph
        op_types, nodes = nodes_for_plan(graph, plan)
        matmul_names = [n.name for n in graph.node if n.op_type == "MatMul"]
        with quiet_quantizer():
            quantize_static(str(source), str(output), FeedReader(self.feeds), quant_format=QuantFormat[quant_format],
                            op_types_to_quantize=op_types, nodes_to_quantize=nodes, per_channel=True,
                            reduce_range=False, activation_type=QuantType[activation_type],
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        return {"method": "onnxruntime.quantization.quantize_static", "static_format": self.static_format,
                "quant_format": quant_format, "activation_type": activation_type, "weight_type": "QInt8",
                "per_channel": True, "reduce_range": False, "calibrate_method": "MinMax", "plan": plan,
                "op_types": op_types, "nodes_quantized": len(nodes),
                "matmuls_in_fp32": len(set(matmul_names) - set(nodes)),
                "preprocessed": "quant_pre_process(skip_symbolic_shape=True)"}


def calibration_record(split, data: str, rows: int, seed: int, max_len: int) -> dict:
    """What the manifest says about the calibration data (its hash names exactly the rows used)."""
    from common.prediction_cache import split_digest

    return {"split": "train", "data": str(data), "rows_requested": rows, "rows": len(split), "seed": seed,
            "sha256": split_digest(split.texts, split.labels), "max_len": max_len,
            "batch_size": DEFAULT_BATCH_SIZE,
            "padding": "length-sorted batches, each padded to its longest text (as evaluation)"}

