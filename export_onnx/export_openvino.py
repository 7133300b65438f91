"""Run one of our fp32 ONNX graphs on OpenVINO: convert it to an IR (parity-checked), or quantize it with NNCF.

    python -m export_onnx.export_openvino --model models/onnx/pruned20.onnx \
        --output models/onnx/pruned20_ov.xml --data ../shared/data/ag_news
    python -m export_onnx.export_openvino --model models/onnx/pruned20.onnx --int8 \
        --output models/onnx/pruned20_ov_int8.xml --data ../shared/data/ag_news --calib-rows 128 --seed 42

fp32: max |dlogit| against the ONNX graph (ONNX Runtime) <= 1e-4; int8 (NNCF static, ModelType.TRANSFORMER,
calibrated on --calib-rows seeded training rows): argmax agreement with the fp32 graph >= 99 % on 500 test
texts, else the next plan (FFN output projections in fp32, then attention outputs too). Nothing is written
unless a check passes; X.manifest.json records the plans tried, the calibration rows and the runtime properties
(see common/export/openvino_export.py).
"""
from __future__ import annotations

import sys

from common.export.stage import OpenVinoExportConfig, run_openvino
from common.stage import config_entry

main = config_entry(__doc__, OpenVinoExportConfig, run_openvino)

if __name__ == "__main__":
    sys.exit(main())
