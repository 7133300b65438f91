"""Every artefact as a classifier: the one loader and what it loads.

``classifier.load_classifier(path)`` detects the format from the artefact and returns a :class:`base.Classifier`
(``predict_proba(texts) -> (n, 4)``). The formats: HF folders, pruned (masked) or shrunk (``modeling``,
``pruning_spec``, ``hf_shrunk_bert``), torch dynamic-int8 payloads (``torch_int8``), ONNX graphs
(``onnx_graph``) and the MLP student (``mlp_student``). Layer 1: imports only the top of :mod:`common`.
"""

# The modules other packages may import (tests/test_import_graph.py checks it).
__all__ = ['base', 'classifier', 'hf_shrunk_bert', 'mlp_student', 'modeling', 'onnx_graph', 'openvino_graph', 'pruning_spec', 'tokenizer_files', 'torch_int8']
