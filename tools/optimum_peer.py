"""The benchmark's peer: Hugging Face Optimum's dynamic int8, built and measured as its users would run it.

    PYTHONPATH=. .venv-interop/bin/python tools/optimum_peer.py SPEC.json   (internal; common/bench/peers/optimum.py drives it)

Runs in the Optimum venv (Optimum pins transformers < 4.58), so it imports nothing from the toolkit but
:mod:`common.bench.timing`, which needs only numpy: the very loop our variants are timed with.

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

from common.bench.timing import batch_vs_single, latency, load_inputs, logits_in_order, throughput

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


def measure(cache: Path, inputs_path: str, threads: int, latency_threads: list[int],
            agreement_rows: list[int] | None = None) -> dict:
    inputs = load_inputs(inputs_path)
    run = session_runner(cache, threads)
    logits = logits_in_order(run, inputs["eval"], inputs["eval_batch_size"], inputs["pad_id"])
    result = {"eval_logits": logits.tolist(), "threads": threads,
              **throughput(run, inputs["speed"], inputs["batch_size"], inputs["pad_id"])}
    if agreement_rows:
        result.update(batch_vs_single(run, [inputs["eval"][i] for i in agreement_rows], inputs["batch_size"],
                                      inputs["pad_id"]))
    by_threads = {}
    for count in latency_threads:
        runner = run if count == threads else session_runner(cache, count)
        by_threads[str(count)] = latency(runner, inputs["speed"], inputs["latency_requests"])
        print(f"optimum peer: batch-1 latency at {count} thread(s): p50 {by_threads[str(count)]['latency_ms_p50']:.2f} ms",
              file=sys.stderr)
    result["latency_by_threads"] = by_threads
    result["size_mb"] = (cache / QUANTIZED_FILE).stat().st_size / 2**20
    result["peer"] = json.loads((cache / "peer.json").read_text())
    return result


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python tools/optimum_peer.py SPEC.json (internal; run inference/run_onnx_benchmark.py)",
              file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    result_path = Path(spec["result"])
    try:
        if spec["task"] == "build":
            build(spec["base"], spec["config"], Path(spec["cache"]), spec["facts"])
            result = {"built": spec["cache"]}
        else:
            result = measure(Path(spec["cache"]), spec["inputs"], spec["threads"], spec["latency_threads"],
                             spec.get("agreement_rows"))
    except Exception as exc:
        # The parent reports this sentence in summary.md; the traceback stays in the log.
        result_path.with_name("peer_error.txt").write_text(f"{type(exc).__name__}: {str(exc)[:300]}")
        raise
    tmp = result_path.with_name(f".{result_path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
