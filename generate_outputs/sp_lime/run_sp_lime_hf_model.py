"""SP-LIME for any model type -> outputs/sp_lime_sets/<prefix>_picked.csv and global features.

    python -m generate_outputs.sp_lime.run_sp_lime_hf_model --model_dir models/onnx/base.onnx \
        --output_prefix base --output-dir outputs/sp_lime_sets --data ../shared/data/ag_news \
        --sample-size 40 --num-explanations 6 --num-features 10 --num-samples 1000 --seed 42

The seed's command works too, at the seed's path (a thin entry point), with the prefix taken as given:

    python generate_outputs/generate_lime_csv/run_sp_lime_hf_model.py --model_dir models/fine_tuned/bert_agnews \
        --output_prefix outputs/sp_lime_sets/base_model_sp_lime

``--output_prefix`` with a folder in it (``outputs/sp_lime_sets/base_model_sp_lime``) names the files as
given, relative to the current directory, and ``--output-dir`` is then not used; a bare prefix goes
into ``--output-dir``.
``--model_dir`` is anything load_classifier reads (a model folder, a .pt payload, an .onnx).
Candidates: a seeded class-stratified set of ``--sample-size`` test instances (each costs one
explanation); SubmodularPick(method='full') picks ``--num-explanations`` of them, each
explanation counting only its top ``--num-features`` words by |weight|. Outputs:
<prefix>_picked.csv (picked instances, one row per word of their explanation, in_top_features),
<prefix>_global_features.csv (importance per word per class) and .png (top words per class),
<prefix>_sp_lime.md (the report's section: picked instances and top words per class).
"""
from __future__ import annotations

import sys

from common.explain.sp_lime import SpLimeConfig, run_sp_lime
from common.stage import config_entry

main = config_entry(__doc__, SpLimeConfig, run_sp_lime)

if __name__ == "__main__":
    sys.exit(main())
