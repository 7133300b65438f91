"""The benchmark's OpenVINO peer: optimum-intel's OpenVINO export of the base HF folder, quantized to static int8 by NNCF.

What an x86 user types instead of this toolkit (optimum-intel's documented post-training quantization path)::

    model = OVModelForSequenceClassification.from_pretrained(base, export=True)
    calibration = nncf.Dataset([tokenizer(text, truncation=True, max_length=128) for text in training_rows])
    OVQuantizer.from_pretrained(model).quantize(calibration_dataset=calibration, save_directory=out,
                                                ov_config=OVConfig(quantization_config=OVQuantizationConfig()))

Calibration: :data:`PEER_CALIB_ROWS` (300, NNCF's default ``subset_size``) seeded, class-stratified **training**
rows of the run's data, one text per sample as above; never test rows. The build runs in optimum-intel's venv
(``.venv-openvino``: it pins transformers < 5.6) by ``tools/openvino_peer.py``, which imports nothing of the
toolkit but :mod:`common.bench.timing`, and is cached under the peer cache while the base folder's sha256, the
builder's and the calibration rows' are unchanged. Measured as our variants are: the token ids the baseline's
worker saved, through the same timing loop, on ``OVModelForSequenceClassification``'s compiled model with
``INFERENCE_NUM_THREADS`` = the run's threads and ``PERFORMANCE_HINT=LATENCY`` (optimum-intel's own default hint);
the inference precision is OpenVINO's default for this CPU (what a user gets), recorded in the peer's record.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from common import REPO_ROOT
from common.bench.peers import base as peer_base

log = logging.getLogger(__name__)

PEER_SCRIPT = REPO_ROOT / "tools" / "openvino_peer.py"
PEER_NAME = "openvino_int8"
PEER_KIND = "openvino-int8 (peer)"
PEER_CALIB_ROWS = 300
HOW_TO_GET = ("run `make .venv-openvino/.installed` (optimum-intel, OpenVINO and NNCF in a venv of their own, from "
              "PyPI), then `make bench` again")
DEFAULT_VENV = ".venv-openvino"


def not_measured(status: str, **extra) -> dict:
    return peer_base.not_measured(PEER_NAME, PEER_KIND, status, **extra)


def measure_peer(python: str, base_folder: Path, cache: Path, inputs: Path, labels, threads: int,
                 latency_threads: list[int], monitor_path: Path, interval: float, tmp: Path,
                 agreement_rows: list[int] | None = None, data: str = "", seed: int = 42, max_len: int = 128) -> dict:
    """The OpenVINO peer's benchmark record (``ok`` or ``failed: ...``), its build cached in ``cache``."""
    from common.bench.monitoring import ResourceMonitor
    from common.data import load_split
    from common.manifest import sha256_path
    from common.prediction_cache import split_digest

    calibration = load_split(data, "train", PEER_CALIB_ROWS, seed)
    if len(calibration) == 0:
        return not_measured("skipped: the data has no training rows to calibrate OpenVINO's int8 on")
    facts = {"base": str(base_folder), "base_sha256": sha256_path(base_folder),
             "builder_sha256": sha256_path(PEER_SCRIPT), "calibration_sha256": split_digest(calibration.texts,
                                                                                           calibration.labels),
             "calibration_rows": len(calibration), "max_len": max_len}
    if peer_base.cached_build_is_current(cache, facts, "*.xml"):
        log.info("[%s] reusing the OpenVINO build in %s (same base and calibration)", PEER_NAME, cache)
    else:
        log.info("[%s] building with optimum-intel from %s: OpenVINO export, then NNCF int8 on %d training rows",
                 PEER_NAME, base_folder, len(calibration))
        cache.parent.mkdir(parents=True, exist_ok=True)
        texts = tmp / f"{PEER_NAME}_calibration.json"
        texts.write_text(json.dumps(list(calibration.texts)))
        spec = {"task": "build", "base": str(base_folder.resolve()), "cache": str(cache.resolve()), "facts": facts,
                "calibration_texts": str(texts), "max_len": max_len, "result": str(tmp / f"{PEER_NAME}_build.json")}
        built, why, _ = peer_base.run_peer_task(PEER_SCRIPT, python, spec, tmp)
        if built is None:
            return not_measured(f"failed: the OpenVINO build failed ({why[:200]})")
    spec = {"task": "measure", "cache": str(cache.resolve()), "inputs": str(inputs.resolve()), "threads": threads,
            "latency_threads": latency_threads, "agreement_rows": agreement_rows,
            "result": str(tmp / f"{PEER_NAME}_measure.json")}
    started = time.perf_counter()
    measured, why, usage = peer_base.run_peer_task(PEER_SCRIPT, python, spec, tmp,
                                                   ResourceMonitor(monitor_path, interval=interval))
    if measured is None:
        return not_measured(f"failed: {why[:200]}")
    build = measured["peer"]
    result = peer_base.ok_record(PEER_NAME, PEER_KIND, "int8 (w8a8 static, NNCF)", cache, labels, measured, usage,
                                 started, f"optimum-intel OVQuantizer + NNCF int8 ({build['calibration_rows']} "
                                          f"training rows; precision {measured.get('inference_precision')})")
    log.info("[%s] accuracy %.4f, %.1f samples/s, p50 %.2f ms (%d thread(s)); %s", PEER_NAME, result["accuracy"],
             result["throughput_samples_per_s"], result["latency_ms_p50"], result["latency_threads"],
             result["peer_config"])
    return result
