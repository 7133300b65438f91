"""The deletion test: does a variant rely on the same words as base? Evidence with no sampling noise.

LIME agreement compares two noisy explanations. Here the explanation is fixed (base's LIME run) and only
the *models* are asked, deterministically: delete base's top words from the text and see how much each
model's probability for the explained class falls (ERASER, DeYoung et al. 2020).

Per instance (``explained_label`` = base's prediction, the same in both LIME CSVs) and k = 1..K
(K = min(``max_k`` = 5, number of distinct words)):

* the words: the top-k words **with positive weight** (evidence FOR the explained class) in LIME's
  explanation, by weight; when fewer than k words are positive, all the positive ones (so an
  explanation with no positive word deletes nothing). Negative words are evidence *against* the
  class: deleting them would raise the probability and blur the drop;
* comprehensiveness = p(class | text) - p(class | text without those words);
* sufficiency = p(class | text) - p(class | only those words);
* AOPC = the mean over k = 1..K (per instance).

Deletion uses LIME's own text handling (``IndexedString(text, bow=True, split_expression=r'\\W+')``
and ``inverse_removing``): deleting a word deletes every occurrence of it and keeps the separators,
exactly as LIME's perturbations do, so the deleted texts are of the kind LIME's local model was fitted on.
The models are the ones the LIME CSVs explained (their manifests name them), unless given.

Checks (per variant; each one value per instance, paired, then :func:`common.explain.verdict.judge`, two-sided):

* ``same_evidence`` (the gate): d_i = AOPC_comp(variant, base's words) - AOPC_comp(base, base's words);
* ``same_evidence_sufficiency``: the same on sufficiency;
* ``own_comprehensiveness``: AOPC_comp(variant, the variant's own LIME words) - AOPC_comp(base, base's
  words): does the variant's explanation describe the variant as well as base's describes base?
* ``own_sufficiency``: the same on sufficiency.

**Margin** (declared): 0.1 x base's mean AOPC comprehensiveness (base's words on base) for the
comprehensiveness checks, and 0.1 x base's mean |AOPC sufficiency| for the sufficiency checks. A variant
is ``equivalent`` when the 90 % bootstrap interval of the mean difference lies within +-10 % of base's
own effect, ``drifted`` when it lies entirely outside.

Every model predicts each instance's texts as one batch (a fixed composition per instance, unique texts
only, through :class:`common.explain.explainer.FastClassifierFn`): dynamic int8 classifiers (``batch_dependent``)
compute their activation scales per batch, and even fp32 rounds differently under other padding, so an
instance's numbers never depend on which other instances are measured, nor on a batch size.

This module measures one variant and judges it; :mod:`common.explain.deletion_report` writes the table over every variant.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.explain import design as lime_design
from common.explain.design import SAME_SEED, LimeDesign, read_stage_csv
from common.schema import DELETION_COLUMNS, DELETION_GATE
from common.stage import StageConfig, flag, shared_flag
from common.explain.verdict import MARGIN_FRACTION

log = logging.getLogger(__name__)

PER_INSTANCE_COLUMNS = ["instance_id", "explained_label", "words_from", "model", "k", "n_words", "words",
                        "predicted_full", "p_full", "p_removed", "p_kept", "comprehensiveness", "sufficiency"]
MAX_K = 5
GATE = DELETION_GATE
# (check, words_from, model of the variant side, measure); the base side is always base's words on base
CHECKS = [
    (GATE, "base", "comprehensiveness"),
    ("same_evidence_sufficiency", "base", "sufficiency"),
    ("own_comprehensiveness", "variant", "comprehensiveness"),
    ("own_sufficiency", "variant", "sufficiency"),
]
# (words_from, model) pairs measured per instance
SETTINGS = [("base", "base"), ("base", "variant"), ("variant", "variant")]
LIME_REQUIRED = {"instance_id", "text", "explained_label", "word", "weight", "seed", "num_samples"}


# ----------------------------------------------------------------------------------------------- LIME input
@dataclass
class LimeRun:
    """One LIME CSV, per instance: text, explained label and word -> weight."""

    path: Path
    texts: dict[int, str]
    explained: dict[int, int]
    weights: dict[int, dict[str, float]]
    seeds: set
    num_samples: set

    def design(self) -> LimeDesign:
        return LimeDesign(self.path, self.explained, frozenset(self.seeds), frozenset(self.num_samples), self.texts)


def read_lime_run(path: str | Path) -> LimeRun:
    path = Path(path)
    frame = read_stage_csv(path, LIME_REQUIRED, "run_lime_on_model", ("word", "text"))
    texts, explained, weights = {}, {}, {}
    for row in frame.itertuples(index=False):
        iid = int(row.instance_id)
        texts[iid] = str(row.text)
        explained.setdefault(iid, set()).add(int(row.explained_label))
        weights.setdefault(iid, {})[str(row.word)] = float(row.weight)
    for iid, labels in explained.items():
        if len(labels) != 1:
            raise UserError(f"{path} explains several labels {sorted(labels)} for instance {iid}; the deletion "
                            f"test needs one explained label per instance (run_lime_on_model's CSV).")
    return LimeRun(path, texts, {iid: labels.pop() for iid, labels in explained.items()}, weights,
                   set(frame["seed"].astype(str)), set(frame["num_samples"].astype(str)))


def check_same_design(base: LimeRun, variant: LimeRun) -> None:
    """Both runs must explain the same instances (same texts), the same label each, with the same LIME
    seed and num_samples; a mismatch is a user error naming the variant's file (nothing is dropped)."""
    lime_design.check_same_design(base.design(), variant.design(), SAME_SEED)


