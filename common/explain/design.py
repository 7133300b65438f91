"""Reading the CSVs the explanation stages write, and the one check that two LIME runs share one design.

Every explanation-drift check (LIME agreement, the deletion test, POS shares) compares runs pair by pair,
so each pair must explain the same instances, the same label each, with the same ``num_samples``, and with
the seed the comparison needs: the reference's own seed (the same perturbed texts, so LIME's noise cancels)
or another one (a noise run). A mismatch is a user error naming the file; nothing is silently dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.cli import UserError

SAME_SEED, OTHER_SEED = "same", "other"


def read_stage_csv(path: str | Path, required: set, stage: str, text_columns: tuple = ()):
    """A CSV ``stage`` wrote, with ``required`` columns and rows, or one sentence naming the file and how
    to rebuild it. ``text_columns`` stay strings (a word such as "nan" or "1" is a word)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; build it with `make {path}` first.")
    try:
        frame = pd.read_csv(path, keep_default_na=False, dtype={c: str for c in text_columns})
    except Exception as exc:
        raise UserError(f"Could not read {path} ({type(exc).__name__}); rebuild it with {stage}.") from None
    missing = set(required) - set(frame.columns)
    if missing or frame.empty:
        raise UserError(f"{path} is not a {stage} CSV (missing columns {sorted(missing)} or no rows); rebuild it "
                        f"with {stage}.")
    return frame


def single_setting(frame, column: str, path: str | Path) -> int | None:
    """The one value of a run setting (seed, num_samples) in a LIME CSV; None when the column is absent or
    empty. A CSV that mixes values did not come from one run."""
    if column not in frame.columns:
        return None
    values = sorted({int(v) for v in frame[column] if str(v) != ""})
    if len(values) > 1:
        raise UserError(f"{path} mixes {column} values {values[:5]}; one LIME CSV must come from one run.")
    return values[0] if values else None


@dataclass(frozen=True)
class LimeDesign:
    """What must match between two LIME runs for their comparison to be like for like.

    ``explained`` maps each key (an instance, or an (instance, label) pair where a run may explain several
    labels) to its explained label, or to None where the label is part of the key. ``seed`` and
    ``num_samples`` are one value, or a set of them; None where the CSV does not say. ``texts`` (instance ->
    text) is compared when both sides have it."""

    path: Path
    explained: dict
    seed: object
    num_samples: object
    texts: dict | None = None
    unit: str = "instances"


def _shown(value) -> str:
    if isinstance(value, (set, frozenset)):
        return str(next(iter(value))) if len(value) == 1 else str(sorted(value))
    return str(value)


def check_same_design(reference: LimeDesign, other: LimeDesign, seed: str = SAME_SEED) -> None:
    """Stop unless ``other`` explains exactly ``reference``'s keys, labels (and texts) with the same
    ``num_samples``, and with the reference's LIME seed (``SAME_SEED``) or another one (``OTHER_SEED``)."""
    extra = sorted(set(other.explained) - set(reference.explained))
    lacking = sorted(set(reference.explained) - set(other.explained))
    if extra or lacking:
        raise UserError(f"{other.path} explains other {other.unit} than {reference.path} ({len(lacking)} of its "
                        f"{other.unit} missing, e.g. {lacking[:3]}; {len(extra)} extra, e.g. {extra[:3]}); explain "
                        f"the same instances (same DATA, --n-instances and --instance-seed).")
    for key in sorted(reference.explained):
        if reference.texts is not None and other.texts is not None and other.texts[key] != reference.texts[key]:
            raise UserError(f"{other.path} has another text than {reference.path} for instance {key}; explain both "
                            f"on the same DATA.")
        if other.explained[key] != reference.explained[key]:
            raise UserError(f"{other.path} explains label {other.explained[key]} for instance {key} but "
                            f"{reference.path} explains {reference.explained[key]}; pass the same "
                            f"--reference-model to both.")
    if None not in (other.num_samples, reference.num_samples) and other.num_samples != reference.num_samples:
        raise UserError(f"{other.path} was explained with num_samples {_shown(other.num_samples)} but "
                        f"{reference.path} with {_shown(reference.num_samples)}; explain both with the same number "
                        f"of LIME samples (--num-samples, LIME_SAMPLES in make).")
    if None in (other.seed, reference.seed):
        return
    if seed == SAME_SEED and other.seed != reference.seed:
        raise UserError(f"{other.path} was explained with LIME seed {_shown(other.seed)} but {reference.path} with "
                        f"{_shown(reference.seed)}; explain every variant with the base run's --seed, so both see "
                        f"the same perturbed texts.")
    if seed == OTHER_SEED and other.seed == reference.seed:
        raise UserError(f"{other.path} was explained with the same LIME seed ({_shown(other.seed)}) as "
                        f"{reference.path}: a noise run that has the base's LIME seed sees the same perturbed texts "
                        f"and measures no noise; explain it with another --seed (e.g. SEED+1).")
