"""Re-fine-tuning recipes side by side: how close each recipe's pruned graphs are to base (``make recipes``).

One row per (recipe, graph): accuracy and label agreement with base on every test row (predicted here, cached by
content), the two explanation gates' verdicts read from that recipe's report folder (``lime_similarity.csv``,
``deletion.csv``; "not judged" where the folder has none for the graph), and the re-fine-tuning wall time from the
pruned folder's manifest. The verdicts are the report's own, under its declared rules; this table decides
nothing - it shows how far each recipe got.

Flags name graphs as ``RECIPE:VARIANT=GRAPH`` and report folders as ``RECIPE=DIR``, so the historical recipe's
artefacts, kept aside, sit beside the current ones.
"""
from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.manifest import atomic_output_file, base_manifest, read_manifest, write_json_atomic, write_text_atomic
from common.stage import StageConfig, flag

log = logging.getLogger(__name__)

SPEC = re.compile(r"^(?P<recipe>[\w.-]+):(?P<variant>[\w.-]+)=(?P<path>.+)$")
COLUMNS = ["recipe", "variant", "sparsity_pct", "accuracy", "accuracy_delta_pt", "label_agreement_with_base", "n_test",
           "lime_verdict", "lime_extra", "lime_d", "deletion_verdict", "deletion_d", "every_gate",
           "refinetune_wall_s", "pruned_manifest"]


def parse_spec(text: str, flag_name: str) -> tuple[str, str, str]:
    match = SPEC.match(text)
    if not match:
        raise UserError(f"{flag_name} {text!r} is not RECIPE:VARIANT=PATH (e.g. function:pruned60_ov_int8="
                        "models/onnx/pruned60_ov_int8.xml).")
    return match["recipe"], match["variant"], match["path"]


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def gate_verdicts(reports: Path | None, variant: str) -> dict:
    """The LIME-agreement (rbo) and deletion (same evidence) verdicts of ``variant`` in ``reports``."""
    out = {"lime_verdict": "not judged", "lime_extra": None, "lime_d": None, "deletion_verdict": "not judged",
           "deletion_d": None}
    if reports is None:
        return out
    for row in _read_csv(reports / "lime_similarity.csv"):
        if row["variant"] == variant and row.get("metric", "rbo") == "rbo":
            out["lime_verdict"] = row["verdict"] or ("not judged: " + row.get("reason", ""))
            out["lime_extra"] = float(row["extra_mean"]) if row.get("extra_mean") else None
            out["lime_d"] = float(row["d_mean"]) if row.get("d_mean") else None
    for row in _read_csv(reports / "deletion.csv"):
        if row["variant"] == variant and row["check"] == "same_evidence":
            out["deletion_verdict"] = row["verdict"] or ("not judged: " + row.get("reason", ""))
            out["deletion_d"] = float(row["d_mean"]) if row.get("d_mean") else None
    return out


def recipe_text(manifest: dict) -> str:
    """One sentence on the re-fine-tuning recipe a pruned folder's manifest records (the picks quote it)."""
    args = manifest.get("arguments") or {}
    recipe = args.get("recipe", "logits")  # pruned before --recipe existed: the historical recipe
    epochs, ratio = args.get("epochs"), args.get("head_ffn_ratio", 1.0)
    if recipe == "function":
        how = (f"the teacher's probabilities on every clean training text and {args.get('perturb_copies')} LIME-style "
               f"word-deleted copies of it per epoch, {str(args.get('perturb_loss', 'kl')).upper()} loss, hidden-state "
               f"weight {args.get('hidden_weight', 0):g}")
    else:
        how = ("cross-entropy mixed with KL at T = " f"{args.get('distill_temperature', 2.0):g} to the teacher on clean "
               "texts" if args.get("distill", True) else "cross-entropy on clean texts, no teacher")
    agreement = (manifest.get("fidelity") or {}).get("test_label_agreement")
    tail = f"; label agreement with its teacher on every test row {agreement:.4f}" if agreement is not None else ""
    return (f"Re-fine-tuned with the `{recipe}` recipe ({how}; {epochs:g} epochs, head/FFN ratio {ratio:g}{tail}).")


def sparsity_of(variant: str) -> int | None:
    match = re.match(r"pruned(\d+)", variant)
    return int(match[1]) if match else None


@dataclass(frozen=True)
class RecipesConfig(StageConfig):
    """``analysis/recipes/compare_recipes.py``'s flags."""

    base: str = flag(help="base model (the fine-tuned folder): the labels every graph is compared with")
    data: str = flag("", help="data folder or ag_news (its test split; every row)")
    variant: list[str] = flag(action="append", help="RECIPE:VARIANT=GRAPH, repeatable (an .onnx or OpenVINO .xml)")
    pruned: list[str] = flag(None, action="append", help=(
        "RECIPE:PCT=FOLDER, repeatable: the pruned folder whose manifest gives that recipe's re-fine-tuning time"))
    reports: list[str] = flag(None, action="append", help=(
        "RECIPE=DIR, repeatable: the report folder holding that recipe's lime_similarity.csv and deletion.csv"))
    cache_dir: str = flag("outputs/recipes_cache", help="predictions cached by model content and test rows")
    max_len: int = flag(128)
    output: str = flag("outputs/reports/recipes.md", help="Markdown table (the .csv and .manifest.json beside it)")

    def check(self) -> None:
        if not self.variant:
            raise UserError("give at least one --variant RECIPE:VARIANT=GRAPH.")
        for spec in self.variant:
            parse_spec(spec, "--variant")
        for spec in self.pruned or []:
            parse_spec(spec, "--pruned")
        for spec in self.reports or []:
            if "=" not in spec:
                raise UserError(f"--reports {spec!r} is not RECIPE=DIR (e.g. function=outputs/reports).")


