"""Load every artefact in third-party tools and compare their logits with the toolkit's.

    python -m tools.interop --interop-python .venv-interop/bin/python --output outputs/metrics/interop.md \
        --data ../shared/data/ag_news --artefact base=models/fine_tuned/bert_agnews \
        --artefact pruned20=models/shrunk/pruned20 --artefact base_onnx_int8=models/onnx/base_int8.onnx

ONNX graphs are loaded with Optimum's ``ORTModelForSequenceClassification``, HF folders (fine-tuned, masked,
shrunk) with plain transformers (shrunk ones via ``trust_remote_code``), in the venv of ``--interop-python``
(``make .venv-interop/.installed``), which cannot import this toolkit. Writes a Markdown table (artefact,
loader, max |Δlogit|, argmax agreement, pass/fail at a declared tolerance) and its JSON manifest.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run as a file: rerun as `python -m` runs it (script_shim.py)
    import runpy
    runpy.run_path(str(Path(__file__).resolve().parents[1] / "script_shim.py"))["run_as_module"](__file__)

from common.cli import stage_main  # noqa: E402
from common.data import load_test_split  # noqa: E402
from common.interop import ATOL, interop_check, parse_artefacts  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artefact", action="append", default=[], metavar="NAME=PATH",
                   help="an .onnx graph or a model folder (repeat)")
    p.add_argument("--interop-python", required=True, help="python of the third-party venv (.venv-interop/bin/python)")
    p.add_argument("--output", required=True, help="Markdown table to write (outputs/metrics/interop.md)")
    p.add_argument("--data", default="", help="texts: test split of this data folder (empty = shipped demo sample)")
    p.add_argument("--n-texts", type=int, default=32, help="stratified test texts compared")
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--atol", type=float, default=ATOL, help="max |dlogit| for a pass")
    p.add_argument("--seed", type=int, default=42)
    return p


def run(argv=None) -> int:
    args = build_parser().parse_args(argv)
    artefacts = parse_artefacts(args.artefact)
    texts = load_test_split(args.data, args.n_texts, args.seed).texts
    interop_check(artefacts, texts, Path(args.output), args.interop_python, args.max_len, vars(args), args.seed,
                  args.atol)
    return 0


main = stage_main(run)

if __name__ == "__main__":
    sys.exit(main())
