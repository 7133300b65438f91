"""Plain vs fused attention (ONNX Runtime's MultiHeadAttention op) for fp32, dynamic and static int8 ONNX graphs.

    python -m tools.fused_attention_compare --models models/fine_tuned/bert_agnews models/shrunk/pruned30 \
        --output outputs/metrics/fused_attention.md --data ../shared/data/ag_news --threads 2

Exports each model folder plain and fused (both parity-checked by the export stage), quantizes each both ways,
times all six graphs in turns with the benchmark's protocol and writes a Markdown table (throughput, ratio of
fused to plain, parity, fused ops per layer) and its JSON manifest. It times inference: run it on an idle machine.
"""
from __future__ import annotations

import sys

from common.cli import add_shared_flags, stage_parser
from tools.lab.fused_attention import FusedCompareConfig, run
from common.quantize.ort_static import CALIB_ROWS, DEFAULT_STATIC_FORMAT, STATIC_FORMATS
from common.stage import stage_entry


def build_parser():
    p = stage_parser(__doc__, output="the Markdown table to write, e.g. outputs/metrics/fused_attention.md")
    p.add_argument("--models", nargs="+", required=True,
                   help="model folders (fine-tuned or shrunk), e.g. models/fine_tuned/bert_agnews "
                        "models/shrunk/pruned30")
    add_shared_flags(p, "data")
    p.add_argument("--texts", type=int, default=320, help="seeded test texts timed (pre-tokenized, length-sorted)")
    add_shared_flags(p, "max_len")
    p.add_argument("--batch-size", type=int, default=32)
    add_shared_flags(p, "threads", "seed")
    p.add_argument("--calib-rows", type=int, default=CALIB_ROWS, help="training rows that calibrate static int8")
    p.add_argument("--rounds", type=int, default=3, help="timed passes per graph, taken in turns")
    p.add_argument("--int8-samples", type=int, default=500, help="test texts of the exports' agreement checks")
    p.add_argument("--static-format", choices=sorted(STATIC_FORMATS), default=DEFAULT_STATIC_FORMAT,
                   help="static int8 format (as export_onnx's --static-format)")
    return p


main = stage_entry(build_parser, FusedCompareConfig, run)

if __name__ == "__main__":
    sys.exit(main())
