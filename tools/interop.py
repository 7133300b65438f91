"""Load every artefact in third-party tools and compare their logits with the toolkit's.

    python -m tools.interop --interop-python .venv-interop/bin/python --output outputs/metrics/interop.md \
        --data ../shared/data/ag_news --artefact base=models/fine_tuned/bert_agnews \
        --artefact pruned20=models/shrunk/pruned20 --artefact base_onnx_int8=models/onnx/base_int8.onnx

ONNX graphs are loaded with Optimum's ``ORTModelForSequenceClassification``, HF folders (fine-tuned, masked,
shrunk) with plain transformers (shrunk ones via ``trust_remote_code``), in the venv of ``--interop-python``
(``make .venv-interop/.installed``), which cannot import this toolkit. Writes a Markdown table (artefact,
loader, max |Δlogit|, argmax agreement, pass/fail at a declared tolerance) and its JSON manifest.
"""
from __future__ import annotations

import sys

from common.cli import add_shared_flags, stage_parser
from common.bench.interop import ATOL, InteropConfig, run
from common.stage import stage_entry


def build_parser():
    p = stage_parser(__doc__)
    p.add_argument("--artefact", action="append", default=[], metavar="NAME=PATH",
                   help="an .onnx graph or a model folder (repeat)")
    p.add_argument("--interop-python", required=True, help="python of the third-party venv (.venv-interop/bin/python)")
    p.add_argument("--output", required=True, help="Markdown table to write (outputs/metrics/interop.md)")
    add_shared_flags(p, "data")
    p.add_argument("--n-texts", type=int, default=32, help="stratified test texts compared")
    add_shared_flags(p, "max_len")
    p.add_argument("--atol", type=float, default=ATOL, help="max |dlogit| for a pass")
    add_shared_flags(p, "seed")
    return p


main = stage_entry(build_parser, InteropConfig, run)

if __name__ == "__main__":
    sys.exit(main())
