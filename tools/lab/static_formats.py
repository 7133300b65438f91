"""Which static-int8 format to ship: every ``STATIC_FORMATS`` entry built from one fp32 graph and measured side by
side with the fp32 graph and dynamic int8 (``tools/static_int8_formats.py``).

Per row: throughput (the benchmark's own protocol, :func:`common.bench.timing.throughput`: pre-tokenized texts,
length-sorted batches, only the model call timed, median of 3 passes), its
ratio to dynamic int8, accuracy, argmax agreement with fp32 and batch-vs-one-by-one agreement (the property
static scales buy). A format whose graph fails the int8 parity rule gets a row that says so. Speed on a shared
or busy machine is noise: read the ratios from an idle run (``host_load_1min`` is recorded).
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common.cli import UserError
from common.quantize.ort_static import CALIB_ROWS, STATIC_FORMATS
from common.stage import StageConfig, flag, shared_flag

log = logging.getLogger(__name__)


def _measure(name: str, clf, test, fp32_pred, batch_size: int) -> dict:
    from common.bench.timing import throughput
    from common.bench.worker import batch_agreement

    pred = clf.predict(test.texts, batch_size=batch_size)
    row = {"variant": name, "status": "ok", "accuracy": float((pred == test.labels).mean()),
           "agreement_with_fp32": float((pred == fp32_pred).mean()) if fp32_pred is not None else 1.0}
    row.update(batch_agreement(clf, test.texts, batch_size))
    row.update(throughput(clf._logits_batch, clf.encode(test.texts), batch_size, clf.tokenizer.pad_token_id or 0))
    row["size_mb"] = Path(clf.path).stat().st_size / 2**20
    return row


def compare_static_formats(model: str | os.PathLike, output: str | os.PathLike, data: str, formats: list[str],
                           calib_rows: int, texts: int, max_len: int, batch_size: int, threads: int, seed: int,
                           args: dict | None = None) -> dict:
    """Build and measure each static format of the fp32 graph ``model``; write ``output`` (.md) + manifest."""
    from tqdm import tqdm

    from common.data import load_test_split
    from common.manifest import base_manifest, write_table_report
    from common.export.onnx_export import ParityError, export_model
    from common.models.onnx_graph import load_onnx
    from common.quantize.ort_static import check_static_format

    model, output = Path(model), Path(output)
    if not (model.is_file() and model.suffix == ".onnx"):
        raise UserError(f"--model {model} is not an fp32 .onnx graph; build one first (make models/onnx/pruned30.onnx).")
    if output.suffix != ".md":
        raise UserError(f"--output {output} must end in .md (a Markdown table; its manifest goes beside it).")
    for name in formats:
        check_static_format(name)
    test = load_test_split(data, texts, seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def load(path: Path):
        return load_onnx(path, "cpu", "fp32", threads=threads, max_len=max_len, batch_size=batch_size)

    fp32 = load(model)
    fp32_pred = fp32.predict(test.texts, batch_size=batch_size)
    rows = [_measure("fp32", fp32, test, None, batch_size)]
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.stem}.tmp-") as tmp:
        builds = [("dynamic", {"mode": "dynamic"})] + [(name, {"mode": "static", "static_format": name})
                                                       for name in formats]
        for name, mode in tqdm(builds, desc="int8 formats", unit="graph"):
            graph = Path(tmp) / f"{name}.onnx"
            try:
                export_model(model, graph, data=data, max_len=max_len, int8=True, seed=seed, threads=threads,
                             calib_rows=calib_rows, **mode)
            except ParityError as exc:
                rows.append({"variant": name, "status": f"failed the int8 parity rule: {exc}"})
                continue
            rows.append(_measure(name, load(graph), test, fp32_pred, batch_size))
    dynamic = next((r for r in rows if r["variant"] == "dynamic" and r["status"] == "ok"), None)
    for row in rows:
        if dynamic and row["status"] == "ok":
            row["ratio_to_dynamic"] = row["throughput_samples_per_s"] / dynamic["throughput_samples_per_s"]
    columns = ["variant", "status", "throughput_samples_per_s", "ratio_to_dynamic", "accuracy",
               "agreement_with_fp32", "batch_agreement", "size_mb"]
    manifest = base_manifest("static_int8_formats", args or {}, seed=seed, inputs={"model": model, "data": data})
    manifest.update({"rows": rows, "n_texts": len(test), "batch_size": batch_size, "calib_rows": calib_rows,
                     "host_load_1min": os.getloadavg()[0], "wall_s": time.perf_counter() - started})
    table = write_table_report(output, f"# Static int8 formats of `{model.name}`\n\n{len(test)} test texts, batch "
                                       f"size {batch_size}, {threads or 'all'} threads, {calib_rows} calibration rows; "
                                       f"host load {manifest['host_load_1min']:.2f} at the end.", rows, columns, manifest)
    log.info("wrote %s\n%s", output, table)
    return manifest


@dataclass(frozen=True)
class StaticFormatsConfig(StageConfig):
    """``tools/static_int8_formats.py``'s flags."""

    model: str = flag(help="an fp32 .onnx written by export_onnx (e.g. models/onnx/pruned30.onnx)")
    output: str = flag(help="the Markdown table to write, e.g. outputs/metrics/static_formats.md")
    formats: list[str] = flag(list(STATIC_FORMATS), nargs="+", choices=sorted(STATIC_FORMATS),
                              help="static formats to build and measure (default: all four)")
    data: str = shared_flag("data")
    calib_rows: int = flag(CALIB_ROWS, help="training rows that calibrate the scales")
    texts: int = flag(1000, help="stratified test texts timed and compared")
    max_len: int = shared_flag("max_len")
    batch_size: int = flag(32)
    threads: int = shared_flag("threads")
    seed: int = shared_flag("seed")

    def check(self) -> None:
        if self.calib_rows < 1 or self.texts < 1 or self.batch_size < 1:
            raise UserError("--calib-rows, --texts and --batch-size must be >= 1.")


def run(config: StaticFormatsConfig) -> int:
    compare_static_formats(config.model, config.output, config.data, config.formats, config.calib_rows,
                           config.texts, config.max_len, config.batch_size, config.threads, config.seed,
                           args=config.to_dict())
    return 0
