"""ONNX export and ONNX Runtime int8 quantization (checks: :mod:`common.export.parity`; loader: :mod:`common.models.onnx_graph`).

Export uses the legacy TorchScript exporter (``torch.onnx.export(..., dynamo=False)``, opset 17)
with eager attention. Both exporters reach parity on torch 2.13 / transformers 5.24, but the dynamo
exporter only implements opset >= 18 (17 is reached by a version conversion it warns about), is much
slower to export, and its graph ran slower in ONNX Runtime (analysis/RESULTS.md, "Design measurements").
Its attention matches no ORT fusion pattern;
``fused_attention`` emits ORT's fused op itself (:mod:`common.export.attention`).

Every export is checked before it is kept (optimum's ``validate_model_outputs`` idea):

* fp32: max |Δlogit| vs the PyTorch model <= ``FP32_ATOL`` on real test texts of varied
  length, batched with dynamic padding (several batch sizes and lengths) and one at a time;
* int8 (ONNX Runtime dynamic quantization): argmax agreement with the fp32 graph
  >= ``INT8_MIN_AGREEMENT`` on up to ``INT8_TEXTS`` test texts (fewer only on tiny data).

A failed check raises :class:`ParityError` and nothing is written.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from common.models.base import Classifier
from common.cli import UserError
from common.export.metadata import copy_metadata, set_metadata, stamp_graph_facts, write_metadata
from common.models.onnx_graph import (ACTIVATION_SCALES_KEY, ONNX_INPUTS, ONNX_OUTPUT, STATIC_SCALES, OnnxClassifier,
                                 initializer_counts, load_onnx_tokenizer)
# ParityError and the checks stay importable from here: the export stage's callers and tests use these names.
from common.export.parity import (INT8_MIN_AGREEMENT, ParityError, check_fp32_parity,  # noqa: F401
                                check_int8_agreement, parity_texts)
from common.quantize.ort_static import quiet_quantizer

log = logging.getLogger(__name__)

OPSET = 17
INT8_TEXTS = 500
# Op sets tried in order: quantizing Gather (the embedding tables) too makes the file much smaller at no
# speed cost, but on some models it costs too much agreement; then the embeddings stay fp32. Every attempt
# is recorded in the manifest. The last choice also keeps each layer's FFN output projection in fp32 (the op
# set's marker FFN_OUTPUT_FP32, as static int8's plan 2): the widest activations, which dynamic int8 at high
# sparsity quantizes worst (the measurements behind both: analysis/RESULTS.md, "Design measurements").
FFN_OUTPUT_FP32 = "ffn_output_fp32"
INT8_OP_TYPE_CHOICES = (("MatMul", "Gather"), ("MatMul",), ("MatMul", FFN_OUTPUT_FP32))
INT8_OP_TYPES = INT8_OP_TYPE_CHOICES[0]


# ----------------------------------------------------------------------------------------------- export
class LogitsOnly(torch.nn.Module):
    """Wraps a ``...ForSequenceClassification`` so the graph has exactly one output, ``logits``."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def _use_eager_attention(model) -> str:
    """Eager attention exports as plain MatMul/Softmax (faster in ORT here than the SDPA graph)."""
    setter = getattr(model, "set_attn_implementation", None)
    if callable(setter):
        try:
            setter("eager")
            return "eager"
        except (ValueError, TypeError) as exc:  # pragma: no cover - depends on the model class
            log.warning("could not switch to eager attention (%s); exporting the default", exc)
    return getattr(model.config, "_attn_implementation", "default")