def _predict(model: str, texts, labels, cache_dir: str, max_len: int) -> np.ndarray:
    from common.models.classifier import load_classifier
    from common.prediction_cache import cache_path, cached_predictions, prediction_key

    if not Path(model).exists():
        raise UserError(f"{model} does not exist; build it first (e.g. `make {model}`) or fix the path.")
    key = prediction_key(model, texts, max_len=max_len, what="argmax")
    return cached_predictions(cache_path(cache_dir, "argmax_", key, ".npy"), key,
                              lambda: load_classifier(model, max_len=max_len, batch_size=64, progress=True)
                              .predict(texts))


def run(config: RecipesConfig) -> int:
    from tabulate import tabulate

    from common.data import load_test_split

    test = load_test_split(config.data)
    texts, labels = list(test.texts), np.asarray(test.labels)
    base_pred = _predict(config.base, texts, labels, config.cache_dir, config.max_len)
    base_acc = float((base_pred == labels).mean())
    reports = {}
    for spec in config.reports or []:
        recipe, folder = spec.split("=", 1)
        reports[recipe] = Path(folder)
    pruned = {}
    for spec in config.pruned or []:
        recipe, pct, folder = parse_spec(spec, "--pruned")
        pruned[(recipe, int(pct))] = Path(folder)
    rows = []
    for spec in config.variant:
        recipe, variant, graph = parse_spec(spec, "--variant")
        pred = _predict(graph, texts, labels, config.cache_dir, config.max_len)
        pct = sparsity_of(variant)
        manifest = read_manifest(pruned[(recipe, pct)]) if (recipe, pct) in pruned else None
        acc = float((pred == labels).mean())
        gates = gate_verdicts(reports.get(recipe), variant)
        rows.append({
            "recipe": recipe, "variant": variant, "sparsity_pct": pct, "accuracy": acc,
            "accuracy_delta_pt": 100 * (acc - base_acc), "label_agreement_with_base": float((pred == base_pred).mean()),
            "n_test": len(labels), **gates,
            "every_gate": gates["lime_verdict"] == "equivalent" and gates["deletion_verdict"] == "equivalent",
            "refinetune_wall_s": (manifest or {}).get("training", {}).get("train_wall_s"),
            "pruned_manifest": str(pruned[(recipe, pct)]) if (recipe, pct) in pruned else "",
        })
        log.info("%s %s: accuracy %.4f, agreement with base %.4f, LIME %s, deletion %s", recipe, variant, acc,
                 rows[-1]["label_agreement_with_base"], gates["lime_verdict"], gates["deletion_verdict"])
    output = Path(config.output)

    def num(v, digits):
        return "–" if v is None else f"{v:.{digits}f}"

    table = [[r["recipe"], r["variant"], num(r["accuracy"], 4), f"{r['accuracy_delta_pt']:+.2f}",
              num(r["label_agreement_with_base"], 4), r["lime_verdict"], "–" if r["lime_d"] is None else
              f"{r['lime_d']:+.3f}", r["deletion_verdict"], "–" if r["deletion_d"] is None else f"{r['deletion_d']:+.4f}",
              "yes" if r["every_gate"] else "no",
              "–" if r["refinetune_wall_s"] is None else f"{r['refinetune_wall_s'] / 60:.1f}"] for r in rows]
    text = (f"# Re-fine-tuning recipes side by side\n\nBase `{config.base}`: accuracy {base_acc:.4f} on all "
            f"{len(labels)} test rows. Label agreement is with base's predictions on every test row. Verdicts are "
            "the report's (LIME agreement: d of rbo; deletion: same evidence), under its declared rules; "
            "'not judged' where that recipe's report folder has no verdict for the graph.\n\n"
            + tabulate(table, headers=["recipe", "graph", "accuracy", "Δ pt", "agreement with base", "LIME verdict",
                                       "LIME d", "deletion verdict", "deletion d", "every gate",
                                       "re-fine-tune min"], tablefmt="github") + "\n")
    write_text_atomic(output, text)
    with atomic_output_file(output.with_suffix(".csv")) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    manifest = base_manifest("recipes", config.to_dict())
    manifest.update({"base_accuracy": base_acc, "rows": rows})
    write_json_atomic(output.with_suffix(".manifest.json"), manifest)
    log.info("-> %s", output)
    return 0
