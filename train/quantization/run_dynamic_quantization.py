"""PyTorch dynamic int8 (Linear layers) of any torch model folder -> a single .pt payload.

    python -m train.quantization.run_dynamic_quantization --model models/shrunk/pruned20 \
        --output models/quantized/pruned20_8bit.pt

The payload holds config, pruning spec (for shrunk models), tokenizer files and the int8 state
dict - no pickled module - and loads with ``load_classifier`` (``weights_only=True``). Beside it,
``<name>.manifest.json`` records the size before/after and the fp32-vs-int8 agreement on test texts.
"""
from __future__ import annotations

import sys

from common.cli import add_shared_flags, stage_parser
from common.quantize.torch_dynamic import QuantizeConfig, run
from common.stage import stage_entry


def build_parser():
    p = stage_parser(__doc__, model="fine-tuned, pruned or shrunk model folder",
                     output="int8 payload to write, e.g. models/quantized/bert_agnews_8bit.pt")
    add_shared_flags(p, "data")
    p.add_argument("--check-samples", type=int, default=200, help="test texts compared between fp32 and int8")
    add_shared_flags(p, "max_len", "threads", "seed")
    return p


main = stage_entry(build_parser, QuantizeConfig, run)

if __name__ == "__main__":
    sys.exit(main())
