"""Benchmark every variant side by side -> summary.csv, summary.md, pareto.png and one record per variant.

Each variant runs in a **fresh subprocess** (:mod:`common.bench.worker`) under a
:class:`~common.bench.monitoring.ResourceMonitor` sampling that process: peak RSS is then the
variant's own (not the maximum of everything loaded before it), threads and allocator
state start clean, and a variant that crashes is reported as a failed row instead of
ending the run. The cost is one interpreter + torch import per variant (~3-5 s).

Per variant the worker (:func:`common.bench.worker.measure_variant`) measures accuracy and
macro-F1 on the test split, throughput at batch 32 and batch-1 latency p50/p95/p99 at each thread
count of ``--latency-threads`` (reported at the best one), timing only the model call on pre-tokenized
texts (:mod:`common.bench.timing`), so its record ``<output-dir>/<variant><record-suffix>`` has the same keys as the spine's
evaluation; a failed variant's record says so (``status``) and has no metrics, so no earlier numbers
survive under its name. ``make`` passes ``--record-suffix .bench.json``, a name only the benchmark
writes: ``outputs/metrics/<variant>.json`` belongs to the evaluation rule alone.
Accuracy over the full test split is the slow part: when the variant's earlier record holds a
measurement of the *same artefact* (sha256 of the file or folder) on the same data, test
subset, max length and dtype, its accuracy block is reused (``accuracy_source`` says so);
speed is always measured again in this run, and throughput is reported as a ratio to the
baseline variant measured in the same run and to each peer (``x_<peer>``; ``x_best_peer``: the fastest peer of the
run): Optimum's dynamic int8 for this CPU and OpenVINO's NNCF int8, each built from the baseline's folder in its
own venv and measured with the same protocol (:mod:`common.bench.peers`).
"""
from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import REPO_ROOT
from common.bench.summary import best_variant, cpu_name, is_failed, is_skipped, plot_pareto, summary_row, write_summary_md
from common.bench.cpu import half_skip_reason, read_cpuinfo
from common.bench.worker import DEFAULT_AGREEMENT_ROWS, reusable_accuracy, reusable_agreement
from common.cli import UserError
from common.schema import BATCH_AGREEMENT, RECORD_STATUS, SUMMARY_COLUMNS
from common.stage import StageConfig, flag, shared_flag
from common.variants import dtype_for

log = logging.getLogger(__name__)

REPO = REPO_ROOT


def parse_variants(items: list[str]) -> dict[str, Path]:
    variants: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--variant {item!r} must be NAME=PATH, e.g. --variant base=models/fine_tuned/bert_agnews.")
        if name in variants:
            raise UserError(f"--variant {name} is given twice; each variant name must be unique.")
        if not Path(path).exists():
            raise UserError(f"--variant {name}={path}: {path} does not exist; build it first (e.g. `make {path}`).")
        variants[name] = Path(path)
    if not variants:
        raise UserError("No --variant given; pass at least one NAME=PATH.")
    return variants


def test_split_hash(data: str, test_samples: int, seed: int) -> str:
    from common.data import load_test_split
    from common.prediction_cache import split_digest

    test = load_test_split(data, test_samples, seed)
    return split_digest(test.texts, test.labels)


