"""LIME speed benchmark: plain lime + a Hugging Face pipeline vs ours on the same model (`make bench-lime`).

    python -m generate_outputs.generate_lime_csv.bench_lime_speed --model models/fine_tuned/bert_agnews \
        --onnx models/onnx/base.onnx --data ../shared/data/ag_news --num-samples 1000 --seed 42 \
        --output outputs/metrics/lime_speed.json

Writes seconds per explanation for each setup, the speed-up of ours (ONNX fp32 export, de-duplicated,
length-sorted batches) over the naive pipeline (goal >= 1.8x), the share of our explanation time
spent outside the model call (goal <= 5 %) and how closely the two setups' explanations agree.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: rerun as `python -m` runs it (script_shim.py)
    __import__("runpy").run_path(str(Path(__file__).resolve().parents[2] / "script_shim.py"))["run_as_module"](__file__)

from common.cli import add_shared_flags, stage_parser  # noqa: E402
from common.lime_bench import run_bench  # noqa: E402
from common.lime_utils import DEFAULT_INSTANCE_SEED  # noqa: E402
from common.stage import namespace_entry  # noqa: E402


def build_parser():
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="the fine-tuned torch folder (the pipeline loads it)")
    parser.add_argument("--onnx", required=True, help="its parity-checked fp32 ONNX export (or the folder again)")
    add_shared_flags(parser, "data")
    parser.add_argument("--n-instances", "--n_instances", type=int, default=3, help="instances timed per setup")
    parser.add_argument("--num-samples", "--num_samples", type=int, default=1000)
    add_shared_flags(parser, "seed")
    parser.add_argument("--instance-seed", type=int, default=DEFAULT_INSTANCE_SEED)
    add_shared_flags(parser, "max_len")
    parser.add_argument("--batch-size", type=int, default=32)
    add_shared_flags(parser, "device", "threads", device="cpu")  # cpu: what the speed goals refer to
    parser.add_argument("--output", default="outputs/metrics/lime_speed.json")
    return parser


main = namespace_entry(build_parser, run_bench)

if __name__ == "__main__":
    sys.exit(main())
