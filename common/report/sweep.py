"""The sparsity sweep: accuracy vs speed at every pruning percentage, the frontier plot and the pick.

Inputs are files the caller names, never logs: the records of ONE benchmark run (``<variant>.bench.json``:
base fp32, base's ONNX Runtime and OpenVINO graphs, every percentage's, and every peer's record), each
percentage's pruning manifest (sparsity achieved, accuracy right after pruning and after re-fine-tuning,
re-fine-tuning wall time) and, where they were built, the explanation verdicts (lime_similarity.csv,
deletion.csv). Outputs: sweep.csv, frontier.png, sweep.manifest.json and, last (the Make target), sweep.md.

**The pick** (:func:`pick`) is the report's shipping rule (:func:`common.report.pick.recommend`), so the sweep and
the report pick the same variant from the same verdicts: the fastest variant (batch-32 throughput) within
``ACCURACY_TOLERANCE_PT`` of base accuracy that is ``equivalent`` on both the LIME agreement and the deletion
test, by the same eligibility function (:func:`common.report.pick.explanation_failures`). The most compressed
eligible variant (highest achieved encoder sparsity) is named beside it, for a user who cares about size.
A variant without a verdict on a gate is *unverified* and never eligible; where another graph of the same pruned
model, or of a less pruned one, is ``drifted`` on that gate, the note says so (:func:`_sibling_drift`), and the
pick names the command that would decide. Nothing eligible: keep base.
When the gates rejected the fastest variant within the tolerance, the pick says so, with its ratio to the best
peer: the price of explanations that stay equivalent. Every ratio to a peer is to the **best peer** of the run (the
fastest measured of Optimum's and OpenVINO's int8, :func:`common.bench.peers.base.best_peer`), and each peer also
has a column of its own (``x_<peer>``).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from common.cli import UserError
from common.report.inputs import read_json_object
from common.report.frontier import plot_frontier
from common.report.pick import ACCURACY_TOLERANCE_PT, PEER_TARGET_RATIO, explanation_failures
from common.report.recipes import recipe_text
from common.bench.peers.base import best_peer, peer_ratios
from common.schema import PEER_RATIO_COLUMNS, RECORD_ACCURACY, RECORD_STATUS, RECORD_THROUGHPUT, RECORD_VARIANT
from common.stage import StageConfig, flag
from common.report.sweep_text import sweep_markdown
from common.variants import MODE_TEXT, sweep_mode
from common.explain.gates import GATES
from common.explain.verdict import DRIFTED, EQUIVALENT

log = logging.getLogger(__name__)

# The after-re-fine-tuning drop "grows with sparsity" when the most pruned percentage loses more than this many
# points beyond the least pruned one: half the shipping tolerance, well above the 0.1-0.2 pt that separate
# two evaluations of one model on 7,600 rows, so noise alone does not trigger the advice.
DROP_GROWTH_PT = ACCURACY_TOLERANCE_PT / 2
PRUNED_NAME = re.compile(r"^pruned(\d+)_")
DECIDE_NOTE = ("minutes per variant once the report's LIME is built, hours before; keep LIME_EXTRA on later "
               "`make report`/`make sweep` runs, or their verdicts are rebuilt without these variants")
SWEEP_COLUMNS = ["variant", "status", "quantization", "sparsity_requested_pct", "encoder_sparsity", "accuracy",
                 "accuracy_delta_pt", "throughput_samples_per_s", "x_base", "x_best_peer", *PEER_RATIO_COLUMNS,
                 "latency_ms_p50", "size_mb",
                 "n_test", "accuracy_after_pruning", "accuracy_after_refinetune", "refinetune_drop_pt",
                 "refinetune_recovered_pt", "refinetune_wall_s", "lime_verdict", "deletion_verdict",
                 "explanation_failures", "eligible", "pick"]


# ----------------------------------------------------------------------------------------------- inputs
def load_records(paths: list[str]) -> dict[str, dict]:
    """variant -> its benchmark record, for exactly the files given; failed variants kept (status says why)."""
    records = {}
    for path in map(Path, paths):
        record = read_json_object(path, "a benchmark record", "run `make sweep` (one benchmark run writes every record)")
        if RECORD_VARIANT not in record or RECORD_STATUS not in record:
            raise UserError(f"{path} lacks `{RECORD_VARIANT}`/`{RECORD_STATUS}`: it is not a benchmark record; "
                            "run `make sweep` to rewrite it.")
        if record[RECORD_VARIANT] in records:
            raise UserError(f"{path}: variant {record[RECORD_VARIANT]} is given twice; pass each record once.")
        records[record[RECORD_VARIANT]] = {**record, "_path": str(path)}
    tests = {r.get("test_sha256") for r in records.values() if r[RECORD_STATUS] == "ok"}
    if len(tests) > 1:
        raise UserError("The benchmark records were measured on different test rows (test_sha256 differs); "
                        "run `make sweep` so one benchmark run measures them all.")
    return records


def load_pruning(paths: list[str]) -> dict[int, dict]:
    """requested percentage -> what the sweep shows of that pruning run (its manifest)."""
    out = {}
    for path in map(Path, paths):
        manifest = read_json_object(path, "a pruning manifest", f"build it with `make {path}`")
        try:
            pct = int(round(float(manifest["sparsity_requested_pct"])))
            out[pct] = {
                "encoder_sparsity": float(manifest["sparsity_achieved"]["encoder_parameters"]),
                "accuracy_after_pruning": float(manifest["accuracy_after_pruning"]),
                "accuracy_after_refinetune": float(manifest["accuracy_after_refinetune"]),
                "refinetune_wall_s": float(manifest["training"]["train_wall_s"]),
                "source_accuracy": manifest.get("source_accuracy"),
                "epochs": (manifest.get("arguments") or {}).get("epochs"),
                "recipe": recipe_text(manifest),
                "path": str(path),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path} lacks the pruning result {exc} (an older pruning run?); rebuild it with "
                            f"`make {path}`.") from None
    return out


def load_peers(paths: list[str]) -> list[dict]:
    """Every peer's record of the run (ok, skipped or failed), in the order given."""
    return [read_json_object(Path(path), "a peer's record", "run `make sweep` (the benchmark run writes it)")
            for path in paths if path]


