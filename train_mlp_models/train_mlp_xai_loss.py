"""Train MLP students with cross-entropy + lambda * explanation loss (match BERT's LIME weights).

    python -m train_mlp_models.train_mlp_xai_loss --output models/mlp/xai.pt --lambda 1.0 \
        --data ../shared/data/ag_news --explanations outputs/intermediate_data/bert_token_explanations.csv \
        --teacher models/fine_tuned/bert_agnews --seeds 42 43 44

The explanation loss is 1 - cosine between the student's gradient x input attribution (centred logit of
the explained class) and BERT's LIME weights for the same class, over the words of the text, on the
explained training instances not held out for evaluation. The same stage as ``train_mlp_vanilla.py`` with
``--loss xai`` as the default; see common/mlp/ for the reasons.
"""
from __future__ import annotations

import sys

from common.mlp.stages import XaiTrainingConfig, run_training
from common.stage import config_entry

main = config_entry(__doc__, XaiTrainingConfig, run_training)

if __name__ == "__main__":
    sys.exit(main())
