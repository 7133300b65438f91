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

from common.cli import add_shared_flags, stage_parser
from common.compress.shrink import SAVE_METHODS, ShrinkConfig, run
from common.stage import stage_entry


def build_parser():
    p = stage_parser(__doc__)
    p.add_argument("--model_path", "--model-path", required=True, help="pruned (masked) model folder")
    p.add_argument("--output_path_shrunk_model", "--output-path-shrunk-model", required=True,
                   help="shrunk model folder to write, e.g. models/shrunk/pruned20")
    p.add_argument("--save_method", "--save-method", default="save_pretrained", choices=SAVE_METHODS,
                   help="save_pretrained (safetensors) or torch_save (state dict pytorch_model.bin)")
    add_shared_flags(p, "data")
    p.add_argument("--check-samples", type=int, default=64, help="texts in the shrunk-vs-masked parity check")
    add_shared_flags(p, "max_len", "seed")
    return p


main = stage_entry(build_parser, ShrinkConfig, run)

if __name__ == "__main__":
    sys.exit(main())
