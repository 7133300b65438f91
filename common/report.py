"""The one report: every variant's numbers side by side, the plots, and a shipping recommendation.

Reads manifests and metric files only (never logs):
``outputs/metrics/<variant>.json`` (evaluation/benchmark), ``outputs/metrics/summary.csv``
(benchmark ratios measured in one run), ``outputs/metrics/properties/*.json``,
``outputs/reports/lime_similarity.csv`` (LIME agreement verdicts, controls, noise floor),
``outputs/reports/deletion.csv`` (deletion-test verdicts), ``outputs/reports/pos_analysis.csv``,
``outputs/sp_lime_sets/*``, ``outputs/reports/mlp*.md``.
A section whose inputs are missing says so instead of inventing numbers.

**Shipping rule** (:func:`recommend`): the fastest variant within 1 pt of the base accuracy whose verdict
is ``equivalent`` on both the LIME agreement and the deletion test. Controls are never candidates.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import re
import time
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from common.cli import UserError
from common.lime_similarity import (COL_CROSS_SEED, COL_EXTRA, COL_LABEL_AGREEMENT, COL_LOWER, COL_MARGIN, COL_METRIC,
                                    COL_N, COL_N_TO_DECIDE, COL_ROLE, COL_UPPER, COL_VARIANT, COL_VERDICT, HEADLINE,
                                    MARGIN_FRACTION, ROLE_NEGATIVE_CONTROL, ROLE_NOISE_FLOOR, ROLE_POSITIVE_CONTROL,
                                    ROLE_VARIANT, SECONDARY, SIMILARITY_COLUMNS, SIMILARITY_CSV)
from common.manifest import base_manifest, library_versions, write_json_atomic, write_text_atomic
from common.schema import DELETION_COLUMNS, DELETION_CSV, DELETION_GATE, POS_COLUMNS, POS_CSV
from common.verdict import EQUIVALENT

log = logging.getLogger(__name__)

ACCURACY_TOLERANCE_PT = 1.0
# outputs/reports/deletion.csv, written by the deletion-test stage; the gate is its "same_evidence" rows.
DELETION_GATE_CHECK = DELETION_GATE


def machine_description() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except ImportError:  # pragma: no cover
        pass
    return {"cpu": cpu, "cpu_threads": os.cpu_count(), "gpu": gpu, "platform": platform.platform()}


def load_variant_metrics(metrics_dir: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(metrics_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and "variant" in data and "accuracy" in data:
            out[data["variant"]] = data
    return out


def load_benchmark_summary(metrics_dir: Path) -> pd.DataFrame | None:
    path = metrics_dir / "summary.csv"
    return pd.read_csv(path) if path.is_file() else None


def _first_column(frame: pd.DataFrame, *candidates: str) -> str | None:
    for name in candidates:
        if name in frame.columns:
            return name
    return None


def _read_stage_csv(path: Path, columns: list[str]) -> pd.DataFrame | None:
    """A stage's CSV with the columns its producer defines; None when it was not built (blank = missing)."""
    if not path.is_file():
        return None
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"{path} lacks columns {missing}; rebuild it with `make {path.with_suffix('.md')}`.")
    return frame


def _read_similarity(reports_dir: Path) -> pd.DataFrame | None:
    return _read_stage_csv(reports_dir / SIMILARITY_CSV, SIMILARITY_COLUMNS)


def _optional_int(value):
    return None if value is None or pd.isna(value) else int(value)


def load_similarity(reports_dir: Path) -> dict[str, dict]:
    """variant -> its LIME agreement verdict (headline and secondary metric), n, n_to_decide, role and
    label agreement, from lime_similarity.csv (columns from common.explanation_similarity). Controls
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
                         verdict=row[COL_VERDICT] if isinstance(row[COL_VERDICT], str) else None, n=row[COL_N],
                         n_to_decide=_optional_int(row[COL_N_TO_DECIDE]))
        elif row[COL_METRIC] == SECONDARY:
            entry.update(secondary_extra=row[COL_EXTRA], secondary_lower=row[COL_LOWER],
                         secondary_upper=row[COL_UPPER], secondary_verdict=row[COL_VERDICT])
    return out


def load_similarity_floor(reports_dir: Path) -> dict[str, dict]:
    """metric -> {floor, margin}: LIME's own seed-to-seed agreement and the margin derived from it."""
    frame = _read_similarity(reports_dir)
    if frame is None:
        return {}
    floor = frame[frame[COL_ROLE] == ROLE_NOISE_FLOOR]
    return {str(r[COL_METRIC]): {"floor": r[COL_CROSS_SEED], "margin": r[COL_MARGIN]} for r in floor.to_dict("records")}


