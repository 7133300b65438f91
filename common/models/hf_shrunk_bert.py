"""A shrunk BERT classifier for plain transformers (``trust_remote_code=True``), no toolkit needed.

This file is copied beside the weights of every shrunk folder as ``modeling_shrunk_bert.py`` and
named in ``config.json``'s ``auto_map``, Hugging Face's convention for non-standard shapes, so

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    pipeline("text-classification", model=folder, trust_remote_code=True)

work with only torch and transformers installed (4.5x and 5.x). It must therefore import nothing
but torch and transformers. The per-layer head counts and FFN widths come from the config
(``shrunk_heads_per_layer``, ``shrunk_intermediate_sizes``); which original heads were kept does
not matter here because the saved weights are already sliced.
"""
from torch import nn
from transformers import BertForSequenceClassification

HEADS_KEY = "shrunk_heads_per_layer"
WIDTHS_KEY = "shrunk_intermediate_sizes"


class ShrunkBertForSequenceClassification(BertForSequenceClassification):
    def __init__(self, config):
        super().__init__(config)
        heads = getattr(config, HEADS_KEY, None)
        widths = getattr(config, WIDTHS_KEY, None)
        layers = self.bert.encoder.layer
        if heads is None or widths is None or len(heads) != len(layers) or len(widths) != len(layers):
            raise ValueError(f"config.json needs {HEADS_KEY} and {WIDTHS_KEY} with one entry per layer "
                             f"({len(layers)}); the folder was not written by the shrinking tool")
        hidden = config.hidden_size
        head_size = hidden // config.num_attention_heads
        for layer, n_heads, width in zip(layers, heads, widths):
            inner = int(n_heads) * head_size
            attention = layer.attention.self
            attention.query = nn.Linear(hidden, inner)
            attention.key = nn.Linear(hidden, inner)
            attention.value = nn.Linear(hidden, inner)
            # transformers 4.x reshapes with these attributes; 5.x infers the head count from shapes.
            attention.num_attention_heads = int(n_heads)
            attention.all_head_size = inner
            layer.attention.output.dense = nn.Linear(inner, hidden)
            layer.intermediate.dense = nn.Linear(hidden, int(width))
            layer.output.dense = nn.Linear(int(width), hidden)
