"""Fine-tune a BERT-family model on AG News (4 classes) with the Hugging Face Trainer.

    python -m train.fine_tuning.run_fine_tune_bert_agnews --data ../shared/data/ag_news \
        --output models/fine_tuned/bert_agnews

Under ``torchrun --nproc_per_node N`` the same command trains with DDP (gloo on CPU).
Rerunning after an interruption resumes from the last checkpoint.
"""
from __future__ import annotations

import sys

from common.cli import stage_parser
from common.compress.finetune import FineTuneConfig, fine_tune
from common.stage import stage_entry
from common.compress.training import add_training_arguments


def build_parser():
    p = stage_parser(__doc__)
    p.add_argument("--base-model", "--base_model", default="minilm",
                   help="minilm (offline MiniLM-L6-H384), a hub id such as bert-base-uncased, or a local folder")
    p.add_argument("--output", default="models/fine_tuned/bert_agnews")
    add_training_arguments(p, "fine-tuning")
    p.add_argument("--data-seed", type=int, default=None,
                   help="seed of the training subset and validation split (default: --seed); fix it to vary "
                        "only the training seed")
    return p


main = stage_entry(build_parser, FineTuneConfig, fine_tune)

if __name__ == "__main__":
    sys.exit(main())
