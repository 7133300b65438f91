"""The systems a user would pick instead of this toolkit, one module each (``optimum``: Optimum's ONNX
Runtime int8). A peer module provides ``PEER_NAME``, ``HOW_TO_GET`` and ``measure_peer(...)`` -> one benchmark
record; :data:`PEERS` lists them in the order the benchmark measures them.
"""

# The modules other packages may import (tests/test_import_graph.py checks it).
__all__ = ["optimum"]
# Peer module names, measured in this order.
PEERS = ("optimum",)