def load_deletion(reports_dir: Path) -> dict[str, dict] | None:
    """variant -> the deletion test's gate row (check == DELETION_GATE_CHECK); None when deletion.csv is absent."""
    frame = _read_stage_csv(reports_dir / DELETION_CSV, DELETION_COLUMNS)
    if frame is None:
        return None
    gate = frame[frame["check"] == DELETION_GATE_CHECK]
    return {str(r["variant"]): {**r, "n_to_decide": _optional_int(r["n_to_decide"])} for r in gate.to_dict("records")}


def load_pos(reports_dir: Path) -> dict[str, dict]:
    """variant -> its POS verdict and extra Jensen-Shannon divergence (pos_analysis.csv, POS_COLUMNS)."""
    frame = _read_stage_csv(reports_dir / POS_CSV, POS_COLUMNS)
    if frame is None:
        return {}
    return {str(r["variant"]): {"extra_js": r["extra_js_mean"], "verdict": r["verdict"]}
            for r in frame.to_dict("records")}


def _fmt(value, spec=".3f", missing="–"):
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return missing
    return format(value, spec)


def variant_table(metrics: dict[str, dict], summary: pd.DataFrame | None, similarity: dict, pos: dict,
                  baseline: str = "base", deletion: dict | None = None) -> tuple[pd.DataFrame, list[str]]:
    rows = []
    ratio_col = None
    if summary is not None:
        ratio_col = _first_column(summary, "throughput_ratio_vs_base", "throughput_ratio", "ratio_vs_baseline")
    base = metrics.get(baseline)
    for name, m in metrics.items():
        params = m.get("parameters") or {}
        sim = similarity.get(name, {})
        gate = (deletion or {}).get(name, {})
        ratio = None
        if ratio_col is not None and name in set(summary["variant"]):
            ratio = float(summary.loc[summary["variant"] == name, ratio_col].iloc[0])
        rows.append({
            "variant": name,
            "accuracy": m["accuracy"],
            "delta_acc_pt": None if base is None else (m["accuracy"] - base["accuracy"]) * 100,
            "macro_f1": m["macro_f1"],
            "size_mb": m.get("size_mb"),
            "params_m": params.get("total", 0) / 1e6 if params else None,
            # ONNX graphs do not keep module names on every weight: no encoder split there.
            "encoder_params_m": params["encoder"] / 1e6 if "encoder" in params else None,
            "latency_p50_ms": m.get("latency_ms_p50"),
            "latency_p95_ms": m.get("latency_ms_p95"),
            "throughput": m.get("throughput_samples_per_s"),
            "throughput_ratio": ratio,
            "peak_rss_mb": m.get("peak_rss_mb"),
            "expl_role": sim.get("role"),
            "expl_extra": sim.get("extra"),
            "expl_lower": sim.get("lower"),
            "expl_upper": sim.get("upper"),
            "expl_margin": sim.get("margin"),
            "expl_verdict": sim.get("verdict"),
            "expl_n": sim.get("n"),
            "expl_n_to_decide": sim.get("n_to_decide"),
            "deletion_verdict": gate.get("verdict"),
            "deletion_n_to_decide": gate.get("n_to_decide"),
            "pos_extra_js": (pos.get(name) or {}).get("extra_js"),
            "pos_verdict": (pos.get(name) or {}).get("verdict"),
        })
    frame = pd.DataFrame(rows)
    notes = []
    if ratio_col is None and len(frame):
        notes.append("Throughput ratios need `make bench` (outputs/metrics/summary.csv); they are left blank.")
    return frame, notes


GATES = (("LIME agreement", "expl_verdict", "expl_n_to_decide"),
         ("deletion test", "deletion_verdict", "deletion_n_to_decide"))


