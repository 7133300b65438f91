"""The deletion test over every variant: verdict table, Markdown and plot.

    python -m generate_outputs.deletion_test.build_deletion_report --output-dir outputs/reports --seed 42 \
        --variant outputs/deletion/pruned20.csv --variant outputs/deletion/base_onnx_int8.csv

Writes deletion.csv (variant, check, mean, lower, upper, margin, verdict, n, n_to_decide; the
`same_evidence` rows are the shipping rule's gate), deletion.manifest.json, deletion.png and
deletion.md (one row per variant: AOPC of base and variant, delta with its 90 % interval, margin,
verdict; own faithfulness).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run as a file: rerun as `python -m` runs it (script_shim.py)
    import runpy
    runpy.run_path(str(Path(__file__).resolve().parents[2] / "script_shim.py"))["run_as_module"](__file__)

from common.cli import stage_main  # noqa: E402
from common.deletion_report import run_deletion_report  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", default=[],
                        help="per-variant deletion CSV (outputs/deletion/<variant>.csv; repeatable)")
    parser.add_argument("--output-dir", "--output_dir", default="outputs/reports")
    parser.add_argument("--seed", type=int, default=42, help="seed of the bootstrap")
    return parser


@stage_main
def main(argv=None):
    return run_deletion_report(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