# ----------------------------------------------------------------------------------------------- deletion
@functools.lru_cache(maxsize=1)
def _lime_text_settings() -> tuple:
    from common.explain.explainer import make_explainer

    explainer = make_explainer(0)
    return explainer.bow, explainer.split_expression, explainer.mask_string


def lime_indexed_string(text: str):
    """The text as LIME's explainer splits it (its bow, split expression and mask, read from the explainer
    the LIME stage uses, so the two cannot diverge)."""
    from lime.lime_text import IndexedString

    bow, split_expression, mask_string = _lime_text_settings()
    return IndexedString(text, bow=bow, split_expression=split_expression, mask_string=mask_string)


def top_positive_words(weights: dict[str, float], k: int) -> list[str]:
    """The k words with the largest positive weight (fewer when fewer are positive); ties by word, so the
    choice does not depend on the CSV's row order."""
    positive = sorted(((-w, word) for word, w in weights.items() if w > 0))
    return [word for _, word in positive[:k]]


def deletion_texts(text: str, words: list[str]) -> tuple[str, str]:
    """(text without ``words``, text with only ``words``), every occurrence, LIME's way."""
    indexed = lime_indexed_string(text)
    ids = {indexed.word(i): i for i in range(indexed.num_words())}
    unknown = [w for w in words if w not in ids]
    if unknown:
        raise UserError(f"The explanation's words {unknown} are not words of the text {text[:60]!r}; the LIME CSV "
                        f"does not match its text column (rebuild it with run_lime_on_model).")
    chosen = {ids[w] for w in words}
    removed = indexed.inverse_removing(sorted(chosen))
    kept = indexed.inverse_removing([i for i in range(indexed.num_words()) if i not in chosen])
    return removed, kept


def instance_plan(text: str, sources: dict[str, dict[str, float]], max_k: int = MAX_K) -> list[tuple]:
    """(words_from, k, words, removed text, kept text) for every explanation source and k = 1..K."""
    n_words = lime_indexed_string(text).num_words()
    plan = []
    for words_from, weights in sources.items():
        for k in range(1, min(max_k, n_words) + 1):
            words = top_positive_words(weights, k)
            plan.append((words_from, k, words, *deletion_texts(text, words)))
    return plan


def measure_instance(text: str, label: int, plan: list[tuple], models: dict[str, object],
                     settings=SETTINGS) -> list[dict]:
    """Per (words_from, model, k): the three probabilities and both ERASER measures.

    ``models`` maps "base"/"variant" to a callable ``texts -> probabilities`` that predicts the texts of
    one instance as one call (see :class:`common.explain.explainer.FastClassifierFn`)."""
    rows = []
    for model_name in sorted({m for _, m in settings}):
        wanted = {w for w, m in settings if m == model_name}
        steps = [step for step in plan if step[0] in wanted]
        texts = [text] + [t for *_, removed, kept in steps for t in (removed, kept)]
        all_probs = np.asarray(models[model_name](texts), dtype=np.float64)
        probs, predicted = all_probs[:, label], int(all_probs[0].argmax())
        p_full = float(probs[0])
        for j, (words_from, k, words, _, _) in enumerate(steps):
            p_removed, p_kept = float(probs[1 + 2 * j]), float(probs[2 + 2 * j])
            rows.append({"explained_label": label, "words_from": words_from, "model": model_name, "k": k,
                         "n_words": len(words), "words": " ".join(words), "predicted_full": predicted,
                         "p_full": p_full, "p_removed": p_removed, "p_kept": p_kept,
                         "comprehensiveness": p_full - p_removed, "sufficiency": p_full - p_kept})
    return rows


