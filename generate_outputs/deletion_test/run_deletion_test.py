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
it with the four verdicts (same_evidence, same_evidence_sufficiency, own_comprehensiveness,
own_sufficiency); the margin rule is in common/deletion.py. Each instance's texts are one forward
batch per model (a fixed composition: dynamic int8 gives the same numbers in any run).
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: rerun as `python -m` runs it (script_shim.py)
    __import__("runpy").run_path(str(Path(__file__).resolve().parents[2] / "script_shim.py"))["run_as_module"](__file__)

from common.cli import stage_parser  # noqa: E402
from common.stage import namespace_entry  # noqa: E402
from common.deletion import MAX_K, run_deletion_test  # noqa: E402


def build_parser():
    parser = stage_parser(__doc__)
    parser.add_argument("--base-lime", required=True, help="LIME CSV of the base model (outputs/lime/base.csv)")
    parser.add_argument("--variant-lime", required=True, help="LIME CSV of the variant (outputs/lime/<variant>.csv)")
    parser.add_argument("--base-model", default="",
                        help="the base model (any artefact load_classifier reads; default: the one --base-lime explained)")
    parser.add_argument("--model", default="",
                        help="the variant's model (default: the one --variant-lime explained, from its manifest)")
    parser.add_argument("--variant", default="", help="variant name (default: the output file's name)")
    parser.add_argument("--output", required=True, help="per-instance CSV to write (outputs/deletion/<variant>.csv)")
    parser.add_argument("--max-k", type=int, default=MAX_K, help="largest number of words deleted")
    parser.add_argument("--seed", type=int, default=42, help="seed of the bootstrap")
    parser.add_argument("--max-len", "--max_len", type=int, default=128)
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    return parser


main = namespace_entry(build_parser, run_deletion_test)

if __name__ == "__main__":
    sys.exit(main())
