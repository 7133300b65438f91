#!/usr/bin/env bash
# Benchmark every variant: builds what is missing, then writes outputs/metrics/summary.{csv,md} and pareto.png.
#   inference/inference.sh                      # benchmark what is built, with the knobs it was built with
#   inference/inference.sh DATA=../shared/data/ag_news THREADS=2 PYTHON=.venv/bin/python
# Arguments are passed to make as knobs (VAR=value). Without arguments, the knob values recorded in the
# stamps under models/.knobs/ (written by the last build, e.g. `make demo`) are passed instead, so nothing is
# rebuilt with the Makefile's defaults; with no stamps, the defaults apply. To benchmark hand-picked
# artefacts without make:
#   python -m inference.run_onnx_benchmark --variant base=models/fine_tuned/bert_agnews --variant ... (see --help)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stamps="${KNOB_STAMPS:-models/.knobs}"
if [ "$#" -eq 0 ] && [ -d "$stamps" ]; then
  knobs="$(python3 -m common.knobs "$stamps")"
  mapfile -t args <<< "$knobs"
  [ -n "$knobs" ] && set -- "${args[@]}"
  echo "inference.sh: knobs from $stamps: $*" >&2
fi
exec make bench "$@"
