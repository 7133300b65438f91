"""The benchmark's peer: Hugging Face Optimum's dynamic int8, built and measured as its users would run it.

    PYTHONPATH=. .venv-interop/bin/python tools/optimum_peer.py SPEC.json   (internal; common/bench/peers/optimum.py drives it)

Runs in the Optimum venv (Optimum pins transformers < 4.58), so it imports nothing from the toolkit but
:mod:`common.bench.timing` (through :mod:`common.bench.peer_script`), which needs only numpy: the very loop our
variants are timed with.

``task: build``: export the base HF folder with ``ORTModelForSequenceClassification.from_pretrained(folder,
export=True)`` and quantize it with ``ORTQuantizer`` and ``AutoQuantizationConfig.<config>(is_static=False)``
(Optimum's defaults otherwise, per-channel included) into the cache folder, written whole or not at all.
``task: measure``: load the quantized model with Optimum, then run its ONNX Runtime session on the token ids
our side saved: logits of every evaluated row (our side computes the accuracy), throughput at the given
threads, batch-1 latency at each thread count, and the batch-vs-one-by-one argmax agreement on the rows
our side names (``agreement_rows``), as for our variants. The result is one JSON file.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

from common.bench import peer_script

QUANTIZED_FILE = "model_quantized.onnx"


def versions() -> dict:
    found = {}
    for name in ("optimum", "optimum-onnx", "onnxruntime", "transformers", "torch"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def build(base: str, config_name: str, cache: Path, facts: dict) -> None:
    from optimum.onnxruntime import ORTModelForSequenceClassification, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig
    from transformers import AutoTokenizer

    tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    exported = ORTModelForSequenceClassification.from_pretrained(base, export=True)
    exported.save_pretrained(tmp / "exported")
    quantizer = ORTQuantizer.from_pretrained(exported)
    quantization = getattr(AutoQuantizationConfig, config_name)(is_static=False)
    quantizer.quantize(save_dir=tmp, quantization_config=quantization)
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp)
    shutil.rmtree(tmp / "exported")  # the fp32 export is a step on the way, not the peer
    (tmp / "peer.json").write_text(json.dumps({**facts, "config": config_name, "per_channel": quantization.per_channel,
                                                 "is_static": False, "versions": versions()}, indent=1))
    shutil.rmtree(cache, ignore_errors=True)
    os.replace(tmp, cache)


def session_runner(folder: Path, threads: int):
    """Optimum's model at ``threads`` threads (ours use the same session options) and a call of its session."""
    import numpy as np
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSequenceClassification

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    model = ORTModelForSequenceClassification.from_pretrained(folder, file_name=QUANTIZED_FILE,
                                                              session_options=options)
    session = model.session
    names = [i.name for i in session.get_inputs()]

    def run(input_ids, attention_mask, token_type_ids):
        feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return session.run(["logits"], {k: feed[k] for k in names})[0].astype(np.float32)

    return run


def measure(spec: dict) -> dict:
    cache = Path(spec["cache"])
    result = peer_script.measure(lambda count: session_runner(cache, count), spec["inputs"], spec["threads"],
                                 spec["latency_threads"], spec.get("agreement_rows"), "optimum peer")
    result["size_mb"] = (cache / QUANTIZED_FILE).stat().st_size / 2**20
    result["peer"] = json.loads((cache / "peer.json").read_text())
    return result


def build_task(spec: dict) -> dict:
    build(spec["base"], spec["config"], Path(spec["cache"]), spec["facts"])
    return {"built": spec["cache"]}


def main(argv=None) -> int:
    return peer_script.main(argv, {"build": build_task, "measure": measure}, "python tools/optimum_peer.py")


if __name__ == "__main__":
    sys.exit(main())
