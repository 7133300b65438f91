"""Size on disk, parameters (embeddings/encoder/head), zero fraction, heads and FFN width per layer.

    python -m analysis.model_properties.run_model_properties --model models/shrunk/pruned20 \
        --variant pruned20 --output outputs/metrics/properties/pruned20.json
    python -m analysis.model_properties.run_model_properties --table outputs/metrics/properties \
        --output outputs/metrics/properties/properties.md

Any variant: a model folder (fine-tuned, pruned, shrunk), a dynamic-int8 .pt or an .onnx file.
"""
from __future__ import annotations

import sys

from common.bench.properties import PropertiesConfig, run
from common.stage import config_entry

main = config_entry(__doc__, PropertiesConfig, run)

if __name__ == "__main__":
    sys.exit(main())