def _gate_failures(row, gates) -> list[str]:
    """Why ``row`` fails the explanation gates that were run (empty: it passes them all)."""
    out = []
    for label, verdict_col, decide_col in gates:
        verdict = row.get(verdict_col)
        if not isinstance(verdict, str) or not verdict:
            out.append(f"{label} not run for it")
        elif verdict != EQUIVALENT:
            decide = row.get(decide_col)
            more = f", about {int(decide)} instances would decide" if verdict == "inconclusive" and pd.notna(decide) \
                else ""
            out.append(f"{label} {verdict}{more}")
    return out


def _speed_text(row) -> str:
    if pd.notna(row.get("throughput_ratio")):
        return f"{row['throughput_ratio']:.2f}x the base throughput"
    return f"{row['throughput']:.1f} samples/s"


def _lime_text(row) -> str:
    if not isinstance(row.get("expl_verdict"), str):
        return ""
    return (f"LIME agreement {row['expl_verdict']} ({HEADLINE} extra disagreement {row['expl_extra']:+.3f}, "
            f"upper bound {row['expl_upper']:+.3f} vs margin {row['expl_margin']:.3f}, n = {int(row['expl_n'])})")


def recommend(frame: pd.DataFrame, baseline: str = "base") -> str:
    """The fastest variant within 1 pt of base accuracy that is ``equivalent`` on both the LIME agreement and
    the deletion test; the faster variants that failed a gate, and the runner-up. A gate whose results are
    missing altogether is named as missing, never silently skipped."""
    if frame.empty or frame["delta_acc_pt"].isna().all():
        return "No recommendation: the base model's metrics are missing."
    role = frame["expl_role"] if "expl_role" in frame else pd.Series(None, index=frame.index)
    ok = frame[(frame["delta_acc_pt"] >= -ACCURACY_TOLERANCE_PT - 1e-9)  # float noise at exactly 1 pt
               & (frame["variant"] != baseline) & (role.astype(str) != ROLE_POSITIVE_CONTROL)]
    if ok.empty:
        return f"No compressed variant stays within {ACCURACY_TOLERANCE_PT:.0f} pt of the base accuracy: keep `{baseline}`."
    speed = "throughput_ratio" if ok["throughput_ratio"].notna().any() else "throughput"
    ok = ok.sort_values(speed, ascending=False)
    gates = [g for g in GATES if g[1] in frame and frame[g[1]].notna().any()]
    missing = [g[0] for g in GATES if g not in gates]
    caveats = []
    if "LIME agreement" in missing:
        caveats.append(f"The LIME agreement gate is missing (outputs/reports/{SIMILARITY_CSV} not built).")
    if "deletion test" in missing:
        caveats.append(f"The deletion gate is missing (outputs/reports/{DELETION_CSV} not built).")
    if not gates:
        caveats.append("This pick rests on accuracy and speed alone.")
    elif missing:
        caveats.append(f"This pick rests on the {gates[0][0]} alone.")
    rows = ok.to_dict("records")
    failures = {r["variant"]: _gate_failures(r, gates) for r in rows}
    passing = [r for r in rows if not failures[r["variant"]]]
    failed_faster = []
    for r in rows:
        if passing and r["variant"] == passing[0]["variant"]:
            break
        failed_faster.append(f"`{r['variant']}` ({_speed_text(r)}: {'; '.join(failures[r['variant']])})")
    if not passing:
        return (f"**No compressed variant passes the explanation gates: keep `{baseline}`.** Within "
                f"{ACCURACY_TOLERANCE_PT:.0f} pt of its accuracy, fastest first: " + ", ".join(failed_faster) + ". "
                + " ".join(caveats)).strip()
    best = passing[0]
    checks = [t for t in (_lime_text(best),
                          "deletion test equivalent" if isinstance(best.get("deletion_verdict"), str) else "") if t]
    text = (f"**Ship `{best['variant']}`**: {_speed_text(best)}, accuracy {best['accuracy']:.4f} "
            f"({best['delta_acc_pt']:+.2f} pt vs base), {best['size_mb']:.1f} MB"
            + (f"; {', '.join(checks)}" if checks else "") + ".")
    if failed_faster:
        text += (f" The fastest variant within {ACCURACY_TOLERANCE_PT:.0f} pt is not it: "
                 + ", ".join(failed_faster) + ".")
    if len(passing) > 1:
        runner = passing[1]
        text += (f" Runner-up: `{runner['variant']}` ({_speed_text(runner)}), which passes the same gates but is "
                 "slower.")
    else:
        text += " Runner-up: none; no other variant within 1 pt passes the gates."
    return " ".join([text] + caveats)


_LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")


def _rebase_links(text: str, source_dir: Path, report_dir: Path) -> str:
    """Relative links of a file included from ``source_dir`` made relative to the report's folder."""
    def fix(match):
        target = match.group(2)
        if "://" in target or target.startswith(("#", "/", "mailto:")):
            return match.group(0)
        return f"{match.group(1)}({os.path.relpath(source_dir / target, report_dir)})"

    return _LINK.sub(fix, text)


def _drop_repeated_images(text: str) -> str:
    """Drop a line that only repeats images already shown (an included sub-report brings its own links)."""
    seen, lines = set(), []
    for line in text.splitlines():
        images = [m.group(2) for m in _LINK.finditer(line) if m.group(1).startswith("!")]
        if images and all(os.path.normpath(t) in seen for t in images) and not _LINK.sub("", line).strip():
            continue
        seen.update(os.path.normpath(t) for t in images)
        lines.append(line)
    return "\n".join(lines)


def _include(path: Path, title: str, level: str = "##", report_dir: Path | None = None) -> str:
    if not path.is_file():
        return f"{level} {title}\n\n_Not built: `{path}` is missing (run its make target)._\n"
    lines = path.read_text().strip().splitlines()
    if lines and lines[0].startswith("#"):  # the section's own title replaces the file's
        lines = lines[1:]
    # Demote the file's remaining headings to just below this section's.
    depths = [len(line) - len(line.lstrip("#")) for line in lines if line.startswith("#")]
    shift = len(level) + 1 - min(depths) if depths else 0
    body = "\n".join(("#" * shift + line) if line.startswith("#") and shift > 0 else line for line in lines)
    if report_dir is not None:
        body = _rebase_links(body, path.parent, report_dir)
    return f"{level} {title}\n\n{body.strip()}\n"


def _image(path: Path, report_dir: Path, alt: str) -> str:
    if not path.is_file():
        return f"_`{path}` is missing._"
    return f"![{alt}]({os.path.relpath(path, report_dir)})"


def _bounds(mean, lower, upper) -> str:
    if mean is None or pd.isna(mean):
        return "–"
    return f"{mean:+.3f} [{lower:+.3f}, {upper:+.3f}]"