# ----------------------------------------------------------------------------------------------- parent
def _run_variant(name: str, path: Path, args, settings: dict, monitor_dir: Path, record: Path, extra: dict) -> dict:
    from common.manifest import sha256_path
    from common.bench.monitoring import ResourceMonitor, run_monitored

    dtype = dtype_for(name)
    model_sha256 = sha256_path(path)
    reuse = None if args.no_reuse else reusable_accuracy(record, model_sha256,
                                                         {**settings, "dtype": dtype})
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        spec = {"variant": name, "model": str(path), "dtype": dtype, "data": args.data,
                "test_samples": args.test_samples, "max_len": args.max_len, "device": args.device,
                "threads": args.threads, "batch_size": args.batch_size, "latency_requests": args.latency_requests,
                "throughput_texts": args.throughput_texts, "seed": args.seed, "reuse": reuse,
                "agreement_rows": args.agreement_rows, **extra,
                "result": str(Path(tmp) / "result.json")}
        Path(tmp, "spec.json").write_text(json.dumps(spec))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        command = [sys.executable, "-m", "common.bench.worker", str(Path(tmp, "spec.json"))]
        log.info("[%s] %s (%s)%s", name, path, dtype, "; accuracy reused" if reuse else "")
        started = time.perf_counter()
        # Other processes competing for the cores distort speed: record the host load around each variant.
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        code, usage = run_monitored(command, env, ResourceMonitor(monitor_dir / f"{name}.csv",
                                                                  interval=args.monitor_interval))
        wall = time.perf_counter() - started
        result_path = Path(spec["result"])
        if code != 0 or not result_path.is_file():
            error_path = Path(tmp, "error.txt")
            reason = error_path.read_text().strip() if error_path.is_file() else f"exit code {code} (killed?)"
            log.error("[%s] failed (exit %d): %s", name, code, reason)
            return {"variant": name, "model": str(path), "dtype": dtype, "status": f"failed: {reason[:200]}",
                    "model_sha256": model_sha256, "monitor": usage, "bench_wall_s": wall}
        result = json.loads(result_path.read_text())
        agreement = reuse and reusable_agreement(record, args.batch_size,
                                                   args.agreement_rows)
        if not agreement:
            agreement = _measure_agreement(name, command, spec, env, Path(tmp))
        result.update(agreement)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result.update({"status": "ok", "model_sha256": model_sha256, "test_sha256": settings["test_sha256"],
                   "bench_wall_s": wall, "monitor": usage, "host_load_1min": [load_before, load_after],
                   "monitor_peak_rss_mb": usage["peak_rss_mb"], "gpu_mem_peak_mb": usage["gpu_mem_peak_mb"],
                   "gpu_util_mean_percent": usage["gpu_util_mean_percent"], "gpu_status": usage["gpu_status"]})
    return result


def _baseline_again(config, path: Path, settings: dict, monitor_dir: Path, first: dict,
                    latency_threads: list[int]) -> dict:
    """The baseline's speed measured a second time, after every other variant, and the faster run kept.

    Every ratio divides by the baseline's throughput, so one slow baseline measurement (a busy host, a cold
    cache at the start of the run) would inflate all of them. Its accuracy is reused (the record was just
    written, same sha256); only speed is measured again. Keeping the faster run can only lower the ratios.
    Both runs are kept in the record (``baseline_speed_runs``) and stated in summary.md."""
    name = config.baseline
    record = Path(config.output_dir) / f"{name}{config.record_suffix}"
    again = _run_variant(name, path, config, settings, monitor_dir, record,
                         {"latency_threads": latency_threads, "inputs_out": None})
    runs = [first] + ([again] if again["status"] == "ok" else [])
    kept = max(runs, key=lambda r: r["throughput_samples_per_s"])
    # The accuracy is the first run's (the second reused it): say where it really came from.
    kept = {**kept, "accuracy_source": first.get("accuracy_source"), "baseline_speed_runs": {
        "throughput_samples_per_s": [r["throughput_samples_per_s"] for r in runs],
        "latency_ms_p50": [r["latency_ms_p50"] for r in runs],
        "kept": "start" if kept is first else "end",
        "end_status": again["status"]}}
    write_record(kept, record, _record_args(config, name, path))
    log.info("[%s] baseline throughput at the start and the end of the run: %s samples/s; kept the %s run", name,
             " and ".join(f"{x:.1f}" for x in kept["baseline_speed_runs"]["throughput_samples_per_s"]),
             kept["baseline_speed_runs"]["kept"])
    return kept


def _record_args(config, name: str, path: Path) -> dict:
    """The arguments a variant's record carries in its manifest."""
    return {**config.to_dict(), "variant": name, "model": str(path), "dtype": dtype_for(name)}


