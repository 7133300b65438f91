"""Parts of speech of the words LIME weights, and a drift verdict per variant -> outputs/reports/pos_analysis.*

    NLTK_DATA=../shared/nltk_data python -m analysis.nltk.nltk_analyze_all_models \
        --base outputs/lime/base.csv --noise outputs/lime/base_noise.csv \
        --variant outputs/lime/pruned20.csv --output-dir outputs/reports

Tags each explained text in its original form (NLTK's word tokenizer and perceptron tagger,
universal tagset; HTML markup tagged MARKUP), maps LIME's words onto those tokens, and takes each
tag's share of the top-k |weight| per instance (bootstrap CIs over instances). Verdict per variant
(equivalent / drifted / inconclusive): its extra Jensen-Shannon divergence from base@S+1 (the
noise run) over base@S's, paired per instance, against a margin of 0.25 x base's own
seed-to-seed divergence. Outputs: pos_analysis.csv (verdicts), pos_tag_shares.csv (shares with
CIs), pos_analysis.md/.png/.manifest.json. A missing tagger is an error naming `make nltk-data`.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: rerun as `python -m` runs it (script_shim.py)
    __import__("runpy").run_path(str(Path(__file__).resolve().parents[2] / "script_shim.py"))["run_as_module"](__file__)

from common.cli import stage_parser  # noqa: E402
from common.pos_analysis import TOP_K, run_pos_analysis  # noqa: E402
from common.stage import namespace_entry  # noqa: E402


def build_parser():
    parser = stage_parser(__doc__)
    parser.add_argument("--base", required=True, help="LIME CSV of the base model (LIME seed S)")
    parser.add_argument("--noise", required=True,
                        help="LIME CSV of base with another LIME seed (S+1): the noise floor every variant is judged on")
    parser.add_argument("--variant", action="append", default=[],
                        help="LIME CSV of a variant, explained with seed S (repeatable)")
    parser.add_argument("--top-k", "--top_k", type=int, default=TOP_K,
                        help="words per explanation (largest |weight|) whose tags are counted")
    parser.add_argument("--output-dir", "--output_dir", default="outputs/reports")
    return parser


def run(args) -> None:
    run_pos_analysis(args.base, args.variant, args.output_dir, vars(args), noise=args.noise, top_k=args.top_k)


main = namespace_entry(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
