"""Run any command while sampling CPU %, RSS and GPU memory/utilisation to a CSV.

    python -m analysis.monitoring.monitor --output outputs/monitor/finetune.csv --interval 0.5 -- \
        make models/onnx/base.onnx

Columns: timestamp (unix s), elapsed_s, cpu_percent (summed over the process tree; 100 = one
core), rss_mb (summed over the tree), gpu_mem_mb and gpu_util_percent (device-wide, NVML;
empty when there is no GPU). The command's exit code is passed through; a one-line summary
(peak RSS, mean CPU, GPU peak or "no GPU") goes to the log, and with --summary to a JSON file.
In Python use ``with analysis.monitoring.ResourceMonitor("x.csv"): ...`` instead.
"""
from __future__ import annotations

import argparse
import logging
import sys

from common.cli import UserError, stage_main
from common.manifest import write_json_atomic
from common.bench.monitoring import monitor_command

log = logging.getLogger("analysis.monitoring")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", required=True, help="CSV to write, e.g. outputs/monitor/bench.csv")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    p.add_argument("--summary", default=None, help="optional JSON file for the summary")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    return p


@stage_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UserError("No command given; put it after `--`, e.g. `-- make bench`.")
    if args.interval <= 0:
        raise UserError(f"--interval {args.interval} must be > 0 seconds.")
    code, summary = monitor_command(command, args.output, interval=args.interval)
    summary["command"] = command
    summary["exit_code"] = code
    if args.summary:
        write_json_atomic(args.summary, summary)
    gpu = (f"GPU mem peak {summary['gpu_mem_peak_mb']:.0f} MB, util mean {summary['gpu_util_mean_percent']:.0f} %"
           if summary["gpu_mem_peak_mb"] is not None else summary["gpu_status"])
    log.info("%d samples over %.1f s: peak RSS %s MB, mean CPU %s %% | %s -> %s", summary["samples"],
             summary["duration_s"], summary["peak_rss_mb"], None if summary["cpu_percent_mean"] is None
             else round(summary["cpu_percent_mean"], 1), gpu, args.output)
    return code


if __name__ == "__main__":
    sys.exit(main())
