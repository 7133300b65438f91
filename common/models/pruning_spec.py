"""Structured pruning of a BERT: which heads and FFN neurons each layer keeps, masking and shrinking.

transformers 5 has no ``prune_heads`` and no ``head_mask``, so this module owns
both halves of structured pruning:

* **masking** - forward pre-hooks on each layer's ``attention.output.dense``
  (zeroes a pruned head's slice of the concatenated context) and
  ``output.dense`` (zeroes pruned FFN neurons). Used while scoring importance
  and while re-fine-tuning; a saved *pruned* folder also has the pruned weights
  zeroed so a plain ``from_pretrained`` computes the masked function.
* **shrinking** - physically slicing query/key/value (out), attention output
  (in), intermediate (out) and FFN output (in) with ``prune_linear_layer``.
  BERT infers the head count from tensor shapes, so sliced layers run as is.

A :class:`PruningSpec` (kept head and neuron indices per layer) is saved as
``pruning_spec.json`` beside the weights; a shrunk folder cannot reload with a
plain ``from_pretrained`` and is rebuilt from it (:mod:`common.models.modeling`).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

SPEC_FILE = "pruning_spec.json"


@dataclass
class LayerSpec:
    heads: list[int]
    neurons: list[int]


@dataclass
class PruningSpec:
    """Which heads and FFN neurons each encoder layer keeps.

    ``shrunk`` says whether the weights beside the spec are already sliced.
    """

    num_heads: int
    head_size: int
    intermediate_size: int
    layers: list[LayerSpec]
    shrunk: bool = False
    format: str = "bert_pruning_spec"
    version: int = 1
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.layers = [l if isinstance(l, LayerSpec) else LayerSpec(**l) for l in self.layers]
        for i, layer in enumerate(self.layers):
            if not layer.heads:
                raise ValueError(f"pruning spec layer {i} keeps no head; at least one head per layer is required")
            if any(h < 0 or h >= self.num_heads for h in layer.heads):
                raise ValueError(f"pruning spec layer {i} has a head index outside 0..{self.num_heads - 1}")
            if any(n < 0 or n >= self.intermediate_size for n in layer.neurons) or not layer.neurons:
                raise ValueError(f"pruning spec layer {i} has no or out-of-range FFN neuron indices")
            layer.heads = sorted(int(h) for h in layer.heads)
            layer.neurons = sorted(int(n) for n in layer.neurons)

    @classmethod
    def full(cls, config) -> "PruningSpec":
        heads = list(range(config.num_attention_heads))
        neurons = list(range(config.intermediate_size))
        return cls(config.num_attention_heads, config.hidden_size // config.num_attention_heads,
                   config.intermediate_size,
                   [LayerSpec(list(heads), list(neurons)) for _ in range(config.num_hidden_layers)])

    @classmethod
    def from_dict(cls, data: dict) -> "PruningSpec":
        known = {"num_heads", "head_size", "intermediate_size", "layers", "shrunk", "format", "version", "extra"}
        unknown = set(data) - known
        if unknown or data.get("format") != "bert_pruning_spec":
            raise ValueError(f"not a pruning spec (unknown keys {sorted(unknown)} or wrong format)")
        return cls(**data)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "PruningSpec":
        with open(Path(folder) / SPEC_FILE) as fh:
            return cls.from_dict(json.load(fh))

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, folder: str | os.PathLike) -> None:
        with open(Path(folder) / SPEC_FILE, "w") as fh:
            json.dump(self.to_dict(), fh, indent=1)

    @property
    def heads_per_layer(self) -> list[int]:
        return [len(l.heads) for l in self.layers]

    @property
    def neurons_per_layer(self) -> list[int]:
        return [len(l.neurons) for l in self.layers]


def encoder_layers(model) -> nn.ModuleList:
    return model.base_model.encoder.layer


# ----------------------------------------------------------------------------------------------- masks
class MaskHooks:
    """Forward pre-hooks applying head and neuron masks; ``remove()`` detaches them.

    ``head_masks[i]`` has shape (num_heads,), ``neuron_masks[i]`` (intermediate,).
    They may require grad (importance scoring) or be fixed 0/1 (re-fine-tuning).
    """

    def __init__(self, model, head_masks: list[torch.Tensor], neuron_masks: list[torch.Tensor], head_size: int):
        self.head_masks, self.neuron_masks, self.handles = head_masks, neuron_masks, []
        for layer, head_mask, neuron_mask in zip(encoder_layers(model), head_masks, neuron_masks):
            self.handles.append(layer.attention.output.dense.register_forward_pre_hook(
                self._scale_hook(head_mask, head_size)))
            self.handles.append(layer.output.dense.register_forward_pre_hook(self._scale_hook(neuron_mask, 1)))

    @staticmethod
    def _scale_hook(mask: torch.Tensor, repeat: int):
        def hook(_module, args):
            (hidden,) = args
            scale = mask.to(hidden.dtype).repeat_interleave(repeat) if repeat > 1 else mask.to(hidden.dtype)
            return (hidden * scale,)
        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


def spec_to_masks(spec: PruningSpec, device=None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    head_masks, neuron_masks = [], []
    for layer in spec.layers:
        hm = torch.zeros(spec.num_heads, device=device)
        hm[layer.heads] = 1.0
        nm = torch.zeros(spec.intermediate_size, device=device)
        nm[layer.neurons] = 1.0
        head_masks.append(hm)
        neuron_masks.append(nm)
    return head_masks, neuron_masks


def apply_mask_hooks(model, spec: PruningSpec) -> MaskHooks:
    device = next(model.parameters()).device
    head_masks, neuron_masks = spec_to_masks(spec, device)
    return MaskHooks(model, head_masks, neuron_masks, spec.head_size)


@torch.no_grad()
def zero_pruned_weights(model, spec: PruningSpec) -> None:
    """Zero every weight that only feeds pruned heads/neurons.

    Afterwards a plain (hook-free) forward equals the masked forward: a pruned
    head's value projection is zero so its context is zero, and a pruned
    neuron's pre-activation is zero so GELU(0)=0.
    """
    for layer, keep in zip(encoder_layers(model), spec.layers):
        head_rows = torch.ones(spec.num_heads * spec.head_size, dtype=torch.bool)
        for h in keep.heads:
            head_rows[h * spec.head_size:(h + 1) * spec.head_size] = False
        attn = layer.attention
        for lin in (attn.self.query, attn.self.key, attn.self.value):
            lin.weight[head_rows] = 0
            lin.bias[head_rows] = 0
        attn.output.dense.weight[:, head_rows] = 0
        neuron_off = torch.ones(spec.intermediate_size, dtype=torch.bool)
        neuron_off[keep.neurons] = False
        layer.intermediate.dense.weight[neuron_off] = 0
        layer.intermediate.dense.bias[neuron_off] = 0
        layer.output.dense.weight[:, neuron_off] = 0


# ----------------------------------------------------------------------------------------------- shrink
def shrink_model(model, spec: PruningSpec) -> None:
    """Physically slice the model in place so only kept heads/neurons remain."""
    from transformers.pytorch_utils import prune_linear_layer

    if spec.shrunk:
        raise ValueError("spec is already marked shrunk")
    for layer, keep in zip(encoder_layers(model), spec.layers):
        device = layer.attention.self.query.weight.device
        rows = torch.cat([torch.arange(h * spec.head_size, (h + 1) * spec.head_size) for h in keep.heads]).to(device)
        attn = layer.attention
        attn.self.query = prune_linear_layer(attn.self.query, rows, dim=0)
        attn.self.key = prune_linear_layer(attn.self.key, rows, dim=0)
        attn.self.value = prune_linear_layer(attn.self.value, rows, dim=0)
        attn.output.dense = prune_linear_layer(attn.output.dense, rows, dim=1)
        neurons = torch.tensor(keep.neurons, device=device)
        layer.intermediate.dense = prune_linear_layer(layer.intermediate.dense, neurons, dim=0)
        layer.output.dense = prune_linear_layer(layer.output.dense, neurons, dim=1)


def shrunk_spec(spec: PruningSpec) -> PruningSpec:
    data = spec.to_dict()
    data["shrunk"] = True
    return PruningSpec.from_dict(data)


def build_from_config(config, spec: PruningSpec | None):
    """An uninitialised-weight model with the architecture ``spec`` describes."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_config(config)
    if spec is not None and spec.shrunk:
        data = spec.to_dict()
        data["shrunk"] = False
        shrink_model(model, PruningSpec.from_dict(data))
    return model
