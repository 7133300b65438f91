"""Names of the files and columns one stage writes and another reads (the report, tests).

Kept in a module with no imports, so a reader of these files (the report) depends on the names only, not on
the code that computes them (``make`` rebuilds the report when a name changes, not when the deletion test's
arithmetic does).
"""

# outputs/reports/deletion.csv (common.deletion): one row per variant x check; the shipping gate is GATE.
DELETION_CSV = "deletion.csv"
DELETION_COLUMNS = ["variant", "check", "mean", "lower", "upper", "margin", "verdict", "n", "n_to_decide"]
DELETION_GATE = "same_evidence"

# outputs/reports/pos_analysis.csv (common.pos_analysis): one row per variant (and the noise floor).
POS_CSV = "pos_analysis.csv"
POS_COLUMNS = ["variant", "n", "js_mean", "extra_js_mean", "lower", "upper", "margin", "verdict", "n_to_decide"]
