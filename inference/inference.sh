#!/usr/bin/env bash
# Benchmark every variant: builds what is missing, then writes outputs/metrics/summary.{csv,md} and pareto.png.
#   inference/inference.sh                      # make bench with the Makefile's defaults
#   inference/inference.sh DATA=../shared/data/ag_news THREADS=2 PYTHON=.venv/bin/python
# Arguments are passed to make as knobs (VAR=value). To benchmark hand-picked artefacts without make:
#   python -m inference.run_onnx_benchmark --variant base=models/fine_tuned/bert_agnews --variant ... (see --help)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec make bench "$@"
