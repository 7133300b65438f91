"""The one report: every variant's numbers side by side, the plots, and a shipping recommendation.

Reads manifests and metric files only (never logs), and only the ones it is given - no folder is searched,
so nothing left over from an earlier variant list enters it: the per-variant records (``metrics``; ``make``
passes the benchmark's, ``outputs/metrics/<variant>.bench.json``), the SP-LIME sections (``sp_lime``) and
the interop table (``interop``), plus the one file of each name under ``outputs``: ``metrics/summary.csv``
(which variants one benchmark run measured), ``metrics/summary.md``, ``metrics/properties/properties.md``,
``reports/lime_similarity.csv`` (LIME agreement verdicts, controls, noise floor), ``reports/deletion.csv``
(deletion-test verdicts), ``reports/pos_analysis.csv``, ``reports/mlp*.md``.
A section whose inputs are missing says so instead of inventing numbers.

The shipping rule and the table are :mod:`common.report.pick`; the readers :mod:`common.report.inputs`.
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

from common.explain.drift import (CONTROL_FRACTION, HEADLINE, ROLE_NEGATIVE_CONTROL, ROLE_POSITIVE_CONTROL, ROLE_VARIANT,
                                    SIMILARITY_CSV)
from common.manifest import (base_manifest, library_versions, manifest_path_for, read_manifest, write_json_atomic,
                             write_text_atomic)
from common.report.inputs import (load_benchmark_summary, load_deletion, load_pos, load_similarity,
                                  load_similarity_floor, load_variant_metrics, records_beside_summary)
from common.report.pick import ACCURACY_TOLERANCE_PT, candidates, latency_pick, recommend, variant_table
from common.report.recipes import recipe_text
from common.schema import DELETION_COLUMNS, DELETION_CSV, PEER_CONFIG, POS_CSV, SUMMARY_CSV
from common.explain.verdict import ALPHA, DRIFTED, EQUIVALENT

# The shipping rule and the table, and the deletion CSV's columns, are importable from here too.
__all__ = ["build_report", "recommend", "variant_table", "DELETION_COLUMNS", "ACCURACY_TOLERANCE_PT"]

log = logging.getLogger(__name__)


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


def fmt_number(value, spec=".3f", missing="–"):
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return missing
    return format(value, spec)


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


def _sweep_section(path: Path, report_dir: Path) -> str:
    """`make sweep`'s table, pick and frontier plot (its own benchmark run, the peer measured in it), or how to
    build it: the sweep costs about an hour, so `make report` includes it once built and never starts it."""
    title = "Sparsity sweep: the accuracy-speed frontier"
    if not path.is_file():
        return (f"## {title}\n\n_Not built: `make sweep` prunes at every `SWEEP_PCTS` percentage, benchmarks their "
                "int8 and OpenVINO graphs with both peers in one run and picks with this report's rule (the fastest "
                "variant within 1 pt that is equivalent on both gates); the report includes it from then on._\n")
    return _include(path, title, "##", report_dir)


def _image(path: Path, report_dir: Path, alt: str) -> str:
    if not path.is_file():
        return f"_`{path}` is missing._"
    return f"![{alt}]({os.path.relpath(path, report_dir)})"


def _bounds(mean, lower, upper) -> str:
    if mean is None or pd.isna(mean):
        return "–"
    return f"{mean:+.3f} [{lower:+.3f}, {upper:+.3f}]"


def _verdict(entry: dict, missing: str = "–") -> str:
    if not entry:
        return missing
    if not entry.get("verdict"):
        return f"not judged ({entry['reason']})" if entry.get("reason") else missing
    if entry["verdict"] == "inconclusive" and entry.get("n_to_decide") and entry.get("decides"):
        return f"inconclusive (would be {entry['decides']} at ~{entry['n_to_decide']})"
    return entry["verdict"]


def drift_section(similarity: dict[str, dict], floor: dict[str, dict], deletion: dict | None) -> str:
    """Per variant, controls included and marked (negative first, positive last): both gates' statistics against
    the positive control's, with bounds and verdicts (decided at 80 % power where inconclusive)."""
    if not similarity and deletion is None:
        return "_Not built: run `make outputs/reports/lime_similarity.md` (and the deletion test)._"
    role_order = [ROLE_NEGATIVE_CONTROL, ROLE_VARIANT, ROLE_POSITIVE_CONTROL]
    # Within a role, the variants' own order (LIME_VARIANTS', as the similarity table has it), not a set's.
    names = sorted(dict.fromkeys([*similarity, *(deletion or {})]),
                   key=lambda n: role_order.index(similarity.get(n, {}).get("role", ROLE_VARIANT)))
    rows = []
    for name in names:
        sim, gate = similarity.get(name, {}), (deletion or {}).get(name, {})
        role = sim.get("role", ROLE_VARIANT)
        rows.append([name, "" if role == ROLE_VARIANT else role.replace("_", " "),
                     fmt_number(sim.get("label_agreement")), sim.get("n", "–"),
                     _bounds(sim.get("d"), sim.get("lower"), sim.get("upper")), _verdict(sim),
                     _bounds(gate.get("d_mean"), gate.get("lower"), gate.get("upper")),
                     _verdict(gate, "–" if deletion is not None else "not built")])
    head = floor.get(HEADLINE, {})
    alpha_eq = next((e.get("alpha_equivalent") for e in similarity.values()
                     if e.get("alpha_equivalent") == e.get("alpha_equivalent") and e.get("alpha_equivalent")), None)
    lines = [f"The rule (declared in `common/explain/verdict.py` before any number here): per instance, d = the "
             f"variant's distance from base − {CONTROL_FRACTION:g} × the positive control's (another fine-tune of the "
             "base recipe) on the same instance. **equivalent**: the upper bound of mean d is below 0 — shown closer "
             "to base than half the distance to another fine-tune — tested at α/m"
             + (f" = {alpha_eq:.4f}" if alpha_eq else "") + " (Bonferroni over the m candidates); **drifted**: the "
             f"{(1 - ALPHA) * 100:.0f} % lower bound is above 0. LIME: the symmetric statistic of two seeds per model "
             f"({HEADLINE}, signed rank-biased overlap)"
             + (f"; LIME's own seed-to-seed {HEADLINE} agreement {head['floor']:.3f} (descriptive)" if head else "")
             + ". Deletion: the distance of the AOPC curves of base's deleted words. Cells: mean d [lower, upper]. "
             "A variant not judged is unverified and never ships.", ""]
    lines.append(tabulate(rows, headers=["variant", "control", "label agr.", "n", f"LIME d ({HEADLINE})",
                                         "LIME verdict", "deletion d", "deletion verdict"],
                          tablefmt="github", disable_numparse=True))
    if deletion is None:
        lines += ["", f"_The deletion test is not built (outputs/reports/{DELETION_CSV} is missing)._"]
    for name in names:
        entry, gate = similarity.get(name, {}), (deletion or {}).get(name, {})
        if entry.get("role") == ROLE_POSITIVE_CONTROL:
            for label, verdict in (("LIME agreement", entry.get("verdict")), ("deletion test", gate.get("verdict"))):
                if verdict != DRIFTED:
                    lines += ["", f"**The {label} is blind here: the positive control `{name}` (another fine-tune of "
                                  f"the base recipe) is {verdict or 'not judged'}, not drifted, so an `equivalent` on "
                                  "this gate says little at these instances.**"]
        if entry.get("role") == ROLE_NEGATIVE_CONTROL and entry.get("verdict") not in (EQUIVALENT, None):
            lines += ["", f"**The negative control `{name}` (an identical function) is {entry['verdict']}, not "
                          "equivalent: the drift verdicts cannot be trusted.**"]
    return "\n".join(lines)


