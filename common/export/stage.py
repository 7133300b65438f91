"""The ONNX export stage's flags and runner (the export itself is :func:`common.export.onnx_export.export_model`)."""
from __future__ import annotations

from dataclasses import dataclass

from common.cli import UserError, set_seed
from common.export.onnx_export import INT8_TEXTS, OPSET, export_model
from common.quantize.ort_static import CALIB_ROWS, DEFAULT_STATIC_FORMAT, STATIC_FORMATS, check_static_format
from common.stage import StageConfig, flag, shared_flag

INT8_MODES = ("dynamic", "static")


@dataclass(frozen=True)
class ExportConfig(StageConfig):
    """``export_onnx/export_onnx.py``'s flags."""

    model: str = flag(help="model folder (full, pruned or shrunk), or an fp32 .onnx with --int8")
    output: str = flag(help="the .onnx to write, e.g. models/onnx/pruned20.onnx")
    int8: bool = flag(False, help="ONNX Runtime dynamic int8 quantization")
    optimize: bool = flag(False, help="ONNX Runtime transformer optimizer (fusions); falls back to the plain graph if "
                                      "it fails")
    data: str = shared_flag("data")
    max_len: int = shared_flag("max_len")
    opset: int = flag(OPSET)
    int8_samples: int = flag(INT8_TEXTS, help="test texts of the int8 agreement check (fewer only when the test "
                                              "split is smaller)")
    threads: int = shared_flag("threads")
    seed: int = shared_flag("seed")
    mode: str = flag("dynamic", choices=INT8_MODES, help=(
        "with --int8: dynamic (activation scales per batch) or static (scales calibrated on seeded training rows, "
        "so a text's prediction does not depend on its batch mates)"))
    static_format: str = flag(DEFAULT_STATIC_FORMAT, choices=sorted(STATIC_FORMATS), help=(
        "--mode static: ONNX format and activation type (weights are per-channel s8); qoperator_u8 was the fastest "
        "measured here"))
    calib_rows: int = flag(CALIB_ROWS, help="--mode static: training rows (seeded by --seed, never test rows) that "
                                            "calibrate the scales")
    fused_attention: bool = flag(False, help=(
        "each layer's attention as ONNX Runtime's fused MultiHeadAttention op (own head count per layer); kept only "
        "if it passes the same parity checks, else the plain graph and the reason"))

    def check(self) -> None:
        if self.max_len < 8:
            raise UserError(f"--max-len {self.max_len} is too small; use at least 8 tokens.")
        if self.int8_samples < 1:
            raise UserError("--int8-samples must be >= 1.")
        if self.mode not in INT8_MODES:
            raise UserError(f"--mode {self.mode!r} is not one of {', '.join(INT8_MODES)}.")
        if self.mode == "static" and not self.int8:
            raise UserError("--mode static quantizes: pass --int8 with it (and an fp32 .onnx as --model).")
        check_static_format(self.static_format)
        if self.calib_rows < 1:
            raise UserError(f"--calib-rows {self.calib_rows} must be >= 1.")


@dataclass(frozen=True)
class OpenVinoExportConfig(StageConfig):
    """``export_onnx/export_openvino.py``'s flags."""

    model: str = flag(help="an fp32 .onnx written by export_onnx, e.g. models/onnx/pruned20.onnx")
    output: str = flag(help="the IR to write, e.g. models/onnx/pruned20_ov.xml (its .bin beside it)")
    int8: bool = flag(False, help="NNCF static int8 (activation scales calibrated on --calib-rows training rows)")
    data: str = shared_flag("data")
    max_len: int = shared_flag("max_len")
    int8_samples: int = flag(INT8_TEXTS, help="test texts of the int8 agreement check (fewer only when the test "
                                              "split is smaller)")
    threads: int = shared_flag("threads")
    seed: int = shared_flag("seed")
    calib_rows: int = flag(CALIB_ROWS, help="--int8: training rows (seeded by --seed, never test rows) that "
                                            "calibrate NNCF's scales")

    def check(self) -> None:
        if self.max_len < 8:
            raise UserError(f"--max-len {self.max_len} is too small; use at least 8 tokens.")
        if self.int8_samples < 1:
            raise UserError("--int8-samples must be >= 1.")
        if self.calib_rows < 1:
            raise UserError(f"--calib-rows {self.calib_rows} must be >= 1.")


def run_openvino(config: OpenVinoExportConfig) -> int:
    from common.export.openvino_export import export_openvino

    set_seed(config.seed)
    export_openvino(config.model, config.output, data=config.data, max_len=config.max_len, int8=config.int8,
                    calib_rows=config.calib_rows, seed=config.seed, threads=config.threads,
                    int8_samples=config.int8_samples, args=config.to_dict())
    return 0


def run(config: ExportConfig) -> int:
    set_seed(config.seed)
    export_model(config.model, config.output, data=config.data, max_len=config.max_len, int8=config.int8,
                 optimize=config.optimize, opset=config.opset, int8_samples=config.int8_samples, seed=config.seed,
                 threads=config.threads, args=config.to_dict(), mode=config.mode,
                 static_format=config.static_format, calib_rows=config.calib_rows,
                 fused_attention=config.fused_attention)
    return 0
