"""Attention that ONNX Runtime runs as one fused op: ``com.microsoft::MultiHeadAttention`` per layer.

Why not ORT's transformer optimizer: its ``FusionAttention`` matches the graph pattern older transformers
exported; transformers 5's eager attention (and its mask construction) does not match it, so ``--optimize``
fuses no attention block even before pruning. Matching a moving pattern from the outside is fragile; instead
the export itself says what the block is. Each layer's attention core (scores, padding mask, softmax,
context) is replaced, for the export only and on a copy of the model, by a ``torch.autograd.Function``
whose ``symbolic`` emits ``MultiHeadAttention`` with **that layer's own** ``num_heads`` (pruned layers keep
different head counts; the head size stays the config's).

Decisions:

* ``MultiHeadAttention``, not ``Attention``: the Q/K/V projections stay three plain ``MatMul`` s outside the
  fused op, so dynamic int8 and static int8 (:mod:`common.quantize.ort_static`) quantize them as before. Their
  biases go into the op's ``bias`` input (one Add less per projection, as ORT's own fusion does).
* The padding mask is the graph's ``attention_mask`` input cast once to int32 and given as
  ``key_padding_mask`` (batch, sequence): a padded key gets ORT's ``mask_filter_value`` added to its score,
  which underflows to a zero weight in float32, as the eager ``finfo.min`` does. The PyTorch ``forward`` of
  the function computes the eager math itself, so the traced model is still a valid model.
* Nothing is trusted: the caller (:func:`common.export.onnx_export.export_model`) runs the same parity checks on
  the fused graph as on the plain one, and falls back to the plain graph with the reason recorded when the
  fusion raises or a check fails. :func:`fused_ops_per_layer` reads what the written graph holds.
"""
from __future__ import annotations

import copy
import logging
import re
from collections import Counter

import torch

FUSED_DOMAIN = "com.microsoft"
FUSED_OP = "MultiHeadAttention"
CUSTOM_OPSETS = {FUSED_DOMAIN: 1}
log = logging.getLogger(__name__)
_LAYER_IN_NAME = re.compile(r"layer\.(\d+)\b")


class FusionUnavailable(RuntimeError):
    """The model's attention is not the BERT self-attention this module knows how to replace."""


class _MultiHeadAttentionCore(torch.autograd.Function):
    """Eager attention in PyTorch; one ``MultiHeadAttention`` node in the exported graph."""

    @staticmethod
    def forward(ctx, query, key, value, bias, key_padding_mask, num_heads: int, scale: float):
        batch, length, width = query.shape
        query, key, value = query + bias[:width], key + bias[width:2 * width], value + bias[2 * width:]

        def split_heads(x):
            return x.view(batch, length, num_heads, -1).transpose(1, 2)

        scores = torch.matmul(split_heads(query), split_heads(key).transpose(2, 3)) * scale
        padded = (key_padding_mask == 0)[:, None, None, :]
        scores = scores.masked_fill(padded, torch.finfo(scores.dtype).min)
        context = torch.matmul(scores.softmax(-1), split_heads(value))
        return context.transpose(1, 2).reshape(batch, length, width)

    @staticmethod
    def symbolic(g, query, key, value, bias, key_padding_mask, num_heads, scale):
        context = g.op(f"{FUSED_DOMAIN}::{FUSED_OP}", query, key, value, bias, key_padding_mask,
                       num_heads_i=num_heads, scale_f=scale)
        context.setType(query.type())  # the context has the query's shape and type (for the exporter's inference)
        return context


class FusedSelfAttention(torch.nn.Module):
    """A BERT self-attention whose core exports as one fused op; same weights, same function."""

    def __init__(self, attention, num_heads: int | None = None):
        super().__init__()
        missing = [n for n in ("query", "key", "value", "attention_head_size", "scaling") if not hasattr(attention, n)]
        if missing:
            raise FusionUnavailable(f"{type(attention).__name__} has no {', '.join(missing)}; only BERT "
                                    f"self-attention is fused")
        self.query, self.key, self.value = attention.query, attention.key, attention.value
        width = self.query.out_features
        if num_heads is None:
            num_heads, remainder = divmod(width, attention.attention_head_size)
            if remainder:
                raise FusionUnavailable(f"attention width {width} is not a multiple of the head size "
                                        f"{attention.attention_head_size}")
        self.num_heads, self.scale = int(num_heads), float(attention.scaling)
        zeros = torch.zeros(width, dtype=self.query.weight.dtype)
        biases = [zeros if m.bias is None else m.bias.detach() for m in (self.query, self.key, self.value)]
        # A parameter, so the graph's initializer has a readable name (…attention.self.qkv_bias).
        self.qkv_bias = torch.nn.Parameter(torch.cat(biases), requires_grad=False)
        self.key_padding_mask: torch.Tensor | None = None  # set per call by FusedLogitsOnly

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        if self.key_padding_mask is None:
            raise FusionUnavailable("the fused attention was called outside FusedLogitsOnly (no padding mask)")
        linear = torch.nn.functional.linear
        context = _MultiHeadAttentionCore.apply(
            linear(hidden_states, self.query.weight), linear(hidden_states, self.key.weight),
            linear(hidden_states, self.value.weight), self.qkv_bias, self.key_padding_mask, self.num_heads,
            self.scale)
        return context, None


