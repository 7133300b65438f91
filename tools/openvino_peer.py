"""The benchmark's OpenVINO peer: optimum-intel's export + NNCF int8, built and measured as its users would run it.

    PYTHONPATH=. .venv-openvino/bin/python tools/openvino_peer.py SPEC.json   (internal; common/bench/peers/openvino.py drives it)

Runs in optimum-intel's venv (it pins transformers < 5.6), so it imports nothing from the toolkit but
:mod:`common.bench.peer_script` (numpy and the timing loop our variants are timed with).

``task: build``: ``OVModelForSequenceClassification.from_pretrained(base, export=True)``, then
``OVQuantizer.from_pretrained(model).quantize(calibration_dataset=nncf.Dataset([...]),
ov_config=OVConfig(quantization_config=OVQuantizationConfig()))`` on the training texts our side chose (one
tokenized text per calibration sample, truncated at max_len), saved with the tokenizer into the cache folder,
written whole or not at all. ``task: measure``: load the saved model with ``OVModelForSequenceClassification``
(``ov_config``: ``INFERENCE_NUM_THREADS`` = the run's threads, ``PERFORMANCE_HINT=LATENCY``), then time its compiled
model's infer request on the token ids our side saved.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

from common.bench import peer_script

IR_FILE = "openvino_model.xml"


def versions() -> dict:
    found = {}
    for name in ("optimum-intel", "optimum", "openvino", "nncf", "transformers", "torch"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def build(spec: dict) -> dict:
    import nncf
    from optimum.intel import OVConfig, OVModelForSequenceClassification, OVQuantizationConfig, OVQuantizer
    from transformers import AutoTokenizer

    base, cache = spec["base"], Path(spec["cache"])
    texts = json.loads(Path(spec["calibration_texts"]).read_text())
    tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = OVModelForSequenceClassification.from_pretrained(base, export=True)
    calibration = nncf.Dataset([dict(tokenizer(text, truncation=True, max_length=spec["max_len"],
                                               return_tensors="np")) for text in texts])
    OVQuantizer.from_pretrained(model).quantize(calibration_dataset=calibration, save_directory=tmp,
                                                ov_config=OVConfig(quantization_config=OVQuantizationConfig()))
    tokenizer.save_pretrained(tmp)
    (tmp / "peer.json").write_text(json.dumps({**spec["facts"], "calibration_rows": len(texts),
                                                 "quantization": "OVQuantizationConfig() defaults (8-bit, "
                                                                 "model_type transformer)",
                                                 "versions": versions()}, indent=1))
    shutil.rmtree(cache, ignore_errors=True)
    os.replace(tmp, cache)
    return {"built": str(cache)}


def runner(folder: Path, threads: int):
    """optimum-intel's model at ``threads`` threads and a call of its compiled model's infer request."""
    import numpy as np
    from optimum.intel import OVModelForSequenceClassification

    model = OVModelForSequenceClassification.from_pretrained(
        folder, ov_config={"INFERENCE_NUM_THREADS": str(threads), "PERFORMANCE_HINT": "LATENCY"})
    compiled = model.request  # optimum-intel compiles at load; this is its CompiledModel
    request = compiled.create_infer_request()
    names = [i.get_any_name() for i in compiled.inputs]
    runner.precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))

    def run(input_ids, attention_mask, token_type_ids):
        feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        request.infer({k: feed[k] for k in names})
        return np.asarray(request.get_tensor("logits").data, dtype=np.float32).copy()

    return run


def measure(spec: dict) -> dict:
    cache = Path(spec["cache"])
    result = peer_script.measure(lambda count: runner(cache, count), spec["inputs"], spec["threads"],
                                 spec["latency_threads"], spec.get("agreement_rows"), "openvino peer")
    result["size_mb"] = sum(f.stat().st_size for f in (cache / IR_FILE, cache / "openvino_model.bin")) / 2**20
    result["inference_precision"] = getattr(runner, "precision", None)
    result["peer"] = json.loads((cache / "peer.json").read_text())
    return result


def main(argv=None) -> int:
    return peer_script.main(argv, {"build": build, "measure": measure}, "python tools/openvino_peer.py")


if __name__ == "__main__":
    sys.exit(main())
