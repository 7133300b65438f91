"""The shipping rule: one row per variant (accuracy, speed, size, explanation verdicts) and the pick.

**Shipping rule** (:func:`recommend`): the fastest variant within 1 pt of the base accuracy whose verdict
is ``equivalent`` on both the LIME agreement and the deletion test. Controls are never candidates.
**Eligibility** is one rule for the report and the sweep (:func:`explanation_failures`): a variant without a
verdict on every gate of :data:`common.explain.gates.GATES` is *unverified* and never ships; a presumption
from a sibling graph is a note, never a verdict. The verdicts are already corrected for multiplicity
(Bonferroni over the candidates the LIME and deletion stages judged, :mod:`common.explain.verdict`).
"Fastest" is batch-32 throughput; :func:`latency_pick` applies the same rule to batch-1 p50 latency, for a
user who serves one request at a time. Speed is stated against base and, when the benchmark measured them,
against the best peer of the same run (``x_best_peer``: the faster of Optimum's int8 for this CPU and OpenVINO's NNCF
int8): what a user would pick instead.
"""
from __future__ import annotations

import pandas as pd

from common.explain.drift import HEADLINE, ROLE_POSITIVE_CONTROL
from common.schema import (ACCURACY_TOLERANCE_PT, BEST_PEER, LATENCY_THREADS, RECORD_THROUGHPUT, SUMMARY_VARIANT,
                           THROUGHPUT_VS_PEER)
from common.explain.gates import GATES
from common.explain.verdict import EQUIVALENT, decide_text


# The sweep's target: the pick at >= 2x the throughput of the int8 a user would otherwise ship (the best peer's).
PEER_TARGET_RATIO = 2.0


def variant_table(metrics: dict[str, dict], summary: pd.DataFrame | None, similarity: dict, pos: dict,
                  baseline: str = "base", deletion: dict | None = None) -> tuple[pd.DataFrame, list[str]]:
    """One row per variant record. ``summary`` (summary.csv) names the variants one benchmark run measured:
    their throughput ratio is taken against the baseline's record of that same run."""
    rows = []
    benchmarked = set() if summary is None else set(summary[SUMMARY_VARIANT].astype(str))
    vs_peer = {} if summary is None or THROUGHPUT_VS_PEER not in summary else \
        dict(zip(summary[SUMMARY_VARIANT].astype(str), pd.to_numeric(summary[THROUGHPUT_VS_PEER], errors="coerce")))
    best_peer = None
    if summary is not None and BEST_PEER in summary:
        named = summary[BEST_PEER].dropna().astype(str)
        best_peer = named.iloc[0] if len(named) else None
    base = metrics.get(baseline)
    for name, m in metrics.items():
        params = m.get("parameters") or {}
        sim = similarity.get(name, {})
        gate = (deletion or {}).get(name, {})
        ratio = None
        if base is not None and {name, baseline} <= benchmarked:
            ratio = m[RECORD_THROUGHPUT] / base[RECORD_THROUGHPUT]
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
            "x_best_peer": None if pd.isna(vs_peer.get(name, float("nan"))) else float(vs_peer[name]),
            "best_peer": best_peer,
            "latency_threads": m.get(LATENCY_THREADS),
            "peak_rss_mb": m.get("peak_rss_mb"),
            "expl_role": sim.get("role"),
            "expl_extra": sim.get("extra"),
            "expl_lower": sim.get("lower"),
            "expl_upper": sim.get("upper"),
            "expl_margin": sim.get("margin"),
            "expl_verdict": sim.get("verdict") or None,
            "expl_n": sim.get("n"),
            "expl_n_to_decide": sim.get("n_to_decide"),
            "expl_decides": sim.get("decides"),
            "expl_reason": sim.get("reason"),
            "expl_control_extra": sim.get("control_extra"),
            "expl_d": sim.get("d"),
            "deletion_verdict": gate.get("verdict") or None,
            "deletion_n_to_decide": gate.get("n_to_decide"),
            "deletion_decides": gate.get("decides"),
            "deletion_reason": gate.get("reason"),
            "pos_extra_js": (pos.get(name) or {}).get("extra_js"),
            "pos_verdict": (pos.get(name) or {}).get("verdict"),
        })
    frame = pd.DataFrame(rows)
    notes = []
    if summary is None and len(frame):
        notes.append("Throughput ratios need `make bench` (outputs/metrics/summary.csv); they are left blank.")
    return frame, notes


