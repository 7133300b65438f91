"""PyTorch dynamic int8 (Linear layers) of any torch model folder -> a single .pt payload.

    python -m train.quantization.run_dynamic_quantization --model models/shrunk/pruned20 \
        --output models/quantized/pruned20_8bit.pt

The payload holds config, pruning spec (for shrunk models), tokenizer files and the int8 state
dict - no pickled module - and loads with ``load_classifier`` (``weights_only=True``). Beside it,
``<name>.manifest.json`` records the size before/after and the fp32-vs-int8 agreement on test texts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run as a file: rerun as `python -m` runs it (script_shim.py)
    import runpy
    runpy.run_path(str(Path(__file__).resolve().parents[2] / "script_shim.py"))["run_as_module"](__file__)

from common.cli import stage_main  # noqa: E402
from common.quantization_stage import quantize_folder  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="fine-tuned, pruned or shrunk model folder")
    p.add_argument("--output", required=True, help="int8 payload to write, e.g. models/quantized/bert_agnews_8bit.pt")
    p.add_argument("--data", default="", help="texts for the agreement check: test split of this data folder "
                                              "(empty = the shipped demo sample)")
    p.add_argument("--check-samples", type=int, default=200, help="test texts compared between fp32 and int8")
    p.add_argument("--max-len", "--max_len", type=int, default=128)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    p.add_argument("--seed", type=int, default=42)
    return p


@stage_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    quantize_folder(args.model, args.output, data=args.data, check_samples=args.check_samples, max_len=args.max_len,
                    seed=args.seed, threads=args.threads, args=vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
