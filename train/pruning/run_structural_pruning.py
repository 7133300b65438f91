"""Structured pruning of attention heads and FFN neurons, then re-fine-tuning with the masks fixed.

    python -m train.pruning.run_structural_pruning --model models/fine_tuned/bert_agnews --sparsity 20 \
        --output models/pruned/bert_agnews_20pct --data ../shared/data/ag_news

Importance: first-order Taylor |dL/dmask * mask| (Michel et al. 2019) on a seeded slice of the
training split; heads ranked globally (>= 1 kept per layer), FFN neurons per layer. The output is a
full-size folder with pruned weights zeroed and pruning_spec.json; shrink it with
tools/apply_shrink_to_model.py. Rerunning after an interruption resumes re-fine-tuning.
"""
from __future__ import annotations

import argparse
import sys

from common.cli import stage_parser
from common.compress.pruning import PruneConfig, prune_model
from common.stage import stage_entry
from common.compress.training import add_training_arguments


def build_parser():
    p = stage_parser(__doc__)
    p.add_argument("--model", required=True, help="fine-tuned (unpruned) model folder")
    p.add_argument("--sparsity", type=float, required=True, help="percent of the encoder's weights to remove as heads and FFN neurons (0-95)")
    p.add_argument("--output", required=True, help="pruned model folder, e.g. models/pruned/bert_agnews_20pct")
    p.add_argument("--head-ffn-ratio", type=float, default=1.0,
                   help="share of heads pruned / share of FFN neurons pruned, with --sparsity %% of the encoder "
                        "weights removed either way (1: equal shares; 0.5 spares heads; 2 spares FFN neurons)")
    add_training_arguments(p, "re-fine-tuning")
    p.add_argument("--importance-samples", type=int, default=512,
                   help="training rows (seeded, stratified slice) used to score heads and neurons")
    p.add_argument("--distill", action=argparse.BooleanOptionalAction, default=True,
                   help="distil from the unpruned model while re-fine-tuning (default on)")
    p.add_argument("--distill-temperature", type=float, default=2.0, help="softmax temperature of distillation")
    p.add_argument("--distill-weight", type=float, default=0.5,
                   help="weight of the distillation loss (0..1; the rest is cross-entropy on labels)")
    return p


main = stage_entry(build_parser, PruneConfig, prune_model)

if __name__ == "__main__":
    sys.exit(main())