REPORT_HEADERS = {
    "variant": "variant", "accuracy": "acc", "delta_acc_pt": "Δacc pt", "macro_f1": "macro-F1", "size_mb": "MB",
    "params_m": "params M", "encoder_params_m": "encoder M", "latency_p50_ms": "p50 ms", "latency_p95_ms": "p95 ms",
    "throughput": "samples/s", "throughput_ratio": "x base", "x_best_peer": "x best peer", "peak_rss_mb": "peak RSS MB",
    "expl_extra": f"LIME {HEADLINE} extra", "expl_verdict": "LIME verdict", "deletion_verdict": "deletion verdict",
    "pos_verdict": "POS verdict"}


def peer_paragraph(summary: pd.DataFrame | None, frame: pd.DataFrame) -> str:
    """The speed claim against what a user would pick instead: every peer measured in the same benchmark run (their
    rows in summary.csv have ``peer_config``), the best of them, and the fastest variant within 1 pt against it."""
    peers = None if summary is None or PEER_CONFIG not in summary else \
        summary[summary[PEER_CONFIG].notna() & (summary[PEER_CONFIG].astype(str) != "")]
    if peers is None or peers.empty:
        return ("_No peer is in this benchmark (`make bench` with `.venv-interop` and `.venv-openvino` measures "
                "Optimum's and OpenVINO's int8)._")
    measured = peers[peers["status"].astype(str) == "ok"]
    lines = []
    for _, peer in peers.iterrows():
        if str(peer.get("status")) != "ok":
            lines.append(f"`{peer['variant']}` was not measured ({peer.get('status')}).")
    if measured.empty:
        return ("_No peer was measured (" + " ".join(lines) + "); speeds are against base alone, which oversells "
                "them: build the peers' venvs (`make .venv-interop/.installed .venv-openvino/.installed`), then "
                "`make bench`._")
    best = measured.loc[pd.to_numeric(measured["throughput_samples_per_s"]).idxmax()]
    described = "; ".join(f"`{p['variant']}` ({p[PEER_CONFIG]}): accuracy {float(p['accuracy']):.4f}, "
                          f"{float(p['throughput_samples_per_s']):.1f} samples/s at batch 32, batch-1 p50 "
                          f"{float(p['latency_ms_p50']):.2f} ms" for _, p in measured.iterrows())
    text = (f"Against what a user would pick instead, each built from base's folder and measured in the same "
            f"benchmark run with the same protocol: {described}. The best peer here is **`{best['variant']}`**; "
            f"every ratio to a peer below is to it." + (" " + " ".join(lines) if lines else ""))
    found = candidates(frame, "base")
    within = found[0][found[0]["x_best_peer"].notna()] if not isinstance(found, str) and "x_best_peer" in frame \
        else None
    if within is not None and len(within):
        fast = within.sort_values("x_best_peer", ascending=False).iloc[0]
        text += (f" The fastest variant within {ACCURACY_TOLERANCE_PT:.0f} pt of base (controls and explanation gates "
                 f"aside) is `{fast['variant']}` at **{fast['x_best_peer']:.2f}x the best peer's throughput**"
                 + (f" ({fast['throughput_ratio']:.2f}x base fp32)." if pd.notna(fast.get("throughput_ratio")) else "."))
    return text


