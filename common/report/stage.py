"""The report stage's config and runner (``generate_outputs/report/build_report.py``); the report itself is
:mod:`common.report.build`."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from common.cli import UserError
from common.stage import StageConfig, flag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportConfig(StageConfig):
    """``build_report``'s flags."""

    outputs: str = flag("outputs", help="root of generated outputs")
    models: str = flag("models", help="root of generated models")
    output: str = flag("outputs/reports/report.md")
    knobs: str = flag("", help="the make knobs the artefacts were built with (recorded)")
    metrics: list[str] | None = flag(None, action="append", metavar="JSON", help=(
        "a variant's metrics record (repeat; make passes the benchmark's); default: the records of the variants "
        "OUTPUTS/metrics/summary.csv names, beside it"))
    sp_lime: list[str] | None = flag(None, action="append", metavar="MD", help=(
        "an SP-LIME section <prefix>_sp_lime.md (repeat); default: OUTPUTS/sp_lime_sets/base_sp_lime.md when built"))
    interop: str | None = flag(None, metavar="MD", help="the third-party interop table (make interop)")


def run_report(config: ReportConfig) -> int:
    """``generate_outputs.report.build_report``: see that script's docstring."""
    from common.report.build import build_report

    outputs = Path(config.outputs)
    if not (outputs / "metrics").is_dir():
        raise UserError(f"{outputs}/metrics does not exist; build the variants first (`make bench` or `make report`).")
    build_report(outputs, Path(config.models), Path(config.output), config.knobs, metrics=config.metrics,
                 sp_lime=config.sp_lime, interop=config.interop)
    log.info("wrote %s", config.output)
    return 0
