"""Parts of speech of the words LIME weights, and a drift verdict per variant -> outputs/reports/pos_analysis.*

    NLTK_DATA=../shared/nltk_data python -m analysis.nltk.nltk_analyze_all_models \
        --base outputs/lime/base.csv --noise outputs/lime/base_noise.csv \
        --variant outputs/lime/pruned20_onnx.csv --positive-control outputs/lime/control_seed43.csv \
        --output-dir outputs/reports

Tags each explained text in its original form (NLTK's word tokenizer and perceptron tagger,
universal tagset; HTML markup tagged MARKUP), maps LIME's words onto those tokens, and takes each
tag's share of the top-k |weight| per instance (bootstrap CIs over instances). Verdict per variant
(equivalent / drifted / inconclusive): its extra Jensen-Shannon divergence from base@S+1 (the
noise run) over base@S's, paired per instance, against half the positive control's on the same
instance (--positive-control; without it no verdict; common.explain.verdict). Outputs: pos_analysis.csv (verdicts), pos_tag_shares.csv (shares with
CIs), pos_analysis.md/.png/.manifest.json. A missing tagger is an error naming `make nltk-data`.
"""
from __future__ import annotations

import sys

from common.explain.pos import PosConfig, run_pos_stage
from common.stage import config_entry

main = config_entry(__doc__, PosConfig, run_pos_stage)

if __name__ == "__main__":
    sys.exit(main())
