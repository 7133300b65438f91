"""Size on disk, parameters (embeddings/encoder/head), zero fraction, heads and FFN width per layer.

    python -m analysis.model_properties.run_model_properties --model models/shrunk/pruned20 \
        --variant pruned20 --output outputs/metrics/properties/pruned20.json
    python -m analysis.model_properties.run_model_properties --table outputs/metrics/properties \
        --output outputs/metrics/properties/properties.md

Any variant: a model folder (fine-tuned, pruned, shrunk), a dynamic-int8 .pt or an .onnx file.
"""
from __future__ import annotations

import sys

from common.cli import stage_parser
from common.bench.properties import PropertiesConfig, run
from common.stage import stage_entry


def build_parser():
    p = stage_parser(__doc__)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="one artefact: model folder, int8 .pt or .onnx")
    what.add_argument("--table", help="folder of properties JSONs -> one Markdown table")
    p.add_argument("--variant", help="variant name (with --model)")
    p.add_argument("--variants", nargs="+", default=None,
                   help="with --table: only <folder>/<name>.json of these variants, in this order (default: every JSON)")
    p.add_argument("--output", required=True, help="properties JSON (with --model) or Markdown file (with --table)")
    return p


main = stage_entry(build_parser, PropertiesConfig, run)

if __name__ == "__main__":
    sys.exit(main())
