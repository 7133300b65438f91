"""Plain vs fused attention (ONNX Runtime's MultiHeadAttention op) for fp32, dynamic and static int8 ONNX graphs.

    python -m tools.fused_attention_compare --models models/fine_tuned/bert_agnews models/shrunk/pruned30 \
        --output outputs/metrics/fused_attention.md --data ../shared/data/ag_news --threads 2

Exports each model folder plain and fused (both parity-checked by the export stage), quantizes each both ways,
times all six graphs in turns with the benchmark's protocol and writes a Markdown table (throughput, ratio of
fused to plain, parity, fused ops per layer) and its JSON manifest. It times inference: run it on an idle machine.
"""
from __future__ import annotations

import sys

from common.stage import config_entry
from tools.lab.fused_attention import FusedCompareConfig, run

main = config_entry(__doc__, FusedCompareConfig, run)

if __name__ == "__main__":
    sys.exit(main())
