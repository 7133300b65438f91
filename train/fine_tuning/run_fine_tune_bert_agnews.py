"""Fine-tune a BERT-family model on AG News (4 classes) with the Hugging Face Trainer.

    python -m train.fine_tuning.run_fine_tune_bert_agnews --data ../shared/data/ag_news \
        --output models/fine_tuned/bert_agnews

Under ``torchrun --nproc_per_node N`` the same command trains with DDP (gloo on CPU).
Rerunning after an interruption resumes from the last checkpoint.
"""
from __future__ import annotations

import sys

from common.compress.finetune import FineTuneConfig, fine_tune
from common.stage import config_entry

main = config_entry(__doc__, FineTuneConfig, fine_tune)

if __name__ == "__main__":
    sys.exit(main())
