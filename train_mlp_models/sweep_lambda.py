"""Sweep the weight of the explanation loss -> outputs/reports/mlp_sweep.csv, mlp_sweep.md, mlp_sweep.png.

    python -m train_mlp_models.sweep_lambda --lambdas 0 0.1 0.3 1 3 --output-dir outputs/reports \
        --data ../shared/data/ag_news --explanations outputs/intermediate_data/bert_token_explanations.csv \
        --teacher models/fine_tuned/bert_agnews --seeds 42 43 44

One student per (lambda, seed), lambda 0 being plain cross-entropy; per lambda: test accuracy, macro-F1,
agreement with BERT's predictions, and the agreement of the student's grad x input with BERT's LIME weights
on the held-out explained instances (mean and 95% CI over seeds). Finished (lambda, seed) runs are cached in
the output folder, so an interrupted sweep resumes.
"""
from __future__ import annotations

import sys

from common.mlp.evaluation import SweepConfig, run_sweep
from common.stage import config_entry

main = config_entry(__doc__, SweepConfig, run_sweep)

if __name__ == "__main__":
    sys.exit(main())
