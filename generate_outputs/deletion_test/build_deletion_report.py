"""The deletion test over every variant: verdict table, Markdown and plot.

    python -m generate_outputs.deletion_test.build_deletion_report --output-dir outputs/reports --seed 42 \
        --variant outputs/deletion/pruned20.csv --variant outputs/deletion/base_onnx_int8.csv

Writes deletion.csv (variant, check, mean, lower, upper, margin, verdict, n, n_to_decide; the
`same_evidence` rows are the shipping rule's gate), deletion.manifest.json, deletion.png and
deletion.md (one row per variant: AOPC of base and variant, delta with its 90 % interval, margin,
verdict; own faithfulness).
"""
from __future__ import annotations

import sys

from common.explain.deletion_report import DeletionReportConfig, run_deletion_report
from common.stage import config_entry

main = config_entry(__doc__, DeletionReportConfig, run_deletion_report)

if __name__ == "__main__":
    sys.exit(main())
