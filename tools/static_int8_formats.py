"""Measure every static-int8 format (QOperator/QDQ x u8/s8 activations) of one fp32 graph, beside dynamic int8.

    python -m tools.static_int8_formats --model models/onnx/pruned30.onnx --data ../shared/data/ag_news \
        --output outputs/metrics/static_formats.md --threads 2

Writes a Markdown table (throughput and its ratio to dynamic int8, accuracy, agreement with fp32,
batch-vs-one-by-one agreement, size) and its JSON manifest. It times inference: run it on an idle machine.
"""
from __future__ import annotations

import sys

from common.cli import add_shared_flags, stage_parser
from common.quantize.ort_static import CALIB_ROWS, STATIC_FORMATS
from common.stage import stage_entry
from tools.lab.static_formats import StaticFormatsConfig, run


def build_parser():
    p = stage_parser(__doc__, model="an fp32 .onnx written by export_onnx (e.g. models/onnx/pruned30.onnx)",
                     output="the Markdown table to write, e.g. outputs/metrics/static_formats.md")
    p.add_argument("--formats", nargs="+", choices=sorted(STATIC_FORMATS), default=list(STATIC_FORMATS),
                   help="static formats to build and measure (default: all four)")
    add_shared_flags(p, "data")
    p.add_argument("--calib-rows", type=int, default=CALIB_ROWS, help="training rows that calibrate the scales")
    p.add_argument("--texts", type=int, default=1000, help="stratified test texts timed and compared")
    add_shared_flags(p, "max_len")
    p.add_argument("--batch-size", type=int, default=32)
    add_shared_flags(p, "threads", "seed")
    return p


main = stage_entry(build_parser, StaticFormatsConfig, run)

if __name__ == "__main__":
    sys.exit(main())
