"""The deletion test of one variant: does it rely on base's words? (ERASER comprehensiveness/sufficiency, AOPC)

    python -m generate_outputs.deletion_test.run_deletion_test --base-lime outputs/lime/base.csv \
        --variant-lime outputs/lime/pruned20.csv --variant pruned20 --max-len 128 --seed 42 \
        --output outputs/deletion/pruned20.csv

The models are the ones the LIME CSVs explained (named in their manifests), unless --base-model /
--model say otherwise.

Both LIME CSVs must explain the same instances, the same label each, with the same LIME seed and
num_samples. Per instance and k = 1..5, base's top-k positive LIME words are deleted (and kept
alone) on base and on the variant, and the variant's own top-k words on the variant. Writes the
per-instance long CSV (instance_id, explained_label, words_from, model, k, n_words, words,
predicted_full, p_full, p_removed, p_kept, comprehensiveness, sufficiency) and a manifest beside
it with the AOPC means and the four curve distances (same_evidence, same_evidence_sufficiency,
own_comprehensiveness, own_sufficiency). No verdict here: that needs the positive control, judged by
build_deletion_report (the rule is in common/explain/deletion.py). Each instance's texts are one forward
batch per model (a fixed composition: dynamic int8 gives the same numbers in any run).
"""
from __future__ import annotations

import sys

from common.explain.deletion import DeletionTestConfig, run_deletion_test
from common.stage import config_entry

main = config_entry(__doc__, DeletionTestConfig, run_deletion_test)

if __name__ == "__main__":
    sys.exit(main())
