"""Evaluate any artefact on the AG News test split -> outputs/metrics/<variant>.json.

    python -m inference.run_inference_on_model --model models/fine_tuned/bert_agnews \
        --variant base --output outputs/metrics/base.json --data ../shared/data/ag_news

Keys: accuracy, macro_f1, per_class_f1, confusion_matrix, n_test, throughput
(samples/s at batch 32), latency p50/p95/p99 (batch 1, after warm-up), size_mb,
parameters, peak_rss_mb, plus the run's manifest under ``manifest``.
``--dtype fp16|bf16`` evaluates a torch folder in that precision (the seed's
``evaluate_agnews_quantized_16bit.py`` is this evaluation with its --dtype).
"""
from __future__ import annotations

import sys

from common.bench.evaluation import ModelEvaluationConfig, run_evaluation
from common.stage import config_entry

main = config_entry(__doc__, ModelEvaluationConfig, run_evaluation)

if __name__ == "__main__":
    sys.exit(main())
