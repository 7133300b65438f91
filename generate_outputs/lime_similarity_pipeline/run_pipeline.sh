#!/usr/bin/env bash
# Explanation drift report: passes every argument to run_lime_similarity (see its --help).
# PYTHON overrides the interpreter (default: the repository's .venv/bin/python).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m generate_outputs.lime_similarity_pipeline.run_lime_similarity "$@"
