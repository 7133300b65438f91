"""The benchmark's peer row: Optimum's best dynamic int8 for this CPU, built from the base HF folder.

A user who wants a faster BERT on CPU without this toolkit exports it with Optimum and quantizes it with
``AutoQuantizationConfig.<this CPU>(is_static=False)``; that is the number a compressed variant has to beat.
The peer is built and measured by ``tools/optimum_peer.py`` in the Optimum venv (``--peer optimum=PYTHON``), which
imports nothing of the toolkit but :mod:`common.bench.timing`: it runs the token ids the baseline's worker
saved, so tokenization, batching, threads and the timed call are the same as for our variants. The build
is cached under ``--peer-cache`` and reused while the base folder's sha256 (and the builder) are unchanged.
Whatever keeps the peer from being measured becomes a status (and one note line in summary.md), never an
error of the benchmark.
"""
from __future__ import annotations

import logging
import platform
import time
from pathlib import Path

from common import REPO_ROOT
from common.bench.peers import base as peer_base
from common.bench.cpu import cpu_flags, read_cpuinfo

log = logging.getLogger(__name__)

REPO = REPO_ROOT
PEER_SCRIPT = REPO / "tools" / "optimum_peer.py"
PEER_NAME = "optimum_int8"
PEER_KIND = "optimum-int8 (peer)"
HOW_TO_GET = "run `make .venv-interop/.installed` (Optimum in a venv of its own, from PyPI), then `make bench` again"
DEFAULT_VENV = ".venv-interop"


def optimum_config_for(cpuinfo: str, machine: str) -> str | None:
    """The ``AutoQuantizationConfig`` constructor a user picks for this CPU (None: Optimum has none for it)."""
    if machine.lower() in ("aarch64", "arm64"):
        return "arm64"
    flags = cpu_flags(cpuinfo)
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    return None


def this_cpu_config() -> str | None:
    return optimum_config_for(read_cpuinfo(), platform.machine())


def not_measured(status: str, **extra) -> dict:
    """The peer's record when it has no numbers: ``skipped: why`` or ``failed: why``."""
    return peer_base.not_measured(PEER_NAME, PEER_KIND, status, **extra)


def cached_build_is_current(cache: Path, facts: dict) -> bool:
    return peer_base.cached_build_is_current(cache, facts, "*.onnx")


def _run_peer_task(python: str, spec: dict, tmp: Path, monitor=None) -> tuple[dict | None, str, dict | None]:
    """One ``tools/optimum_peer.py`` task in the peer venv: (result, "", usage) or (None, why it failed, usage)."""
    return peer_base.run_peer_task(PEER_SCRIPT, python, spec, tmp, monitor)


def measure_peer(python: str, base_folder: Path, cache: Path, inputs: Path, labels, threads: int,
                 latency_threads: list[int], monitor_path: Path, interval: float, tmp: Path,
                 agreement_rows: list[int] | None = None, data: str = "", seed: int = 42, max_len: int = 128) -> dict:
    """The peer's benchmark record (status ``ok``, ``failed: ...``), its build cached in ``cache``;
    ``agreement_rows``: indices of the evaluated rows its batch agreement is measured on (as our variants').
    ``data``/``seed``/``max_len`` are the run's (Optimum's dynamic int8 needs no calibration rows)."""
    base = base_folder
    from common.manifest import sha256_path
    from common.bench.monitoring import ResourceMonitor

    config = this_cpu_config()
    if config is None:
        return not_measured(f"skipped: Optimum has no int8 config for this CPU ({platform.machine()} without AVX2)")
    facts = {"base": str(base), "base_sha256": sha256_path(base), "builder_sha256": sha256_path(PEER_SCRIPT),
             "config": config}
    if cached_build_is_current(cache, facts):
        log.info("[%s] reusing the Optimum build in %s (same base sha256)", PEER_NAME, cache)
    else:
        log.info("[%s] building with Optimum from %s: export, then AutoQuantizationConfig.%s(is_static=False)",
                 PEER_NAME, base, config)
        cache.parent.mkdir(parents=True, exist_ok=True)
        spec = {"task": "build", "base": str(base.resolve()), "config": config, "cache": str(cache.resolve()),
                "facts": facts, "result": str(tmp / f"{PEER_NAME}_build.json")}
        built, why, _ = _run_peer_task(python, spec, tmp)
        if built is None:
            return not_measured(f"failed: the Optimum build failed ({why[:200]})", config=config)
    spec = {"task": "measure", "cache": str(cache.resolve()), "inputs": str(inputs.resolve()), "threads": threads,
            "latency_threads": latency_threads, "agreement_rows": agreement_rows,
            "result": str(tmp / f"{PEER_NAME}_measure.json")}
    started = time.perf_counter()
    measured, why, usage = _run_peer_task(python, spec, tmp, ResourceMonitor(monitor_path, interval=interval))
    if measured is None:
        return not_measured(f"failed: {why[:200]}", config=config)
    build = measured["peer"]
    result = peer_base.ok_record(PEER_NAME, PEER_KIND, "int8 (w8a8 dynamic)", cache, labels, measured, usage, started,
                                 f"AutoQuantizationConfig.{build['config']}(is_static=False, per_channel="
                                 f"{build['per_channel']})")
    log.info("[%s] accuracy %.4f, %.1f samples/s, p50 %.2f ms (%d thread(s)); %s", PEER_NAME, result["accuracy"],
             result["throughput_samples_per_s"], result["latency_ms_p50"], result["latency_threads"],
             result["peer_config"])
    return result
