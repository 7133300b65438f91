"""The systems a user would pick instead of this toolkit, one module each: ``optimum`` (Optimum's ONNX Runtime
dynamic int8 for this CPU) and ``openvino`` (optimum-intel's OpenVINO export + NNCF static int8).

A peer module provides ``PEER_NAME`` (its record's name, one of :data:`common.schema.PEER_NAMES`), ``PEER_KIND``,
``HOW_TO_GET`` (the sentence that says how to get it measured), ``DEFAULT_VENV``, ``not_measured(status)`` and
``measure_peer(...)`` -> one benchmark record (``ok``, ``skipped: why`` or ``failed: why``); the shared parts are
:mod:`common.bench.peers.base`, the list the benchmark loops over is :mod:`common.bench.peers.registry`. A third
peer is one module, one entry in :data:`PEERS` and the registry, and its name in :data:`common.schema.PEER_NAMES`.
"""

# The modules other packages may import (tests/test_import_graph.py checks it).
__all__ = ["optimum", "openvino", "base", "registry"]
# Peer module names, measured in this order.
PEERS = ("optimum", "openvino")
