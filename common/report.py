"""The one report: every variant's numbers side by side, the plots, and a shipping recommendation.

Reads manifests and metric files only (never logs):
``outputs/metrics/<variant>.json`` (evaluation/benchmark), ``outputs/metrics/summary.csv``
(benchmark ratios measured in one run), ``outputs/metrics/properties/*.json``,
``outputs/reports/lime_similarity.csv`` (explanation drift + noise floor),
``outputs/reports/pos_analysis.csv``, ``outputs/sp_lime_sets/*``, ``outputs/reports/mlp*.md``.
A section whose inputs are missing says so instead of inventing numbers.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from common.manifest import library_versions, write_text_atomic

ACCURACY_TOLERANCE_PT = 1.0


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


def load_similarity(reports_dir: Path) -> dict[str, dict]:
    """variant -> {spearman_mean, spearman_ci_low/high, verdict} from lime_similarity.csv (long format:
    one row per variant x metric; the ``noise_floor`` row is base vs base with another LIME seed)."""
    path = reports_dir / "lime_similarity.csv"
    if not path.is_file():
        return {}
    frame = pd.read_csv(path)
    if not {"variant", "metric", "mean"} <= set(frame.columns):
        return {}
    rows = frame[frame["metric"] == "spearman"]
    out = {}
    for _, row in rows.iterrows():
        out[str(row["variant"])] = {
            "spearman_mean": float(row["mean"]),
            "spearman_ci_low": row.get("ci_low"), "spearman_ci_high": row.get("ci_high"),
            "verdict": row.get("verdict") if isinstance(row.get("verdict"), str) else None,
        }
    for _, row in frame[frame["metric"] == "cross_seed_delta_spearman"].iterrows():  # the strict check
        entry = out.setdefault(str(row["variant"]), {})
        entry["cross_seed_delta"] = float(row["mean"])
        entry["cross_seed_detectable"] = row.get("verdict") == "detectable"
    if "noise_floor" in out:  # the base model is the reference its own noise floor is measured on
        out.setdefault("base", {**out["noise_floor"], "verdict": "reference"})
    return out


def load_pos_shift(reports_dir: Path) -> dict[str, float]:
    """variant -> Jensen-Shannon divergence of its POS |weight| distribution from base's (all classes)."""
    path = reports_dir / "pos_analysis.csv"
    if not path.is_file():
        return {}
    frame = pd.read_csv(path)
    jsd = _first_column(frame, "js_vs_base", "js_divergence", "jsd")
    if jsd is None or "variant" not in frame:
        return {}
    if "scope" in frame.columns:
        frame = frame[frame["scope"].astype(str) == "all"]
    return {str(k): float(v) for k, v in frame.groupby("variant")[jsd].first().items()}


def _fmt(value, spec=".3f", missing="–"):
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return missing
    return format(value, spec)


def variant_table(metrics: dict[str, dict], summary: pd.DataFrame | None, similarity: dict, pos: dict,
                  baseline: str = "base") -> tuple[pd.DataFrame, list[str]]:
    rows = []
    ratio_col = None
    if summary is not None:
        ratio_col = _first_column(summary, "throughput_ratio_vs_base", "throughput_ratio", "ratio_vs_baseline")
    base = metrics.get(baseline)
    for name, m in metrics.items():
        params = m.get("parameters") or {}
        sim = similarity.get(name, {})
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
            "expl_spearman": sim.get("spearman_mean"),
            "expl_verdict": sim.get("verdict"),
            "expl_cross_delta": sim.get("cross_seed_delta"),
            "expl_cross_detectable": sim.get("cross_seed_detectable"),
            "pos_jsd": pos.get(name),
        })
    frame = pd.DataFrame(rows)
    notes = []
    if ratio_col is None and len(frame):
        notes.append("Throughput ratios need `make bench` (outputs/metrics/summary.csv); they are left blank.")
    return frame, notes


def recommend(frame: pd.DataFrame) -> str:
    """Best throughput among variants within 1 pt accuracy of base and within LIME's noise floor."""
    if frame.empty or frame["delta_acc_pt"].isna().all():
        return "No recommendation: the base model's metrics are missing."
    ok = frame[frame["delta_acc_pt"] >= -ACCURACY_TOLERANCE_PT - 1e-9]  # float noise at exactly 1 pt
    explained = ok[ok["expl_verdict"].notna()]
    within = explained[explained["expl_verdict"].astype(str).str.startswith("within")]
    pool, caveat = within, ""
    if within.empty:
        pool = ok
        caveat = (" None of these was explained with LIME or all drift beyond the noise floor, so this pick rests on "
                  "accuracy and speed alone.")
    if pool.empty:
        return "No variant stays within 1 pt of the base accuracy."
    speed = "throughput_ratio" if pool["throughput_ratio"].notna().any() else "throughput"
    best = pool.sort_values(speed, ascending=False).iloc[0]
    ratio = f"{best['throughput_ratio']:.2f}x the base throughput" if pd.notna(best["throughput_ratio"]) else \
        f"{best['throughput']:.1f} samples/s"
    verdict = f", explanations {best['expl_verdict']} (Spearman {best['expl_spearman']:.3f})" \
        if pd.notna(best["expl_verdict"]) else ""
    if pd.notna(best["expl_cross_delta"]):
        delta = best["expl_cross_delta"]
        verdict += (f"; in the strict cross-seed check its drift is {'' if best['expl_cross_detectable'] else 'not '}"
                    f"detectable through LIME's noise (Δ Spearman {delta:+.3f})")
    return (f"**Ship `{best['variant']}`**: {ratio}, accuracy {best['accuracy']:.4f} "
            f"({best['delta_acc_pt']:+.2f} pt vs base), {best['size_mb']:.1f} MB{verdict}.{caveat}")


