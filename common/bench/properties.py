"""Static properties of any variant: size on disk, parameters, zero fraction, heads and FFN width per layer.

Works on every artefact the toolkit writes, read from the artefact itself (no inference):

* torch folders (fine-tuned, pruned/masked, shrunk) via :func:`common.models.modeling.load_model_folder`;
* dynamic-int8 ``.pt`` payloads via :func:`common.models.torch_int8.load_quantized_model` (int8 weights
  are dequantized to count zeros; the int8 zero point is 0, so a zero stays a zero);
* ``.onnx`` files via the ``onnx`` package: weight initializers are counted (parameters and
  zeros); per-layer widths are read from the encoder's MatMul weight shapes (six per layer),
  the head size from the ``config.json`` beside the file.

Per layer, *physical* widths are the matrix shapes (what a shrunk model runs) and *effective*
widths count heads/neurons with any non-zero weight (what a masked model computes).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.cli import UserError
from common.manifest import base_manifest, manifest_path_for, size_on_disk, write_json_atomic, write_text_atomic
from common.models.onnx_graph import onnx_group
from common.stage import OneOf, StageConfig, flag

log = logging.getLogger(__name__)

SKIP_SUFFIXES = ("position_ids", "token_type_ids", ".scale", ".zero_point", "_packed_params.dtype")


def _group(name: str) -> str:
    dotted = f".{name}"
    if ".embeddings." in dotted:
        return "embeddings"
    if ".encoder." in dotted:
        return "encoder"
    return "head"


def _tensors(value):
    """Float tensors inside a state-dict value (packed int8 Linear params are a (weight, bias) tuple)."""
    if isinstance(value, torch.Tensor):
        if value.is_quantized:
            yield value.dequantize()
        elif value.is_floating_point():
            yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)


def _linear_weight_bias(linear) -> tuple[torch.Tensor, torch.Tensor | None]:
    weight = linear.weight() if callable(linear.weight) else linear.weight
    bias = linear.bias() if callable(linear.bias) else linear.bias
    if weight.is_quantized:
        weight = weight.dequantize()
    return weight.detach().float(), None if bias is None else bias.detach().float()


def _nonzero_rows(weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    rows = (weight != 0).any(dim=1)
    return rows | (bias != 0) if bias is not None else rows


def torch_properties(model) -> dict:
    """Parameter groups, zero counts and per-layer widths of a (possibly int8, shrunk or masked) BERT."""
    from common.models.pruning_spec import encoder_layers

    groups = {"embeddings": 0, "encoder": 0, "head": 0}
    zeros = {"embeddings": 0, "encoder": 0, "head": 0}
    for name, value in model.state_dict().items():
        if name.endswith(SKIP_SUFFIXES):
            continue
        for tensor in _tensors(value):
            group = _group(name)
            groups[group] += tensor.numel()
            zeros[group] += int((tensor == 0).sum())
    config = model.config
    head_size = config.hidden_size // config.num_attention_heads
    heads_physical, heads_effective, ffn_physical, ffn_effective = [], [], [], []
    for layer in encoder_layers(model):
        value_w, value_b = _linear_weight_bias(layer.attention.self.value)
        out_w, _ = _linear_weight_bias(layer.attention.output.dense)
        n_heads = value_w.shape[0] // head_size
        heads_physical.append(n_heads)
        live = _nonzero_rows(value_w, value_b) & (out_w != 0).any(dim=0)
        heads_effective.append(int(live.view(n_heads, head_size).any(dim=1).sum()))
        inter_w, inter_b = _linear_weight_bias(layer.intermediate.dense)
        ffn_out_w, _ = _linear_weight_bias(layer.output.dense)
        ffn_physical.append(inter_w.shape[0])
        ffn_effective.append(int((_nonzero_rows(inter_w, inter_b) & (ffn_out_w != 0).any(dim=0)).sum()))
    total = sum(groups.values())
    return {
        "parameters": {**groups, "total": total},
        "zero_fraction": sum(zeros.values()) / total if total else 0.0,
        "zero_fraction_encoder": zeros["encoder"] / groups["encoder"] if groups["encoder"] else 0.0,
        "num_layers": len(heads_physical),
        "heads_per_layer": heads_effective,
        "heads_per_layer_physical": heads_physical,
        "ffn_width_per_layer": ffn_effective,
        "ffn_width_per_layer_physical": ffn_physical,
        "original_heads_per_layer": config.num_attention_heads,
        "original_ffn_width": config.intermediate_size,
    }


def _onnx_weights(path: Path) -> list[tuple[str, np.ndarray]]:
    """(name, weight) of every weight initializer; int8 weights shifted by their zero point."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=True)
    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    weights = []
    for name, array in arrays.items():
        if name.endswith(("_scale", "_zero_point")) or array.dtype.kind not in "fiu" or array.size <= 1:
            continue  # quantization parameters and shape constants are not weights
        if name.endswith("_quantized"):
            zero_point = arrays.get(name[: -len("_quantized")] + "_zero_point")
            array = array.astype(np.int32) - (0 if zero_point is None else zero_point.astype(np.int32))
        weights.append((name, array))
    return weights


