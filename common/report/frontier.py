"""The sweep's frontier plot: accuracy vs throughput of every pruned graph, the references, the pick."""
from __future__ import annotations

from pathlib import Path

from common.report.pick import ACCURACY_TOLERANCE_PT, PEER_TARGET_RATIO


def plot_frontier(rows: list[dict], references: list[dict] | dict | None, baseline: str, pick_name: str | None,
                  path: Path) -> None:
    """Accuracy vs throughput: a line per quantization mode through the percentages, base fp32 and the peers as
    references (the target line at 2x the best peer), the within-1-pt band shaded, the variants whose explanations
    failed a gate crossed, the pick ringed."""
    from common.bench.summary import PEER_COLOURS

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok"]
    base = next(r for r in ok if r["variant"] == baseline)
    fig, ax = plt.subplots(figsize=(9, 6))
    styles = {"dynamic": ("tab:blue", "o", (-6, 12), "ORT dynamic int8"),
              "static": ("tab:orange", "s", (9, -15), "ORT static int8"),
              "ov_fp32": ("tab:gray", "v", (9, 8), "OpenVINO fp32"),
              "ov_int8": ("tab:green", "^", (-14, -15), "OpenVINO NNCF int8")}
    for mode, (colour, marker, label_offset, text) in styles.items():
        points = sorted((r for r in ok if r["quantization"] == mode), key=lambda r: r["sparsity_requested_pct"])
        if not points:
            continue
        ax.plot([r["throughput_samples_per_s"] for r in points], [100 * r["accuracy"] for r in points],
                marker=marker, color=colour, label=f"{text} (label: pruning %)")
        for r in points:
            ax.annotate(f"{r['sparsity_requested_pct']}%", (r["throughput_samples_per_s"], 100 * r["accuracy"]),
                        textcoords="offset points", xytext=label_offset, fontsize=8, color=colour)
    ax.scatter([base["throughput_samples_per_s"]], [100 * base["accuracy"]], marker="D", s=70, color="black",
               zorder=5, label=f"{baseline} (PyTorch fp32)")
    references = [references] if isinstance(references, dict) else list(references or [])
    for reference, colour in zip(references, PEER_COLOURS):
        ax.scatter([reference["throughput_samples_per_s"]], [100 * reference["accuracy"]], marker="*", s=260,
                   color=colour, edgecolors="black", zorder=5, label=f"peer: {reference['variant']}")
        ax.axvline(reference["throughput_samples_per_s"], color=colour, lw=0.8, ls=":")
        if reference.get("best", len(references) == 1):
            ax.axvline(PEER_TARGET_RATIO * reference["throughput_samples_per_s"], color=colour, lw=0.8, ls="--",
                       label=f"{PEER_TARGET_RATIO:.0f}x the best peer's throughput")
    failed = [r for r in ok if r.get("explanation_failures") and r["variant"] != baseline]
    if failed:
        ax.scatter([r["throughput_samples_per_s"] for r in failed], [100 * r["accuracy"] for r in failed], marker="x",
                   s=90, color="black", linewidths=1.6, zorder=6,
                   label="explanations not equivalent to base's (measured or presumed)")
    chosen = next((r for r in ok if r["variant"] == pick_name), None)
    if chosen:
        ax.scatter([chosen["throughput_samples_per_s"]], [100 * chosen["accuracy"]], s=300, facecolors="none",
                   edgecolors="green", linewidths=2.2, zorder=6, label=f"pick: {pick_name}")
    ax.margins(x=0.08, y=0.15)
    low, high = ax.get_ylim()
    band_low = 100 * base["accuracy"] - ACCURACY_TOLERANCE_PT
    ax.axhspan(band_low, max(high, band_low), color="green", alpha=0.08, zorder=0,
               label=f"within {ACCURACY_TOLERANCE_PT:g} pt of {baseline}")
    ax.axhline(band_low, color="green", lw=0.8)
    ax.set_ylim(min(low, band_low - 0.2), high)
    ax.set_xlabel("throughput at batch 32 (samples/s)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Sparsity sweep: accuracy vs throughput")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    from common.manifest import atomic_output_file

    with atomic_output_file(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