def _measure_agreement(name: str, command: list[str], spec: dict, env: dict, tmp: Path) -> dict:
    """Batch vs one-by-one agreement in a second worker process; a failure leaves it empty, said once."""
    spec = {**spec, "task": "agreement", "result": str(tmp / "agreement.json")}
    (tmp / "agreement_spec.json").write_text(json.dumps(spec))
    log.info("[%s] batch (%d) vs one-by-one agreement", name, spec["batch_size"])
    code = subprocess.run([*command[:-1], str(tmp / "agreement_spec.json")], env=env).returncode
    if code != 0 or not Path(spec["result"]).is_file():
        error = tmp / "error.txt"
        log.error("[%s] batch agreement not measured: %s", name,
                  error.read_text().strip() if error.is_file() else f"exit code {code}")
        return {BATCH_AGREEMENT: None}
    return json.loads(Path(spec["result"]).read_text())


def write_record(result: dict, path: Path, args: dict) -> None:
    """The variant's record: its metrics, or (failed) its status alone, so a stale measurement cannot survive."""
    from common.bench.evaluation import write_metrics
    from common.manifest import base_manifest, write_json_atomic

    if result[RECORD_STATUS] == "ok":
        write_metrics(result, path, args)
        return
    manifest = base_manifest("evaluate", args, seed=args.get("seed"), inputs={"model": result["model"]})
    write_json_atomic(path, {**result, "manifest": manifest})


@dataclass(frozen=True)
class BenchConfig(StageConfig):
    """``inference/run_onnx_benchmark.py``'s flags."""

    output_dir: str = flag("outputs/metrics", help="where summary.*, pareto.png, monitor/ and the records go")
    record_suffix: str = flag(".json", help=(
        "each variant's record is OUTPUT_DIR/<variant><suffix> (make passes .bench.json, a name no other rule "
        "writes)"))
    data: str = flag("", help="ag_news, a folder with train/test files, or empty for the demo sample")
    test_samples: int = flag(0, help="stratified test subset (0 = the full split)")
    max_len: int = flag(128)
    device: str = shared_flag("device")
    threads: int = flag(0, help="CPU threads per variant (0 = all cores)")
    baseline: str = flag("base", help="variant the ratios are relative to")
    variant: list[str] = flag([], action="append", metavar="NAME=PATH", help=(
        "a variant and its artefact (repeat); NAME ending in _fp16/_bf16 runs a torch folder in that dtype"))
    batch_size: int = flag(32, help="batch size of the throughput measurement")
    latency_requests: int = flag(100, help="timed batch-1 requests per variant")
    throughput_texts: int = flag(512, help="texts per throughput repeat")
    monitor_interval: float = flag(0.5, help="seconds between resource samples")
    # store_true: the flag is already the negative one (no --no-no-reuse)
    no_reuse: bool = flag(False, action="store_true", help=(
        "always measure accuracy again (default: reuse it for an identical artefact)"))
    seed: int = flag(42)
    agreement_rows: int = flag(DEFAULT_AGREEMENT_ROWS, help=(
        "seeded random test rows of the batch vs one-by-one agreement (0 = every evaluated row)"))
    latency_threads: list[int] = flag([], nargs="*", help=(
        "thread counts batch-1 latency is measured at, reported at the best one (default on CPU: 1, 2, 4, ... up "
        "to all cores)"))
    peer: list[str] = flag([], action="append", help=(
        "PEER=PYTHON (repeat): measure a peer with its venv's python, e.g. optimum=.venv-interop/bin/python, "
        "openvino=.venv-openvino/bin/python (a peer not given is skipped, with a note in summary.md)"))
    peer_cache_dir: str = flag("outputs/peers", help=(
        "folder of the peers' builds (one subfolder each), reused while the baseline folder is unchanged"))
    half_on_cpu: bool = flag(False, help=(
        "measure fp16/bf16 variants on a CPU without native support for them (default: skipped with the reason: "
        "torch emulates them there, ~0.15x fp32, and the full test split takes ~10 min each on 2 cores)"))

    def check(self) -> None:
        if self.test_samples < 0:
            raise UserError("--test-samples must be >= 0 (0 = the full test split).")
        if self.agreement_rows < 0:
            raise UserError("--agreement-rows must be >= 0 (0 = every evaluated row).")
        if self.latency_requests < 1 or self.throughput_texts < 1 or self.batch_size < 1:
            raise UserError("--latency-requests, --throughput-texts and --batch-size must be >= 1.")
        if any(t < 1 for t in self.latency_threads):
            raise UserError(f"--latency-threads {self.latency_threads} must list thread counts >= 1.")
        if not self.record_suffix.endswith(".json"):
            raise UserError(f"--record-suffix {self.record_suffix!r} must end in .json (e.g. .bench.json).")
        parse_peers(self.peer)


