"""ONNX export: the graph (``onnx_export``), its parity checks (``parity``), its metadata
(``metadata``), fused attention (``attention``) and the stage (``stage``). Layer 3: may use
:mod:`common.quantize` for the int8 graphs.
"""

# The modules other packages may import (tests/test_import_graph.py checks it).
__all__ = ['attention', 'metadata', 'onnx_export', 'openvino_export', 'parity', 'stage']