def drift_section(similarity: dict[str, dict], floor: dict[str, dict], deletion: dict | None) -> str:
    """Per variant, controls included and marked (negative first, positive last): LIME extra disagreement
    (headline and secondary metric) with bounds and verdicts, n, and the deletion test's verdict."""
    if not similarity and deletion is None:
        return "_Not built: run `make outputs/reports/lime_similarity.md` (and the deletion test)._"
    role_order = [ROLE_NEGATIVE_CONTROL, ROLE_VARIANT, ROLE_POSITIVE_CONTROL]
    names = sorted(set(similarity) | set(deletion or {}),
                   key=lambda n: role_order.index(similarity.get(n, {}).get("role", ROLE_VARIANT)))
    rows = []
    for name in names:
        sim, gate = similarity.get(name, {}), (deletion or {}).get(name, {})
        role = sim.get("role", ROLE_VARIANT)
        decide = [f"LIME {sim['n_to_decide']}" if sim.get("n_to_decide") else "",
                  f"deletion {gate['n_to_decide']}" if gate.get("n_to_decide") else ""]
        rows.append([name, "" if role == ROLE_VARIANT else role.replace("_", " "),
                     _fmt(sim.get("label_agreement")), sim.get("n", "–"),
                     _bounds(sim.get("extra"), sim.get("lower"), sim.get("upper")), sim.get("verdict") or "–",
                     _bounds(sim.get("secondary_extra"), sim.get("secondary_lower"), sim.get("secondary_upper")),
                     sim.get("secondary_verdict") or "–",
                     gate.get("verdict") or ("–" if deletion is not None else "not built"), gate.get("n", "–"),
                     ", ".join(d for d in decide if d)])
    head = floor.get(HEADLINE, {})
    second = floor.get(SECONDARY, {})
    lines = []
    if head:
        lines += [f"Per instance, extra disagreement = m(base@S, base@S+1) − m(variant@S, base@S+1): every variant "
                  f"is explained with base's LIME seed S, and both sides are compared with base explained with "
                  f"seed S+1 (like for like, paired; exactly 0 for an identical function). Margin = "
                  f"{MARGIN_FRACTION} × (1 − LIME's own seed-to-seed agreement): {HEADLINE} (signed rank-biased "
                  f"overlap, the headline) floor {head['floor']:.3f}, margin {head['margin']:.3f}; {SECONDARY} "
                  f"(secondary) floor {second.get('floor', float('nan')):.3f}, margin "
                  f"{second.get('margin', float('nan')):.3f}. **equivalent**: the one-sided 95 % upper bootstrap "
                  "bound is below the margin; **drifted**: the lower bound is above it; otherwise "
                  "**inconclusive** (n to decide: the instances that would decide it). Cells: mean [bounds].", ""]
    lines.append(tabulate(rows, headers=["variant", "control", "label agr.", "n", f"{HEADLINE} extra",
                                         "LIME verdict", f"{SECONDARY} extra", f"{SECONDARY} verdict",
                                         "deletion verdict", "deletion n", "n to decide"],
                          tablefmt="github", disable_numparse=True))
    if deletion is None:
        lines += ["", f"_The deletion test is not built (outputs/reports/{DELETION_CSV} is missing)._"]
    for name in names:
        entry = similarity.get(name, {})
        if entry.get("role") == ROLE_POSITIVE_CONTROL and entry.get("verdict") == EQUIVALENT:
            lines += ["", f"**The positive control `{name}` (another fine-tune of the base recipe) is equivalent: "
                          "the metric cannot tell two fine-tunes apart, and the margin is to be revisited.**"]
        if entry.get("role") == ROLE_NEGATIVE_CONTROL and entry.get("verdict") not in (EQUIVALENT, None):
            lines += ["", f"**The negative control `{name}` (an identical function) is {entry['verdict']}, not "
                          "equivalent: the drift verdicts cannot be trusted.**"]
    return "\n".join(lines)


REPORT_HEADERS = {
    "variant": "variant", "accuracy": "acc", "delta_acc_pt": "Δacc pt", "macro_f1": "macro-F1", "size_mb": "MB",
    "params_m": "params M", "encoder_params_m": "encoder M", "latency_p50_ms": "p50 ms", "latency_p95_ms": "p95 ms",
    "throughput": "samples/s", "throughput_ratio": "x base", "peak_rss_mb": "peak RSS MB",
    "expl_extra": f"LIME {HEADLINE} extra", "expl_verdict": "LIME verdict", "deletion_verdict": "deletion verdict",
    "pos_verdict": "POS verdict"}


