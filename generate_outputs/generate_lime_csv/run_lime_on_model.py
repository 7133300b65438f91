"""LIME explanations of any variant -> a long CSV (one row per instance x word).

    python -m generate_outputs.generate_lime_csv.run_lime_on_model --model models/onnx/base.onnx \
        --variant base --n-instances 100 --num-samples 1000 --seed 42 --output outputs/lime/base.csv \
        --data ../shared/data/ag_news --reference-model models/fine_tuned/bert_agnews

The instances are a class-stratified choice from the test split (``--instance-seed``, the
same for every variant); the explained label is the reference (base) model's prediction, so
variants are compared on the same question. Columns: instance_id, text, true_label,
predicted_label (this variant's), explained_label, word, weight, rank, intercept, score (local
model R^2), local_pred, variant, seed, num_samples. Results are appended per instance: a killed
run resumes. Under ``torchrun --nproc_per_node N`` each rank explains every N-th instance and
rank 0 merges the parts into the same bytes a single process writes.
"""
from __future__ import annotations

import sys

from common.explain.stages import LimeConfig, run_lime_on_model
from common.stage import config_entry

main = config_entry(__doc__, LimeConfig, run_lime_on_model)

if __name__ == "__main__":
    sys.exit(main())
