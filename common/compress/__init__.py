"""Making the model smaller: fine-tuning (the Trainer), structured pruning with re-fine-tuning, and
physical shrinking. Layer 2: imports :mod:`common.models` and the top of :mod:`common`.
"""

# The modules other packages may import (tests/test_import_graph.py checks it).
__all__ = ['finetune', 'function_matching', 'pruning', 'shrink', 'training']
