"""Evaluate any torch variant in fp16 or bf16 -> outputs/metrics/base_fp16.json etc.

Same keys as ``run_inference_on_model``. Runs on the GPU when present. On CPU the
speed depends on the instruction set: bf16 is fast where the CPU has native bf16
matrix instructions (AVX512-BF16, AMX) - on the 2-core EPYC development machine it
measured 2.7x the fp32 throughput - while fp16 has no fast CPU path and runs several
times slower than fp32 (0.27x there). The numbers say so; nothing is faked.

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
