"""Re-fine-tuning recipes side by side: accuracy, label agreement with base on every test row, both gates' verdicts.

    python -m analysis.recipes.compare_recipes --base models/fine_tuned/bert_agnews --data ../shared/data/ag_news \
        --variant function:pruned60_ov_int8=models/onnx/pruned60_ov_int8.xml --reports function=outputs/reports \
        --variant logits:pruned60_ov_int8=old/pruned60_ov_int8.xml --output outputs/reports/recipes.md

See common/report/recipes.py.
"""
from __future__ import annotations

import sys

from common.report.recipes import RecipesConfig, run
from common.stage import config_entry

main = config_entry(__doc__, RecipesConfig, run)

if __name__ == "__main__":
    sys.exit(main())