def measure(base_run: LimeRun, variant_run: LimeRun, base_fn, variant_fn, max_k: int = MAX_K,
            desc: str = "deletion test"):
    """The per-instance long table (:data:`PER_INSTANCE_COLUMNS`) for one variant."""
    import pandas as pd
    from tqdm import tqdm

    check_same_design(base_run, variant_run)
    rows = []
    for iid in tqdm(sorted(base_run.texts), desc=desc, unit="instance"):
        text = base_run.texts[iid]
        plan = instance_plan(text, {"base": base_run.weights[iid], "variant": variant_run.weights[iid]}, max_k)
        for row in measure_instance(text, base_run.explained[iid], plan, {"base": base_fn, "variant": variant_fn}):
            rows.append({"instance_id": iid, **row})
    return pd.DataFrame(rows, columns=PER_INSTANCE_COLUMNS)


# ----------------------------------------------------------------------------------------------- verdicts
def aopc(frame, words_from: str, model: str, measure_name: str):
    """Per-instance AOPC (mean over k) of one setting, indexed by instance_id."""
    part = frame[(frame.words_from == words_from) & (frame.model == model)]
    return part.groupby("instance_id")[measure_name].mean()


def judge_variant(frame, variant: str, seed: int) -> tuple[list[dict], dict]:
    """The four check rows (:data:`DELETION_COLUMNS`) and the AOPC means the report shows."""
    from common.explain.verdict import judge

    base_comp = aopc(frame, "base", "base", "comprehensiveness")
    base_suff = aopc(frame, "base", "base", "sufficiency")
    margins = {"comprehensiveness": MARGIN_FRACTION * abs(float(base_comp.mean())),
               "sufficiency": MARGIN_FRACTION * float(base_suff.abs().mean())}
    for measure_name, margin in margins.items():
        if not margin > 0:
            raise UserError(f"Base's mean AOPC {measure_name} is 0 on these instances, so the deletion test has no "
                            f"scale for its margin; explain more instances or check that base.csv explains base.")
    base_side = {"comprehensiveness": base_comp, "sufficiency": base_suff}
    rows, means = [], {"base_comprehensiveness": float(base_comp.mean()),
                       "base_sufficiency": float(base_suff.mean())}
    for check, words_from, measure_name in CHECKS:
        variant_side = aopc(frame, words_from, "variant", measure_name)
        diff = (variant_side - base_side[measure_name]).reindex(base_side[measure_name].index)
        result = judge(diff.to_numpy(), margins[measure_name], two_sided=True, seed=seed)
        rows.append({"variant": variant, "check": check, **{c: result[c] for c in DELETION_COLUMNS[2:]}})
        means[f"{words_from}_words_{measure_name}"] = float(variant_side.mean())
    # not part of any verdict: shows that a variant can agree on labels and still rely on other words
    predicted = frame[(frame.k == 1) & (frame.words_from == "base")].pivot(
        index="instance_id", columns="model", values="predicted_full")
    means["label_agreement"] = float((predicted["base"] == predicted["variant"]).mean())
    means["n_instances"] = int(len(base_comp))
    return rows, means


# ----------------------------------------------------------------------------------------------- the stages
def explained_model(lime_csv: str | Path, flag: str) -> str:
    """The model a LIME CSV explained, from its manifest: the deletion test asks the very function LIME asked
    (for fp32 variants possibly their parity-checked ONNX export), whatever the variant is called."""
    from common.manifest import read_manifest

    manifest = read_manifest(lime_csv) or {}
    model = (manifest.get("arguments") or {}).get("model")
    if not model:
        raise UserError(f"{lime_csv} has no manifest naming the model it explained; pass {flag} or rebuild the CSV "
                        f"with run_lime_on_model.")
    if not Path(model).exists():
        raise UserError(f"The model {model} that {lime_csv} explained does not exist any more; rebuild it or pass "
                        f"{flag}.")
    return str(model)