def torch_to_onnx(model, tokenizer, output: str | os.PathLike, opset: int = OPSET,
                 fused_attention: bool = False) -> dict:
    """Export ``model`` to ``output`` (fp32, dynamic batch and sequence axes). Returns export facts.

    ``fused_attention``: each layer's attention core becomes one ``com.microsoft::MultiHeadAttention``
    (:mod:`common.export.attention`; the model itself is not changed)."""
    if opset < 17:
        raise UserError(f"--opset {opset} is too old; use 17 or newer.")
    model = model.float().cpu().eval()
    attention = _use_eager_attention(model)
    wrapper, extra = LogitsOnly(model), {}
    if fused_attention:
        from common.export.attention import CUSTOM_OPSETS, FUSED_DOMAIN, FUSED_OP, fused_copy

        wrapper, heads = fused_copy(model)
        extra = {"custom_opsets": CUSTOM_OPSETS}
        attention = f"{FUSED_DOMAIN}::{FUSED_OP}"
    # A new wrapper is in training mode, and the exporter restores that mode after tracing, recursively: the
    # model would come back with dropout on. The wrapper is put in eval mode so the model stays in it.
    wrapper.eval()
    # Two texts of different length, so the traced graph sees real padding.
    example = tokenizer(["a short example", "a somewhat longer example text with padding"], padding=True,
                        return_tensors="pt")
    args = tuple(example[name] if name in example else torch.zeros_like(example["input_ids"])
                 for name in ONNX_INPUTS)
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in ONNX_INPUTS}
    dynamic_axes[ONNX_OUTPUT] = {0: "batch"}
    start = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(wrapper, args, str(output), input_names=list(ONNX_INPUTS),
                          output_names=[ONNX_OUTPUT], dynamic_axes=dynamic_axes, opset_version=opset,
                          do_constant_folding=True, dynamo=False, **extra)
    write_metadata(output, model.config)
    facts = {"exporter": "torchscript (dynamo=False)", "opset": opset, "attention": attention,
             "export_s": time.perf_counter() - start}
    return {**facts, "heads_per_layer": heads} if fused_attention else facts


