"""The benchmark's outputs: summary rows, the best variant, summary.md and the accuracy-vs-throughput plot."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common import variants
from common.bench.peers.base import best_peer, peer_ratios
from common.schema import (BATCH_AGREEMENT, BEST_PEER, LATENCY_THREADS, PEER_CONFIG, PEER_RATIO_COLUMNS,
                           SUMMARY_COLUMNS, THROUGHPUT_VS_PEER)

# Int8 variants load with dtype fp32 (the torch dtype of their float parts); what they compute with is int8
# weights and int8 activations, quantized per batch at run time (dynamic; Optimum's peer too) or with scales
# fixed at build time from calibration rows (static), and that is what a reader asks.
def reported_dtype(result: dict) -> str | None:
    return variants.reported_dtype(result.get("kind"), result.get("dtype"))


def is_peer(row: dict) -> bool:
    return bool(row.get(PEER_CONFIG)) or bool(row.get("peer"))


def summary_row(result: dict, baseline: dict | None, peers: list[dict] | dict | None = None) -> dict:
    """One summary.csv row: ``throughput_ratio`` against the baseline, ``x_<peer>`` against each measured peer and
    ``x_best_peer`` against the fastest of them (``best_peer`` names it)."""
    row = {k: result.get(k) for k in SUMMARY_COLUMNS}
    row["dtype"] = reported_dtype(result)
    params = result.get("parameters")
    row["parameters"] = params.get("total") if isinstance(params, dict) else params
    loads = [x for x in result.get("host_load_1min") or [] if x is not None]
    row["host_load_1min"] = max(loads) if loads else None
    if baseline and result.get("status") == "ok":
        row["throughput_ratio"] = result["throughput_samples_per_s"] / baseline["throughput_samples_per_s"]
        row["accuracy_delta_pt"] = 100.0 * (result["accuracy"] - baseline["accuracy"])
    peers = [peers] if isinstance(peers, dict) else list(peers or [])
    best = best_peer(peers)
    if best:
        row[BEST_PEER] = best["variant"]
        if result.get("status") == "ok":
            row.update(peer_ratios(result["throughput_samples_per_s"], peers))
    if result.get("peer"):
        row[PEER_CONFIG] = result.get(PEER_CONFIG) or "(not measured)"
    return row


def best_variant(rows: list[dict], baseline_name: str, max_drop_pt: float = 1.0) -> dict | None:
    """Fastest variant (batch-32 throughput) whose accuracy is within ``max_drop_pt`` of the baseline."""
    ok = [r for r in within(rows, max_drop_pt) if r["variant"] != baseline_name]
    return max(ok, key=lambda r: r["throughput_samples_per_s"], default=None)


def within(rows: list[dict], max_drop_pt: float = 1.0) -> list[dict]:
    """Our measured variants (the baseline included, the peer not) within ``max_drop_pt`` of the baseline."""
    return [r for r in rows if r["status"] == "ok" and not is_peer(r)
            and r.get("accuracy_delta_pt") is not None and r["accuracy_delta_pt"] >= -max_drop_pt]


def picks(rows: list[dict], batch_size: int, max_drop_pt: float = 1.0) -> list[str]:
    """Two sentences: the variant to pick for throughput and the one for latency, each against the best peer (by
    accuracy and speed alone: the report's and the sweep's picks also apply the explanation gates)."""
    candidates = within(rows, max_drop_pt)
    if not candidates:
        return [f"No variant is within {max_drop_pt:.0f} pt of the baseline's accuracy, so none is picked."]
    peer = best_peer([r for r in rows if is_peer(r)])
    fast = max(candidates, key=lambda r: r["throughput_samples_per_s"])
    quick = min(candidates, key=lambda r: r["latency_ms_p50"])
    if peer:
        vs_fast = (f"{fast[THROUGHPUT_VS_PEER]:.2f}x the best peer's ({peer['variant']}) "
                   f"{peer['throughput_samples_per_s']:.1f}")
        vs_quick = (f"{peer['latency_ms_p50'] / quick['latency_ms_p50']:.2f}x faster than the best peer's "
                    f"{peer['latency_ms_p50']:.2f} ms")
    else:
        vs_fast = vs_quick = "no peer measured"
    return [f"For throughput, pick `{fast['variant']}` (within {max_drop_pt:.0f} pt of the baseline): "
            f"{fast['throughput_samples_per_s']:.1f} samples/s at batch {batch_size}, "
            f"{vs_fast}.",
            f"For latency, pick `{quick['variant']}` (within {max_drop_pt:.0f} pt of the baseline): batch-1 p50 "
            f"{quick['latency_ms_p50']:.2f} ms at {quick.get(LATENCY_THREADS)} thread(s), {vs_quick}."]


def fmt_number(value, digits: int = 3):
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return value


def write_summary_md(rows: list[dict], path: Path, context: dict) -> None:
    from tabulate import tabulate

    from common.manifest import write_text_atomic

    shown = ("variant", "status", "kind", "dtype", "accuracy", "accuracy_delta_pt", "macro_f1", BATCH_AGREEMENT,
             "latency_ms_p50", "latency_ms_p95", "latency_ms_p99", LATENCY_THREADS, "throughput_samples_per_s",
             "throughput_ratio", THROUGHPUT_VS_PEER, *PEER_RATIO_COLUMNS, "size_mb", "parameters", "peak_rss_mb",
             "gpu_mem_peak_mb", "gpu_util_mean_percent", "host_load_1min")
    digits = {"accuracy": 4, "macro_f1": 4, "accuracy_delta_pt": 2, "throughput_ratio": 2, THROUGHPUT_VS_PEER: 2,
              **{column: 2 for column in PEER_RATIO_COLUMNS},
              BATCH_AGREEMENT: 4, "latency_ms_p50": 2, "latency_ms_p95": 2, "latency_ms_p99": 2}
    table = [[fmt_number(r.get(k), digits.get(k, 1)) for k in shown] for r in rows]
    for line, r in zip(table, rows):
        if is_peer(r):
            line[0] = f"**{r['variant']}** (peer)"
    best = context.get("best")
    lines = [
        "# Benchmark: every variant side by side", "",
        f"Device {context['device']}, {context['threads']} thread(s), {context['cpu']}; GPU: {context['gpu_status']}.",
        f"Test rows: {context['n_test']} ({context['data']}), max length {context['max_len']}; latency at batch 1 "
        f"({context['latency_requests']} requests after warm-up), throughput at batch {context['batch_size']} over "
        f"{context['throughput_texts']} texts (length-sorted dynamic padding, median of 3 after warm-up); texts are "
        f"tokenized before timing and only the model call is timed. Latency is reported at the best of "
        f"{', '.join(str(t) for t in context['latency_threads'])} thread(s) (`{LATENCY_THREADS}`).",
        f"Throughput ratio and accuracy delta are relative to `{context['baseline']}` measured in this run; "
        f"`x_<peer>` is throughput relative to each peer (rows marked (peer)): Optimum's dynamic int8 for this CPU "
        f"and OpenVINO's NNCF int8 (optimum-intel), each built from `{context['baseline']}`'s folder and measured in "
        f"this run with the same protocol; `{THROUGHPUT_VS_PEER}` is against the faster of them "
        f"({best_peer_text(rows)}). "
        f"Each variant ran in its own process; peak RSS is that process's.",
        f"`{BATCH_AGREEMENT}`: share of the test rows whose predicted class is the same in batches of "
        f"{context['batch_size']} (length-sorted) as one text at a time. Dynamic int8 quantizes activations with "
        f"one scale per batch, so its predictions depend on the batch mates; the others should be 1.0.",
        "Library versions: " + ", ".join(f"{k} {v}" for k, v in context["versions"].items()) + ".", "",
        tabulate(table, headers=list(shown), tablefmt="github"), "",
    ]
    if best:
        lines.append(f"**Fastest variant within 1.0 pt of `{context['baseline']}`: `{best['variant']}`** - accuracy "
                     f"{best['accuracy']:.4f} ({best['accuracy_delta_pt']:+.2f} pt), "
                     f"{best['throughput_samples_per_s']:.1f} samples/s = {best['throughput_ratio']:.2f}x the baseline. "
                     f"This is accuracy and speed alone; what ships is the report's pick, which also requires "
                     f"explanations equivalent to base's.")
    else:
        lines.append(f"No variant is within 1.0 pt of `{context['baseline']}` (or the baseline failed).")
    runs = context.get("baseline_speed_runs")
    if runs and len(runs["throughput_samples_per_s"]) > 1:
        speeds = runs["throughput_samples_per_s"]
        spread = max(speeds) / min(speeds) - 1
        lines += ["", f"The baseline's speed was measured at the start and again at the end of the run "
                      f"({' and '.join(f'{x:.1f}' for x in speeds)} samples/s); every ratio uses the faster one, so a "
                      f"slow baseline measurement cannot inflate them."
                      + (f" The two differ by {spread:.0%}: the host's speed varied during the run, so read "
                         f"ratios below ~{1 + spread:.2f}x as noise." if spread > 0.10 else "")]
    loads = [x for x in context.get("loads", []) if x is not None]
    if loads and max(loads) > 1.5 * context["threads"]:
        lines += ["", f"Note: the host's 1-minute load average reached {max(loads):.1f} on {context['threads']} "
                      f"thread(s) during this run - other processes competed for the cores, so speeds are noisy "
                      f"(torch's thread pool suffers most)."]
    failed = [r for r in rows if is_failed(r)]
    if failed:
        lines += ["", "Failed variants:"] + [f"- `{r['variant']}`: {r['status']}" for r in failed]
    skipped = [r for r in rows if is_skipped(r)]
    if skipped:
        lines += ["", "Skipped variants:"] + [f"- `{r['variant']}`: {r['status'].split(':', 1)[1].strip()}"
                                              for r in skipped]
    reused = [r["variant"] for r in rows if str(r.get("accuracy_source", "")).startswith("reused")]
    if reused:
        lines += ["", "Accuracy reused from an earlier measurement of the identical artefact (same sha256, same "
                      "test rows): " + ", ".join(f"`{v}`" for v in reused) + "; speed was measured in this run."]
    from common.bench.peers.registry import how_to_get

    for name, status in (context.get("peer_statuses") or {}).items():
        if status.startswith("skipped"):
            lines += ["", f"Note: the peer `{name}` was not measured ({status.split(':', 1)[1].strip()}), so "
                          f"`x_{name}` is empty and `{THROUGHPUT_VS_PEER}` is against the other peers only; to get it, "
                          f"{how_to_get(name)}."]
    lines += ["", " ".join(picks(rows, context["batch_size"]))]
    write_text_atomic(path, "\n".join(lines) + "\n")


def best_peer_text(rows: list[dict]) -> str:
    """Which peer was the best in this run, in words."""
    best = best_peer([r for r in rows if is_peer(r)])
    return f"here `{best['variant']}`" if best else "no peer was measured in this run"


def pareto_front(rows: list[dict]) -> list[dict]:
    """Rows no other row beats on both throughput and accuracy, fastest first."""
    front, best_acc = [], -1.0
    for r in sorted(rows, key=lambda r: -r["throughput_samples_per_s"]):
        if r["accuracy"] > best_acc:
            front.append(r)
            best_acc = r["accuracy"]
    return front


# One colour per peer, in the order measured (the sweep's frontier uses the same).
PEER_COLOURS = ("crimson", "darkviolet", "saddlebrown", "teal")


def plot_pareto(rows: list[dict], path: Path, baseline: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.plot_labels import place_labels

    ok = [r for r in rows if r["status"] == "ok" and not is_peer(r)]
    peers = [r for r in rows if r["status"] == "ok" and is_peer(r)]
    fig, ax = plt.subplots(figsize=(10, 6.5))
    ax.set_xlabel("throughput at batch 32 (samples/s, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs throughput (marker area = size on disk)")
    ax.grid(alpha=0.3)
    if ok:
        kinds = sorted({str(r["kind"]) for r in ok})
        colours = {k: plt.cm.tab10(i % 10) for i, k in enumerate(kinds)}
        sizes = np.array([max(float(r["size_mb"] or 0), 1.0) for r in ok])
        scale = 900.0 / sizes.max()
        for r, size in zip(ok, sizes):
            ax.scatter(r["throughput_samples_per_s"], 100 * r["accuracy"], s=size * scale + 15, alpha=0.55,
                       color=colours[str(r["kind"])], edgecolors="black" if r["variant"] == baseline else "none",
                       label=str(r["kind"]))
        # The peers are the references to beat, not ours: a star and a line at each one's throughput.
        for r, colour in zip(peers, PEER_COLOURS):
            ax.scatter(r["throughput_samples_per_s"], 100 * r["accuracy"], s=260, marker="*", color=colour,
                       edgecolors="black", zorder=5, label=f"peer: {r['variant']}")
            ax.axvline(r["throughput_samples_per_s"], color=colour, lw=0.8, ls=":", zorder=1)
        front = pareto_front(ok)
        # A marker as well as the line: a one-point front has no line to show in the legend.
        ax.plot([r["throughput_samples_per_s"] for r in front], [100 * r["accuracy"] for r in front],
                "k--", lw=0.8, marker="D", markersize=5, markerfacecolor="none", label="Pareto front")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        legend = ax.legend(unique.values(), unique.keys(), fontsize=8, loc="lower left", markerscale=0.4)
        ax.set_xscale("log")
        ax.margins(x=0.25, y=0.15)  # room for labels around the outermost points
        fig.tight_layout()
        shown = ok + peers
        place_labels(ax, [r["throughput_samples_per_s"] for r in shown], [100 * r["accuracy"] for r in shown],
                     [f"{r['variant']} ({'peer, ' if is_peer(r) else ''}{r['size_mb']:.0f} MB)" for r in shown], obstacles=[legend],
                     marker_areas=np.concatenate([sizes * scale + 15, np.full(len(peers), 260.0)]))
    else:
        fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def is_skipped(row: dict) -> bool:
    """A row the benchmark did not try, on purpose (its status says why)."""
    return str(row["status"]).startswith("skipped")


def is_failed(row: dict) -> bool:
    """A row the benchmark tried and could not measure."""
    return row["status"] != "ok" and not is_skipped(row)


def cpu_name() -> str:
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} logical cores)"
