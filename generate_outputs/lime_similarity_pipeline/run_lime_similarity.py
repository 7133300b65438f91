"""Is every variant explained like the base model? equivalent / drifted / inconclusive per variant.

    python -m generate_outputs.lime_similarity_pipeline.run_lime_similarity \
        --base outputs/lime/base.csv --noise outputs/lime/base_noise.csv \
        --variant outputs/lime/pruned20_onnx.csv --rerun pruned20_onnx=outputs/lime/pruned20_onnx.rerun.csv \
        --variant outputs/lime/base_onnx.csv --rerun base_onnx=outputs/lime/base_onnx.rerun.csv \
        --variant outputs/lime/control_seed43.csv --rerun control_seed43=outputs/lime/control_seed43.rerun.csv \
        --negative-control base_onnx --positive-control control_seed43 \
        --bench-summary outputs/metrics/summary.csv --deletion outputs/reports/deletion.csv \
        --build-rerun make --curve 250=outputs/lime/curve_s250_a.csv,outputs/lime/curve_s250_b.csv \
        --output-dir outputs/reports --seed 42

Every model is explained twice, with LIME seeds S and S+1 (base: base.csv and base_noise.csv; a variant: its CSV
and its --rerun). Per instance, the symmetric statistic [m(b_S,b_S+1) + m(v_S,v_S+1)]/2 - [m(v_S,b_S+1) +
m(b_S,v_S+1)]/2 (exactly 0 for an identical function), and d = that - 0.5 x the positive control's on the same
instance: equivalent when the upper bound of mean d is below 0 at ALPHA / m (Bonferroni over the candidates),
drifted when the lower bound is above 0 (common.explain.verdict, common.explain.drift). Only what could ship is
judged, fastest first (--bench-summary, --deletion); a missing rerun is built with --build-rerun.
Writes lime_similarity.csv (one row per variant x metric; columns in
common.explain.drift.SIMILARITY_COLUMNS), lime_similarity_per_instance.csv,
lime_similarity.md, lime_similarity.png (extra disagreement vs the margin) and, with --curve,
lime_sample_curve.csv/.png (seed-to-seed agreement of the base model's explanations per num_samples).
"""
from __future__ import annotations

import sys

from common.explain.drift_report import SimilarityConfig, run_similarity_stage
from common.stage import config_entry

main = config_entry(__doc__, SimilarityConfig, run_similarity_stage)

if __name__ == "__main__":
    sys.exit(main())