def load_verdicts(reports_dir: str) -> tuple[dict, dict]:
    """variant -> LIME agreement verdict, variant -> deletion verdict; empty where the report was not built."""
    from common.report.inputs import load_deletion, load_similarity

    folder = Path(reports_dir)
    lime = {name: entry.get("verdict") for name, entry in load_similarity(folder).items() if entry.get("verdict")}
    deletion = {name: entry.get("verdict") for name, entry in (load_deletion(folder) or {}).items()
                if isinstance(entry.get("verdict"), str)}
    return lime, deletion


# ----------------------------------------------------------------------------------------------- rows
def sweep_rows(records: dict[str, dict], pruning: dict[int, dict], peers: list[dict] | dict | None, baseline: str,
               lime: dict | None = None, deletion: dict | None = None) -> list[dict]:
    """One row per benchmarked variant (the peers excluded: they are the references, see :func:`peer_rows`)."""
    peers = _as_list(peers)
    base = records.get(baseline)
    if base is None or base[RECORD_STATUS] != "ok":
        why = "no record was given" if base is None else base[RECORD_STATUS]
        raise UserError(f"The baseline {baseline} has no usable benchmark record ({why}); pass its "
                        f"--record outputs/sweep/{baseline}.bench.json from a run where it succeeded.")
    rows = []
    for name, record in records.items():
        match = PRUNED_NAME.match(name)
        pct = int(match.group(1)) if match else 0
        if match and pct not in pruning:
            raise UserError(f"{record['_path']} is variant {name} but no --pruning-manifest has sparsity {pct}; "
                            f"pass models/pruned/bert_agnews_{pct}pct/manifest.json.")
        prune = pruning.get(pct, {})
        ok = record[RECORD_STATUS] == "ok"
        source = prune.get("source_accuracy") or base[RECORD_ACCURACY]
        row = {
            "variant": name, "status": record[RECORD_STATUS],
            "quantization": sweep_mode(record.get("kind")) if ok else None,
            "sparsity_requested_pct": pct, "encoder_sparsity": prune.get("encoder_sparsity", 0.0),
            "accuracy": record.get(RECORD_ACCURACY),
            "accuracy_delta_pt": 100 * (record[RECORD_ACCURACY] - base[RECORD_ACCURACY]) if ok else None,
            "throughput_samples_per_s": record.get(RECORD_THROUGHPUT),
            "x_base": record[RECORD_THROUGHPUT] / base[RECORD_THROUGHPUT] if ok else None,
            **peer_ratios(record[RECORD_THROUGHPUT] if ok else None, peers),
            "latency_ms_p50": record.get("latency_ms_p50"), "size_mb": record.get("size_mb"),
            "n_test": record.get("n_test"),
            "accuracy_after_pruning": prune.get("accuracy_after_pruning"),
            "accuracy_after_refinetune": prune.get("accuracy_after_refinetune"),
            "refinetune_drop_pt": 100 * (source - prune["accuracy_after_refinetune"]) if prune else None,
            "refinetune_recovered_pt": (100 * (prune["accuracy_after_refinetune"] - prune["accuracy_after_pruning"])
                                        if prune else None),
            "refinetune_wall_s": prune.get("refinetune_wall_s"), "recipe": prune.get("recipe"),
            "lime_verdict": (lime or {}).get(name), "deletion_verdict": (deletion or {}).get(name),
        }
        rows.append(row)
    return rows


