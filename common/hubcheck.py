"""Fail fast, in one line, when a build needs the Hugging Face hub and the hub is unreachable.

``datasets``/``huggingface_hub`` retry an unreachable hub for ~30 s, logging each retry, before the
toolkit's one-line error appears. One HEAD request with a short timeout decides instead. The Makefile runs
this file at parse time, before any knob stamp is written (a build that did not start leaves no stamp):

    python3 common/hubcheck.py --data ag_news --base-model minilm   # prints the error and exits 2, or nothing

Standard library only, so it runs with any ``python3`` before ``make setup`` and without importing the
toolkit's dependencies. ``HF_HUB_OFFLINE=1`` skips the probe (the libraries then read their cache and fail
fast by themselves); ``HF_ENDPOINT`` is honoured like the libraries honour it.
"""
from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

HUB_DATA = "ag_news"
OFFLINE_BASE_MODELS = {"minilm"}
PROBE_TIMEOUT_S = 3.0


def offline_mode() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """One HEAD request to the hub endpoint; any HTTP answer (even an error status) means it is reachable."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/api/datasets/{HUB_DATA}", method="HEAD"),
                               timeout=timeout)
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


def hub_knobs(data: str, base_model: str) -> list[str]:
    """The knobs whose values can only come from the hub (a hub name, not an existing local folder)."""
    needs = []
    if data == HUB_DATA and not Path(data).is_dir():
        needs.append(f"DATA={data}")
    if base_model and base_model.lower() not in OFFLINE_BASE_MODELS and not Path(base_model).exists():
        needs.append(f"BASE_MODEL={base_model}")
    return needs


def hub_problem(data: str = "", base_model: str = "") -> str | None:
    """The one-line error when the hub is needed and unreachable, else None."""
    needs = hub_knobs(data, base_model)
    if not needs or offline_mode() or hub_reachable():
        return None
    return (f"The Hugging Face hub is unreachable and {' and '.join(needs)} needs it; set DATA to a local folder "
            f"with train/test files (e.g. DATA=../shared/data/ag_news), BASE_MODEL to minilm or a model folder, "
            f"or HF_HUB_OFFLINE=1 to use a cached copy.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="")
    parser.add_argument("--base-model", default="")
    args = parser.parse_args(argv)
    problem = hub_problem(args.data, args.base_model)
    if problem:
        print(problem)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
