"""Quantization stages and recipes: torch dynamic int8 (``torch_dynamic``; the payload format and
loader live in :mod:`common.models.torch_int8`) and ONNX Runtime static int8 (``ort_static``). ONNX Runtime
dynamic int8 is applied by the export stage (:mod:`common.export.onnx_export`). Layer 2.
"""

# The modules other packages may import (tests/test_import_graph.py checks it).
__all__ = ['ort_static', 'torch_dynamic']