def _as_list(peers) -> list[dict]:
    return [peers] if isinstance(peers, dict) else [p for p in (peers or []) if p]


# How each peer quantizes, for its reference row.
PEER_QUANTIZATION = {"optimum_int8": "dynamic (Optimum)", "openvino_int8": "static (OpenVINO NNCF)"}


def peer_rows(peers: list[dict] | dict | None, base: dict) -> list[dict]:
    """The measured peers as reference rows of the table, in the order given (``best``: the fastest)."""
    peers = _as_list(peers)
    best = best_peer(peers)
    return [{"variant": p[RECORD_VARIANT], "quantization": PEER_QUANTIZATION.get(p[RECORD_VARIANT], "peer"),
             "accuracy": p[RECORD_ACCURACY], "accuracy_delta_pt": 100 * (p[RECORD_ACCURACY] - base["accuracy"]),
             "throughput_samples_per_s": p[RECORD_THROUGHPUT],
             "x_base": p[RECORD_THROUGHPUT] / base["throughput_samples_per_s"],
             **peer_ratios(p[RECORD_THROUGHPUT], peers),
             "latency_ms_p50": p.get("latency_ms_p50"), "size_mb": p.get("size_mb"), "config": p.get("peer_config"),
             "best": p is best}
            for p in peers if p.get(RECORD_STATUS) == "ok"]


# ----------------------------------------------------------------------------------------------- the pick
def _gate_failures(row: dict, rows: list[dict] = ()) -> list[str]:
    """Why a variant may not ship on explanations: the report's rule (unverified when a verdict is missing), with a
    sibling's ``drifted`` verdict added as a note to a missing one (see :func:`_sibling_drift`)."""
    out = []
    for gate, failure in zip(GATES, (explanation_failures(row, (gate,), columns="sweep") for gate in GATES)):
        if not failure:
            continue
        text = failure[0]
        if not row.get(gate.sweep_column) and (evidence := _sibling_drift(row, rows, gate.sweep_column)) is not None:
            text += f"; `{evidence[0]}` ({evidence[1]}) drifted"
        out.append(text)
    return out


def _sibling_drift(row: dict, rows, key: str) -> tuple[str, str] | None:
    """The evidence that presumes an unexplained pruned graph ``drifted`` on this gate: a graph of the same
    pruned model (same percentage, another quantization) or of a less pruned one that is ``drifted``, named with
    why. Pruning, not the int8 mode, moves the explanations, and removing more moves them further (the verdicts
    behind that: analysis/RESULTS.md, "LIME noise floor and drift verdicts"). Explaining the graph (LIME_EXTRA)
    replaces the presumption with its own verdict. Unpruned
    graphs presume nothing: they differ from base by quantization only."""
    pct = row.get("sparsity_requested_pct") or 0
    if not pct:
        return None
    drifted = [r for r in rows if r is not row and 0 < (r.get("sparsity_requested_pct") or 0) <= pct
               and r.get(key) == DRIFTED]
    if not drifted:
        return None
    closest = max(drifted, key=lambda r: r["sparsity_requested_pct"])
    how = "the same pruned model" if closest["sparsity_requested_pct"] == pct else "less pruned"
    return closest["variant"], how


def _missing_gates(row: dict) -> list[str]:
    return [gate.label for gate in GATES if not row.get(gate.sweep_column)]


def _decide_command(names: list[str]) -> str:
    """The one command whose verdicts would decide these variants and redo the sweep with them: LIME_EXTRA adds
    them to the report's explained variants (LIME_VARIANTS), so the report keeps its rows and controls."""
    return f"make sweep LIME_EXTRA='{' '.join(names)}'"


