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
quarter of LIME's own seed-to-seed disagreement (common.explain.drift has the details).
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
