"""The deletion test over every variant: verdict table, Markdown and plot.

    python -m generate_outputs.deletion_test.build_deletion_report --output-dir outputs/reports --seed 42 \
        --variant outputs/deletion/pruned20_onnx.csv --variant outputs/deletion/base_onnx_int8.csv \
        --variant outputs/deletion/control_seed43.csv --positive-control control_seed43

Per instance, the distance of the variant's AOPC curve from base's (mean over k of |difference|), and
d = that - 0.5 x the positive control's distance on the same instance: equivalent when the upper bound of mean
d is below 0 at ALPHA / m (Bonferroni over the m variants other than the control), drifted when the lower
bound is above 0 (common.explain.verdict). Without --positive-control no variant can be equivalent; a control
that is not drifted makes the report say the gate is blind. Writes deletion.csv (DELETION_COLUMNS of
common.schema; the `same_evidence` rows are the shipping rule's gate), deletion.manifest.json, deletion.png and
deletion.md.
"""
from __future__ import annotations

import sys

from common.explain.deletion_report import DeletionReportConfig, run_deletion_report
from common.stage import config_entry

main = config_entry(__doc__, DeletionReportConfig, run_deletion_report)

if __name__ == "__main__":
    sys.exit(main())
