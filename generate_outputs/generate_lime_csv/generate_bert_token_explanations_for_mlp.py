"""LIME weights of the BERT teacher for every class on training instances (input of the XAI MLP student).

    python -m generate_outputs.generate_lime_csv.generate_bert_token_explanations_for_mlp \
        --model models/onnx/base.onnx --data ../shared/data/ag_news --n-instances 300 \
        --num-samples 1000 --seed 42 --max-len 128 \
        --output outputs/intermediate_data/bert_token_explanations.csv

A seeded, class-stratified sample of the training split (the whole train file, validation
slice included; ``instance_id`` = row number in it). Columns: instance_id, text, true_label,
predicted_label, explained_label (every class 0-3), word, weight, rank, intercept, score,
num_samples, seed - one row per instance x class x word. Resumable like run_lime_on_model.
"""
from __future__ import annotations

import sys

from common.explain.stages import TokenExplanationConfig, run_token_explanations
from common.stage import config_entry

main = config_entry(__doc__, TokenExplanationConfig, run_token_explanations)

if __name__ == "__main__":
    sys.exit(main())
