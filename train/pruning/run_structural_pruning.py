"""Structured pruning of attention heads and FFN neurons, then re-fine-tuning with the masks fixed.

    python -m train.pruning.run_structural_pruning --model models/fine_tuned/bert_agnews --sparsity 20 \
        --output models/pruned/bert_agnews_20pct --data ../shared/data/ag_news

Importance: first-order Taylor |dL/dmask * mask| (Michel et al. 2019) on a seeded slice of the
training split; heads ranked globally (>= 1 kept per layer), FFN neurons per layer. The output is a
full-size folder with pruned weights zeroed and pruning_spec.json; shrink it with
tools/apply_shrink_to_model.py. Rerunning after an interruption resumes re-fine-tuning.
"""
from __future__ import annotations

import sys

from common.compress.pruning import PruneConfig, prune_model
from common.stage import config_entry

main = config_entry(__doc__, PruneConfig, prune_model)

if __name__ == "__main__":
    sys.exit(main())
