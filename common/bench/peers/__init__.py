"""The systems a user would pick instead of this toolkit, one module each: ``optimum`` (Optimum's ONNX Runtime
dynamic int8 for this CPU) and ``openvino`` (optimum-intel's OpenVINO export + NNCF static int8).

A peer module provides ``PEER_NAME`` (its record's name, one of :data:`common.schema.PEER_NAMES`), ``PEER_KIND``,
``HOW_TO_GET`` (the sentence that says how to get it measured), ``build`` facts and ``measure_peer(...)`` -> one
benchmark record (``ok``, ``skipped: why`` or ``failed: why``); the shared parts are :mod:`common.bench.peers.base`.
:data:`PEERS` lists them in the order the benchmark measures them, so a third peer is one module and one entry here
(and its name in :data:`common.schema.PEER_NAMES`).
"""
from __future__ import annotations

import importlib

# The modules other packages may import (tests/test_import_graph.py checks it).
__all__ = ["optimum", "openvino", "base"]
# Peer module names, measured in this order.
PEERS = ("optimum", "openvino")


def peer_module(name: str):
    """The peer module called ``name`` (one of :data:`PEERS`)."""
    if name not in PEERS:
        from common.cli import UserError

        raise UserError(f"--peer {name}: unknown peer; the peers are {', '.join(PEERS)}.")
    return importlib.import_module(f"common.bench.peers.{name}")


def peer_modules() -> list:
    return [peer_module(name) for name in PEERS]


def how_to_get(peer_name: str) -> str:
    """The sentence saying how to get the peer whose record is called ``peer_name`` measured."""
    for module in peer_modules():
        if module.PEER_NAME == peer_name:
            return module.HOW_TO_GET
    return "see `make help`"