def _interop_section(interop: Path | None, variants: set[str], report_dir: Path) -> str:
    title = "Artefacts in third-party tools (Optimum, plain transformers)"
    if interop is None or not interop.is_file():
        return "## Artefacts in third-party tools\n\n_Not built: run `make interop`._\n"
    # interop.md is not a prerequisite of the report (it needs its own venv): a table built over another
    # variant list is not shown, rather than bringing variants this report does not cover.
    manifest = manifest_path_for(interop)
    built_for = set(json.loads(manifest.read_text()).get("inputs", {})) if manifest.is_file() else set()
    if not built_for or not built_for <= variants:
        return (f"## {title}\n\n_`{interop}` was built for another list of variants than this report's: rerun "
                "`make interop`._\n")
    return _include(interop, title, "##", report_dir)


def _sp_lime_sections(sp_lime: list[Path], report_dir: Path) -> list[str]:
    if not sp_lime:
        return ["## SP-LIME", "", "_Not built: run `make outputs/sp_lime_sets/base_picked.csv`._", ""]
    parts = []
    for md in sp_lime:
        prefix = md.name[: -len("_sp_lime.md")]
        parts += [_include(md, f"SP-LIME: representative explanations ({prefix})", "##", report_dir),
                  _image(md.parent / f"{prefix}_global_features.png", report_dir, "SP-LIME global features"), ""]
    return parts


def _with_recipe(pick: str, models: Path) -> str:
    """The pick's paragraph, plus which re-fine-tuning recipe built it when it is a pruned graph (its manifest)."""
    shipped = re.match(r"\*\*Ship `pruned(\d+)_", pick)
    manifest = read_manifest(models / "pruned" / f"bert_agnews_{shipped[1]}pct") if shipped else None
    return f"{pick} {recipe_text(manifest)}" if manifest else pick