def _onnx_widths(weights: list[tuple[str, np.ndarray]], head_size: int | None) -> dict:
    """Per-layer widths from the encoder's MatMul weights ([in, out]), six per layer in graph order:
    query, key, value, attention output, intermediate, FFN output. None where the graph has another layout."""
    mats = [a for n, a in weights if onnx_group(n) == "encoder" and a.ndim == 2]
    unknown = {"num_layers": None, "heads_per_layer": None, "heads_per_layer_physical": None,
               "ffn_width_per_layer": None, "ffn_width_per_layer_physical": None}
    if not mats or len(mats) % 6 or not head_size:
        return unknown
    heads, heads_phys, ffn, ffn_phys = [], [], [], []
    for i in range(0, len(mats), 6):
        q, k, v, attn_out, inter, out = mats[i:i + 6]
        hidden = q.shape[0]
        if not (q.shape == k.shape == v.shape and attn_out.shape == q.shape[::-1] and inter.shape[0] == hidden
                and out.shape == inter.shape[::-1] and v.shape[1] % head_size == 0):
            return unknown
        n_heads = v.shape[1] // head_size
        heads_phys.append(n_heads)
        heads.append(int((v != 0).any(axis=0).reshape(n_heads, head_size).any(axis=1).sum()))
        ffn_phys.append(inter.shape[1])
        ffn.append(int(((inter != 0).any(axis=0) & (out != 0).any(axis=1)).sum()))
    return {"num_layers": len(heads), "heads_per_layer": heads, "heads_per_layer_physical": heads_phys,
            "ffn_width_per_layer": ffn, "ffn_width_per_layer_physical": ffn_phys}


def onnx_properties(path: Path) -> dict:
    weights = _onnx_weights(path)
    groups = {"embeddings": 0, "encoder": 0, "head": 0}
    zeros = {"embeddings": 0, "encoder": 0, "head": 0}
    for name, array in weights:
        group = onnx_group(name)
        groups[group] += int(array.size)
        zeros[group] += int((array == 0).sum())
    total = sum(groups.values())
    head_size = None
    config_file = path.parent / "config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text())
        if config.get("hidden_size") and config.get("num_attention_heads"):
            head_size = config["hidden_size"] // config["num_attention_heads"]
    return {
        "parameters": {**groups, "total": total},
        "zero_fraction": sum(zeros.values()) / total if total else 0.0,
        "zero_fraction_encoder": zeros["encoder"] / groups["encoder"] if groups["encoder"] else 0.0,
        "note": "ONNX weight initializers; encoder = all but embeddings/pooler/classifier (exporters rename "
                "the encoder's MatMul weights)",
        **_onnx_widths(weights, head_size),
    }


def model_properties(path: str | os.PathLike, variant: str) -> dict:
    """All properties of one artefact (see module docstring)."""
    from common.models.modeling import is_model_folder, load_model_folder

    path = Path(path)
    if not path.exists():
        raise UserError(f"--model {path} does not exist; build it first (see `make help`) or fix the path.")
    if is_model_folder(path):
        model, _, spec = load_model_folder(path)
        fmt = "torch_folder" + ("" if spec is None else ("_shrunk" if spec.shrunk else "_masked"))
        props = torch_properties(model)
    elif path.suffix == ".pt":
        from common.models.base import load_payload
        from common.models.torch_int8 import FORMAT, load_quantized_model

        payload = load_payload(path)
        if payload["format"] != FORMAT:
            raise UserError(f"{path} is a {payload['format']!r} payload; model properties cover BERT variants "
                            f"(folders, {FORMAT} .pt, .onnx).")
        model, _, spec = load_quantized_model(payload)
        fmt = FORMAT
        props = torch_properties(model)
    elif path.suffix == ".onnx":
        fmt = "onnx"
        props = onnx_properties(path)
    elif path.suffix == ".xml":
        from common.models.openvino_graph import source_onnx

        # An OpenVINO IR holds its source graph's weights (converted, or int8 by NNCF): its shapes are the source's.
        fmt = "openvino"
        props = {**onnx_properties(source_onnx(path)), "shapes_from": str(source_onnx(path))}
    else:
        raise UserError(f"--model {path} is not a model folder, .pt payload, .onnx file or OpenVINO .xml.")
    size = size_on_disk(path)  # an IR's .bin, an .onnx's external .data included
    return {"variant": variant, "model": str(path), "format": fmt, "size_bytes": size, "size_mb": size / 2**20,
            **props}


