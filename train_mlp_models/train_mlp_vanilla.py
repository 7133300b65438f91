"""Train MLP students on a bag of words: plain cross-entropy (the baseline of the XAI experiment), or with
``--loss xai`` cross-entropy + lambda * explanation loss (``train_mlp_xai_loss.py`` is that entry point).

    python -m train_mlp_models.train_mlp_vanilla --output models/mlp/vanilla.pt --data ../shared/data/ag_news \
        --explanations outputs/intermediate_data/bert_token_explanations.csv \
        --teacher models/fine_tuned/bert_agnews --seeds 42 43 44

One student per seed; the payload holds every seed's state dict (``load_classifier`` returns the first
seed's student, ``load_classifier(path, seed=S)`` another), and ``vanilla.manifest.json`` beside it holds
the hyper-parameters, the explained-instance split and per-seed metrics. ``--targets bert_hard|bert_soft``
trains on BERT's predicted labels / probabilities instead of the true labels. See common/mlp/.
"""
from __future__ import annotations

import sys

from common.mlp.stages import TrainingConfig, run_training
from common.stage import config_entry

main = config_entry(__doc__, TrainingConfig, run_training)

if __name__ == "__main__":
    sys.exit(main())
