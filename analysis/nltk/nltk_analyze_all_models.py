"""Parts of speech of the words LIME weights, per variant vs base -> outputs/reports/pos_analysis.*

    NLTK_DATA=../shared/nltk_data python -m analysis.nltk.nltk_analyze_all_models \
        --base outputs/lime/base.csv --variant outputs/lime/pruned20.csv --output-dir outputs/reports

Tags each explained text in context (NLTK perceptron tagger, universal tagset), sums |weight|
per tag per variant and per explained class, and compares each variant with base (difference
per tag, Jensen-Shannon divergence). A missing tagger is an error naming `make nltk-data`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common.cli import stage_main  # noqa: E402
from common.pos_analysis import run_pos_analysis  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="LIME CSV of the base model")
    parser.add_argument("--noise", default=None,
                        help="LIME CSV of base with another LIME seed: shown as noise_floor (LIME's own divergence)")
    parser.add_argument("--variant", action="append", default=[], help="LIME CSV of a variant (repeatable)")
    parser.add_argument("--output-dir", "--output_dir", default="outputs/reports")
    return parser


@stage_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    run_pos_analysis(args.base, args.variant, args.output_dir, vars(args), noise=args.noise)


if __name__ == "__main__":
    sys.exit(main())
