"""Compare the vanilla and the XAI MLP students -> outputs/reports/mlp.csv, mlp.md (+ mlp_per_seed.csv).

    python -m train_mlp_models.evaluate_mlp_models --vanilla models/mlp/vanilla.pt --xai models/mlp/xai.pt \
        --output-dir outputs/reports --data ../shared/data/ag_news \
        --explanations outputs/intermediate_data/bert_token_explanations.csv \
        --teacher models/fine_tuned/bert_agnews --lime-samples 1000

Per student and seed: test accuracy, macro-F1, agreement with BERT's predictions (the teacher's test
predictions are computed once and cached beside the explanations CSV, keyed by the teacher's hash), and on
the held-out explained instances the agreement of the student's explanations with BERT's LIME weights
(Spearman, top-5/10 Jaccard), both for its own grad x input attribution and for LIME run on it through
load_classifier. Mean and 95% CI over seeds, the paired XAI - vanilla difference, and a verdict computed
from those numbers. Finished (student, seed) evaluations are cached in the output folder and skipped on rerun.
"""
from __future__ import annotations

import sys

from common.mlp.evaluation import EvaluationConfig, run_evaluation
from common.stage import config_entry

main = config_entry(__doc__, EvaluationConfig, run_evaluation)

if __name__ == "__main__":
    sys.exit(main())
