"""The report's inputs, read by the names their producers define (common.schema, common.explain.drift).

Every file is one the caller names: the per-variant metric records are exactly the files given (``make``
passes the benchmark's records of the variants it built), so a record left over from an earlier variant list
cannot enter the report. A stage CSV that is missing is "not built" (None); one without its producer's
columns stops the report with one sentence naming the file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pandas as pd

from common.cli import UserError
from common.explain.drift import (COL_ALPHA_EQUIVALENT, COL_CONTROL_EXTRA, COL_CROSS_SEED, COL_D, COL_DECIDES,
                                    COL_EXTRA, COL_LABEL_AGREEMENT, COL_LOWER, COL_MARGIN, COL_REASON,
                                    COL_METRIC, COL_N, COL_N_TO_DECIDE, COL_ROLE, COL_UPPER, COL_VARIANT, COL_VERDICT,
                                    HEADLINE, ROLE_NOISE_FLOOR, SECONDARY, SIMILARITY_COLUMNS, SIMILARITY_CSV)
from common.schema import (DELETION_COLUMNS, DELETION_CSV, DELETION_GATE, POS_COLUMNS, POS_CSV, RECORD_ACCURACY,
                           RECORD_VARIANT, SUMMARY_VARIANT)


def read_json_object(path: Path, what: str, how: str) -> dict:
    """``path``'s JSON object, or one sentence naming the file (``what`` it is) and ``how`` to fix it."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} ({what}) does not exist; {how}.") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} ({what}) is not readable JSON ({exc}); {how}.") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} ({what}) is not a JSON object; {how}.")
    return data


def load_variant_metrics(paths: Iterable[Path]) -> dict[str, dict]:
    """variant -> its metrics record, for exactly the files given, in path order. A record without accuracy
    (a variant the benchmark could not run) is left out; a file that is missing or not JSON is an error."""
    out = {}
    for path in sorted(Path(p) for p in paths):
        data = read_json_object(path, "a metrics record", f"build it with `make {path}` (or drop it from --metrics)")
        if RECORD_VARIANT in data and RECORD_ACCURACY in data:
            out[data[RECORD_VARIANT]] = data
    return out


def records_beside_summary(summary_csv: Path) -> list[Path]:
    """Without an explicit list of records: those of the variants summary.csv names, in its folder (where the
    benchmark writes them unless told otherwise), that exist."""
    frame = load_benchmark_summary(summary_csv)
    if frame is None:
        return []
    paths = (summary_csv.parent / f"{variant}.json" for variant in frame[SUMMARY_VARIANT].astype(str))
    return [path for path in paths if path.is_file()]


def load_benchmark_summary(path: Path) -> pd.DataFrame | None:
    """summary.csv (common.bench.run): which variants one benchmark run measured; None when not built."""
    return _read_stage_csv(path, [SUMMARY_VARIANT], target=path)


def _read_stage_csv(path: Path, columns: list[str], target: Path | None = None) -> pd.DataFrame | None:
    """A stage's CSV with the columns its producer defines; None when it was not built (blank = missing).
    ``target``: the make target that rebuilds it (default: the Markdown beside it)."""
    if not path.is_file():
        return None
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"{path} lacks columns {missing}; rebuild it with `make {target or path.with_suffix('.md')}`.")
    return frame


def _read_similarity(reports_dir: Path) -> pd.DataFrame | None:
    return _read_stage_csv(reports_dir / SIMILARITY_CSV, SIMILARITY_COLUMNS)


def _optional_int(value):
    return None if value is None or pd.isna(value) else int(value)


def load_similarity(reports_dir: Path) -> dict[str, dict]:
    """variant -> its LIME agreement verdict (headline and secondary metric), n, n_to_decide, role and
    label agreement, from lime_similarity.csv (columns from common.explain.drift). Controls
    included; the noise floor is not a variant."""
    frame = _read_similarity(reports_dir)
    if frame is None:
        return {}
    out: dict[str, dict] = {}
    for row in frame[frame[COL_ROLE] != ROLE_NOISE_FLOOR].to_dict("records"):
        entry = out.setdefault(str(row[COL_VARIANT]), {"role": row[COL_ROLE],
                                                       "label_agreement": row[COL_LABEL_AGREEMENT]})
        if row[COL_METRIC] == HEADLINE:
            entry.update(extra=row[COL_EXTRA], lower=row[COL_LOWER], upper=row[COL_UPPER], margin=row[COL_MARGIN],
                         verdict=row[COL_VERDICT] if isinstance(row[COL_VERDICT], str) and row[COL_VERDICT] else None,
                         n=row[COL_N], n_to_decide=_optional_int(row[COL_N_TO_DECIDE]),
                         control_extra=row[COL_CONTROL_EXTRA], d=row[COL_D],
                         decides=row[COL_DECIDES] if isinstance(row[COL_DECIDES], str) else "",
                         reason=row[COL_REASON] if isinstance(row[COL_REASON], str) else "",
                         alpha_equivalent=row[COL_ALPHA_EQUIVALENT])
        elif row[COL_METRIC] == SECONDARY:
            entry.update(secondary_extra=row[COL_EXTRA], secondary_lower=row[COL_LOWER],
                         secondary_upper=row[COL_UPPER], secondary_verdict=row[COL_VERDICT])
    return out


def load_similarity_floor(reports_dir: Path) -> dict[str, dict]:
    """metric -> {floor}: LIME's own seed-to-seed agreement (descriptive; the margin is the control's)."""
    frame = _read_similarity(reports_dir)
    if frame is None:
        return {}
    floor = frame[frame[COL_ROLE] == ROLE_NOISE_FLOOR]
    return {str(r[COL_METRIC]): {"floor": r[COL_CROSS_SEED]} for r in floor.to_dict("records")}


def load_deletion(reports_dir: Path) -> dict[str, dict] | None:
    """variant -> the deletion test's gate row (check == DELETION_GATE); None when deletion.csv is absent."""
    frame = _read_stage_csv(reports_dir / DELETION_CSV, DELETION_COLUMNS)
    if frame is None:
        return None
    gate = frame[frame["check"] == DELETION_GATE]
    return {str(r["variant"]): {**r, "verdict": r["verdict"] if isinstance(r["verdict"], str) and r["verdict"] else None,
                                "decides": r["decides"] if isinstance(r["decides"], str) else "",
                                "reason": r["reason"] if isinstance(r["reason"], str) else "",
                                "n_to_decide": _optional_int(r["n_to_decide"])} for r in gate.to_dict("records")}


def load_pos(reports_dir: Path) -> dict[str, dict]:
    """variant -> its POS verdict and extra Jensen-Shannon divergence (pos_analysis.csv, POS_COLUMNS)."""
    frame = _read_stage_csv(reports_dir / POS_CSV, POS_COLUMNS)
    if frame is None:
        return {}
    return {str(r["variant"]): {"extra_js": r["extra_js_mean"], "verdict": r["verdict"]}
            for r in frame.to_dict("records")}