def explanation_failures(row, gates=GATES, columns: str = "table") -> list[str]:
    """Why ``row`` may not ship on explanations (empty: it is ``equivalent`` on every gate). The one eligibility
    rule of the report and the sweep: a gate with no verdict for the variant makes it *unverified*.
    ``columns`` picks where a gate's verdict is read: the report's table (``table``) or the sweep's rows."""
    out = []
    for gate in gates:
        label = gate.label
        verdict = row.get(gate.table_column if columns == "table" else gate.sweep_column)
        if not isinstance(verdict, str) or not verdict:
            reason = row.get(gate.reason_column) if columns == "table" else None
            out.append(f"unverified: no {label} verdict" + (f" ({reason})" if isinstance(reason, str) and reason else ""))
        elif verdict != EQUIVALENT:
            more = ""
            if columns == "table":
                decide, way = row.get(gate.decide_column), row.get(gate.decides_column)
                if pd.notna(decide) and isinstance(way, str) and way:
                    text = decide_text({"verdict": verdict, "n_to_decide": decide, "decides": way})
                    more = f", {text}" if text else ""
            out.append(f"{label} {verdict}{more}")
    return out


def _speed_text(row) -> str:
    text = (f"{row['throughput_ratio']:.2f}x the base throughput" if pd.notna(row.get("throughput_ratio"))
            else f"{row['throughput']:.1f} samples/s")
    if pd.notna(row.get("x_best_peer")):
        text += f" ({row['x_best_peer']:.2f}x the best peer, {row.get('best_peer')})"
    return text


def _latency_text(row) -> str:
    threads = row.get("latency_threads")
    at = f" at {int(threads)} thread(s)" if pd.notna(threads) else ""
    return f"batch-1 p50 {row['latency_p50_ms']:.2f} ms{at}"


def _lime_text(row) -> str:
    if not isinstance(row.get("expl_verdict"), str):
        return ""
    return (f"LIME agreement {row['expl_verdict']} ({HEADLINE} extra {row['expl_extra']:+.3f} against the control's "
            f"{row['expl_control_extra']:+.3f}: d {row['expl_d']:+.3f}, upper bound {row['expl_upper']:+.3f} < 0, "
            f"n = {int(row['expl_n'])})")


def candidates(frame: pd.DataFrame, baseline: str):
    """(variants within 1 pt of base that are not controls, the gates that were run, caveats), or a sentence
    saying why there is nothing to pick from."""
    if frame.empty or frame["delta_acc_pt"].isna().all():
        return "No recommendation: the base model's metrics are missing."
    role = frame["expl_role"] if "expl_role" in frame else pd.Series(None, index=frame.index)
    ok = frame[(frame["delta_acc_pt"] >= -ACCURACY_TOLERANCE_PT - 1e-9)  # float noise at exactly 1 pt
               & (frame["variant"] != baseline) & (role.astype(str) != ROLE_POSITIVE_CONTROL)]
    if ok.empty:
        return f"No compressed variant stays within {ACCURACY_TOLERANCE_PT:.0f} pt of the base accuracy: keep `{baseline}`."
    missing = [g for g in GATES if g.table_column not in frame or not frame[g.table_column].notna().any()]
    caveats = [f"The {g.short} gate is missing (outputs/reports/{g.report_file} not built), so every variant is "
               "unverified on it." for g in missing]
    return ok, GATES, caveats


def latency_pick(frame: pd.DataFrame, baseline: str = "base") -> str:
    """The shipping rule with batch-1 p50 latency as the speed: one sentence (the same gates as :func:`recommend`)."""
    found = candidates(frame, baseline)
    if isinstance(found, str):
        return found
    ok, gates, _ = found
    ok = ok[ok["latency_p50_ms"].notna()].sort_values("latency_p50_ms")
    passing = [r for r in ok.to_dict("records") if not explanation_failures(r, gates)]
    if not passing:
        return f"For latency: no compressed variant within 1 pt passes the explanation gates; keep `{baseline}`."
    best = passing[0]
    base = frame[frame["variant"] == baseline]
    versus = ""
    if len(base) and pd.notna(base["latency_p50_ms"].iloc[0]):
        versus = f", {base['latency_p50_ms'].iloc[0] / best['latency_p50_ms']:.2f}x faster than base's"
    return (f"For one request at a time (latency), pick `{best['variant']}`: {_latency_text(best)}{versus}; it passes "
            "the same gates.")


def recommend(frame: pd.DataFrame, baseline: str = "base") -> str:
    """The fastest variant within 1 pt of base accuracy that is ``equivalent`` on both the LIME agreement and
    the deletion test; the faster variants that failed a gate, and the runner-up. A gate whose results are
    missing altogether is named as missing, never silently skipped."""
    found = candidates(frame, baseline)
    if isinstance(found, str):
        return found
    ok, gates, caveats = found
    speed = "throughput_ratio" if ok["throughput_ratio"].notna().any() else "throughput"
    ok = ok.sort_values(speed, ascending=False)
    rows = ok.to_dict("records")
    failures = {r["variant"]: explanation_failures(r, gates) for r in rows}
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
