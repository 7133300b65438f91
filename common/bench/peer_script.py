"""What every peer script (``tools/<peer>_peer.py``) runs in its own venv: the ``measure`` task and the spec dispatch.

Standard library, numpy and :mod:`common.bench.timing` only (the peer venvs have none of the toolkit's
dependencies). ``measure`` runs the token ids our side saved through the timing loop our variants use: logits of
every evaluated row (our side computes the accuracy), throughput at the run's threads, batch-1 latency at each
thread count, and batch-vs-one-by-one agreement on the rows our side names.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable

from common.bench.timing import batch_vs_single, latency, load_inputs, logits_in_order, throughput


def measure(make_run: Callable[[int], Callable], inputs_path: str, threads: int, latency_threads: list[int],
            agreement_rows: list[int] | None, label: str) -> dict:
    """``make_run(threads)`` -> ``run(input_ids, attention_mask, token_type_ids) -> logits`` of the peer's model."""
    inputs = load_inputs(inputs_path)
    run = make_run(threads)
    logits = logits_in_order(run, inputs["eval"], inputs["eval_batch_size"], inputs["pad_id"])
    result = {"eval_logits": logits.tolist(), "threads": threads,
              **throughput(run, inputs["speed"], inputs["batch_size"], inputs["pad_id"])}
    if agreement_rows:
        result.update(batch_vs_single(run, [inputs["eval"][i] for i in agreement_rows], inputs["batch_size"],
                                      inputs["pad_id"]))
    by_threads = {}
    for count in latency_threads:
        runner = run if count == threads else make_run(count)
        by_threads[str(count)] = latency(runner, inputs["speed"], inputs["latency_requests"])
        print(f"{label}: batch-1 latency at {count} thread(s): p50 {by_threads[str(count)]['latency_ms_p50']:.2f} ms",
              file=sys.stderr)
    result["latency_by_threads"] = by_threads
    return result


def main(argv: list[str] | None, tasks: dict[str, Callable[[dict], dict]], usage: str) -> int:
    """Run the task a spec file names (``{"task": ..., "result": ...}``); the result is one JSON file written
    whole, and a failure leaves one sentence in ``peer_error.txt`` beside it for the benchmark's summary."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: {usage} SPEC.json (internal; run inference/run_onnx_benchmark.py)", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    result_path = Path(spec["result"])
    try:
        result = tasks[spec["task"]](spec)
    except Exception as exc:
        result_path.with_name("peer_error.txt").write_text(f"{type(exc).__name__}: {str(exc)[:300]}")
        raise
    tmp = result_path.with_name(f".{result_path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, result_path)
    return 0
