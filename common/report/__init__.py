"""What a person reads: the report (``build``, its ``inputs``, the shipping rule ``pick``, the stage
``stage``) and the sparsity sweep (``sweep``, its plot ``frontier``). Layer 5: reads :mod:`common.bench` and :mod:`common.explain`.
"""

# The modules other packages may import (tests/test_import_graph.py checks it).
__all__ = ['build', 'inputs', 'pick', 'recipes', 'stage', 'sweep']
