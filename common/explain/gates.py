"""The explanation gates a variant must pass to ship, one row each: both shipping rules read this table.

The report's rule (:func:`common.report.pick.recommend`) reads a gate's verdict from its variant table
(``table_column``, with ``decide_column`` for "how many instances would decide"); the sweep's rule
(:func:`common.report.sweep.pick`) from its rows (``sweep_column``, also a column of sweep.csv). A new gate is
one row here plus the stage that writes its report file. The eligibility rule over these rows is one function,
:func:`common.report.pick.explanation_failures`: a variant without a verdict on every gate is unverified and never
ships.
"""
from __future__ import annotations

from dataclasses import dataclass

from common.explain.drift import SIMILARITY_CSV
from common.schema import DELETION_CSV


@dataclass(frozen=True)
class Gate:
    label: str           # how the reports name it
    report_file: str     # outputs/reports/<report_file>: where its verdicts come from
    table_column: str    # the verdict in the report's variant table
    decide_column: str   # the report's "about N instances would decide" column ...
    decides_column: str  # ... and which way (equivalent | drifted)
    reason_column: str   # why a variant has no verdict on this gate (not judged)
    sweep_column: str    # the verdict in the sweep's rows and sweep.csv
    short: str           # "the <short> gate is missing"


GATES: tuple[Gate, ...] = (
    Gate("LIME agreement", SIMILARITY_CSV, "expl_verdict", "expl_n_to_decide", "expl_decides", "expl_reason",
         "lime_verdict", "LIME agreement"),
    Gate("deletion test", DELETION_CSV, "deletion_verdict", "deletion_n_to_decide", "deletion_decides",
         "deletion_reason", "deletion_verdict", "deletion"),
)