def _include(path: Path, title: str, level: str = "##") -> str:
    if not path.is_file():
        return f"{level} {title}\n\n_Not built: `{path}` is missing (run its make target)._\n"
    lines = path.read_text().strip().splitlines()
    if lines and lines[0].startswith("#"):  # the section's own title replaces the file's
        lines = lines[1:]
    # Demote the file's remaining headings to just below this section's.
    depths = [len(line) - len(line.lstrip("#")) for line in lines if line.startswith("#")]
    shift = len(level) + 1 - min(depths) if depths else 0
    body = "\n".join(("#" * shift + line) if line.startswith("#") and shift > 0 else line for line in lines)
    return f"{level} {title}\n\n{body.strip()}\n"


def _image(path: Path, report_dir: Path, alt: str) -> str:
    if not path.is_file():
        return f"_`{path}` is missing._"
    return f"![{alt}]({os.path.relpath(path, report_dir)})"


def build_report(outputs: Path, models: Path, output: Path, knobs: str) -> str:
    metrics_dir, reports_dir = outputs / "metrics", outputs / "reports"
    metrics = load_variant_metrics(metrics_dir)
    summary = load_benchmark_summary(metrics_dir)
    frame, notes = variant_table(metrics, summary, load_similarity(reports_dir), load_pos_shift(reports_dir))
    report_dir = output.parent
    headers = {"variant": "variant", "accuracy": "acc", "delta_acc_pt": "Δacc pt", "macro_f1": "macro-F1",
               "size_mb": "MB", "params_m": "params M", "encoder_params_m": "encoder M",
               "latency_p50_ms": "p50 ms", "latency_p95_ms": "p95 ms", "throughput": "samples/s",
               "throughput_ratio": "x base", "peak_rss_mb": "peak RSS MB", "expl_spearman": "LIME Spearman",
               "expl_verdict": "vs noise floor", "expl_cross_delta": "cross-seed Δ", "pos_jsd": "POS JSD"}
    shown = frame.drop(columns=["expl_cross_detectable"], errors="ignore").astype(object).where(frame.notna(), None)  # NaN -> "–", not "nan"
    table = tabulate(shown.rename(columns=headers), headers="keys", tablefmt="github", showindex=False,
                     floatfmt=".3f", missingval="–") if len(frame) else "_No variant has been evaluated yet._"
    machine = machine_description()
    versions = library_versions()
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
        recommend(frame),
        "",
        f"Rule: the highest throughput among variants within {ACCURACY_TOLERANCE_PT:.0f} pt of the base accuracy "
        "whose LIME explanations stay within the base model's own seed-to-seed noise floor.",
        "",
        "## Every variant",
        "",
        table,
        "",
        *notes,
        "",
        "Accuracy and macro-F1 on the test split; latency at batch 1, throughput at batch 32 (length-sorted dynamic "
        "padding), ratios against the base fp32 PyTorch model measured in the same benchmark run. "
        "LIME Spearman: agreement with the base model's explanations under the same LIME seed, judged against "
        "the seed-to-seed noise floor; cross-seed Δ: the strict check (Spearman against the other-seed base "
        "run minus the noise floor, paired per instance; see the drift section).",
        "",
        "## Accuracy vs throughput",
        "",
        _image(metrics_dir / "pareto.png", report_dir, "Pareto plot"),
        "",
        _include(metrics_dir / "summary.md", "Benchmark summary", "###"),
        _include(metrics_dir / "properties" / "properties.md", "Model properties", "###"),
        _include(reports_dir / "lime_similarity.md", "Explanation drift vs base (LIME)"),
        _image(reports_dir / "lime_similarity.png", report_dir, "Explanation drift"),
        "",
        _image(reports_dir / "lime_sample_curve.png", report_dir, "Stability vs num_samples"),
        "",
        _include(reports_dir / "pos_analysis.md", "Part-of-speech of explanation words"),
        _image(reports_dir / "pos_analysis.png", report_dir, "POS analysis"),
        "",
    ]
    sp_dir = outputs / "sp_lime_sets"
    sp_md = sorted(sp_dir.glob("*_global_features.md")) if sp_dir.is_dir() else []
    if sp_md:
        for md in sp_md:
            parts += [_include(md, f"SP-LIME global features ({md.name.split('_global')[0]})"),
                      _image(md.with_suffix(".png"), report_dir, "SP-LIME global features"), ""]
    else:
        parts += ["## SP-LIME global features", "", "_Not built: run `make outputs/sp_lime_sets/base_picked.csv`._", ""]
    parts += [
        _include(reports_dir / "mlp.md", "MLP students: cross-entropy vs explanation loss"),
        _include(reports_dir / "mlp_sweep.md", "λ sweep", "###"),
        _image(reports_dir / "mlp_sweep.png", report_dir, "lambda sweep"),
        "",
    ]
    text = "\n".join(parts).replace("\n\n\n", "\n\n")
    write_text_atomic(output.with_suffix(".csv"), frame.to_csv(index=False))
    write_text_atomic(output, text)  # the Make target, last
    return text
