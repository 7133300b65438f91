"""Benchmark every variant side by side -> outputs/metrics/{<variant>.json, summary.csv, summary.md, pareto.png}.

Each variant runs in a **fresh subprocess** (``python -m common.benchmark --worker``) under a
:class:`~common.monitoring.ResourceMonitor` sampling that process: peak RSS is then the
variant's own (not the maximum of everything loaded before it), threads and allocator
state start clean, and a variant that crashes is reported as a failed row instead of
ending the run. The cost is one interpreter + torch import per variant (~3-5 s).

Per variant the worker calls :func:`common.evaluation.evaluate_model` (accuracy and
macro-F1 on the test split, latency p50/p95/p99 at batch 1 and throughput at batch 32, with
warm-up and repeats), so ``<variant>.json`` has the same keys as the spine's evaluation.
Accuracy over the full test split is the slow part: when ``<variant>.json`` already holds a
measurement of the *same artefact* (sha256 of the file or folder) on the same data, test
subset, max length and dtype, its accuracy block is reused (``accuracy_source`` says so);
speed is always measured again in this run, and throughput is reported as a ratio to the
baseline variant measured in the same run.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common.cli import UserError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
CLASSIFICATION_KEYS = ("accuracy", "macro_f1", "per_class_f1", "confusion_matrix", "n_test")
BATCH_AGREEMENT = "batch_agreement"
SUMMARY_COLUMNS = (
    "variant", "status", "kind", "dtype", "device", "threads", "accuracy", "accuracy_delta_pt", "macro_f1",
    "latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "throughput_samples_per_s", "throughput_ratio",
    "size_mb", "parameters", "peak_rss_mb", "gpu_mem_peak_mb", "gpu_util_mean_percent", "accuracy_source",
    "host_load_1min", "model_sha256", BATCH_AGREEMENT,
)
# BATCH_AGREEMENT: argmax agreement between batched prediction (the bench's batch size, length-sorted
# batches) and one-by-one prediction over the evaluated test rows. Dynamic int8 computes activation scales
# per batch, so a text's class can depend on its batch mates; other variants score 1.0 (up to float ties).
AGREEMENT_KEYS = (BATCH_AGREEMENT, "batch_agreement_flips", "batch_agreement_n", "batch_agreement_batch_size",
                  "batch_agreement_rows")
# One-by-one prediction costs a forward pass per text: the agreement is measured on a seeded random subset of
# the evaluated rows (--agreement-rows; 0 = all of them). 1,000 rows resolve a 1-3 % flip rate to about +-1 pt.
DEFAULT_AGREEMENT_ROWS = 1000
HALF_SUFFIXES = {"_fp16": "fp16", "_bf16": "bf16"}


def dtype_for(variant: str) -> str:
    """fp16/bf16 variants are torch folders evaluated in the dtype their name ends with."""
    for suffix, dtype in HALF_SUFFIXES.items():
        if variant.endswith(suffix):
            return dtype
    return "fp32"


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


# ----------------------------------------------------------------------------------------------- reuse
def reusable_accuracy(previous_json: Path, model_sha256: str, settings: dict) -> dict | None:
    """The accuracy block of an earlier measurement of the same artefact on the same test rows, else None."""
    if not previous_json.is_file():
        return None
    try:
        previous = json.loads(previous_json.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    manifest = previous.get("manifest") or {}
    recorded_hash = previous.get("model_sha256") or manifest.get("inputs", {}).get("model", {}).get("sha256")
    if recorded_hash != model_sha256 or any(k not in previous for k in CLASSIFICATION_KEYS):
        return None
    arguments = manifest.get("arguments", {})
    same = (str(arguments.get("data", "")) == str(settings["data"])
            and int(arguments.get("test_samples", -1)) == int(settings["test_samples"])
            and int(arguments.get("max_len", previous.get("max_len", -1))) == int(settings["max_len"])
            and previous.get("dtype", "fp32") == settings["dtype"]
            and int(arguments.get("seed", 42) or 42) == int(settings["seed"]))
    if not same:
        return None
    if previous.get("test_sha256") and previous["test_sha256"] != settings.get("test_sha256"):
        return None
    block = {k: previous[k] for k in CLASSIFICATION_KEYS}
    block["accuracy_source"] = f"reused from {previous_json.name} ({manifest.get('created', 'earlier run')}, same model sha256)"
    return block


# ----------------------------------------------------------------------------------------------- worker
def speed_only(model: Path, variant: str, data: str, test_samples: int, max_len: int, device: str, dtype: str,
               threads: int, batch_size: int, latency_requests: int, throughput_texts: int, seed: int) -> dict:
    """Latency, throughput, size, parameters and RSS without the accuracy pass (which is reused)."""
    from common.classifier import load_classifier
    from common.data import load_test_split
    from common.evaluation import parameter_count, set_threads
    from common.manifest import size_on_disk
    from common.metrics import latency_stats, peak_rss_mb, throughput_stats

    threads = set_threads(threads)
    clf = load_classifier(model, device=device, dtype=dtype, max_len=max_len, batch_size=batch_size,
                          progress=True, threads=threads)
    test = load_test_split(data, test_samples, seed)
    rng = np.random.default_rng(seed)
    speed_texts = [test.texts[i] for i in rng.permutation(len(test))[:throughput_texts]]
    result = dict(latency_stats(clf, speed_texts, repeats=latency_requests))
    result.update(throughput_stats(clf, speed_texts, batch_size=batch_size))
    result.update({"variant": variant, "model": str(model), "format": clf.info.get("format"), "kind": clf.kind,
                   "dtype": dtype, "device": getattr(clf, "device", device), "threads": threads, "max_len": max_len,
                   "eval_wall_s": None, "size_mb": size_on_disk(model) / 2**20, "parameters": parameter_count(clf),
                   "peak_rss_mb": peak_rss_mb()})
    return result


def batch_agreement(clf, texts: list[str], batch_size: int) -> dict:
    """Argmax agreement of ``clf`` between batches of ``batch_size`` and one text at a time."""
    from tqdm import tqdm

    batched = clf.predict_logits(texts, batch_size=batch_size).argmax(axis=1)
    single = np.array([clf.predict_logits([text], batch_size=1)[0].argmax()
                       for text in tqdm(texts, desc="one-by-one", unit="text", leave=False)], dtype=batched.dtype)
    flips = int((batched != single).sum())
    return {BATCH_AGREEMENT: float((batched == single).mean()) if texts else None, "batch_agreement_flips": flips,
            "batch_agreement_n": len(texts), "batch_agreement_batch_size": batch_size}


def agreement_texts(texts: list[str], rows: int, seed: int) -> list[str]:
    """A seeded random subset of ``rows`` texts, in their original order (all of them when ``rows`` is 0)."""
    if not rows or rows >= len(texts):
        return list(texts)
    chosen = np.sort(np.random.default_rng(seed).choice(len(texts), size=rows, replace=False))
    return [texts[i] for i in chosen]


def agreement_only(model: Path, data: str, test_samples: int, max_len: int, device: str, dtype: str, threads: int,
                   batch_size: int, seed: int, agreement_rows: int = DEFAULT_AGREEMENT_ROWS, **_unused) -> dict:
    from common.classifier import load_classifier
    from common.data import load_test_split
    from common.evaluation import set_threads

    threads = set_threads(threads)
    clf = load_classifier(model, device=device, dtype=dtype, max_len=max_len, batch_size=batch_size,
                          threads=threads)
    texts = agreement_texts(load_test_split(data, test_samples, seed).texts, agreement_rows, seed)
    return {**batch_agreement(clf, texts, batch_size), "batch_agreement_rows": agreement_rows}


def reusable_agreement(previous_json: Path, batch_size: int, rows: int = DEFAULT_AGREEMENT_ROWS) -> dict | None:
    """The batch agreement of an earlier run at the same batch size (call only when its accuracy is reusable)."""
    try:
        previous = json.loads(previous_json.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if (previous.get(BATCH_AGREEMENT) is None or previous.get("batch_agreement_batch_size") != batch_size
            or previous.get("batch_agreement_rows", 0) != rows):
        return None
    return {k: previous[k] for k in AGREEMENT_KEYS if k in previous}


def run_worker(spec_path: str) -> int:
    """Measure one variant as described by a JSON spec; write the result JSON. Runs in its own process.

    ``task: agreement`` measures only the batch agreement (in a process of its own, after the monitored
    one, so its one-by-one pass does not touch the variant's memory and speed figures).
    """
    from common.cli import setup_logging
    from common.evaluation import evaluate_model

    setup_logging()
    spec = json.loads(Path(spec_path).read_text())
    common_kwargs = dict(data=spec["data"], test_samples=spec["test_samples"], max_len=spec["max_len"],
                         device=spec["device"], dtype=spec["dtype"], threads=spec["threads"],
                         batch_size=spec["batch_size"], latency_requests=spec["latency_requests"],
                         throughput_texts=spec["throughput_texts"], seed=spec["seed"])
    try:
        if spec.get("task") == "agreement":
            result = agreement_only(Path(spec["model"]), **common_kwargs,
                                    agreement_rows=spec.get("agreement_rows", DEFAULT_AGREEMENT_ROWS))
        elif spec.get("reuse"):
            result = speed_only(Path(spec["model"]), spec["variant"], **common_kwargs)
            result.update(spec["reuse"])
        else:
            result = evaluate_model(spec["model"], spec["variant"], **common_kwargs)
            result["accuracy_source"] = "measured in this run"
    except UserError as exc:  # one sentence, no traceback - as a stage script would
        Path(spec["result"]).with_name("error.txt").write_text(str(exc))
        log.error("%s", exc)
        return exc.exit_code
    except BaseException as exc:
        # The parent reports this sentence in summary.md; the traceback stays in the log.
        Path(spec["result"]).with_name("error.txt").write_text(f"{type(exc).__name__}: {exc}")
        raise
    from common.manifest import write_json_atomic

    write_json_atomic(spec["result"], result)
    return 0


# ----------------------------------------------------------------------------------------------- parent
def _run_variant(name: str, path: Path, args, settings: dict, monitor_dir: Path) -> dict:
    from common.manifest import sha256_path
    from common.monitoring import ResourceMonitor

    dtype = dtype_for(name)
    model_sha256 = sha256_path(path)
    reuse = None if args.no_reuse else reusable_accuracy(Path(args.output_dir) / f"{name}.json", model_sha256,
                                                         {**settings, "dtype": dtype})
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        spec = {"variant": name, "model": str(path), "dtype": dtype, "data": args.data,
                "test_samples": args.test_samples, "max_len": args.max_len, "device": args.device,
                "threads": args.threads, "batch_size": args.batch_size, "latency_requests": args.latency_requests,
                "throughput_texts": args.throughput_texts, "seed": args.seed, "reuse": reuse,
                "agreement_rows": args.agreement_rows,
                "result": str(Path(tmp) / "result.json")}
        Path(tmp, "spec.json").write_text(json.dumps(spec))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        command = [sys.executable, "-m", "common.benchmark", "--worker", str(Path(tmp, "spec.json"))]
        log.info("[%s] %s (%s)%s", name, path, dtype, "; accuracy reused" if reuse else "")
        started = time.perf_counter()
        # Other processes competing for the cores distort speed: record the host load around each variant.
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        monitor = ResourceMonitor(monitor_dir / f"{name}.csv", interval=args.monitor_interval)
        # stderr is inherited: the worker's progress bars and logs show live.
        child = subprocess.Popen(command, env=env)
        monitor.pid = child.pid
        monitor.start()
        try:
            code = child.wait()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            usage = monitor.stop(keep=True)
        wall = time.perf_counter() - started
        result_path = Path(spec["result"])
        if code != 0 or not result_path.is_file():
            error_path = Path(tmp, "error.txt")
            reason = error_path.read_text().strip() if error_path.is_file() else f"exit code {code} (killed?)"
            log.error("[%s] failed (exit %d): %s", name, code, reason)
            return {"variant": name, "model": str(path), "dtype": dtype, "status": f"failed: {reason[:200]}",
                    "model_sha256": model_sha256, "monitor": usage, "bench_wall_s": wall}
        result = json.loads(result_path.read_text())
        agreement = reuse and reusable_agreement(Path(args.output_dir) / f"{name}.json", args.batch_size,
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


# Dynamic-int8 variants load with dtype fp32 (the torch dtype of their float parts); what they compute
# with is int8 weights and int8 activations quantized per batch at run time, and that is what a reader asks.
INT8_KINDS = ("torch-int8", "onnx-int8")
INT8_DTYPE = "int8 (w8a8 dynamic)"


def reported_dtype(result: dict) -> str | None:
    return INT8_DTYPE if result.get("kind") in INT8_KINDS else result.get("dtype")


def _summary_row(result: dict, baseline: dict | None) -> dict:
    row = {k: result.get(k) for k in SUMMARY_COLUMNS}
    row["dtype"] = reported_dtype(result)
    params = result.get("parameters")
    row["parameters"] = params.get("total") if isinstance(params, dict) else params
    loads = [x for x in result.get("host_load_1min") or [] if x is not None]
    row["host_load_1min"] = max(loads) if loads else None
    if baseline and result.get("status") == "ok":
        row["throughput_ratio"] = result["throughput_samples_per_s"] / baseline["throughput_samples_per_s"]
        row["accuracy_delta_pt"] = 100.0 * (result["accuracy"] - baseline["accuracy"])
    return row


def best_variant(rows: list[dict], baseline_name: str, max_drop_pt: float = 1.0) -> dict | None:
    """Fastest variant (batch-32 throughput) whose accuracy is within ``max_drop_pt`` of the baseline."""
    ok = [r for r in rows if r["status"] == "ok" and r["variant"] != baseline_name
          and r.get("accuracy_delta_pt") is not None and r["accuracy_delta_pt"] >= -max_drop_pt]
    return max(ok, key=lambda r: r["throughput_samples_per_s"], default=None)


def _fmt(value, digits: int = 3):
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return value


def write_summary_md(rows: list[dict], path: Path, context: dict) -> None:
    from tabulate import tabulate

    from common.manifest import write_text_atomic

    shown = ("variant", "status", "kind", "dtype", "accuracy", "accuracy_delta_pt", "macro_f1", BATCH_AGREEMENT,
             "latency_ms_p50",
             "latency_ms_p95", "latency_ms_p99", "throughput_samples_per_s", "throughput_ratio", "size_mb",
             "parameters", "peak_rss_mb", "gpu_mem_peak_mb", "gpu_util_mean_percent", "host_load_1min")
    digits = {"accuracy": 4, "macro_f1": 4, "accuracy_delta_pt": 2, "throughput_ratio": 2, BATCH_AGREEMENT: 4}
    table = [[_fmt(r.get(k), digits.get(k, 1)) for k in shown] for r in rows]
    best = context.get("best")
    lines = [
        "# Benchmark: every variant side by side", "",
        f"Device {context['device']}, {context['threads']} thread(s), {context['cpu']}; GPU: {context['gpu_status']}.",
        f"Test rows: {context['n_test']} ({context['data']}), max length {context['max_len']}; latency at batch 1 "
        f"({context['latency_requests']} requests after warm-up), throughput at batch {context['batch_size']} over "
        f"{context['throughput_texts']} texts (length-sorted dynamic padding, median of 3 after warm-up).",
        f"Throughput ratio and accuracy delta are relative to `{context['baseline']}` measured in this run. "
        f"Each variant ran in its own process; peak RSS is that process's.",
        f"`{BATCH_AGREEMENT}`: share of the test rows whose predicted class is the same in batches of "
        f"{context['batch_size']} (length-sorted) as one text at a time. Dynamic int8 quantizes activations with "
        f"one scale per batch, so its predictions depend on the batch mates; the others should be 1.0.",
        "Library versions: " + ", ".join(f"{k} {v}" for k, v in context["versions"].items()) + ".", "",
        tabulate(table, headers=list(shown), tablefmt="github"), "",
    ]
    if best:
        lines.append(f"**Best variant within 1.0 pt of `{context['baseline']}`: `{best['variant']}`** - accuracy "
                     f"{best['accuracy']:.4f} ({best['accuracy_delta_pt']:+.2f} pt), "
                     f"{best['throughput_samples_per_s']:.1f} samples/s = {best['throughput_ratio']:.2f}x the baseline.")
    else:
        lines.append(f"No variant is within 1.0 pt of `{context['baseline']}` (or the baseline failed).")
    loads = [x for x in context.get("loads", []) if x is not None]
    if loads and max(loads) > 1.5 * context["threads"]:
        lines += ["", f"Note: the host's 1-minute load average reached {max(loads):.1f} on {context['threads']} "
                      f"thread(s) during this run - other processes competed for the cores, so speeds are noisy "
                      f"(torch's thread pool suffers most)."]
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed variants:"] + [f"- `{r['variant']}`: {r['status']}" for r in failed]
    reused = [r["variant"] for r in rows if str(r.get("accuracy_source", "")).startswith("reused")]
    if reused:
        lines += ["", "Accuracy reused from an earlier measurement of the identical artefact (same sha256, same "
                      "test rows): " + ", ".join(f"`{v}`" for v in reused) + "; speed was measured in this run."]
    write_text_atomic(path, "\n".join(lines) + "\n")


def pareto_front(rows: list[dict]) -> list[dict]:
    """Rows no other row beats on both throughput and accuracy, fastest first."""
    front, best_acc = [], -1.0
    for r in sorted(rows, key=lambda r: -r["throughput_samples_per_s"]):
        if r["accuracy"] > best_acc:
            front.append(r)
            best_acc = r["accuracy"]
    return front


def plot_pareto(rows: list[dict], path: Path, baseline: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.plot_labels import place_labels

    ok = [r for r in rows if r["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(10, 6.5))
    ax.set_xlabel("throughput at batch 32 (samples/s, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs throughput (marker area = size on disk)")
    ax.grid(alpha=0.3)
    if ok:
        kinds = sorted({str(r["kind"]) for r in ok})
        colours = {k: plt.cm.tab10(i % 10) for i, k in enumerate(kinds)}
        sizes = np.array([max(float(r["size_mb"] or 0), 1.0) for r in ok])
        scale = 900.0 / sizes.max()
        for r, size in zip(ok, sizes):
            ax.scatter(r["throughput_samples_per_s"], 100 * r["accuracy"], s=size * scale + 15, alpha=0.55,
                       color=colours[str(r["kind"])], edgecolors="black" if r["variant"] == baseline else "none",
                       label=str(r["kind"]))
        front = pareto_front(ok)
        # A marker as well as the line: a one-point front has no line to show in the legend.
        ax.plot([r["throughput_samples_per_s"] for r in front], [100 * r["accuracy"] for r in front],
                "k--", lw=0.8, marker="D", markersize=5, markerfacecolor="none", label="Pareto front")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        legend = ax.legend(unique.values(), unique.keys(), fontsize=8, loc="lower left", markerscale=0.4)
        ax.set_xscale("log")
        ax.margins(x=0.25, y=0.15)  # room for labels around the outermost points
        fig.tight_layout()
        place_labels(ax, [r["throughput_samples_per_s"] for r in ok], [100 * r["accuracy"] for r in ok],
                     [f"{r['variant']} ({r['size_mb']:.0f} MB)" for r in ok], obstacles=[legend],
                     marker_areas=sizes * scale + 15)
    else:
        fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def cpu_name() -> str:
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} logical cores)"


def run_benchmark(args) -> int:
    from common.cli import resolve_device
    from common.data import load_test_split
    from common.evaluation import write_metrics
    from common.manifest import base_manifest, library_versions, write_json_atomic, write_text_atomic
    from common.monitoring import GpuProbe

    if args.test_samples < 0:
        raise UserError("--test-samples must be >= 0 (0 = the full test split).")
    if args.agreement_rows < 0:
        raise UserError("--agreement-rows must be >= 0 (0 = every evaluated row).")
    if args.latency_requests < 1 or args.throughput_texts < 1:
        raise UserError("--latency-requests and --throughput-texts must be >= 1.")
    variants = parse_variants(args.variant)
    if args.baseline not in variants:
        raise UserError(f"--baseline {args.baseline} is not among the --variant names ({', '.join(variants)}).")
    args.device = resolve_device(args.device)
    threads = args.threads or os.cpu_count() or 1
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    monitor_dir = output_dir / "monitor"
    test = load_test_split(args.data, args.test_samples, args.seed)
    if len(test) == 0:
        raise UserError(f"--data {args.data!r} has an empty test split.")
    settings = {"data": args.data, "test_samples": args.test_samples, "max_len": args.max_len, "seed": args.seed,
                "test_sha256": test_split_hash(args.data, args.test_samples, args.seed)}
    gpu = GpuProbe()
    gpu_status = gpu.status
    gpu.close()
    log.info("benchmark: %d variants, baseline %s, device %s, %d thread(s), %d test rows; %s", len(variants),
             args.baseline, args.device, threads, len(test), gpu_status)
    # Baseline first, so every ratio compares with a measurement from this same run.
    order = [args.baseline] + [v for v in variants if v != args.baseline]
    results: dict[str, dict] = {}
    from tqdm import tqdm

    for name in tqdm(order, desc="variants", unit="variant"):
        result = _run_variant(name, variants[name], args, settings, monitor_dir)
        results[name] = result
        if result["status"] == "ok":
            metric_args = {**vars(args), "variant": name, "model": str(variants[name]), "dtype": result["dtype"]}
            write_metrics(result, output_dir / f"{name}.json", metric_args)
    baseline = results[args.baseline] if results[args.baseline]["status"] == "ok" else None
    rows = [_summary_row(results[name], baseline) for name in order]
    best = best_variant(rows, args.baseline)
    context = {"device": args.device, "threads": threads, "cpu": cpu_name(),
               "gpu_status": gpu_status, "n_test": len(test), "data": args.data or "demo sample",
               "max_len": args.max_len, "latency_requests": args.latency_requests, "batch_size": args.batch_size,
               "throughput_texts": args.throughput_texts, "baseline": args.baseline, "versions": library_versions(),
               "best": best, "loads": [x for r in results.values() for x in r.get("host_load_1min", [])]}
    plot_pareto(rows, output_dir / "pareto.png", args.baseline)
    write_summary_md(rows, output_dir / "summary.md", context)
    manifest = base_manifest("benchmark", vars(args), seed=args.seed, inputs=dict(variants))
    manifest.update({"context": {k: v for k, v in context.items() if k != "best"}, "rows": rows,
                     "best_within_1pt": None if best is None else best["variant"],
                     "failed": [r["variant"] for r in rows if r["status"] != "ok"]})
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
        log.info("best within 1.0 pt of %s: %s (accuracy %.4f, %+.2f pt, %.2fx throughput)", args.baseline,
                 best["variant"], best["accuracy"], best["accuracy_delta_pt"], best["throughput_ratio"])
    failed = manifest["failed"]
    if failed:
        log.warning("%d variant(s) failed and are reported in summary.md: %s", len(failed), ", ".join(failed))
    if baseline is None:
        raise UserError(f"The baseline variant {args.baseline} failed ({results[args.baseline]['status']}); "
                        f"no ratios could be computed - fix it and rerun.")
    return 0


def add_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default="outputs/metrics", help="where <variant>.json and summary.* go")
    parser.add_argument("--data", default="", help="ag_news, a folder with train/test files, or empty for the demo sample")
    parser.add_argument("--test-samples", type=int, default=0, help="stratified test subset (0 = the full split)")
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per variant (0 = all cores)")
    parser.add_argument("--baseline", default="base", help="variant the ratios are relative to")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=PATH",
                        help="a variant and its artefact (repeat); NAME ending in _fp16/_bf16 runs a torch folder in "
                             "that dtype")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of the throughput measurement")
    parser.add_argument("--latency-requests", type=int, default=100, help="timed batch-1 requests per variant")
    parser.add_argument("--throughput-texts", type=int, default=512, help="texts per throughput repeat")
    parser.add_argument("--monitor-interval", type=float, default=0.5, help="seconds between resource samples")
    parser.add_argument("--no-reuse", action="store_true",
                        help="always measure accuracy again (default: reuse it for an identical artefact)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--agreement-rows", type=int, default=DEFAULT_AGREEMENT_ROWS,
                        help="seeded random test rows of the batch vs one-by-one agreement (0 = every evaluated row)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(run_worker(sys.argv[2]))
    sys.exit("usage: python -m common.benchmark --worker SPEC.json (internal; use inference/run_onnx_benchmark.py)")