def pick(rows: list[dict], baseline: str = "base") -> dict:
    """The fastest eligible variant (see the module docstring), with the reasons for every faster variant that was
    rejected, the most compressed eligible variant and what would decide the unverified ones."""
    measured = [r for r in rows if r["status"] == "ok" and r["variant"] != baseline]
    within = [r for r in measured if r["accuracy_delta_pt"] >= -ACCURACY_TOLERANCE_PT - 1e-9]  # exactly 1 pt is in
    failures = {r["variant"]: _gate_failures(r, rows) for r in measured}  # the verdicts, or why there is none
    by_speed = sorted(measured, key=lambda r: -r["throughput_samples_per_s"])
    eligible = [r for r in by_speed if r in within and not failures[r["variant"]]]
    chosen = eligible[0] if eligible else None
    smallest = max(eligible, key=lambda r: (r["encoder_sparsity"], r["throughput_samples_per_s"]), default=None)
    rejected = {}
    for r in by_speed:                              # every variant faster than the pick, and why it is not it
        if r is chosen:
            break
        rejected[r["variant"]] = (f"{r['accuracy_delta_pt']:+.2f} pt" if r not in within
                                  else "; ".join(failures[r["variant"]]))
    # The speed frontier without the explanation gates: what the gates cost, said beside the pick.
    ungated = max(within, key=lambda r: r["throughput_samples_per_s"], default=None)
    return {"ungated_fastest": ungated, "ungated_failures": failures[ungated["variant"]] if ungated else [],
            "failures": failures,
            "variant": chosen["variant"] if chosen else None, "row": chosen,
            "eligible": [r["variant"] for r in eligible],
            "most_compressed": smallest["variant"] if smallest else None, "most_compressed_row": smallest,
            "rejected": rejected,
            # the unverified variants within the tolerance that would beat the pick if they were shown equivalent,
            # fastest first (LIME costs minutes per variant: the command names three at most); a variant with a
            # drifted or inconclusive verdict on a gate is not undecided, it failed
            "undecided": [r["variant"] for r in by_speed if r in within and r["variant"] in rejected and _missing_gates(r)
                          and not any(not f.startswith("unverified") for f in failures[r["variant"]])][:3]}


def pick_sentences(choice: dict, peers: list[dict] | dict | None, baseline: str) -> list[str]:
    """The pick in words: what to ship and why, the 2x-the-best-peer target, the most compressed eligible variant."""
    peers = _as_list(peers)
    best = best_peer(peers)
    tol = f"{ACCURACY_TOLERANCE_PT:g} pt"
    rejected = ", ".join(f"`{name}` ({why})" for name, why in choice["rejected"].items())
    row = choice["row"]
    if row is None:
        return [f"**Keep `{baseline}`**: no compressed variant is within {tol} of its accuracy with explanations "
                "that are shown equivalent on both explanation gates" + (f" (rejected: {rejected})." if rejected else "."),
                *_ungated_sentence(choice, row), *_undecided_sentence(choice)]
    out = [f"**Ship `{row['variant']}`**: the fastest variant within {tol} of `{baseline}` whose explanations are "
           f"`equivalent` to base's on both the LIME agreement and the deletion test (the report's rule) - encoder "
           f"sparsity {100 * row['encoder_sparsity']:.1f} % (requested {row['sparsity_requested_pct']} %), "
           f"{MODE_TEXT.get(row['quantization'], row['quantization'])}, accuracy {row['accuracy']:.4f} ({row['accuracy_delta_pt']:+.2f} pt), "
           f"{row['throughput_samples_per_s']:.1f} samples/s = {row['x_base']:.2f}x `{baseline}`, "
           f"{row['size_mb']:.1f} MB."]
    if row.get("recipe"):
        out.append(row["recipe"])
    if rejected:
        out.append(f"Faster but rejected: {rejected}.")
    if row["x_best_peer"] is not None:
        reach = "reaches" if row["x_best_peer"] >= PEER_TARGET_RATIO else "falls short of"
        out.append(f"It {reach} the {PEER_TARGET_RATIO:.1f}x-the-best-peer target: {row['x_best_peer']:.2f}x the "
                   f"throughput of `{best[RECORD_VARIANT]}` ({best[RECORD_THROUGHPUT]:.1f} samples/s, the faster peer "
                   f"measured in the same run).")
    else:
        why = "; ".join(f"`{p.get(RECORD_VARIANT)}`: {p.get(RECORD_STATUS)}" for p in peers) or "no peer record was given"
        out.append(f"No peer was measured ({why}), so the {PEER_TARGET_RATIO:.1f}x-the-best-peer target is not "
                   "checked; run `make .venv-interop/.installed .venv-openvino/.installed`, then `make sweep` again.")
    unmeasured = [p for p in peers if p.get(RECORD_STATUS) != "ok"]
    if best is not None and unmeasured:
        out.append("Not measured, so not in the best-peer comparison: " + "; ".join(
            f"`{p.get(RECORD_VARIANT)}` ({p.get(RECORD_STATUS)})" for p in unmeasured) + ".")
    small = choice["most_compressed_row"]
    if small["variant"] == row["variant"]:
        out.append("It is also the most compressed eligible variant.")
    else:
        ratio = f", {small['x_best_peer']:.2f}x the best peer" if small["x_best_peer"] is not None else ""
        out.append(f"The most compressed eligible variant is `{small['variant']}` (encoder sparsity "
                   f"{100 * small['encoder_sparsity']:.1f} %, {small['size_mb']:.1f} MB, "
                   f"{small['throughput_samples_per_s']:.1f} samples/s, {small['accuracy_delta_pt']:+.2f} pt{ratio}): "
                   "pick it when size matters more than speed.")
    out += _ungated_sentence(choice, row)
    out += _undecided_sentence(choice)
    return out