def write_properties(path: str | os.PathLike, variant: str, output: str | os.PathLike, args: dict) -> dict:
    props = model_properties(path, variant)
    props["manifest"] = base_manifest("model_properties", args, inputs={"model": path})
    write_json_atomic(output, props)
    log.info("%s: %.1f MB, %s parameters (encoder %s), zero fraction %.3f, heads %s -> %s", variant,
             props["size_mb"], props["parameters"]["total"], props["parameters"]["encoder"], props["zero_fraction"],
             props.get("heads_per_layer"), output)
    return props


def _per_layer(values) -> str:
    return "-" if not values else "/".join(str(v) for v in values)


def properties_table(folder: str | os.PathLike, output: str | os.PathLike, args: dict | None = None,
                     variants: list[str] | None = None) -> str:
    """A Markdown table over the properties JSONs in ``folder`` (``variants``: exactly ``<name>.json`` of
    each, in that order, so a JSON left by an earlier list of variants stays out; None: every JSON), with a
    manifest beside it (``<output stem>.manifest.json``: the JSONs it read, with hashes, and the variants)."""
    from tabulate import tabulate

    folder = Path(folder)
    if variants:
        files = [folder / f"{name}.json" for name in variants]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise UserError(f"--variants names {', '.join(missing)}, which does not exist; build it with "
                            "`--model PATH --variant NAME --output FILE` first.")
    else:
        files = sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))
    rows, used = [], {}
    for file in files:
        props = json.loads(file.read_text())
        if "parameters" not in props or "variant" not in props:
            continue
        used[props["variant"]] = file
        params = props["parameters"]
        rows.append([props["variant"], props["format"], f"{props['size_mb']:.1f}",
                     f"{params['total'] / 1e6:.2f}", f"{params['embeddings'] / 1e6:.2f}",
                     f"{params['encoder'] / 1e6:.2f}" if params.get("encoder") else "-",
                     f"{params['head'] / 1e3:.1f}k" if params.get("head") else "-",
                     f"{100 * props['zero_fraction']:.1f}", _per_layer(props.get("heads_per_layer")),
                     _per_layer(props.get("ffn_width_per_layer"))])
    if not rows:
        raise UserError(f"--table {folder} holds no properties JSON; build some with "
                        f"`--model PATH --variant NAME --output {folder}/NAME.json` first.")
    headers = ["variant", "format", "size MB", "params M", "embeddings M", "encoder M", "head", "zeros %",
               "heads per layer", "FFN width per layer"]
    text = ("# Model properties\n\nParameters by part, share of exactly-zero weights, and per-layer attention heads "
            "and FFN widths (heads/neurons with any non-zero weight). ONNX parameters are its initializers.\n\n"
            + tabulate(rows, headers=headers, tablefmt="github") + "\n")
    manifest = base_manifest("model_properties_table", args or {"table": str(folder), "output": str(output)},
                             inputs=used)
    manifest.update({"variants": list(used), "n_rows": len(rows),
                     "sha256": hashlib.sha256(text.encode()).hexdigest()})
    write_json_atomic(manifest_path_for(output), manifest)
    write_text_atomic(output, text)  # last: the Make target
    log.info("properties table of %d variants -> %s", len(rows), output)
    return text


_WHAT = OneOf(required=True)  # --model or --table


@dataclass(frozen=True)
class PropertiesConfig(StageConfig):
    """``analysis/model_properties/run_model_properties.py``'s flags: one artefact (--model) or the table."""

    model: str | None = flag(None, one_of=_WHAT, help="one artefact: model folder, int8 .pt or .onnx")
    table: str | None = flag(None, one_of=_WHAT, help="folder of properties JSONs -> one Markdown table")
    variant: str | None = flag(None, help="variant name (with --model)")
    variants: list[str] | None = flag(None, nargs="+", help=(
        "with --table: only <folder>/<name>.json of these variants, in this order (default: every JSON)"))
    output: str = flag(help="properties JSON (with --model) or Markdown file (with --table)")

    def check(self) -> None:
        if (self.model is None) == (self.table is None):
            raise UserError("give exactly one of --model (one artefact) and --table (a folder of properties JSONs).")
        if self.model is not None and not self.variant:
            raise UserError("--variant is required with --model (the name shown in the table, e.g. pruned20).")


def run(config: PropertiesConfig) -> int:
    if config.model is not None:
        write_properties(config.model, config.variant, config.output, config.to_dict())
    else:
        if not Path(config.table).is_dir():
            raise UserError(f"--table {config.table} is not a folder; build properties JSONs there first.")
        properties_table(config.table, config.output, config.to_dict(), config.variants)
    return 0
