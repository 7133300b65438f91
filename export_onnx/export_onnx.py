"""Export a model to ONNX (parity-checked), optionally optimized and/or int8-quantized.

    python -m export_onnx.export_onnx --model models/fine_tuned/bert_agnews \
        --output models/onnx/base.onnx --data ../shared/data/ag_news
    python -m export_onnx.export_onnx --model models/onnx/base.onnx --int8 \
        --output models/onnx/base_int8.onnx --data ../shared/data/ag_news
    python -m export_onnx.export_onnx --model models/onnx/base.onnx --int8 --mode static \
        --output models/onnx/base_static.onnx --data ../shared/data/ag_news --calib-rows 128 --seed 42

``--model`` is a fine-tuned, pruned (masked) or shrunk model folder, or with ``--int8`` an
fp32 ``.onnx`` written by this script. The graph has inputs input_ids, attention_mask,
token_type_ids and output logits, with dynamic batch and sequence axes (opset 17).
Before anything is written: fp32 max |Δlogit| vs PyTorch <= 1e-4 on real texts of varied
length; int8 (dynamic or static) argmax agreement with fp32 >= 99 % on 500 test texts. config.json and the
tokenizer are written beside the .onnx (Optimum's ORTModelForSequenceClassification loads
the folder), and X.manifest.json records parity, opset, source hash and optimizer outcome.
"""
from __future__ import annotations

import sys

from common.cli import add_shared_flags, stage_parser
from common.export.stage import INT8_MODES, ExportConfig, run
from common.export.onnx_export import INT8_TEXTS, OPSET
from common.quantize.ort_static import CALIB_ROWS, DEFAULT_STATIC_FORMAT, STATIC_FORMATS
from common.stage import stage_entry


def build_parser():
    p = stage_parser(__doc__, model="model folder (full, pruned or shrunk), or an fp32 .onnx with --int8",
                     output="the .onnx to write, e.g. models/onnx/pruned20.onnx")
    p.add_argument("--int8", action="store_true", help="ONNX Runtime dynamic int8 quantization")
    p.add_argument("--optimize", action="store_true",
                   help="ONNX Runtime transformer optimizer (fusions); falls back to the plain graph if it fails")
    add_shared_flags(p, "data", "max_len")
    p.add_argument("--opset", type=int, default=OPSET)
    p.add_argument("--int8-samples", type=int, default=INT8_TEXTS,
                   help="test texts of the int8 agreement check (fewer only when the test split is smaller)")
    add_shared_flags(p, "threads", "seed")
    p.add_argument("--mode", choices=INT8_MODES, default="dynamic",
                   help="with --int8: dynamic (activation scales per batch) or static (scales calibrated on seeded "
                        "training rows, so a text's prediction does not depend on its batch mates)")
    p.add_argument("--static-format", choices=sorted(STATIC_FORMATS), default=DEFAULT_STATIC_FORMAT,
                   help="--mode static: ONNX format and activation type (weights are per-channel s8); "
                        "qoperator_u8 was the fastest measured here")
    p.add_argument("--calib-rows", type=int, default=CALIB_ROWS,
                   help="--mode static: training rows (seeded by --seed, never test rows) that calibrate the scales")
    p.add_argument("--fused-attention", action="store_true",
                   help="each layer's attention as ONNX Runtime's fused MultiHeadAttention op (own head count per "
                        "layer); kept only if it passes the same parity checks, else the plain graph and the reason")
    return p


main = stage_entry(build_parser, ExportConfig, run)

if __name__ == "__main__":
    sys.exit(main())
