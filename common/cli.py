"""Logging, seeding and user-error handling shared by every stage script."""
from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import random
import sys
from pathlib import Path
from typing import Callable

import numpy as np

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
log = logging.getLogger("common")


class UserError(Exception):
    """An error the user caused (bad flag, missing file, malformed data).

    The message is one sentence naming the file or flag and what to do; stage
    scripts turn it into a log line and exit code 2, without a traceback.
    """

    exit_code = 2


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(UserError):
    """No space left (or quota exceeded) while writing ``path``: one sentence naming it and what to free."""

    def __init__(self, path, kept: str = "finished work is kept"):
        where = Path(path).resolve().parent if path else Path.cwd()
        super().__init__(f"The disk is full: writing {path or 'an output file'} failed (no space left on the device); "
                         f"free space on the filesystem of {where} (`df -h {where}` shows it; caches and artefacts "
                         f"you no longer need are candidates) and rerun: {kept}.")


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


@contextlib.contextmanager
def naming_a_full_disk(path, kept: str = "finished work is kept"):
    """A full disk inside the block becomes :class:`DiskFull` naming ``path`` (a write's OSError carries no file
    name); any other error passes unchanged."""
    try:
        yield
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(path, kept) from None
        raise


class _TqdmHandler(logging.StreamHandler):
    """Log through tqdm.write so progress bars are not torn by log lines."""

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def setup_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    if any(isinstance(h, _TqdmHandler) for h in root.handlers):
        return
    handler = _TqdmHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) from one integer."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
    except ImportError:  # pragma: no cover
        pass
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def run_reporting_user_errors(func: Callable[..., int | None], argv, logger_name: str) -> int:
    """``func(argv)`` with logging set up; a UserError becomes one log line and exit code 2, and so does a full
    disk (``OSError`` ENOSPC/EDQUOT from any write: :class:`DiskFull`).

    ``SystemExit`` from argparse passes through untouched (exit code 2 too). An int result is the exit code;
    anything else (None, a runner's summary dict) is success, 0, so ``sys.exit(main())`` works.
    """
    setup_logging()
    try:
        result = func(argv)
    except UserError as exc:
        logging.getLogger(logger_name).error("%s", exc)
        raise SystemExit(exc.exit_code) from None
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        # Whatever wrote it: the writers' temporary siblings are gone (atomic writes), resumable stages keep
        # what they finished, so the sentence and a rerun are all a user needs.
        disk_full = DiskFull(exc.filename)
        logging.getLogger(logger_name).error("%s", disk_full)
        raise SystemExit(disk_full.exit_code) from None
    return int(result) if isinstance(result, int) else 0


def stage_main(func: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a stage's ``main(argv)`` with :func:`run_reporting_user_errors`."""

    @functools.wraps(func)
    def wrapper(argv=None) -> int:
        return run_reporting_user_errors(func, argv, func.__module__)

    return wrapper


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device} was requested but no CUDA GPU is visible; use --device cpu or auto.")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise UserError(f"--device {device!r} is not understood; use auto, cpu, cuda or cuda:N.")
    return device


# The flags many stages share, one spelling, default and help each (argparse dest = the key).
SHARED_FLAGS = {
    "data": (("--data",), {"default": "", "help": "ag_news (hub) or a folder with train/test files; "
                                                  "empty = the shipped demo sample"}),
    "max_len": (("--max-len", "--max_len"), {"type": int, "default": 128,
                                             "help": "max tokens per text (longer texts are truncated)"}),
    "seed": (("--seed",), {"type": int, "default": 42, "help": "seed of every random choice"}),
    "threads": (("--threads",), {"type": int, "default": 0, "help": "CPU threads (0 = all cores)"}),
    "device": (("--device",), {"default": "auto", "help": "auto (cuda if present), cpu, cuda, cuda:N"}),
}


def stage_parser(description: str | None):
    """A stage script's parser: its module docstring, layout kept, as the ``--help`` description (the flags
    come from its config's fields, :func:`common.stage.config_parser`)."""
    import argparse

    return argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