@dataclass(frozen=True)
class DeletionTestConfig(StageConfig):
    """``run_deletion_test``'s flags."""

    base_lime: str = flag(help="LIME CSV of the base model (outputs/lime/base.csv)")
    variant_lime: str = flag(help="LIME CSV of the variant (outputs/lime/<variant>.csv)")
    base_model: str = flag("", help="the base model (any artefact load_classifier reads; default: the one "
                                    "--base-lime explained)")
    model: str = flag("", help="the variant's model (default: the one --variant-lime explained, from its manifest)")
    variant: str = flag("", help="variant name (default: the output file's name)")
    output: str = flag(help="per-instance CSV to write (outputs/deletion/<variant>.csv)")
    max_k: int = flag(MAX_K, help="largest number of words deleted")
    seed: int = shared_flag("seed", help="seed of the bootstrap")
    max_len: int = shared_flag("max_len")
    device: str = shared_flag("device")
    threads: int = shared_flag("threads")

    def check(self) -> None:
        if Path(self.output).suffix != ".csv":
            raise UserError(f"--output {self.output} must be a .csv file.")
        if self.max_k < 1:
            raise UserError(f"--max-k must be at least 1 (got {self.max_k}).")


def run_deletion_test(config: DeletionTestConfig) -> int:
    """``generate_outputs.deletion_test.run_deletion_test``: see that script's docstring."""
    from common.models.classifier import load_classifier
    from common.cli import set_seed
    from common.explain.explainer import FastClassifierFn
    from common.threads import default_threads, set_threads
    from common.manifest import atomic_output_file, base_manifest, manifest_path_for, write_json_atomic

    output = Path(config.output)
    variant = config.variant or output.stem
    # the manifest records the models actually compared, as it did when these were filled in on the Namespace
    args = config.replace(base_model=config.base_model or explained_model(config.base_lime, "--base-model"),
                          model=config.model or explained_model(config.variant_lime, "--model"))
    threads = set_threads(default_threads(args.threads))
    set_seed(args.seed)
    log.info("Deletion test: variant=%s model=%s base model=%s base LIME=%s variant LIME=%s max_k=%d seed=%d",
             variant, args.model, args.base_model, args.base_lime, args.variant_lime, args.max_k, args.seed)
    base_run, variant_run = read_lime_run(args.base_lime), read_lime_run(args.variant_lime)
    check_same_design(base_run, variant_run)
    started = time.time()
    # Every model predicts each instance's texts as one batch (at most 1 + 4 max_k unique texts): a fixed
    # composition per instance, so dynamic int8's per-batch scales and fp32's padding round the same way
    # whatever else is measured in the run.
    batch_size = 1 + 4 * args.max_k
    models = (("base", args.base_model), ("variant", args.model))
    clfs = {name: load_classifier(path, device=args.device, max_len=args.max_len, batch_size=batch_size,
                                  threads=threads) for name, path in models}
    fns = {name: FastClassifierFn(clf) for name, clf in clfs.items()}
    frame = measure(base_run, variant_run, fns["base"], fns["variant"], args.max_k, desc=f"deletion {variant}")
    rows, means = judge_variant(frame, variant, args.seed)
    metrics = {**means, "checks": rows, "forward_texts": {n: fn.n_unique for n, fn in fns.items()},
               "model_seconds": {n: round(fn.model_seconds, 3) for n, fn in fns.items()}}
    manifest = base_manifest("deletion_test", args.to_dict(), args.seed, inputs={
        "base_lime": args.base_lime, "variant_lime": args.variant_lime, "base_model": args.base_model,
        "model": args.model})
    manifest.update({"variant": variant, "classifiers": {n: clf.info for n, clf in clfs.items()},
                     "max_k": args.max_k, "margin_fraction": MARGIN_FRACTION,
                     "instance_ids": sorted(base_run.texts), "wall_seconds": round(time.time() - started, 3),
                     "metrics": metrics})
    # the CSV (the Make target) is renamed into place last, after its manifest
    with atomic_output_file(output) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")
        write_json_atomic(manifest_path_for(output), manifest)
    gate = rows[0]
    log.info("Wrote %s: same_evidence %s (mean delta %.4f, 90%% CI [%.4f, %.4f], margin %.4f, n=%d)", output,
             gate["verdict"], gate["mean"], gate["lower"], gate["upper"], gate["margin"], gate["n"])
    return 0
