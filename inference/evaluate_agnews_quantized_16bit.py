"""Evaluate any torch variant in fp16 or bf16 -> outputs/metrics/base_fp16.json etc.

Same keys as ``run_inference_on_model``. Runs on the GPU when present. On a CPU
without native 16-bit matrix units (like the 2-core development machine) bf16
and fp16 run, correctly but *slower* than fp32: the numbers say so, nothing is faked.

    python -m inference.evaluate_agnews_quantized_16bit --model models/fine_tuned/bert_agnews \
        --dtype bf16 --variant base_bf16 --output outputs/metrics/base_bf16.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.cli import stage_main  # noqa: E402
from common.evaluation import add_eval_arguments, run_evaluation  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_eval_arguments(parser, dtype_choices=("fp16", "bf16"), default_dtype="fp16")
    return parser


@stage_main
def main(argv=None):
    return run_evaluation(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
