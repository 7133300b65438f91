"""OpenVINO backend for our graphs: an fp32 ONNX graph -> an OpenVINO IR (fp32), or -> NNCF static int8.

    <name>_ov       models/onnx/<name>_ov.xml (+ .bin)       ``openvino.convert_model`` of models/onnx/<name>.onnx
    <name>_ov_int8  models/onnx/<name>_ov_int8.xml (+ .bin)  that conversion, ``nncf.quantize``d (static int8)

Both are written beside their ONNX graph, so its config.json and tokenizer serve them too (optimum-intel's
``OVModelForSequenceClassification.from_pretrained(folder, file_name=...)`` loads them; ``make interop`` checks it).

Checks before anything is written (the ONNX export's rules, :mod:`common.export.parity`):

* fp32: max |dlogit| against the ONNX graph in ONNX Runtime <= ``FP32_ATOL`` (1e-4) on real test texts of varied
  length, batched and one at a time. The IR is saved with ``compress_to_fp16=False`` (OpenVINO's default would
  store fp16 weights) and runs with ``INFERENCE_PRECISION_HINT=f32`` (:func:`common.models.openvino_graph.runtime_properties`).
* int8: argmax agreement with the fp32 ONNX graph >= 99 % on up to 500 held-out test texts. NNCF's post-training
  quantization (``ModelType.TRANSFORMER``: SmoothQuant, fast bias correction, attention's activation MatMuls
  kept as NNCF decides for transformers) is calibrated on ``--calib-rows`` seeded, class-stratified **training**
  rows, batched as evaluation batches them (length-sorted, padded per batch). Plans (:data:`OV_INT8_PLANS`) are
  tried in order and the first that passes is kept, every attempt recorded: NNCF's defaults; then each layer's
  FFN output projection (the MatMul after GELU, the widest activations; the ONNX static plan's fallback too) left
  in fp32 through ``ignored_scope``; then every layer's attention output projection as well.

A failed check raises :class:`~common.export.parity.ParityError` and leaves nothing behind: the IR is written
into a temporary sibling folder, and moved into place ``.bin`` first, manifest next, ``.xml`` (the Make target)
last. ``X.manifest.json`` records the source graph and its sha256, the calibration rows, the plans tried, the
runtime properties, the sizes and the sha256 of both files. A graph already built by the same run (arguments,
source sha256, calibration rows) is kept as it is.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

from common.cli import UserError
from common.export.parity import (INT8_MIN_AGREEMENT, ParityError, check_fp32_parity, check_int8_agreement,
                                  parity_texts)
from common.models.onnx_graph import OnnxClassifier, initializer_counts, load_onnx_tokenizer
from common.models.openvino_graph import (ONNX_INPUTS, RT_INFO_ROOT, OpenVinoClassifier, bin_path, import_openvino)

log = logging.getLogger(__name__)

INT8_TEXTS = 500
# (name, ignored_scope name patterns): the int8 plans, in the order they are tried.
OV_INT8_PLANS = (
    ("nncf_default", ()),
    ("ffn_output_fp32", (r".*/layer\.\d+/output/dense/MatMul.*",)),
    ("ffn_and_attention_output_fp32", (r".*/layer\.\d+/output/dense/MatMul.*",
                                       r".*/layer\.\d+/attention/output/dense/MatMul.*")),
)


def _import_nncf():
    try:
        import nncf
    except ImportError:
        raise UserError("NNCF is not installed in this environment; run `make setup` (it installs openvino and "
                        "nncf).") from None
    return nncf


def nncf_quantize(model, feeds: list[dict], patterns: tuple[str, ...]):
    """NNCF static int8 of an OpenVINO model, calibrated on ``feeds`` (one dict of arrays per batch)."""
    nncf = _import_nncf()
    kwargs = {}
    if patterns:
        kwargs["ignored_scope"] = nncf.IgnoredScope(patterns=list(patterns), validate=False)
    return nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(feeds), **kwargs)


def _stamp(model, facts: dict) -> None:
    for key, value in facts.items():
        model.set_rt_info(value if isinstance(value, str) else json.dumps(value), [RT_INFO_ROOT, key])


def _run_key(manifest: dict) -> dict:
    return {"arguments": {k: v for k, v in manifest["arguments"].items() if k != "threads"},
            "source_sha256": manifest["source_sha256"],
            "calibration_sha256": (manifest.get("calibration") or {}).get("sha256")}


def _up_to_date(output: Path, run_key: dict) -> bool:
    from common.manifest import read_manifest, sha256_path

    existing = read_manifest(output)
    if not (output.is_file() and bin_path(output).is_file() and existing and existing.get("run_key") == run_key
            and existing.get("sha256") == sha256_path(output)):
        return False
    log.info("%s is already built with these arguments and inputs; nothing to do", output)
    output.touch()
    return True


def export_openvino(source: str | os.PathLike, output: str | os.PathLike, data: str = "", max_len: int = 128,
                    int8: bool = False, calib_rows: int = 128, seed: int = 42, threads: int = 0,
                    int8_samples: int = INT8_TEXTS, args: dict | None = None, plans=OV_INT8_PLANS) -> dict:
    """Convert (and with ``int8`` quantize) one fp32 ONNX graph into an OpenVINO IR; returns the manifest."""
    from common.data import load_test_split
    from common.manifest import (base_manifest, manifest_path_for, remove_stale_temps, sha256_file, sha256_path,
                                 temp_tag, write_json_atomic)

    ov = import_openvino()
    source, output = Path(source), Path(output)
    if output.suffix != ".xml":
        raise UserError(f"--output {output} must end in .xml (an OpenVINO IR; its .bin is written beside it).")
    if not (source.is_file() and source.suffix == ".onnx"):
        raise UserError(f"--model {source} must be an fp32 .onnx written by export_onnx (build it: `make {source}`).")
    reference = OnnxClassifier(source, load_onnx_tokenizer(source), device="cpu", threads=threads, max_len=max_len)
    if reference.info["quantized"]:
        raise UserError(f"--model {source} is already int8; give the fp32 graph (OpenVINO quantizes it with NNCF).")
    if int8 and calib_rows < 1:
        raise UserError(f"--calib-rows {calib_rows} must be >= 1 (training rows that calibrate the int8 scales).")
    started = time.perf_counter()
    test = load_test_split(data, int8_samples, seed)
    if len(test) == 0:
        raise UserError(f"--data {data!r} has an empty test split; the parity check needs test texts.")
    manifest = base_manifest("export_openvino", args or {}, seed=seed, inputs={"model": source})
    manifest.update({"source": str(source), "source_sha256": manifest["inputs"]["model"]["sha256"], "int8": int8,
                     "max_len": max_len, "openvino": ov.get_version()})
    calibration = None
    if int8:
        from common.quantize.ort_static import calibration_feeds, calibration_record, calibration_split

        calibration = calibration_split(data, calib_rows, seed)
        manifest["calibration"] = calibration_record(calibration, data, calib_rows, seed, max_len)
    manifest["run_key"] = _run_key(manifest)
    if _up_to_date(output, manifest["run_key"]):
        from common.manifest import read_manifest

        return read_manifest(output)
    tokenizer = reference.tokenizer
    core = ov.Core()
    model = core.read_model(str(source))
    meta = reference._meta
    facts = {"source": str(source), "quantized": int8,
             "parameters": json.loads(meta["parameters"]) if "parameters" in meta else initializer_counts(source)[0]}
    if "max_position_embeddings" in meta:
        facts["max_position_embeddings"] = meta["max_position_embeddings"]
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(output)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.stem}.tmp-{temp_tag()}-") as tmp:
        tmp = Path(tmp)

        def save(candidate, name: str) -> Path:
            path = tmp / f"{name}.xml"
            _stamp(candidate, {**facts, **({"activation_scales": "static"} if int8 else {})})
            ov.save_model(candidate, str(path), compress_to_fp16=False)
            return path

        def load(path: Path) -> OpenVinoClassifier:
            return OpenVinoClassifier(path, tokenizer, threads=threads, max_len=max_len)

        fp32_path = save(model, "fp32")
        fp32 = load(fp32_path)
        parity = {"fp32": check_fp32_parity(reference, fp32, parity_texts(test.texts),
                                            what="the OpenVINO conversion")}
        parity["fp32"]["reference"] = "the source ONNX graph in ONNX Runtime"
        final = fp32_path
        if int8:
            feeds = calibration_feeds(calibration.texts, tokenizer, ONNX_INPUTS, max_len)
            log.info("OpenVINO int8: NNCF on %d calibration rows in %d batches", len(calibration), len(feeds))
            attempts = []
            for i, (plan, patterns) in enumerate(plans):
                quantized = nncf_quantize(core.read_model(str(source)), feeds, patterns)
                path = save(quantized, f"int8_{i}")
                try:
                    agreement = check_int8_agreement(reference, load(path), test.texts, test.labels,
                                                     what=f"the OpenVINO int8 model (plan {plan})")
                except ParityError as exc:
                    attempts.append({"plan": plan, "ignored_patterns": list(patterns), "outcome": str(exc)})
                    if i == len(plans) - 1:
                        raise
                    log.warning("OpenVINO int8 plan %s fails the agreement check; retrying with %s", plan,
                                plans[i + 1][0])
                    continue
                attempts.append({"plan": plan, "ignored_patterns": list(patterns), "outcome": "passed",
                                 "argmax_agreement": agreement["argmax_agreement"]})
                parity["int8"] = agreement
                if len(test) < INT8_TEXTS:
                    parity["int8"]["note"] = f"only {len(test)} test texts available (fewer than {INT8_TEXTS})"
                manifest["quantization"] = {"tool": "nncf.quantize", "model_type": "TRANSFORMER",
                                            "preset": "NNCF's default for ModelType.TRANSFORMER", "plan": plan,
                                            "calibration_batches": len(feeds), "attempts": attempts,
                                            "min_agreement": INT8_MIN_AGREEMENT}
                final = path
                break
        manifest["parity"] = parity
        manifest["runtime_properties"] = fp32.properties
        manifest["parameters"] = facts["parameters"]
        weights = bin_path(final)
        manifest["bin_bytes"] = weights.stat().st_size
        manifest["bin_sha256"] = sha256_file(weights)
        manifest["size_mb"] = (final.stat().st_size + weights.stat().st_size) / 2**20
        manifest["wall_s"] = time.perf_counter() - started
        # .bin first, then the manifest, the .xml (the Make target) last: an interrupted move leaves no .xml.
        output.unlink(missing_ok=True)
        os.replace(weights, bin_path(output))
        manifest["sha256"] = sha256_path_after(final, bin_path(output), output)
        write_json_atomic(manifest_path_for(output), manifest)
        os.replace(final, output)
    log.info("wrote %s (%.1f MB)", output, manifest["size_mb"])
    return manifest


def sha256_path_after(xml_now: Path, bin_final: Path, xml_final: Path) -> str:
    """The sha256 :func:`common.manifest.sha256_path` will give ``xml_final`` once ``xml_now`` is moved there."""
    from common.manifest import digest, sha256_file

    return digest({xml_final.name: sha256_file(xml_now), bin_final.name: sha256_file(bin_final)})
