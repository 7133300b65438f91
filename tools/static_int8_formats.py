"""Measure every static-int8 format (QOperator/QDQ x u8/s8 activations) of one fp32 graph, beside dynamic int8.

    python -m tools.static_int8_formats --model models/onnx/pruned30.onnx --data ../shared/data/ag_news \
        --output outputs/metrics/static_formats.md --threads 2

Writes a Markdown table (throughput and its ratio to dynamic int8, accuracy, agreement with fp32,
batch-vs-one-by-one agreement, size) and its JSON manifest. It times inference: run it on an idle machine.
"""
from __future__ import annotations

import sys

from common.stage import config_entry
from tools.lab.static_formats import StaticFormatsConfig, run

main = config_entry(__doc__, StaticFormatsConfig, run)

if __name__ == "__main__":
    sys.exit(main())
