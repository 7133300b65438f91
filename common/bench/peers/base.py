"""What every peer module shares: its record when unmeasured, its build cache, its task in its own venv, the ratios.

A peer is built by a script of its own (``tools/<peer>_peer.py``) run by the peer's venv python, which imports
nothing of the toolkit but :mod:`common.bench.timing` (numpy only): it runs the token ids the baseline's worker
saved, through the very loop our variants are timed with. The build is cached and reused while its facts (the
base folder's sha256, the builder's, the peer's settings) are unchanged.

**The best peer** of a run is the measured peer with the highest batch-32 throughput; every ratio claim (``x_best_peer``,
the report's and the sweep's "x the peer") is against it, and each peer also gets a column of its own
(``x_<peer name>``, e.g. ``x_openvino_int8``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from common import REPO_ROOT
from common.schema import RECORD_STATUS, RECORD_THROUGHPUT

REPO = REPO_ROOT


def not_measured(name: str, kind: str, status: str, **extra) -> dict:
    """A peer's record when it has no numbers: ``skipped: why`` or ``failed: why``."""
    return {"variant": name, "kind": kind, RECORD_STATUS: status, "peer": True, **extra}


def cached_build_is_current(cache: Path, facts: dict, pattern: str) -> bool:
    """Whether ``cache`` holds a finished build (``peer.json`` + a file matching ``pattern``) of the same facts."""
    try:
        built = json.loads((cache / "peer.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return all(built.get(k) == v for k, v in facts.items()) and any(cache.glob(pattern))


def run_peer_task(script: Path, python: str, spec: dict, tmp: Path, monitor=None) -> tuple[dict | None, str, dict | None]:
    """One task of a peer's script in its venv: (result, "", usage) or (None, why it failed, usage)."""
    from common.bench.monitoring import run_monitored

    spec_path = tmp / f"{script.stem}_{spec['task']}.json"
    spec_path.write_text(json.dumps(spec))
    # Only the repository on the path, for common.bench.timing: the peer venv's own packages must win.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(REPO)
    code, usage = run_monitored([python, str(script), str(spec_path)], env, monitor, cwd=REPO)
    result = Path(spec["result"])
    if code != 0 or not result.is_file():
        error = result.with_name("peer_error.txt")
        why = error.read_text().strip() if error.is_file() else f"exit code {code}"
        error.unlink(missing_ok=True)
        return None, why, usage
    return json.loads(result.read_text()), "", usage


def ratio_column(peer_name: str) -> str:
    """The summary column of throughput relative to one peer."""
    return f"x_{peer_name}"


def measured_peers(records: list[dict]) -> list[dict]:
    """The peers of a run that have numbers, in the order given (records say ``peer``; summary rows have a
    ``peer_config``)."""
    from common.schema import PEER_CONFIG

    return [r for r in records if (r.get("peer") or r.get(PEER_CONFIG)) and r.get(RECORD_STATUS) == "ok"]


def best_peer(records: list[dict]) -> dict | None:
    """The measured peer with the highest throughput (the first of equals), None when no peer was measured."""
    peers = measured_peers(records)
    return max(peers, key=lambda r: r[RECORD_THROUGHPUT]) if peers else None


def peer_ratios(throughput: float | None, peers: list[dict]) -> dict:
    """``x_<peer>`` for every measured peer and ``x_best_peer`` (against the fastest), for one throughput."""
    from common.schema import THROUGHPUT_VS_PEER

    measured = measured_peers(peers)
    out = {ratio_column(p["variant"]): (throughput / p[RECORD_THROUGHPUT] if throughput else None) for p in measured}
    best = best_peer(measured)
    out[THROUGHPUT_VS_PEER] = throughput / best[RECORD_THROUGHPUT] if best and throughput else None
    return out


def ok_record(name: str, kind: str, dtype: str, cache: Path, labels, measured: dict, usage: dict, started: float,
              peer_config: str) -> dict:
    """A measured peer's benchmark record from its script's ``measure`` result (logits of every evaluated row,
    throughput, latency per thread count, batch agreement, its build facts under ``peer``)."""
    import time

    import numpy as np

    from common.bench.timing import best_latency
    from common.manifest import sha256_path
    from common.metrics import classification_metrics

    measured = dict(measured)
    logits = np.asarray(measured.pop("eval_logits"), dtype=np.float32)
    build = measured.pop("peer")
    return {"variant": name, "model": str(cache), "kind": kind, "dtype": dtype, "device": "cpu", RECORD_STATUS: "ok",
            "peer": True, "accuracy_source": "measured in this run",
            **classification_metrics(labels, logits.argmax(axis=1)), **measured,
            **best_latency(measured["latency_by_threads"]), "peer_config": peer_config, "peer_build": build,
            "model_sha256": sha256_path(cache), "peak_rss_mb": usage["peak_rss_mb"], "monitor": usage,
            "bench_wall_s": time.perf_counter() - started}
