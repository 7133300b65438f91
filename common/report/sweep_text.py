"""The sweep's sweep.md: the table (a row per variant, then the peers), the pick's sentences, the notes."""
from __future__ import annotations

from common.bench.summary import fmt_number
from common.variants import SWEEP_MODES

# The table's order: by quantization mode (common.variants.SWEEP_MODES), then percentage.
MODE_ORDER = {mode: i for i, mode in enumerate(SWEEP_MODES)}


def sweep_markdown(rows: list[dict], references: list[dict], choice: dict, sentences: list[str], refine: str,
                   context: dict) -> str:
    from tabulate import tabulate

    headers = ["variant", "quant", "pct", "encoder sparsity %", "accuracy", "Δ pt", "samples/s", "x base",
               "x best peer", "p50 ms", "MB", "acc. after pruning", "acc. after re-FT", "re-FT s", "LIME", "deletion"]
    table = []
    for r in sorted(rows, key=lambda r: (MODE_ORDER.get(r["quantization"], len(MODE_ORDER)), r["sparsity_requested_pct"])):
        name = f"**{r['variant']}** (pick)" if r["variant"] == choice["variant"] else r["variant"]
        if r["status"] != "ok":
            table.append([name, "", r["sparsity_requested_pct"], "", r["status"]] + [""] * 11)
            continue
        table.append([name, r["quantization"], r["sparsity_requested_pct"], fmt_number(100 * r["encoder_sparsity"], 1),
                      fmt_number(r["accuracy"], 4), fmt_number(r["accuracy_delta_pt"], 2), fmt_number(r["throughput_samples_per_s"], 1),
                      fmt_number(r["x_base"], 2), fmt_number(r["x_best_peer"], 2), fmt_number(r["latency_ms_p50"], 2), fmt_number(r["size_mb"], 1),
                      fmt_number(r["accuracy_after_pruning"], 4), fmt_number(r["accuracy_after_refinetune"], 4),
                      fmt_number(r["refinetune_wall_s"], 0), r["lime_verdict"] or "", r["deletion_verdict"] or ""])
    for reference in references:
        table.append([f"{reference['variant']} ({'best ' if reference['best'] else ''}peer)",
                      reference["quantization"], "", "",
                      fmt_number(reference["accuracy"], 4), fmt_number(reference["accuracy_delta_pt"], 2),
                      fmt_number(reference["throughput_samples_per_s"], 1), fmt_number(reference["x_base"], 2),
                      fmt_number(reference["x_best_peer"], 2),
                      fmt_number(reference["latency_ms_p50"], 2), fmt_number(reference["size_mb"], 1)] + [""] * 5)
    lines = [
        "# Sparsity sweep: the accuracy-speed frontier", "",
        f"One benchmark run over {len(rows)} variants (`{context['bench_dir']}`): accuracy on {context['n_test']} test "
        f"rows, throughput at batch 32, batch-1 latency p50; `x base` against `{context['baseline']}` (PyTorch fp32) "
        "and `x best peer` against the faster of the peers (Optimum's dynamic int8 for this CPU, OpenVINO's NNCF "
        f"int8; {context['best_peer_text']}), all measured in the same run (each peer's own ratio: sweep.csv, "
        "`x_<peer>`). `quant`: fp32, ONNX Runtime `dynamic`/`static` int8, or the same graph run by OpenVINO "
        "(`ov_fp32`, `ov_int8`: NNCF static int8). `pct` is the "
        "requested pruning percentage, `encoder sparsity` the share of encoder parameters removed. `acc. after "
        "pruning` / `acc. after re-FT`: the pruning stage's accuracy of the masked fp32 model before and after "
        "re-fine-tuning (`re-FT s`: its wall time). `LIME` / `deletion`: the explanation verdicts, blank where "
        "not built.", "",
        tabulate(table, headers=headers, tablefmt="github", disable_numparse=True), "",
        " ".join(sentences), "",
        refine, "",
        "![accuracy vs throughput per quantization mode](frontier.png)",
    ]
    for name, status in context["peer_statuses"].items():
        if status != "ok":
            lines += ["", f"Note: the peer `{name}` was not measured ({status})."]
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed variants:"] + [f"- `{r['variant']}`: {r['status']}" for r in failed]
    return "\n".join(lines) + "\n"
