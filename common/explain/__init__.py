"""Explanations and whether a variant's match base's: LIME (``explainer``, ``stages``, ``sp_lime``,
``speed``), the CSV design (``design``), similarity metrics (``similarity``), the LIME drift test
(``drift``, ``drift_report``), the deletion test (``deletion``, ``deletion_report``), POS analysis
(``pos``, ``pos_tagging``, ``pos_report``), the three-way ``verdict`` and the ``gates`` a variant must pass.
Layer 4.
"""

# The modules other packages may import (tests/test_import_graph.py checks it).
__all__ = ['deletion', 'deletion_report', 'design', 'drift', 'drift_report', 'explainer', 'gates', 'pos', 'pos_report', 'pos_tagging', 'similarity', 'sp_lime', 'speed', 'stages', 'verdict']
