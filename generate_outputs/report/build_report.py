"""Write outputs/reports/report.md from the manifests and metric files of every stage.

    python -m generate_outputs.report.build_report --outputs outputs --models models \
        --output outputs/reports/report.md --knobs "DATA=... SEED=..." \
        --metrics outputs/metrics/base.bench.json --metrics outputs/metrics/pruned20.bench.json \
        --sp-lime outputs/sp_lime_sets/base_sp_lime.md

The report reads the files it is given and the one file of each name under --outputs; it searches no
folder, so records of variants built earlier (another PRUNE_PCTS) cannot enter it.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

if not __package__:  # run as a file: rerun as `python -m` runs it (script_shim.py)
    __import__("runpy").run_path(str(Path(__file__).resolve().parents[2] / "script_shim.py"))["run_as_module"](__file__)

from common.cli import UserError, stage_parser  # noqa: E402
from common.report import build_report  # noqa: E402
from common.stage import namespace_entry  # noqa: E402


def build_parser():
    parser = stage_parser(__doc__)
    parser.add_argument("--outputs", default="outputs", help="root of generated outputs")
    parser.add_argument("--models", default="models", help="root of generated models")
    parser.add_argument("--output", default="outputs/reports/report.md")
    parser.add_argument("--knobs", default="", help="the make knobs the artefacts were built with (recorded)")
    parser.add_argument("--metrics", action="append", default=None, metavar="JSON",
                        help="a variant's metrics record (repeat; make passes the benchmark's); default: the records "
                             "of the variants OUTPUTS/metrics/summary.csv names, beside it")
    parser.add_argument("--sp-lime", action="append", default=None, metavar="MD",
                        help="an SP-LIME section <prefix>_sp_lime.md (repeat); default: OUTPUTS/sp_lime_sets/"
                             "base_sp_lime.md when built")
    parser.add_argument("--interop", default=None, metavar="MD", help="the third-party interop table (make interop)")
    return parser


def run(args) -> int:
    outputs = Path(args.outputs)
    if not (outputs / "metrics").is_dir():
        raise UserError(f"{outputs}/metrics does not exist; build the variants first (`make bench` or `make report`).")
    build_report(outputs, Path(args.models), Path(args.output), args.knobs, metrics=args.metrics,
                 sp_lime=args.sp_lime, interop=args.interop)
    logging.getLogger(__name__).info("wrote %s", args.output)
    return 0


main = namespace_entry(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