def build_report(outputs: Path, models: Path, output: Path, knobs: str, metrics: list[Path] | None = None,
                 sp_lime: list[Path] | None = None, interop: Path | None = None) -> str:
    """``metrics``: the per-variant records to show (None: those of the variants summary.csv names, beside it);
    ``sp_lime``: ``<prefix>_sp_lime.md`` sections (None: base's, when built); ``interop``: interop.md or None."""
    started = time.time()
    metrics_dir, reports_dir = outputs / "metrics", outputs / "reports"
    summary_csv = metrics_dir / SUMMARY_CSV
    records = records_beside_summary(summary_csv) if metrics is None else [Path(p) for p in metrics]
    if sp_lime is None:
        sp_lime = [p for p in [outputs / "sp_lime_sets" / "base_sp_lime.md"] if p.is_file()]
    metrics = load_variant_metrics(records)
    summary = load_benchmark_summary(summary_csv)
    similarity, deletion = load_similarity(reports_dir), load_deletion(reports_dir)
    frame, notes = variant_table(metrics, summary, similarity, load_pos(reports_dir), deletion=deletion)
    report_dir = output.parent
    # NaN -> "–", not "nan"; the table shows the verdicts, the drift section the bounds.
    shown = frame[[c for c in REPORT_HEADERS if c in frame.columns]].astype(object).where(frame.notna(), None)
    table = tabulate(shown.rename(columns=REPORT_HEADERS), headers="keys", tablefmt="github", showindex=False,
                     floatfmt=".3f", missingval="–") if len(frame) else "_No variant has been evaluated yet._"
    machine = machine_description()
    versions = library_versions()
    pick, quick_pick = recommend(frame), latency_pick(frame)
    pick = _with_recipe(pick, models)
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
        quick_pick,
        "",
        peer_paragraph(summary, frame),
        "",
        f"Rule: the fastest variant within {ACCURACY_TOLERANCE_PT:.0f} pt of the base accuracy whose verdict is "
        "`equivalent` on both the LIME agreement and the deletion test (the controls are not candidates; a variant "
        "without a verdict on both is unverified and never ships; Bonferroni-corrected over the candidates judged).",
        "",
        "## Every variant",
        "",
        table,
        "",
        *notes,
        "",
        "Accuracy and macro-F1 on the test split; latency at batch 1, throughput at batch 32 (length-sorted dynamic "
        "padding), ratios against the base fp32 PyTorch model (x base) and the best peer of the run (x best peer: "
        "the faster of Optimum's int8 for this CPU and OpenVINO's NNCF int8), both measured in the same benchmark "
        "run. "
        f"LIME {HEADLINE} extra: the symmetric statistic (within-model minus across-model agreement of two LIME "
        "seeds; 0 for an identical function); `base` is the reference (–). The margin (half the positive "
        "control's), bounds and the deletion test: see the drift section.",
        "",
        "## Accuracy vs throughput",
        "",
        _image(metrics_dir / "pareto.png", report_dir, "Pareto plot"),
        "",
        _include(metrics_dir / "summary.md", "Benchmark summary", "###", report_dir),
        _sweep_section(outputs / "sweep" / "sweep.md", report_dir),
        _include(reports_dir / "recipes.md", "Re-fine-tuning recipes side by side (`make recipes`)", "##", report_dir),
        _include(metrics_dir / "properties" / "properties.md", "Model properties", "###", report_dir),
        "## Explanation drift vs base: equivalent, drifted or inconclusive",
        "",
        drift_section(similarity, load_similarity_floor(reports_dir), deletion),
        "",
        _include(reports_dir / "lime_similarity.md", "LIME agreement in detail", "###", report_dir),
        _image(reports_dir / "lime_similarity.png", report_dir, "LIME noise floor and drift verdicts"),
        "",
        _image(reports_dir / "lime_sample_curve.png", report_dir, "Stability vs num_samples"),
        "",
        _include(reports_dir / "pos_analysis.md", "Part-of-speech of explanation words", "##", report_dir),
        _image(reports_dir / "pos_analysis.png", report_dir, "POS analysis"),
        "",
    ]
    parts += _sp_lime_sections([Path(p) for p in sp_lime], report_dir)
    parts += [_interop_section(None if interop is None else Path(interop), set(metrics), report_dir)]
    parts += [
        _include(reports_dir / "mlp.md", "MLP students: cross-entropy vs explanation loss", "##", report_dir),
        _include(reports_dir / "mlp_sweep.md", "λ sweep", "###", report_dir),
        _image(reports_dir / "mlp_sweep.png", report_dir, "lambda sweep"),
        "",
    ]
    text = re.sub(r"\n{3,}", "\n\n", _drop_repeated_images("\n".join(parts)))
    inputs = {name: path for name, path in (
        ("benchmark_summary", summary_csv), ("lime_similarity", reports_dir / SIMILARITY_CSV),
        ("deletion", reports_dir / DELETION_CSV), ("pos_analysis", reports_dir / POS_CSV),
        ("sweep", outputs / "sweep" / "sweep.csv"))
        if path.is_file()}
    manifest = base_manifest("report", {"outputs": outputs, "models": models, "output": output, "knobs": knobs},
                             inputs=inputs)
    manifest.update({"wall_time_s": round(time.time() - started, 3), "variants": sorted(metrics),
                     "metrics_records": [str(p) for p in sorted(records)], "sp_lime": [str(p) for p in sp_lime],
                     "interop": None if interop is None else str(interop),
                     "gates_present": {"lime_agreement": bool(similarity), "deletion": deletion is not None},
                     "recommendation": pick, "latency_recommendation": quick_pick})
    write_text_atomic(output.with_suffix(".csv"), frame.to_csv(index=False))
    write_json_atomic(output.with_suffix(".manifest.json"), manifest)
    write_text_atomic(output, text)  # the Make target, last
    return text
