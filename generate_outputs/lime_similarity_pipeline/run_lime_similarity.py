"""Is every variant explained like the base model? equivalent / drifted / inconclusive per variant.

    python -m generate_outputs.lime_similarity_pipeline.run_lime_similarity \
        --base outputs/lime/base.csv --noise outputs/lime/base_noise.csv \
        --variant outputs/lime/pruned20.csv --variant outputs/lime/base_onnx.csv \
        --variant outputs/lime/control_seed43.csv \
        --negative-control base_onnx --positive-control control_seed43 \
        --curve 250=outputs/lime/curve_s250_a.csv,outputs/lime/curve_s250_b.csv \
        --output-dir outputs/reports --seed 42

Base and every variant are explained with LIME seed S, the noise run (base) with another seed. Per
instance, extra disagreement = m(base@S, noise) - m(variant@S, noise), judged against a margin of a
quarter of LIME's own seed-to-seed disagreement (common.lime_similarity has the details).
Writes lime_similarity.csv (one row per variant x metric; columns in
common.lime_similarity.SIMILARITY_COLUMNS), lime_similarity_per_instance.csv,
lime_similarity.md, lime_similarity.png (extra disagreement vs the margin) and, with --curve,
lime_sample_curve.csv/.png (seed-to-seed agreement of the base model's explanations per num_samples).
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: rerun as `python -m` runs it (script_shim.py)
    __import__("runpy").run_path(str(Path(__file__).resolve().parents[2] / "script_shim.py"))["run_as_module"](__file__)

from common.cli import stage_parser  # noqa: E402
from common.lime_similarity_report import run_similarity  # noqa: E402
from common.stage import namespace_entry  # noqa: E402


def build_parser():
    parser = stage_parser(__doc__)
    parser.add_argument("--base", required=True, help="LIME CSV of the base model")
    parser.add_argument("--noise", required=True, help="LIME CSV of the base model with another LIME seed")
    parser.add_argument("--variant", action="append", default=[],
                        help="LIME CSV of a variant or control, explained with the base run's seed (repeatable)")
    parser.add_argument("--negative-control", action="append", default=[],
                        help="name of a --variant that is the same function as base (must come out equivalent)")
    parser.add_argument("--positive-control", action="append", default=[],
                        help="name of a --variant that is another fine-tune of the base recipe (not a candidate)")
    parser.add_argument("--curve", action="append", default=[],
                        help="N=A.csv,B.csv: base explained at num_samples N with two seeds (repeatable)")
    parser.add_argument("--output-dir", "--output_dir", default="outputs/reports")
    parser.add_argument("--seed", type=int, default=42, help="bootstrap seed")
    return parser


def run(args) -> None:
    run_similarity(args.base, args.noise, args.variant, args.curve, args.output_dir, args.seed, vars(args),
                   negative_controls=args.negative_control, positive_controls=args.positive_control)


main = namespace_entry(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
