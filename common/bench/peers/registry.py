"""The peer modules by name, in the order the benchmark measures them (:data:`common.bench.peers.PEERS`)."""
from __future__ import annotations

from common.bench.peers import PEERS
from common.bench.peers import openvino, optimum
from common.cli import UserError

MODULES = {"optimum": optimum, "openvino": openvino}
assert tuple(MODULES) == PEERS, "common.bench.peers.PEERS and the registry must list the same peers in order"


def peer_module(name: str):
    """The peer module called ``name`` (one of :data:`PEERS`); one sentence for another name."""
    if name not in MODULES:
        raise UserError(f"--peer {name}: unknown peer; the peers are {', '.join(PEERS)}.")
    return MODULES[name]


def peer_modules() -> list:
    return [MODULES[name] for name in PEERS]


def how_to_get(peer_name: str) -> str:
    """The sentence saying how to get the peer whose record is called ``peer_name`` measured."""
    for module in peer_modules():
        if module.PEER_NAME == peer_name:
            return module.HOW_TO_GET
    return "see `make help`"
