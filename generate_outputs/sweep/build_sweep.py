"""The sparsity sweep's table, frontier plot and pick, from one benchmark run and the pruning manifests.

    python -m generate_outputs.sweep.build_sweep --output-dir outputs/sweep --reports-dir outputs/reports \
        --record outputs/sweep/base.bench.json --record outputs/sweep/pruned40_onnx_int8.bench.json ... \
        --peer-record outputs/sweep/optimum_int8.bench.json --peer-record outputs/sweep/openvino_int8.bench.json \
        --pruning-manifest models/pruned/bert_agnews_40pct/manifest.json ...

Writes sweep.csv (one row per variant: sparsity requested and achieved, accuracy, delta pt, throughput, x base,
x best peer and x_<peer> for each peer, latency p50, size, accuracy after pruning and after re-fine-tuning, explanation verdicts, eligible,
pick), frontier.png (accuracy vs throughput per quantization mode, base and the peers as references,
the 1-pt band, the pick), sweep.manifest.json and, last, sweep.md. The pick is the report's rule: the fastest
variant within 1 pt of base accuracy that is `equivalent` on both explanation gates; a variant without a verdict
on a gate is unverified and never picked; the most compressed eligible variant is named beside it
(common/report/sweep.py).
"""
from __future__ import annotations

import sys

from common.stage import config_entry
from common.report.sweep import SweepConfig, run_sweep

main = config_entry(__doc__, SweepConfig, run_sweep)

if __name__ == "__main__":
    sys.exit(main())