def parse_peers(items: list[str]) -> dict[str, str]:
    """``--peer NAME=PYTHON`` items -> {peer module name: python}; one sentence for a bad item."""
    from common.bench.peers import PEERS
    from common.bench.peers.registry import peer_module

    peers: dict[str, str] = {}
    for item in items:
        name, sep, python = item.partition("=")
        if not sep or not python:
            raise UserError(f"--peer {item!r} must be PEER=PYTHON with PEER one of {', '.join(PEERS)}, e.g. "
                            f"--peer openvino=.venv-openvino/bin/python.")
        module = peer_module(name)
        if not Path(python).is_file():
            raise UserError(f"--peer {item}: {python} does not exist; create the venv with "
                            f"`make {module.DEFAULT_VENV}/.installed`, or leave the flag out to skip that peer.")
        peers[name] = python
    return peers


def _peer(module, config: BenchConfig, base: Path, inputs: Path, test, threads: int, latency_threads: list[int],
          monitor_dir: Path, tmp: Path) -> dict:
    """One peer's record (``module``: a :mod:`common.bench.peers` module), or why it was not measured."""
    from common.bench.timing import agreement_indices
    from common.models.modeling import is_model_folder

    name = module.__name__.rsplit(".", 1)[1]
    python = parse_peers(config.peer).get(name)
    if not python:
        return module.not_measured(f"skipped: no --peer {name}=PYTHON (its venv, {module.DEFAULT_VENV}) was given")
    if not config.device.startswith("cpu"):
        return module.not_measured(f"skipped: the peer runs on CPU and this benchmark ran on {config.device}")
    if not is_model_folder(base):
        return module.not_measured(f"skipped: the peer is built from the baseline's HF folder and {base} is not one")
    if not inputs.is_file():
        return module.not_measured("skipped: the baseline failed, so there were no token ids to run")
    rows = agreement_indices(len(test.labels), config.agreement_rows, config.seed)
    record = module.measure_peer(python, base, Path(config.peer_cache_dir) / module.PEER_NAME, inputs, test.labels,
                                 threads, latency_threads, monitor_dir / f"{module.PEER_NAME}.csv",
                                 config.monitor_interval, tmp, rows, data=config.data, seed=config.seed,
                                 max_len=config.max_len)
    if BATCH_AGREEMENT in record:
        record["batch_agreement_rows"] = config.agreement_rows
    return record


