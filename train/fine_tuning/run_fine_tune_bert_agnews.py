"""Fine-tune a BERT-family model on AG News (4 classes) with the Hugging Face Trainer.

    python -m train.fine_tuning.run_fine_tune_bert_agnews --data ../shared/data/ag_news \
        --output models/fine_tuned/bert_agnews

Under ``torchrun --nproc_per_node N`` the same command trains with DDP (gloo on CPU).
Rerunning after an interruption resumes from the last checkpoint.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common.cli import stage_main  # noqa: E402
from common.finetune import fine_tune  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-model", "--base_model", default="minilm",
                   help="minilm (offline MiniLM-L6-H384), a hub id such as bert-base-uncased, or a local folder")
    p.add_argument("--data", default="", help="ag_news (hub) or a folder with train/test files; empty = demo sample")
    p.add_argument("--output", default="models/fine_tuned/bert_agnews")
    p.add_argument("--train-samples", "--train_samples", type=int, default=0, help="stratified subset; 0 = all")
    p.add_argument("--validation-fraction", type=float, default=0.05, help="share of train held out for validation")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--learning-rate", "--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=32, help="global batch size (split over DDP ranks)")
    p.add_argument("--max-len", "--max_len", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:N")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="mixed precision on GPU (auto: bf16 where supported, else fp16); CPU trains in fp32")
    p.add_argument("--save-steps", type=int, default=50, help="checkpoint every N optimiser steps")
    p.add_argument("--max-steps-this-run", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--force", action="store_true", help="rebuild even if the output exists with the same arguments")
    return p


@stage_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    return fine_tune(vars(args))


if __name__ == "__main__":
    sys.exit(main())
