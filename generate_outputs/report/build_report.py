"""Write outputs/reports/report.md from the manifests and metric files of every stage.

    python -m generate_outputs.report.build_report --outputs outputs --models models \
        --output outputs/reports/report.md --knobs "DATA=... SEED=..." \
        --metrics outputs/metrics/base.bench.json --metrics outputs/metrics/pruned20.bench.json \
        --sp-lime outputs/sp_lime_sets/base_sp_lime.md

The report reads the files it is given and the one file of each name under --outputs; it searches no
folder, so records of variants built earlier (another PRUNE_PCTS) cannot enter it.
"""
from __future__ import annotations

import sys

from common.report.stage import ReportConfig, run_report
from common.stage import config_entry

main = config_entry(__doc__, ReportConfig, run_report)

if __name__ == "__main__":
    sys.exit(main())