def _undecided_sentence(choice: dict) -> list[str]:
    if not choice["undecided"]:
        return []
    return [f"Unverified, so not eligible (no verdict on a gate): {', '.join(f'`{n}`' for n in choice['undecided'])}; "
            f"`{_decide_command(choice['undecided'])}` would decide ({DECIDE_NOTE})."]


def _ungated_sentence(choice: dict, row: dict | None) -> list[str]:
    """What the explanation gates cost: the fastest variant within the accuracy tolerance, when the gates
    rejected it."""
    fast = choice.get("ungated_fastest")
    if fast is None or not choice.get("ungated_failures") or (row is not None and fast["variant"] == row["variant"]):
        return []
    ratio = f" = {fast['x_best_peer']:.2f}x the best peer" if fast.get("x_best_peer") is not None else ""
    return [f"Without the explanation gates the fastest within {ACCURACY_TOLERANCE_PT:g} pt would be `{fast['variant']}` "
            f"({fast['throughput_samples_per_s']:.1f} samples/s{ratio}, {fast['accuracy_delta_pt']:+.2f} pt), but its "
            f"{'; '.join(choice['ungated_failures'])}: accurate enough, but "
            # a drifted verdict of its own, not a note about a sibling on an unverified gate
            + ("it does not reason like base." if any(DRIFTED in f and not f.startswith("unverified")
                                                      for f in choice["ungated_failures"])
               else "its explanations are not shown to match base's.")]


def refinetune_sentence(pruning: dict[int, dict], base_accuracy: float) -> str:
    """Whether re-fine-tuning recovers what pruning costs, i.e. whether more epochs would pay."""
    if not pruning:
        return ""
    pcts = sorted(pruning)
    drops = {p: 100 * ((pruning[p]["source_accuracy"] or base_accuracy) - pruning[p]["accuracy_after_refinetune"])
             for p in pcts}
    recovered = {p: 100 * (pruning[p]["accuracy_after_refinetune"] - pruning[p]["accuracy_after_pruning"]) for p in pcts}
    trail = ", ".join(f"{drops[p]:+.2f} pt at {p} %" for p in pcts)
    epochs = pruning[pcts[-1]].get("epochs")
    if len(pcts) > 1 and drops[pcts[-1]] - drops[pcts[0]] > DROP_GROWTH_PT:
        return (f"The accuracy drop left after re-fine-tuning grows with sparsity ({trail}), although re-fine-tuning "
                f"recovered {recovered[pcts[-1]]:+.2f} pt at {pcts[-1]} %: more re-fine-tuning epochs (PRUNE_EPOCHS, "
                f"{epochs if epochs is not None else 'unknown'} here) may pay at high sparsity; measure before relying "
                "on it.")
    return (f"The accuracy drop left after re-fine-tuning does not grow with sparsity ({trail}): re-fine-tuning "
            "recovers what pruning costs at every percentage, so more epochs would not obviously pay.")


