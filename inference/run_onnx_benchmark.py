"""Benchmark every variant side by side -> outputs/metrics/{summary.csv, summary.md, pareto.png, <variant><suffix>}.

    python -m inference.run_onnx_benchmark --output-dir outputs/metrics --record-suffix .bench.json \
        --data ../shared/data/ag_news --baseline base --variant base=models/fine_tuned/bert_agnews \
        --variant base_onnx_int8=models/onnx/base_int8.onnx --variant base_bf16=models/fine_tuned/bert_agnews

Each variant runs in its own subprocess under the resource monitor (peak RSS, CPU %, GPU memory and
utilisation when a GPU is present) and gets accuracy and macro-F1 on the test split, throughput at
batch 32 (warm-up + repeats) and latency p50/p95/p99 at batch 1 at each of --latency-threads (reported
at the best), timing only the model call on pre-tokenized texts. Each --peer NAME=PYTHON (optimum=.venv-interop/bin/python,
openvino=.venv-openvino/bin/python) builds that peer from the baseline's folder in its venv (cached under
--peer-cache-dir) and measures it the same way as a peer row (optimum_int8, openvino_int8); every row gets its
throughput ratio to each (x_<peer>) and to the fastest of them (x_best_peer). Names ending in _fp16/_bf16
evaluate a torch folder in that dtype. Throughput is also given as a ratio to --baseline measured in
the same run. Each variant's record is <variant><--record-suffix> (default .json; make passes .bench.json, a
name no other rule writes). Accuracy is reused from the variant's earlier record when it measured the
identical artefact (sha256) on the same test rows (--no-reuse to measure again); speed is always re-measured.
A failing variant is reported in summary.md, not fatal (unless it is the baseline).
"""
from __future__ import annotations

import sys

from common.bench.run import BenchConfig, run_benchmark
from common.stage import config_entry

main = config_entry(__doc__, BenchConfig, run_benchmark)

if __name__ == "__main__":
    sys.exit(main())
