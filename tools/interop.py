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

from common.bench.interop import InteropConfig, run
from common.stage import config_entry

main = config_entry(__doc__, InteropConfig, run)

if __name__ == "__main__":
    sys.exit(main())
