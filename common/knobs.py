"""The knob values a build used, read back from its stamps (``models/.knobs/*``) as make arguments.

The Makefile writes one stamp per knob group, ``KEY=value KEY=value ...`` on one line, values unquoted
(``PRUNE_PCTS=20 30``). ``inference/inference.sh`` without arguments passes them back to ``make bench``,
so it benchmarks what was built with the knobs it was built with, instead of the Makefile's defaults
(which would rewrite every stamp and rebuild everything). Standard library only: the shell script runs
it with any ``python3``.

    python3 -m common.knobs models/.knobs    # one KEY=value per line
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

KNOB_START = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


class KnobConflict(ValueError):
    """Two stamps record different values for one knob: the build was not made with one set of knobs."""


def parse_stamp(text: str) -> dict[str, str]:
    """``"A=1 B=x y C="`` -> ``{"A": "1", "B": "x y", "C": ""}`` (a token without ``KEY=`` continues a value)."""
    knobs: dict[str, str] = {}
    key = None
    for token in text.split():
        match = KNOB_START.match(token)
        if match:
            key = match.group(1)
            knobs[key] = match.group(2)
        elif key is not None:
            knobs[key] = f"{knobs[key]} {token}".strip()
        else:
            raise ValueError(f"stamp text {text!r} does not start with KEY=value")
    return knobs


def read_stamps(folder: str | Path) -> dict[str, str]:
    """Every knob of every stamp in ``folder`` (empty when there is none); conflicting values raise."""
    knobs: dict[str, str] = {}
    seen_in: dict[str, str] = {}
    for stamp in sorted(Path(folder).glob("*")):
        if not stamp.is_file():
            continue
        for key, value in parse_stamp(stamp.read_text()).items():
            if key in knobs and knobs[key] != value:
                raise KnobConflict(f"knob stamps disagree on {key} ({seen_in[key]}: {knobs[key]!r}, {stamp.name}: "
                                   f"{value!r}); pass the knobs explicitly, e.g. inference/inference.sh {key}=...")
            knobs[key] = value
            seen_in.setdefault(key, stamp.name)
    return knobs


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python3 -m common.knobs STAMP_FOLDER", file=sys.stderr)
        return 2
    try:
        knobs = read_stamps(args[0])
    except (KnobConflict, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for key, value in knobs.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