def run_benchmark(config: BenchConfig) -> int:
    from common.bench.timing import thread_settings
    from common.cli import resolve_device
    from common.data import load_test_split
    from common.manifest import base_manifest, library_versions, write_json_atomic, write_text_atomic
    from common.bench.monitoring import GpuProbe

    variants = parse_variants(config.variant)
    if config.baseline not in variants:
        raise UserError(f"--baseline {config.baseline} is not among the --variant names ({', '.join(variants)}).")
    config = config.replace(device=resolve_device(config.device))
    threads = config.threads or os.cpu_count() or 1
    # Batch-1 latency is best at a thread count of its own (a small input gains little from more threads).
    latency_threads = list(config.latency_threads) or (
        thread_settings(os.cpu_count() or 1) if config.device.startswith("cpu") else [threads])
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    monitor_dir = output_dir / "monitor"
    test = load_test_split(config.data, config.test_samples, config.seed)
    if len(test) == 0:
        raise UserError(f"--data {config.data!r} has an empty test split.")
    settings = {"data": config.data, "test_samples": config.test_samples, "max_len": config.max_len,
                "seed": config.seed, "test_sha256": test_split_hash(config.data, config.test_samples, config.seed)}
    gpu = GpuProbe()
    gpu_status = gpu.status
    gpu.close()
    log.info("benchmark: %d variants, baseline %s, device %s, %d thread(s) (latency at %s), %d test rows; %s",
             len(variants), config.baseline, config.device, threads, latency_threads, len(test), gpu_status)
    # Baseline first, so every ratio compares with a measurement from this same run.
    order = [config.baseline] + [v for v in variants if v != config.baseline]
    results: dict[str, dict] = {}
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="bench-run-") as run_tmp:
        # The baseline's worker saves the token ids it ran; the peer runs exactly those.
        inputs = Path(run_tmp) / "inputs.npz"
        cpuinfo = read_cpuinfo()
        for name in tqdm(order, desc="variants", unit="variant"):
            record = output_dir / f"{name}{config.record_suffix}"
            skip = None if config.half_on_cpu or name == config.baseline else half_skip_reason(
                dtype_for(name), config.device, cpuinfo)
            if skip:
                log.warning("[%s] %s", name, skip)
                results[name] = {"variant": name, "model": str(variants[name]), "dtype": dtype_for(name),
                                 RECORD_STATUS: skip}
            else:
                extra = {"latency_threads": latency_threads,
                         "inputs_out": str(inputs) if name == config.baseline else None}
                results[name] = _run_variant(name, variants[name], config, settings, monitor_dir, record, extra)
            write_record(results[name], record, _record_args(config, name, variants[name]))
        if len(order) > 1 and results[config.baseline]["status"] == "ok":
            results[config.baseline] = _baseline_again(config, variants[config.baseline], settings, monitor_dir,
                                                       results[config.baseline], latency_threads)
        from common.bench.peers.registry import peer_modules

        peers = [_peer(module, config, variants[config.baseline], inputs, test, threads, latency_threads,
                       monitor_dir, Path(run_tmp)) for module in peer_modules()]
    for peer in peers:
        write_record({"model": None, **peer}, output_dir / f"{peer['variant']}{config.record_suffix}",
                     {**config.to_dict(), "variant": peer["variant"]})
    baseline = results[config.baseline] if results[config.baseline]["status"] == "ok" else None
    measured = [results[name] for name in order] + [p for p in peers if not p["status"].startswith("skipped")]
    rows = [summary_row(result, baseline, peers) for result in measured]
    best = best_variant(rows, config.baseline)
    context = {"device": config.device, "threads": threads, "cpu": cpu_name(),
               "gpu_status": gpu_status, "n_test": len(test), "data": config.data or "demo sample",
               "max_len": config.max_len, "latency_requests": config.latency_requests,
               "batch_size": config.batch_size, "throughput_texts": config.throughput_texts,
               "latency_threads": latency_threads, "baseline": config.baseline, "versions": library_versions(),
               "best": best, "peer_statuses": {p["variant"]: p["status"] for p in peers},
               "baseline_speed_runs": results[config.baseline].get("baseline_speed_runs"),
               "loads": [x for r in results.values() for x in r.get("host_load_1min", [])]}
    plot_pareto(rows, output_dir / "pareto.png", config.baseline)
    write_summary_md(rows, output_dir / "summary.md", context)
    manifest = base_manifest("benchmark", config.to_dict(), seed=config.seed, inputs=dict(variants))
    manifest.update({"context": {k: v for k, v in context.items() if k != "best"}, "rows": rows,
                     "best_within_1pt": None if best is None else best["variant"],
                     "failed": [r["variant"] for r in rows if is_failed(r)],
                     "skipped": [r["variant"] for r in rows if is_skipped(r)]})
    write_json_atomic(output_dir / "summary.manifest.json", manifest)
    # summary.csv is the Make target: written last.
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in SUMMARY_COLUMNS})
    write_text_atomic(output_dir / "summary.csv", buffer.getvalue())
    if best:
        log.info("best within 1.0 pt of %s: %s (accuracy %.4f, %+.2f pt, %.2fx throughput)", config.baseline,
                 best["variant"], best["accuracy"], best["accuracy_delta_pt"], best["throughput_ratio"])
    failed = manifest["failed"]
    if failed:
        log.warning("%d variant(s) failed and are reported in summary.md: %s", len(failed), ", ".join(failed))
    if baseline is None:
        raise UserError(f"The baseline variant {config.baseline} failed ({results[config.baseline]['status']}); "
                        f"no ratios could be computed - fix it and rerun.")
    return 0
