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

from common.cli import add_shared_flags, stage_parser
from common.mlp.evaluation import SweepConfig, run_sweep
from common.mlp.stages import add_student_arguments
from common.stage import stage_entry


def build_parser():
    p = stage_parser(__doc__)
    p.add_argument("--lambdas", type=float, nargs="+", required=True, help="explanation-loss weights to try")
    p.add_argument("--output-dir", required=True, help="folder for mlp_sweep.csv/.md/.png")
    add_shared_flags(p, "data")
    p.add_argument("--explanations", required=True, help="BERT's LIME weights on training rows (CSV)")
    p.add_argument("--teacher", default="", help="fine-tuned BERT (agreement with its predictions; bert_* targets)")
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="one student per seed and lambda")
    add_student_arguments(p)
    return p


main = stage_entry(build_parser, SweepConfig, run_sweep)

if __name__ == "__main__":
    sys.exit(main())
