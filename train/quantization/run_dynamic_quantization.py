"""PyTorch dynamic int8 (Linear layers) of any torch model folder -> a single .pt payload.

    python -m train.quantization.run_dynamic_quantization --model models/shrunk/pruned20 \
        --output models/quantized/pruned20_8bit.pt

The payload holds config, pruning spec (for shrunk models), tokenizer files and the int8 state
dict - no pickled module - and loads with ``load_classifier`` (``weights_only=True``). Beside it,
``<name>.manifest.json`` records the size before/after and the fp32-vs-int8 agreement on test texts.
"""
from __future__ import annotations

import sys

from common.quantize.torch_dynamic import QuantizeConfig, run
from common.stage import config_entry

main = config_entry(__doc__, QuantizeConfig, run)

if __name__ == "__main__":
    sys.exit(main())
