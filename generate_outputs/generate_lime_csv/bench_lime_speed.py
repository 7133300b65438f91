"""LIME speed benchmark: plain lime + a Hugging Face pipeline vs ours on the same model (`make bench-lime`).

    python -m generate_outputs.generate_lime_csv.bench_lime_speed --model models/fine_tuned/bert_agnews \
        --onnx models/onnx/base.onnx --data ../shared/data/ag_news --num-samples 1000 --seed 42 \
        --output outputs/metrics/lime_speed.json

Writes seconds per explanation for each setup, the speed-up of ours (ONNX fp32 export, de-duplicated,
length-sorted batches) over the naive pipeline (goal >= 1.8x), the share of our explanation time
spent outside the model call (goal <= 5 %) and how closely the two setups' explanations agree.
"""
from __future__ import annotations

import sys

from common.explain.speed import LimeBenchConfig, run_bench
from common.stage import config_entry

main = config_entry(__doc__, LimeBenchConfig, run_bench)

if __name__ == "__main__":
    sys.exit(main())