def optimize_graph(source: str | os.PathLike, output: str | os.PathLike) -> dict:
    """ONNX Runtime's transformer optimizer (attention/LayerNorm/GELU fusion).

    ``num_heads=0, hidden_size=0`` lets it detect per-layer shapes, which differ after
    pruning. Raises whatever the optimizer raises; the caller falls back and records it.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(source), model_type="bert", num_heads=0, hidden_size=0)
    fused = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    optimized.save_model_to_file(str(output))
    copy_metadata(source, output)
    return {"fused_operators": fused}


def quantize_int8(source: str | os.PathLike, output: str | os.PathLike,
                  op_types: Sequence[str] = INT8_OP_TYPES) -> dict:
    """ONNX Runtime dynamic quantization: int8 weights, activations quantized per batch."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from common.quantize.ort_static import ffn_output_nodes

    ops = [op for op in op_types if op != FFN_OUTPUT_FP32]
    excluded = ffn_output_nodes(onnx.load(str(source), load_external_data=False).graph) \
        if FFN_OUTPUT_FP32 in op_types else []
    settings = {"method": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8",
                "per_channel": True, "reduce_range": False, "op_types": ops, "ffn_output_fp32": bool(excluded),
                "nodes_in_fp32": len(excluded)}
    with quiet_quantizer():
        # DefaultTensorType: fused contrib ops (after --optimize) defeat ONNX shape inference.
        quantize_dynamic(str(source), str(output), op_types_to_quantize=ops, per_channel=True,
                         reduce_range=False, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    copy_metadata(source, output)
    return settings


def quantize_with_fallback(quantize: Callable[..., dict], source: Path, output: Path, reference: Classifier,
                           load: Callable[[Path], Classifier], test) -> tuple[dict, dict]:
    """The int8 parity rule, whatever the quantizer: try each of its ``choices`` (dynamic: the op sets of
    ``INT8_OP_TYPE_CHOICES``; static: :data:`common.quantize.ort_static.STATIC_PLANS`) in turn and keep the first whose
    argmax agrees with the fp32 ``reference`` on >= ``INT8_MIN_AGREEMENT`` of the held-out ``test`` rows; every
    attempt is recorded. Returns (quantization settings + attempts, agreement); raises :class:`ParityError`
    when none passes."""
    choices = getattr(quantize, "choices", INT8_OP_TYPE_CHOICES)
    attempts = []
    for i, choice in enumerate(choices):
        label = {"op_types": list(choice)} if isinstance(choice, tuple) else {"plan": choice}
        settings = quantize(source, output, choice)
        try:
            agreement = check_int8_agreement(reference, load(output), test.texts, test.labels)
        except ParityError as exc:
            attempts.append({**label, "outcome": str(exc)})
            if i == len(choices) - 1:
                raise
            log.warning("int8 with %s fails the agreement check; retrying with %s", choice, choices[i + 1])
            continue
        attempts.append({**label, "outcome": "passed", "argmax_agreement": agreement["argmax_agreement"]})
        return {**settings, "attempts": attempts}, agreement
    raise AssertionError("unreachable: the last failed attempt re-raises")  # pragma: no cover


# ----------------------------------------------------------------------------------------------- writing
def write_sidecar_files(config, tokenizer, folder: str | os.PathLike) -> list[str]:
    """config.json + tokenizer beside the .onnx, so Optimum's ORTModel* can load the folder as is.

    Each file is replaced atomically; exports sharing the folder share the tokenizer.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(dir=folder, prefix=".sidecar-") as tmp:
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for file in sorted(Path(tmp).iterdir()):
            if file.is_file():
                os.replace(file, folder / file.name)
                written.append(file.name)
    return written


# ----------------------------------------------------------------------------------------------- the stage
def _torch_reference(model, tokenizer, max_len: int):
    from common.models.base import TorchClassifier

    return TorchClassifier(model, tokenizer, device="cpu", dtype="fp32", max_len=max_len, batch_size=32)


def _reference_texts(data: str, samples: int, seed: int):
    from common.data import load_test_split

    test = load_test_split(data, samples, seed)
    if len(test) == 0:
        raise UserError(f"--data {data!r} has an empty test split; the parity check needs test texts.")
    return test


def export_model(model_path: str | os.PathLike, output: str | os.PathLike, data: str = "", max_len: int = 128,
                 int8: bool = False, optimize: bool = False, opset: int = OPSET, int8_samples: int = INT8_TEXTS,
                 seed: int = 42, threads: int = 0, args: dict | None = None, mode: str = "dynamic",
                 static_format: str = "qoperator_u8", calib_rows: int = 128, fused_attention: bool = False) -> dict:
    """Export (and optionally optimize and/or quantize) one model; returns the manifest.

    ``model_path``: a torch model folder (fine-tuned, pruned/masked or shrunk) or, with
    ``int8``, an fp32 ``.onnx`` written by this function. Everything is built in a temporary
    folder and checked; only then are the sidecar files, the manifest and (last) the
    ``.onnx`` itself moved into place. ``mode="static"`` quantizes with activation scales
    calibrated on ``calib_rows`` seeded training rows (:mod:`common.quantize.ort_static`); such a graph
    is kept as it is when its manifest records the same run (arguments, source, calibration rows).
    ``fused_attention``: try the fused-attention graph first (:func:`common.export.attention.fused_attempt`).
    """
    from common.manifest import (base_manifest, manifest_path_for, read_manifest, remove_stale_temps, sha256_path,
                                 temp_tag, write_json_atomic)

    model_path, output = Path(model_path), Path(output)
    if output.suffix != ".onnx":
        raise UserError(f"--output {output} must end in .onnx.")
    if not model_path.exists():
        raise UserError(f"--model {model_path} does not exist; build it first (see `make help`).")
    from_onnx = model_path.is_file() and model_path.suffix == ".onnx"
    if from_onnx and fused_attention:
        raise UserError(f"--fused-attention applies when exporting a model folder; {model_path} is already ONNX "
                        f"(its int8 graph keeps the attention its fp32 export has).")
    if from_onnx and not int8:
        raise UserError(f"--model {model_path} is already ONNX; pass --int8 to quantize it, or give a model folder.")
    if not from_onnx and not (model_path / "config.json").is_file():
        raise UserError(f"--model {model_path} is neither a model folder (config.json) nor an .onnx file.")
    started = time.perf_counter()
    test = _reference_texts(data, int8_samples, seed)
    manifest = base_manifest("export_onnx", args or {}, seed=seed, inputs={"model": model_path})
    manifest.update({"source": str(model_path), "source_sha256": manifest["inputs"]["model"]["sha256"],
                     "int8": int8, "max_len": max_len})
    calibration = None
    if int8 and mode == "static":
        from common.quantize.ort_static import calibration_record, calibration_split, check_static_format

        check_static_format(static_format)
        calibration = calibration_split(data, calib_rows, seed)
        manifest["calibration"] = calibration_record(calibration, data, calib_rows, seed, max_len)
        manifest["run_key"] = _run_key(manifest)
        if _up_to_date(output, manifest["run_key"]):
            return read_manifest(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(output)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.stem}.tmp-{temp_tag()}-") as tmp:
        tmp = Path(tmp)
        if from_onnx:
            fp32_path = tmp / "fp32.onnx"
            shutil.copyfile(model_path, fp32_path)
            tokenizer = load_onnx_tokenizer(model_path)
            config = _config_beside(model_path)
            source_manifest = read_manifest(model_path)
            manifest["export"] = (source_manifest or {}).get("export")
            manifest["opset"] = (source_manifest or {}).get("opset", _opset_of(model_path))
            manifest["source_parity_fp32"] = (source_manifest or {}).get("parity", {}).get("fp32")
            manifest["fused_attention"] = (source_manifest or {}).get("fused_attention", {"requested": False})
        else:
            from common.models.modeling import load_model_folder

            model, tokenizer, spec = load_model_folder(model_path)
            config = model.config
            fp32_path = tmp / "fp32.onnx"
            manifest["pruning"] = None if spec is None else ("shrunk" if spec.shrunk else "masked")
            log.info("exporting %s (%s) to ONNX opset %d", model_path, manifest["pruning"] or "full", opset)
            manifest["opset"] = opset
            reference = _torch_reference(model, tokenizer, max_len)

            def export_checked(fused: bool) -> tuple[dict, dict]:
                # The plain call keeps the signature older callers (and tests' stand-ins) know.
                facts = torch_to_onnx(model, tokenizer, fp32_path, opset=opset, fused_attention=True) if fused \
                    else torch_to_onnx(model, tokenizer, fp32_path, opset=opset)
                candidate = OnnxClassifier(fp32_path, tokenizer, device="cpu", threads=threads, max_len=max_len)
                parity = {"fp32": check_fp32_parity(reference, candidate, parity_texts(test.texts))}
                parity["fp32_argmax_agreement"] = check_int8_agreement(
                    reference, candidate, test.texts, test.labels, min_agreement=INT8_MIN_AGREEMENT,
                    what="the fp32 ONNX export")
                return facts, parity

            fused = {"requested": fused_attention}
            if fused_attention:
                from common.export.attention import fused_attempt

                fused, exported = fused_attempt(export_checked, fp32_path, config.num_hidden_layers)
            manifest["export"], manifest["parity"] = exported if fused.get("outcome") == "applied" \
                else export_checked(False)
            manifest["fused_attention"] = fused
        final_path = fp32_path
        manifest["optimizer"] = {"requested": optimize}
        if optimize:
            opt_path = tmp / "optimized.onnx"
            try:
                manifest["optimizer"].update(optimize_graph(fp32_path, opt_path))
                fp32_ref = OnnxClassifier(fp32_path, tokenizer, device="cpu", threads=threads, max_len=max_len)
                opt_clf = OnnxClassifier(opt_path, tokenizer, device="cpu", threads=threads, max_len=max_len)
                manifest["optimizer"]["parity"] = check_fp32_parity(fp32_ref, opt_clf, parity_texts(test.texts),
                                                                    what="the optimized graph")
                fused = manifest["optimizer"]["fused_operators"]
                if any("Attention" in op for op in fused):
                    manifest["optimizer"]["outcome"] = "applied"
                else:  # the graph is valid and parity-checked, but the main speed-up did not happen
                    manifest["optimizer"]["outcome"] = "applied without attention fusion"
                    log.warning("ONNX Runtime optimizer fused no attention block (fused: %s)", fused or "nothing")
                final_path = opt_path
            except Exception as exc:  # any refusal (e.g. a pruned shape) -> keep the plain graph, say why
                manifest["optimizer"].update({"outcome": "fell back to the unoptimized graph",
                                              "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
                log.warning("ONNX Runtime optimizer failed (%s); keeping the unoptimized graph", exc)
        else:
            manifest["optimizer"]["outcome"] = "not requested"
        if int8:
            int8_path = tmp / "int8.onnx"

            def load(path: Path) -> OnnxClassifier:
                return OnnxClassifier(path, tokenizer, device="cpu", threads=threads, max_len=max_len)

            quantize, source = quantize_int8, final_path
            if mode == "static":
                quantize, source = _static_quantizer(final_path, tmp, tokenizer, calibration, max_len, static_format)
            manifest["quantization"], agreement = quantize_with_fallback(quantize, source, int8_path, load(fp32_path),
                                                                         load, test)
            if mode == "static":
                copy_metadata(final_path, int8_path)  # pre-processing drops the graph's metadata
                set_metadata(int8_path, {ACTIVATION_SCALES_KEY: STATIC_SCALES})
            manifest.setdefault("parity", {})["int8"] = agreement
            if len(test) < INT8_TEXTS:
                manifest["parity"]["int8"]["note"] = (f"only {len(test)} test texts available "
                                                      f"(fewer than {INT8_TEXTS})")
            final_path = int8_path
        if manifest["fused_attention"].get("outcome") == "applied":  # what the written graph holds, int8 included
            from common.export.attention import fused_ops_per_layer

            manifest["fused_attention"]["fused_ops_per_layer"] = fused_ops_per_layer(final_path,
                                                                                     config.num_hidden_layers)
        stamp_graph_facts(final_path)
        manifest["parameters"] = initializer_counts(final_path)[0]
        manifest["sha256"] = sha256_path(final_path)
        manifest["size_mb"] = final_path.stat().st_size / 2**20
        manifest["wall_s"] = time.perf_counter() - started
        manifest["sidecar_files"] = write_sidecar_files(config, tokenizer, output.parent)
        write_json_atomic(manifest_path_for(output), manifest)
        # The .onnx is the Make target: it is moved into place last.
        os.replace(final_path, output)
    log.info("wrote %s (%.1f MB)", output, manifest["size_mb"])
    return manifest


def _static_quantizer(fp32_path: Path, tmp: Path, tokenizer, calibration, max_len: int, static_format: str):
    """(quantizer, its pre-processed source): the calibration feeds are built once for every attempt."""
    from common.quantize.ort_static import StaticQuantizer, calibration_feeds, preprocess

    prepared = tmp / "preprocessed.onnx"
    preprocess(fp32_path, prepared)
    feeds = calibration_feeds(calibration.texts, tokenizer, ONNX_INPUTS, max_len)
    log.info("static int8: %d calibration rows in %d batches, format %s", len(calibration), len(feeds),
             static_format)
    return StaticQuantizer(tuple(feeds), static_format), prepared


_NOT_IN_RUN_KEY = ("threads",)  # how fast it runs, not what it builds


def _run_key(manifest: dict) -> dict:
    return {"arguments": {k: v for k, v in manifest["arguments"].items() if k not in _NOT_IN_RUN_KEY},
            "source_sha256": manifest["source_sha256"], "calibration_sha256": manifest["calibration"]["sha256"]}


def _up_to_date(output: Path, run_key: dict) -> bool:
    """Whether ``output`` is the finished graph of the same run (its manifest's key and hash match)."""
    from common.manifest import read_manifest, sha256_path

    existing = read_manifest(output)
    if not (output.is_file() and existing and existing.get("run_key") == run_key
            and existing.get("sha256") == sha256_path(output)):
        return False
    log.info("%s is already built with these arguments and inputs; nothing to do", output)
    output.touch()  # up to date for Make even if a prerequisite's mtime moved
    return True


def _config_beside(onnx_path: Path):
    from transformers import AutoConfig

    if not (onnx_path.parent / "config.json").is_file():
        raise UserError(f"{onnx_path} has no config.json beside it; re-export it with export_onnx.")
    return AutoConfig.from_pretrained(onnx_path.parent)


def _opset_of(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