@dataclass(frozen=True)
class SweepConfig(StageConfig):
    """``generate_outputs/sweep/build_sweep.py``'s flags."""

    record: list[str] = flag([], action="append", metavar="BENCH_JSON",
                             help="a <variant>.bench.json of the sweep's benchmark run (repeat; base included)")
    pruning_manifest: list[str] = flag([], action="append", metavar="MANIFEST",
                                       help="models/pruned/bert_agnews_<p>pct/manifest.json of each percentage (repeat)")
    peer_record: list[str] = flag([], action="append", metavar="BENCH_JSON",
                                  help="a peer's record of the same run, e.g. outputs/sweep/openvino_int8.bench.json "
                                       "(repeat)")
    reports_dir: str = flag("outputs/reports", help="where lime_similarity.csv and deletion.csv are read, if built")
    baseline: str = flag("base", help="the variant accuracy deltas and x base are relative to")
    output_dir: str = flag("outputs/sweep", help="where sweep.{md,csv}, frontier.png and sweep.manifest.json go")

    def check(self) -> None:
        if not self.record:
            raise UserError("Pass the sweep's benchmark records with --record outputs/sweep/<variant>.bench.json.")


def run_sweep(config: SweepConfig) -> int:
    """``generate_outputs.sweep.build_sweep``: see that script's docstring."""
    import pandas as pd

    from common.manifest import base_manifest, write_json_atomic, write_text_atomic

    # Every input is read and checked before anything is written: a bad input leaves no partial sweep.
    records = load_records(config.record)
    pruning = load_pruning(config.pruning_manifest)
    peers = load_peers(config.peer_record)
    lime, deletion = load_verdicts(config.reports_dir)
    rows = sweep_rows(records, pruning, peers, config.baseline, lime, deletion)
    base = records[config.baseline]
    references = peer_rows(peers, base)
    best = best_peer(peers)
    choice = pick(rows, config.baseline)
    sentences = pick_sentences(choice, peers, config.baseline)
    refine = refinetune_sentence(pruning, base[RECORD_ACCURACY])
    for row in rows:
        row["explanation_failures"] = "; ".join(choice["failures"].get(row["variant"], []))
        row["eligible"] = row["variant"] in choice["eligible"]
        row["pick"] = row["variant"] == choice["variant"]
    context = {"bench_dir": str(Path(config.record[0]).parent), "n_test": base.get("n_test"),
               "baseline": config.baseline,
               "peer_statuses": {p.get(RECORD_VARIANT, "?"): p.get(RECORD_STATUS) for p in peers},
               "best_peer_text": f"here `{best[RECORD_VARIANT]}`" if best else "none was measured"}
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    plot_frontier(rows, references, config.baseline, choice["variant"], output_dir / "frontier.png")
    write_text_atomic(output_dir / "sweep.csv", pd.DataFrame(rows, columns=SWEEP_COLUMNS).to_csv(
        index=False, float_format="%.6g"))
    inputs = {**{f"record_{name}": r["_path"] for name, r in records.items()},
              **{f"pruning_{pct}": p["path"] for pct, p in pruning.items()},
              **{f"peer_record_{i}": path for i, path in enumerate(config.peer_record)},
              **{name: Path(config.reports_dir) / name for name in ("lime_similarity.csv", "deletion.csv")}}
    manifest = base_manifest("sparsity_sweep", config.to_dict(), inputs=inputs)
    manifest.update({"accuracy_tolerance_pt": ACCURACY_TOLERANCE_PT, "peer_target_ratio": PEER_TARGET_RATIO,
                     "pick": choice["variant"], "most_compressed_eligible": choice["most_compressed"],
                     "rejected_faster": choice["rejected"], "undecided": choice["undecided"],
                     "ungated_fastest": (choice["ungated_fastest"] or {}).get("variant"),
                     "ungated_fastest_failures": choice["ungated_failures"],
                     "pick_x_best_peer": choice["row"]["x_best_peer"] if choice["row"] else None,
                     "best_peer": None if best is None else best[RECORD_VARIANT], "peers": references, "rows": rows, "pick_text": sentences, "refinetune_text": refine})
    write_json_atomic(output_dir / "sweep.manifest.json", manifest)
    # sweep.md is the Make target: written last.
    write_text_atomic(output_dir / "sweep.md", sweep_markdown(rows, references, choice, sentences, refine, context))
    log.info("sweep: %d variants; pick %s", len(rows), choice["variant"] or f"none (keep {config.baseline})")
    return 0
