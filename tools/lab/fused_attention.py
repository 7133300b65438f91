"""Is the fused-attention graph worth shipping? Plain vs fused attention, fp32 / dynamic int8 / static int8, per
model (``tools/fused_attention_compare.py``).

Each model folder is exported twice by :func:`common.export.onnx_export.export_model` (plain, and with
``fused_attention``), so both graphs pass the stage's own parity checks, and each is quantized both ways. Speed is
the benchmark's protocol (:func:`common.bench.timing.throughput`: pre-tokenized texts, length-sorted batches, only
the model call timed); the graphs of one model are timed in turns, ``rounds`` times, so a load change on a shared
machine hits both sides alike. The table gives each fused graph's ratio to its plain twin. ``host_load_1min`` is
recorded before and after: read the ratios from an idle run.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.quantize.ort_static import CALIB_ROWS, DEFAULT_STATIC_FORMAT, STATIC_FORMATS, check_static_format
from common.stage import StageConfig, flag, shared_flag

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8_dynamic", "int8_static")
ATTENTIONS = ("plain", "fused")


def _build(model: Path, folder: Path, data: str, max_len: int, threads: int, seed: int, calib_rows: int,
           int8_samples: int, static_format: str) -> dict[tuple[str, str], dict]:
    """The six graphs of one model: {(attention, precision): {"path", "manifest"} or {"failed": why}}.

    An int8 graph that fails the int8 parity rule gets a row that says so (the fp32 graphs must pass)."""
    from common.export.onnx_export import ParityError, export_model

    common = {"data": data, "max_len": max_len, "threads": threads, "seed": seed, "int8_samples": int8_samples}
    graphs = {}
    for attention in ATTENTIONS:
        fp32 = folder / f"{attention}.onnx"
        graphs[attention, "fp32"] = {"path": fp32, "manifest": export_model(
            model, fp32, fused_attention=attention == "fused", **common)}
        for precision, mode in (("int8_dynamic", "dynamic"), ("int8_static", "static")):
            path = folder / f"{attention}_{precision}.onnx"
            try:
                graphs[attention, precision] = {"path": path, "manifest": export_model(
                    fp32, path, int8=True, mode=mode, calib_rows=calib_rows, static_format=static_format, **common)}
            except ParityError as exc:
                graphs[attention, precision] = {"failed": f"failed the int8 parity rule: {exc}"}
    return graphs


def _parity(manifest: dict) -> str:
    parity = manifest.get("parity", {})
    if "int8" in parity:
        return f"argmax agreement {parity['int8']['argmax_agreement']:.4f}"
    return f"max abs Δlogit {parity['fp32']['max_abs_logit_diff']:.1e}"


def _time_in_turns(graphs: dict, texts: list[str], max_len: int, batch_size: int, threads: int, rounds: int) -> dict:
    from common.bench.timing import throughput
    from common.models.onnx_graph import load_onnx

    sessions = {key: load_onnx(g["path"], "cpu", "fp32", threads=threads, max_len=max_len, batch_size=batch_size)
                for key, g in graphs.items() if "failed" not in g}
    first = next(iter(sessions.values()))
    ids, pad_id = first.encode(texts), first.tokenizer.pad_token_id or 0  # tokenized once, before any timing
    rates = {key: [] for key in sessions}
    for _ in range(rounds):
        for key, clf in sessions.items():
            rates[key].append(throughput(clf._logits_batch, ids, batch_size, pad_id, repeats=1)
                              ["throughput_samples_per_s"])
    return {key: {"median": float(np.median(r)), "best": float(np.max(r)), "passes": r} for key, r in rates.items()}


def _row(model: str, attention: str, precision: str, graph: dict, timing: dict) -> dict:
    row = {"model": model, "precision": precision, "attention": attention}
    if "failed" in graph:
        return {**row, "status": graph["failed"], "parity": "failed"}
    fused = graph["manifest"].get("fused_attention", {})
    speed = timing[attention, precision]
    plain = timing.get(("plain", precision))
    return {**row, "status": "ok", "fused_outcome": fused.get("outcome", "not requested"),
            "fused_ops_per_layer": fused.get("fused_ops_per_layer"), "heads_per_layer": fused.get("heads_per_layer"),
            "samples_per_s": speed["median"], "samples_per_s_best": speed["best"], "passes": speed["passes"],
            "ratio_to_plain": speed["median"] / plain["median"] if plain else None,
            "parity": _parity(graph["manifest"]), "size_mb": graph["manifest"]["size_mb"]}


def compare_fused_attention(models: list[str], output: str | os.PathLike, data: str, texts: int, max_len: int,
                            batch_size: int, threads: int, seed: int, calib_rows: int, rounds: int,
                            int8_samples: int, static_format: str = DEFAULT_STATIC_FORMAT,
                            args: dict | None = None) -> dict:
    """Build, check and time plain vs fused graphs of each of ``models``; write ``output`` (.md) + manifest."""
    from tqdm import tqdm

    from common.data import load_test_split
    from common.manifest import base_manifest, write_table_report

    output = Path(output)
    if output.suffix != ".md":
        raise UserError(f"--output {output} must end in .md (a Markdown table; its manifest goes beside it).")
    for model in models:
        if not (Path(model) / "config.json").is_file():
            raise UserError(f"--models {model} is not a model folder (no config.json); give fine-tuned or shrunk "
                            f"model folders, e.g. models/shrunk/pruned30.")
    output.parent.mkdir(parents=True, exist_ok=True)
    load_before, started = os.getloadavg()[0], time.perf_counter()
    test = load_test_split(data, texts, seed)
    rows = []
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.stem}.tmp-") as tmp:
        for model in tqdm(models, desc="models", unit="model"):
            folder = Path(tmp) / Path(model).name
            graphs = _build(Path(model), folder, data, max_len, threads, seed, calib_rows, int8_samples, static_format)
            timing = _time_in_turns(graphs, test.texts, max_len, batch_size, threads, rounds)
            for (attention, precision), graph in graphs.items():
                rows.append(_row(Path(model).name, attention, precision, graph, timing))
    columns = ["model", "precision", "attention", "samples_per_s", "samples_per_s_best", "ratio_to_plain", "parity",
               "fused_ops_per_layer"]
    ordered = sorted(rows, key=lambda r: (r["model"], r["precision"]))
    manifest = base_manifest("fused_attention_compare", args or {}, seed=seed, inputs={"data": data})
    manifest.update({"rows": rows, "n_texts": len(test), "batch_size": batch_size, "threads": threads,
                     "rounds": rounds, "host_load_1min_before": load_before, "host_load_1min_after": os.getloadavg()[0],
                     "cpu_count": os.cpu_count(), "wall_s": time.perf_counter() - started})
    table = write_table_report(output, f"# Plain vs fused attention\n\n{len(test)} test texts, batch size "
                                       f"{batch_size}, {threads or 'all'} threads, median of {rounds} passes timed in "
                                       f"turns; host load {load_before:.2f} before, "
                                       f"{manifest['host_load_1min_after']:.2f} after.", ordered, columns, manifest)
    log.info("wrote %s\n%s", output, table)
    return manifest


@dataclass(frozen=True)
class FusedCompareConfig(StageConfig):
    """``tools/fused_attention_compare.py``'s flags."""

    output: str = flag(help="the Markdown table to write, e.g. outputs/metrics/fused_attention.md")
    models: list[str] = flag(nargs="+", help="model folders (fine-tuned or shrunk), e.g. models/fine_tuned/bert_agnews "
                                             "models/shrunk/pruned30")
    data: str = shared_flag("data")
    texts: int = flag(320, help="seeded test texts timed (pre-tokenized, length-sorted)")
    max_len: int = shared_flag("max_len")
    batch_size: int = flag(32)
    threads: int = shared_flag("threads")
    seed: int = shared_flag("seed")
    calib_rows: int = flag(CALIB_ROWS, help="training rows that calibrate static int8")
    rounds: int = flag(3, help="timed passes per graph, taken in turns")
    int8_samples: int = flag(500, help="test texts of the exports' agreement checks")
    static_format: str = flag(DEFAULT_STATIC_FORMAT, choices=sorted(STATIC_FORMATS),
                              help="static int8 format (as export_onnx's --static-format)")

    def check(self) -> None:
        check_static_format(self.static_format)
        if min(self.texts, self.batch_size, self.calib_rows, self.rounds, self.int8_samples) < 1:
            raise UserError("--texts, --batch-size, --calib-rows, --rounds and --int8-samples must be >= 1.")


def run(config: FusedCompareConfig) -> int:
    compare_fused_attention(config.models, config.output, config.data, config.texts, config.max_len,
                            config.batch_size, config.threads, config.seed, config.calib_rows, config.rounds,
                            config.int8_samples, config.static_format, args=config.to_dict())
    return 0
