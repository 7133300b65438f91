"""Benchmark summary columns and the legibility facts of pareto.png and mlp_sweep.png (issue 14).

The figures are captured before they are closed and checked for what a reader needs: labels that do not
overlap, a Pareto-front legend entry with a marker, lambda ticks that are the swept values, accuracy bands
inside [0, 1]. Each check also runs on a planted bad case it must reject.
"""
from __future__ import annotations


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from common.bench.summary import pareto_front, plot_pareto, summary_row  # noqa: E402
from common.mlp.evaluation import _plot_sweep  # noqa: E402
from common.mlp.explained import mean_ci, metric_bounds  # noqa: E402
from common.plot_labels import overlap_count, place_labels  # noqa: E402
from common.variants import KINDS  # noqa: E402


@pytest.fixture
def captured_figures(monkeypatch):
    """The figures the plotting code closes, kept open for inspection."""
    figures, real_close = [], plt.close
    monkeypatch.setattr(plt, "close", figures.append)
    yield figures
    for fig in figures:
        real_close(fig)


def bench_rows() -> list[dict]:
    """Shaped like the real run: the int8 variants sit close together."""
    spec = [("base", "torch", "fp32", 0.8995, 137.0, 87), ("base_8bit", "torch-int8", "fp32", 0.8975, 330.0, 55),
            ("pruned30", "torch", "fp32", 0.8987, 192.0, 68), ("pruned30_8bit", "torch-int8", "fp32", 0.8970, 470.0, 40),
            ("base_onnx_int8", "onnx-int8", "fp32", 0.8968, 557.0, 22),
            ("pruned20_onnx_int8", "onnx-int8", "fp32", 0.8972, 610.0, 54),
            ("pruned30_onnx_int8", "onnx-int8", "fp32", 0.8971, 640.0, 19),
            ("pruned30_onnx", "onnx", "fp32", 0.8987, 280.0, 68), ("base_bf16", "torch", "bf16", 0.8990, 410.0, 87)]
    return [{"variant": v, "kind": k, "dtype": d, "accuracy": a, "throughput_samples_per_s": t, "size_mb": s,
             "status": "ok"} for v, k, d, a, t, s in spec]


def test_summary_dtype_of_int8_variants_says_int8():
    rows = {r["variant"]: summary_row(r, None) for r in bench_rows()}
    assert rows["base_8bit"]["dtype"] == rows["pruned30_onnx_int8"]["dtype"] == KINDS["onnx-int8"][0]
    assert rows["base"]["dtype"] == "fp32" and rows["pruned30_onnx"]["dtype"] == "fp32"
    assert rows["base_bf16"]["dtype"] == "bf16"


def test_onnx_parameter_count_has_the_encoder_of_the_properties_table(tiny_bert, tmp_path):
    from common.models.classifier import load_classifier
    from common.bench.properties import onnx_properties
    from export_onnx.export_onnx import main as export_main

    graph = tmp_path / "base.onnx"
    assert export_main(["--model", str(tiny_bert), "--output", str(graph), "--max-len", "32"]) == 0
    counts = load_classifier(graph, device="cpu").parameter_count()
    assert counts["encoder"] > 0 and counts == onnx_properties(graph)["parameters"]
    # An untrained model's equal (zero) biases are stored once by the exporter, so compare loosely with torch.
    torch_counts = load_classifier(tiny_bert, device="cpu").parameter_count()
    assert 0.8 * torch_counts["encoder"] <= counts["encoder"] <= torch_counts["encoder"]


def _label_boxes(ax):
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    # The text's own box: an annotation's extent would include its leader line.
    return [Text.get_window_extent(t, renderer) for t in ax.texts]


def test_pareto_labels_do_not_overlap_and_a_one_point_front_shows_a_marker(captured_figures, tmp_path):
    rows = bench_rows()
    for r in rows:  # one variant beats every other on both axes: a one-point front
        r["accuracy"] -= 0.01 * (r["variant"] != "pruned30_onnx_int8")
    assert [r["variant"] for r in pareto_front(rows)] == ["pruned30_onnx_int8"]
    plot_pareto(rows, tmp_path / "pareto.png", "base")
    (fig,) = captured_figures
    ax = fig.axes[0]
    boxes = _label_boxes(ax)
    assert len(boxes) == len(rows) and overlap_count(boxes) == 0
    area = ax.get_window_extent()
    assert all(b.x0 >= area.x0 - 1 and b.x1 <= area.x1 + 1 and b.y0 >= area.y0 - 1 and b.y1 <= area.y1 + 1
               for b in boxes)
    legend = ax.get_legend()
    (front,) = [h for h, t in zip(legend.legend_handles, legend.get_texts()) if t.get_text() == "Pareto front"]
    assert front.get_marker() not in (None, "", "None", " ")
    assert (tmp_path / "pareto.png").stat().st_size > 0


def test_label_placement_beats_fixed_offsets_on_a_cluster():
    """The planted case: labels at one fixed offset from clustered points overlap; placed ones do not."""
    xs, ys = np.array([500, 505, 510, 515, 520, 525]), np.array([89.70, 89.71, 89.70, 89.72, 89.71, 89.70])
    texts = [f"pruned{i}_onnx_int8 ({i} MB)" for i in range(len(xs))]
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter(xs, ys)
    ax.set_xlim(300, 800)
    ax.set_ylim(89.5, 89.9)
    for x, y, t in zip(xs, ys, texts):
        ax.annotate(t, (x, y), xytext=(4, 5), textcoords="offset points", fontsize=7)
    assert overlap_count(_label_boxes(ax)) > 0
    for text in list(ax.texts):
        text.remove()
    place_labels(ax, xs, ys, texts)
    assert overlap_count(_label_boxes(ax)) == 0
    plt.close(fig)


def test_ci_bounds_keep_accuracy_inside_0_1():
    values = [0.99, 1.0, 0.97]
    assert mean_ci(values)["ci_high"] > 1.0  # the planted case: a plain t-interval
    clipped = mean_ci(values, bounds=metric_bounds("accuracy"))
    assert clipped["ci_high"] == 1.0 and clipped["ci_low"] == mean_ci(values)["ci_low"]
    assert metric_bounds("own_spearman_pred") == (-1.0, 1.0) and metric_bounds("accuracy_difference") is None


def test_sweep_plot_ticks_are_the_lambdas_and_bands_stay_in_range(captured_figures, tmp_path):
    lambdas = [0, 0.1, 0.3, 1, 3]
    rng = np.random.default_rng(0)
    rows = []
    for lam in lambdas:
        entry = {"lambda": lam}
        for key in ("accuracy", "own_spearman_pred"):
            stats = mean_ci(list(np.minimum(0.985 + rng.normal(0, 0.02, 3), 1.0)))  # unclipped, as an old CSV
            entry.update({key: stats["mean"], f"{key}_ci_low": stats["ci_low"], f"{key}_ci_high": stats["ci_high"]})
        rows.append(entry)
    summary = pd.DataFrame(rows)
    assert (summary["accuracy_ci_high"] > 1).any()  # the planted case the plot must not show
    _plot_sweep(summary, ["accuracy", "own_spearman_pred"], tmp_path / "mlp_sweep.png")
    (fig,) = captured_figures
    for ax in fig.axes:
        fig.canvas.draw()
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.1", "0.3", "1", "3"]
        assert list(ax.get_xticks()) == lambdas
    bands = [c for c in fig.axes[0].collections if c.get_paths()]
    assert bands and max(p.vertices[:, 1].max() for c in bands for p in c.get_paths()) <= 1.0
    assert (tmp_path / "mlp_sweep.png").stat().st_size > 0
