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
from pathlib import Path

if not __package__:  # run as a file: rerun as `python -m` runs it (script_shim.py)
    __import__("runpy").run_path(str(Path(__file__).resolve().parents[2] / "script_shim.py"))["run_as_module"](__file__)

from common.report_stage import ReportConfig, run_report  # noqa: E402
from common.stage import config_entry  # noqa: E402

main = config_entry(__doc__, ReportConfig, run_report)

if __name__ == "__main__":
    sys.exit(main())
