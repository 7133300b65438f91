"""Physically shrink a pruned model: slice away every pruned head and FFN neuron.

    python -m tools.apply_shrink_to_model --model_path models/pruned/bert_agnews_20pct \
        --output_path_shrunk_model models/shrunk/pruned20 --save_method save_pretrained

The output folder holds the sliced weights (safetensors, or with ``torch_save`` a plain state
dict ``pytorch_model.bin`` - never a pickled module), config, tokenizer and ``pruning_spec.json`` with
``shrunk=true``; ``load_classifier`` rebuilds the per-layer shapes from that spec. It also holds
``modeling_shrunk_bert.py`` (named by ``auto_map`` in config.json), so plain transformers loads it with
``from_pretrained(folder, trust_remote_code=True)``, no toolkit installed. Nothing is
written unless the shrunk logits equal the masked model's (max |diff| <= 1e-5) on real texts.
"""
from __future__ import annotations

import sys

from common.compress.shrink import ShrinkConfig, run
from common.stage import config_entry

main = config_entry(__doc__, ShrinkConfig, run)

if __name__ == "__main__":
    sys.exit(main())
