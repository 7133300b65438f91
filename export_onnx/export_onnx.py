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

from common.export.stage import ExportConfig, run
from common.stage import config_entry

main = config_entry(__doc__, ExportConfig, run)

if __name__ == "__main__":
    sys.exit(main())
