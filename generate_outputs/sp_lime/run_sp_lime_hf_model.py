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

import argparse
import sys
from pathlib import Path

if not __package__:  # run as a file: rerun as `python -m` runs it (script_shim.py)
    __import__("runpy").run_path(str(Path(__file__).resolve().parents[2] / "script_shim.py"))["run_as_module"](__file__)

from common.cli import stage_main  # noqa: E402
from common.lime_sp import DEFAULT_NUM_FEATURES, run_sp_lime  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", "--model-dir", "--model", dest="model_dir", required=True,
                        help="model folder, .pt payload or .onnx file")
    parser.add_argument("--output_prefix", "--output-prefix", dest="output_prefix", default="base",
                        help="file name prefix of the outputs; with a folder in it (outputs/sp_lime_sets/base), "
                             "taken as given and --output-dir is not used")
    parser.add_argument("--output-dir", "--output_dir", dest="output_dir", default="outputs/sp_lime_sets")
    parser.add_argument("--data", default="", help="folder with train/test files, or ag_news; empty = demo sample")
    parser.add_argument("--sample-size", "--sample_size", type=int, default=40, help="candidates explained")
    parser.add_argument("--num-explanations", "--num_explanations", type=int, default=6, help="explanations picked")
    parser.add_argument("--num-samples", "--num_samples", type=int, default=1000, help="LIME perturbations each")
    parser.add_argument("--num-features", "--num_features", type=int, default=DEFAULT_NUM_FEATURES,
                        help="words per explanation (largest |weight|) in the coverage matrix and global importance")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-len", "--max_len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    return parser


def split_output_prefix(args: argparse.Namespace) -> argparse.Namespace:
    """A prefix with a folder in it (the seed's ``outputs/sp_lime_sets/base_model_sp_lime``) is taken as given."""
    prefix = Path(args.output_prefix)
    if prefix.parent != Path("."):
        args.output_dir, args.output_prefix = str(prefix.parent), prefix.name
    return args


@stage_main
def main(argv=None):
    run_sp_lime(split_output_prefix(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