class FusedLogitsOnly(torch.nn.Module):
    """``LogitsOnly`` for a model with fused attention: hands the 2-D padding mask to every fused layer."""

    def __init__(self, inner, fused_layers):
        super().__init__()
        self.inner, self.fused_layers = inner, list(fused_layers)

    def forward(self, input_ids, attention_mask, token_type_ids):
        key_padding_mask = attention_mask.to(torch.int32)  # one Cast in the graph, shared by every layer
        for layer in self.fused_layers:
            layer.key_padding_mask = key_padding_mask
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def encoder_layers(model):
    base = getattr(model, getattr(model, "base_model_prefix", "bert"), None)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None:
        raise FusionUnavailable(f"{type(model).__name__} has no encoder.layer list; only BERT-style encoders "
                                f"are fused")
    return list(layers)


def heads_per_layer(model) -> list[int]:
    """Each layer's physical head count (differs per layer after shrinking)."""
    return [att.query.out_features // att.attention_head_size
            for att in (layer.attention.self for layer in encoder_layers(model))]


def fused_copy(model, num_heads: list[int] | None = None) -> tuple[torch.nn.Module, list[int]]:
    """(the export wrapper around a copy of ``model`` with fused attention, heads per layer).

    ``num_heads`` overrides the detected per-layer head counts (tests plant a wrong one to prove the parity
    check catches it). The caller's model is left untouched: it stays the parity reference.
    """
    model = copy.deepcopy(model).float().cpu().eval()
    layers = encoder_layers(model)
    if num_heads is not None and len(num_heads) != len(layers):
        raise FusionUnavailable(f"{len(num_heads)} head counts for {len(layers)} layers")
    fused = []
    for i, layer in enumerate(layers):
        layer.attention.self = FusedSelfAttention(layer.attention.self, None if num_heads is None else num_heads[i])
        fused.append(layer.attention.self)
    return FusedLogitsOnly(model, fused), [m.num_heads for m in fused]


def fused_ops_per_layer(path, num_layers: int) -> list[int]:
    """How many ``MultiHeadAttention`` nodes each encoder layer of the graph at ``path`` holds."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    counts = Counter()
    for node in graph.node:
        if node.op_type == FUSED_OP and node.domain == FUSED_DOMAIN:
            match = _LAYER_IN_NAME.search(node.name)
            counts[int(match.group(1)) if match else -1] += 1
    return [counts.get(i, 0) for i in range(num_layers)]


def fused_attempt(export_checked, path, num_layers: int) -> tuple[dict, tuple | None]:
    """Export the fused graph to ``path`` and check it; (manifest record, ``export_checked``'s result or None).

    ``export_checked(fused) -> (export facts, parity)`` exports and raises when a parity check fails. The
    fused graph is kept only when it passes and every layer holds exactly one fused op; otherwise the
    record says why and the caller exports the plain graph (never a silent change of graph).
    """
    record = {"requested": True, "op": f"{FUSED_DOMAIN}::{FUSED_OP}"}
    try:
        exported = export_checked(True)
        counts = fused_ops_per_layer(path, num_layers)
        if counts != [1] * num_layers:
            raise FusionUnavailable(f"fused ops per layer {counts}, expected one in each of {num_layers} layers")
    except Exception as exc:  # a refused export or a failed parity check: the plain graph, and why
        record.update({"outcome": "fell back to the plain graph", "reason": f"{type(exc).__name__}: {str(exc)[:400]}"})
        log.warning("fused attention not kept (%s); exporting the plain graph", exc)
        return record, None
    facts, parity = exported
    record.update({"outcome": "applied", "heads_per_layer": facts["heads_per_layer"], "fused_ops_per_layer": counts,
                   "parity": {"passed": True, "max_abs_logit_diff": parity["fp32"]["max_abs_logit_diff"],
                              "argmax_agreement": parity["fp32_argmax_agreement"]["argmax_agreement"]}})
    return record, exported