def build_report(outputs: Path, models: Path, output: Path, knobs: str) -> str:
    started = time.time()
    metrics_dir, reports_dir = outputs / "metrics", outputs / "reports"
    metrics = load_variant_metrics(metrics_dir)
    summary = load_benchmark_summary(metrics_dir)
    similarity, deletion = load_similarity(reports_dir), load_deletion(reports_dir)
    frame, notes = variant_table(metrics, summary, similarity, load_pos(reports_dir), deletion=deletion)
    report_dir = output.parent
    # NaN -> "–", not "nan"; the table shows the verdicts, the drift section the bounds.
    shown = frame[[c for c in REPORT_HEADERS if c in frame.columns]].astype(object).where(frame.notna(), None)
    table = tabulate(shown.rename(columns=REPORT_HEADERS), headers="keys", tablefmt="github", showindex=False,
                     floatfmt=".3f", missingval="–") if len(frame) else "_No variant has been evaluated yet._"
    machine = machine_description()
    versions = library_versions()
    pick = recommend(frame)
    parts = [
        "# BERT AG News compression report",
        "",
        f"Built {time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {machine['cpu']} ({machine['cpu_threads']} threads), "
        f"GPU: {machine['gpu']}.",
        "",
        f"Knobs: `{knobs}`",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
        "## Which variant should I ship?",
        "",
        pick,
        "",
        f"Rule: the fastest variant within {ACCURACY_TOLERANCE_PT:.0f} pt of the base accuracy whose verdict is "
        "`equivalent` on both the LIME agreement and the deletion test (the controls are not candidates).",
        "",
        "## Every variant",
        "",
        table,
        "",
        *notes,
        "",
        "Accuracy and macro-F1 on the test split; latency at batch 1, throughput at batch 32 (length-sorted dynamic "
        "padding), ratios against the base fp32 PyTorch model measured in the same benchmark run. "
        f"LIME {HEADLINE} extra: the variant's extra disagreement with base's explanations beyond LIME's own "
        "seed-to-seed disagreement; `base` is the reference (–). Bounds, controls and the deletion test: "
        "see the drift section.",
        "",
        "## Accuracy vs throughput",
        "",
        _image(metrics_dir / "pareto.png", report_dir, "Pareto plot"),
        "",
        _include(metrics_dir / "summary.md", "Benchmark summary", "###", report_dir),
        _include(metrics_dir / "properties" / "properties.md", "Model properties", "###", report_dir),
        "## Explanation drift vs base: equivalent, drifted or inconclusive",
        "",
        drift_section(similarity, load_similarity_floor(reports_dir), deletion),
        "",
        _include(reports_dir / "lime_similarity.md", "LIME agreement in detail", "###", report_dir),
        _image(reports_dir / "lime_similarity.png", report_dir, "Explanation drift"),
        "",
        _image(reports_dir / "lime_sample_curve.png", report_dir, "Stability vs num_samples"),
        "",
        _include(reports_dir / "pos_analysis.md", "Part-of-speech of explanation words", "##", report_dir),
        _image(reports_dir / "pos_analysis.png", report_dir, "POS analysis"),
        "",
    ]
    sp_dir = outputs / "sp_lime_sets"
    sp_md = sorted(sp_dir.glob("*_sp_lime.md")) if sp_dir.is_dir() else []
    if sp_md:
        for md in sp_md:
            prefix = md.name[: -len("_sp_lime.md")]
            parts += [_include(md, f"SP-LIME: representative explanations ({prefix})", "##", report_dir),
                      _image(sp_dir / f"{prefix}_global_features.png", report_dir, "SP-LIME global features"), ""]
    else:
        parts += ["## SP-LIME", "", "_Not built: run `make outputs/sp_lime_sets/base_picked.csv`._", ""]
    interop = metrics_dir / "interop.md"
    parts += [_include(interop, "Artefacts in third-party tools (Optimum, plain transformers)", "##", report_dir)
              if interop.is_file() else
              "## Artefacts in third-party tools\n\n_Not built: run `make interop`._\n"]
    parts += [
        _include(reports_dir / "mlp.md", "MLP students: cross-entropy vs explanation loss", "##", report_dir),
        _include(reports_dir / "mlp_sweep.md", "λ sweep", "###", report_dir),
        _image(reports_dir / "mlp_sweep.png", report_dir, "lambda sweep"),
        "",
    ]
    text = re.sub(r"\n{3,}", "\n\n", _drop_repeated_images("\n".join(parts)))
    inputs = {name: path for name, path in (
        ("benchmark_summary", metrics_dir / "summary.csv"), ("lime_similarity", reports_dir / SIMILARITY_CSV),
        ("deletion", reports_dir / DELETION_CSV), ("pos_analysis", reports_dir / POS_CSV))
        if path.is_file()}
    manifest = base_manifest("report", {"outputs": outputs, "models": models, "output": output, "knobs": knobs},
                             inputs=inputs)
    manifest.update({"wall_time_s": round(time.time() - started, 3), "variants": sorted(metrics),
                     "gates_present": {"lime_agreement": bool(similarity), "deletion": deletion is not None},
                     "recommendation": pick})
    write_text_atomic(output.with_suffix(".csv"), frame.to_csv(index=False))
    write_json_atomic(output.with_suffix(".manifest.json"), manifest)
    write_text_atomic(output, text)  # the Make target, last
    return text
