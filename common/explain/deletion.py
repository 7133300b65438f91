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

Checks (per variant; one value per instance, the **distance of the two AOPC curves**, then
:func:`common.explain.verdict.judge` against the positive control's distance on the same instance):

* ``same_evidence`` (the gate): mean over k of |comp_k(variant, base's words) - comp_k(base, base's words)|;
* ``same_evidence_sufficiency``: the same on sufficiency;
* ``own_comprehensiveness``: mean over k of |comp_k(variant, the variant's own LIME words) - comp_k(base,
  base's words)|: does the variant's explanation describe the variant as well as base's describes base?
* ``own_sufficiency``: the same on sufficiency.

Why a distance per instance and not the signed mean difference: a variant that leans more on base's words
for some texts and less for others has a mean difference near 0 and still reasons differently; the absolute
distance of the curves adds those changes up instead of letting them cancel (squared distances would let a
few flipped instances dominate the t bounds). An identical function has distance 0 on every instance.
**Rule** (:mod:`common.explain.verdict`): ``equivalent`` when the variant's mean distance is shown below
``CONTROL_FRACTION`` (half) the positive control's (another fine-tune of the base recipe), at ALPHA / m;
``drifted`` when shown above it. The control judged against itself is ``drifted`` when the deletion test can
tell another fine-tune from base; otherwise the report says the gate is blind. Instances whose base
explanation has no positive word delete nothing; they are excluded from every check (and, for the own-words
checks, those whose variant explanation has none) and counted (``n_excluded``), not scored 0.

Every model predicts each instance's texts as one batch (a fixed composition per instance, unique texts
only, through :class:`common.explain.explainer.FastClassifierFn`): dynamic int8 classifiers (``batch_dependent``)
compute their activation scales per batch, and even fp32 rounds differently under other padding, so an
instance's numbers never depend on which other instances are measured, nor on a batch size.

This module measures one variant and judges it; :mod:`common.explain.deletion_report` writes the table over every variant.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.lime_text import lime_indexed_string
from common.explain import design as lime_design
from common.explain.design import SAME_SEED, LimeDesign, read_stage_csv
from common.schema import DELETION_COLUMNS, DELETION_GATE
from common.stage import StageConfig, flag, shared_flag
from common.explain.verdict import ALPHA

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


def curve_distances(frame) -> dict[str, "object"]:
    """check -> per-instance distance of the variant's AOPC curve to base's (a pandas Series indexed by
    instance_id; NaN where the instance is excluded: no positive word to delete)."""
    import pandas as pd

    first = frame[frame.k == 1]
    no_base_word = set(first[(first.words_from == "base") & (first.n_words == 0)].instance_id)
    no_own_word = set(first[(first.words_from == "variant") & (first.n_words == 0)].instance_id)
    base = frame[(frame.words_from == "base") & (frame.model == "base")].set_index(["instance_id", "k"])
    ids = sorted(frame.instance_id.unique())
    out = {}
    for check, words_from, measure_name in CHECKS:
        side = frame[(frame.words_from == words_from) & (frame.model == "variant")].set_index(["instance_id", "k"])
        gap = (side[measure_name] - base[measure_name].reindex(side.index)).abs()
        distance = gap.groupby(level="instance_id").mean().reindex(ids)
        excluded = no_base_word | (no_own_word if words_from == "variant" else set())
        distance[distance.index.isin(sorted(excluded))] = float("nan")
        out[check] = pd.Series(distance.to_numpy(dtype=float), index=ids)
    return out


def describe(frame) -> dict:
    """The AOPC means the report shows, label agreement and the instances excluded (no verdict: that needs the
    control, :func:`judge_variant`)."""
    base_comp = aopc(frame, "base", "base", "comprehensiveness")
    base_suff = aopc(frame, "base", "base", "sufficiency")
    means = {"base_comprehensiveness": float(base_comp.mean()), "base_sufficiency": float(base_suff.mean())}
    for _, words_from, measure_name in CHECKS:
        means[f"{words_from}_words_{measure_name}"] = float(aopc(frame, words_from, "variant", measure_name).mean())
    distances = curve_distances(frame)
    for check, values in distances.items():
        means[f"distance_{check}"] = float(values.mean())
    # not part of any verdict: shows that a variant can agree on labels and still rely on other words
    predicted = frame[(frame.k == 1) & (frame.words_from == "base")].pivot(
        index="instance_id", columns="model", values="predicted_full")
    means["label_agreement"] = float((predicted["base"] == predicted["variant"]).mean())
    means["n_instances"] = int(len(base_comp))
    means["n_excluded"] = int(distances[GATE].isna().sum())
    return means


def judge_variant(frame, variant: str, control_frame=None, alpha_equivalent: float = ALPHA) -> tuple[list[dict], dict]:
    """The four check rows (:data:`DELETION_COLUMNS`) of ``variant`` judged against the positive control's per-instance
    frame (None: no control, so no decided verdict), and the means the report shows."""
    from common.explain.verdict import judge

    distances = curve_distances(frame)
    control = curve_distances(control_frame) if control_frame is not None else None
    means = describe(frame)
    if means["n_instances"] - means["n_excluded"] < 2:
        raise UserError(f"Only {means['n_instances'] - means['n_excluded']} of {means['n_instances']} instances have a "
                        "word with positive weight in base's explanation, so the deletion test has nothing to delete; "
                        "explain more instances or check that base.csv explains base.")
    rows = []
    for check, *_ in CHECKS:
        values = distances[check]
        if control is not None:
            missing = sorted(set(values.index) - set(control[check].index))
            if missing:
                raise UserError(f"The positive control's deletion test measures other instances than {variant}'s "
                                f"(instance {missing[0]}); rebuild both from the same base LIME run.")
            result = judge(values.to_numpy(), control[check].reindex(values.index).to_numpy(),
                           alpha_equivalent=alpha_equivalent)
        else:
            result = judge(values.to_numpy(), None, alpha_equivalent=alpha_equivalent)
        row = {"variant": variant, "check": check, "control_mean": result["control_mean"], "margin": result["boundary"],
               "n_excluded": int(values.isna().sum()),
               **{c: result[c] for c in ("mean", "d_mean", "lower", "upper", "p_equivalent", "alpha_equivalent",
                                         "n", "n_to_decide", "decides", "reason")}}
        row["verdict"] = "" if result["reason"] else result["verdict"]
        rows.append({c: row[c] for c in DELETION_COLUMNS})
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
    means = describe(frame)
    metrics = {**means, "forward_texts": {n: fn.n_unique for n, fn in fns.items()},
               "model_seconds": {n: round(fn.model_seconds, 3) for n, fn in fns.items()}}
    manifest = base_manifest("deletion_test", args.to_dict(), args.seed, inputs={
        "base_lime": args.base_lime, "variant_lime": args.variant_lime, "base_model": args.base_model,
        "model": args.model})
    manifest.update({"variant": variant, "classifiers": {n: clf.info for n, clf in clfs.items()},
                     "max_k": args.max_k,
                     "instance_ids": sorted(base_run.texts), "wall_seconds": round(time.time() - started, 3),
                     "metrics": metrics})
    # the CSV (the Make target) is renamed into place last, after its manifest
    with atomic_output_file(output) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")
        write_json_atomic(manifest_path_for(output), manifest)
    log.info("Wrote %s: mean distance of the comprehensiveness curves to base's %.4f over %d instances (%d "
             "excluded); the verdict needs the positive control (build_deletion_report)", output,
             means[f"distance_{GATE}"], means["n_instances"] - means["n_excluded"], means["n_excluded"])
    return 0
