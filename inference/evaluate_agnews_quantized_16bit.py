"""Evaluate any torch variant in fp16 or bf16 -> outputs/metrics/base_fp16.json etc.

``run_inference_on_model`` with ``--dtype`` limited to fp16|bf16 (default fp16): the same keys and code.
Runs on the GPU when present. On CPU the speed depends on the instruction set: bf16 is fast where the CPU
has native bf16 matrix instructions (AVX512-BF16, AMX), while fp16 has no fast CPU path and runs slower
than fp32 (the measurements, per host: analysis/RESULTS.md, "16-bit on CPU"). The numbers say so; nothing is
faked.

    python -m inference.evaluate_agnews_quantized_16bit --model models/fine_tuned/bert_agnews \
        --dtype bf16 --variant base_bf16 --output outputs/metrics/base_bf16.json
"""
from __future__ import annotations

import sys

from common.bench.evaluation import HalfPrecisionEvaluationConfig, run_evaluation
from common.stage import config_entry

main = config_entry(__doc__, HalfPrecisionEvaluationConfig, run_evaluation)

if __name__ == "__main__":
    sys.exit(main())
