"""The ONNX export stage's flags and runner (the export itself is :func:`common.models.onnx_graph.export_model`)."""
from __future__ import annotations

from dataclasses import dataclass

from common.cli import UserError, set_seed
from common.export.onnx_export import export_model
from common.quantize.ort_static import CALIB_ROWS, DEFAULT_STATIC_FORMAT, check_static_format
from common.stage import StageConfig

INT8_MODES = ("dynamic", "static")


@dataclass(frozen=True)
class ExportConfig(StageConfig):
    """``export_onnx/export_onnx.py``'s flags."""

    model: str
    output: str
    int8: bool
    optimize: bool
    data: str
    max_len: int
    opset: int
    int8_samples: int
    threads: int
    seed: int
    mode: str = "dynamic"
    static_format: str = DEFAULT_STATIC_FORMAT
    calib_rows: int = CALIB_ROWS
    fused_attention: bool = False

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


def run(config: ExportConfig) -> int:
    set_seed(config.seed)
    export_model(config.model, config.output, data=config.data, max_len=config.max_len, int8=config.int8,
                 optimize=config.optimize, opset=config.opset, int8_samples=config.int8_samples, seed=config.seed,
                 threads=config.threads, args=config.to_dict(), mode=config.mode,
                 static_format=config.static_format, calib_rows=config.calib_rows,
                 fused_attention=config.fused_attention)
    return 0
