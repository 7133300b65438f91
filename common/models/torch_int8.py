"""PyTorch dynamic int8 quantization - the one place that calls it.

``torch.ao.quantization.quantize_dynamic`` is deprecated upstream (successor:
torchao) but still runs on torch 2.13; keeping the call here makes a move to
torchao one edit. Quantized models are saved as a payload dict - config,
pruning spec, quantization settings, tokenizer files and the quantized state
dict - and loaded with ``torch.load(..., weights_only=True)``; no module is
ever pickled.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from common.models.base import TorchClassifier
from common.cli import UserError
from common.models.tokenizer_files import tokenizer_files, tokenizer_from_files

logger = logging.getLogger(__name__)

FORMAT = "torch_dynamic_int8"
SETTINGS = {"dtype": "qint8", "modules": ["Linear"]}


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 on every ``nn.Linear`` (weights int8, activations quantized on the fly)."""
    model = model.float().cpu().eval()
    return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def save_quantized(qmodel: nn.Module, config, tokenizer, spec, output: str | os.PathLike) -> None:
    payload = {
        "format": FORMAT,
        "settings": dict(SETTINGS),
        "config": config.to_dict(),
        "pruning_spec": None if spec is None else spec.to_dict(),
        "tokenizer_files": tokenizer_files(tokenizer),
        "state_dict": qmodel.state_dict(),
    }
    torch.save(payload, output)


PAYLOAD_KEYS = ("config", "tokenizer_files", "state_dict")


def load_quantized_model(payload: dict, source: str | os.PathLike = "the payload"):
    """Rebuild architecture from config (+ spec), quantize it, then load the saved int8 weights.

    A payload missing keys, or whose state dict lacks or adds tensors, is a UserError naming them:
    a partial state dict would otherwise leave random weights and score at chance.
    """
    from transformers import AutoConfig

    from common.models.modeling import check_state_dict_keys
    from common.models.pruning_spec import PruningSpec, build_from_config

    missing_keys = [key for key in PAYLOAD_KEYS if not payload.get(key)]
    if missing_keys:
        raise UserError(f"{source} is an incomplete {FORMAT} payload (missing or empty: {', '.join(missing_keys)}); "
                        f"rebuild it with run_dynamic_quantization.")
    tokenizer = tokenizer_from_files(payload["tokenizer_files"], source)
    try:
        config_dict = dict(payload["config"])
        model_type = config_dict.pop("model_type", "bert")
        config = AutoConfig.for_model(model_type, **config_dict)
        spec = PruningSpec.from_dict(payload["pruning_spec"]) if payload.get("pruning_spec") else None
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"{source} has an unreadable config or pruning spec ({type(exc).__name__}: "
                        f"{str(exc)[:120]}); rebuild it with run_dynamic_quantization.") from None
    model = build_from_config(config, spec)
    qmodel = quantize_dynamic_int8(model)
    state = payload["state_dict"]
    check_state_dict_keys(source, qmodel, state)
    try:
        qmodel.load_state_dict(state, strict=False)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise UserError(f"{source}: its int8 weights do not fit the model its config describes "
                        f"({type(exc).__name__}: {str(exc)[:120]}); rebuild it.") from None
    return qmodel, tokenizer, spec


def _load(payload: dict, path: Path, device: str, dtype: str, **kwargs):
    if device != "cpu":
        # PyTorch's dynamic int8 kernels exist for CPU only. On a GPU host (DEVICE=auto resolves to
        # cuda) the variant still runs, on the CPU, and its metrics record device "cpu".
        logger.warning("%s is a dynamic-int8 model, which PyTorch runs on CPU only: running it on the CPU "
                       "instead of %s.", path, device)
    if dtype != "fp32":
        raise UserError(f"{path} is already int8; --dtype {dtype} does not apply to it (use fp32).")
    qmodel, tokenizer, spec = load_quantized_model(payload, path)
    clf = TorchClassifier(qmodel, tokenizer, device="cpu", dtype="fp32", **kwargs)
    clf.kind = "torch-int8"
    clf.batch_dependent = True
    clf.info["pruning"] = None if spec is None else ("shrunk" if spec.shrunk else "masked")
    return clf
