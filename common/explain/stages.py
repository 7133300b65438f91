"""The two LIME stages: explanations of a variant's predictions (test split) and BERT's token
explanations of every class (train split, the MLP students' input).

Both run as a :class:`~common.sharded_job.ShardedCsvJob` (resumable, torchrun-sharded), with the
reproducibility rules of :mod:`common.explain.explainer`.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from common import LABEL_NAMES
from common.explain import explainer as lime_utils
from common.cli import UserError
from common.explain.explainer import (DEFAULT_INSTANCE_SEED, LIME_COLUMNS, MLP_COLUMNS, FastClassifierFn, choose_instances,
                               explain_each_label, explanation_rows, fmt, instance_lime_seed, local_pred,
                               make_explainer, reference_predictions)
from common.manifest import artefact_fingerprint, code_fingerprint, digest, sha256_file
from common.sharded_job import JobResult, ShardedCsvJob, dist_context, rank_device, summarize_timing
from common.stage import StageConfig, flag, shared_flag

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LimeSettings(StageConfig):
    """The checks both LIME stages' configs share (their fields: :func:`_lime_fields`)."""

    def check(self) -> None:
        if self.num_samples < 2:
            raise UserError(f"--num-samples must be at least 2 (got {self.num_samples}).")
        if Path(self.output).suffix != ".csv":
            raise UserError(f"--output {self.output} must be a .csv file.")


def _lime_fields(*, variant: bool, n_instances: int) -> list[tuple]:
    """The flags of a LIME stage, in flag order; the test-split stage also names the variant it explains."""
    named = [("variant", str, flag(help="variant name written into the CSV"))] if variant else []
    return [
        ("model", str, flag(help="any artefact load_classifier reads (folder, .pt, .onnx)")),
        *named,
        ("data", str, shared_flag("data")),
        ("n_instances", int, flag(n_instances, aliases=["--n_instances"], help="instances to explain")),
        ("num_samples", int, flag(1000, aliases=["--num_samples"], help="LIME perturbations each")),
        ("seed", int, shared_flag("seed", help="LIME random_state (reset per instance)")),
        ("instance_seed", int, flag(DEFAULT_INSTANCE_SEED, help="seed of the class-stratified instance choice "
                                                                "(keep it fixed across variants)")),
        ("output", str, flag(help="CSV to write")),
        ("max_len", int, shared_flag("max_len")),
        ("batch_size", int, flag(32, help="texts per forward pass (length-sorted)")),
        ("device", str, shared_flag("device")),
        ("threads", int, shared_flag("threads", help="CPU threads (0 = cores / ranks on this node)")),
        ("stop_after", int, flag(0, help=argparse.SUPPRESS)),  # tests: stop after N items, as a kill would
    ]


LimeConfig = dataclasses.make_dataclass(
    "LimeConfig", [*_lime_fields(variant=True, n_instances=100),
                   ("reference_model", str, flag("", aliases=["--reference_model"], help=(
                       "model whose predicted class is explained (the base model); empty = this model's own")))],
    bases=(LimeSettings,), frozen=True)
LimeConfig.__module__ = __name__  # pickling and reprs find it here (make_dataclass takes no module on 3.11)
LimeConfig.__doc__ = "``run_lime_on_model``'s flags: a variant's explanations of its test predictions."

TokenExplanationConfig = dataclasses.make_dataclass(
    "TokenExplanationConfig", _lime_fields(variant=False, n_instances=300), bases=(LimeSettings,), frozen=True)
TokenExplanationConfig.__module__ = __name__
TokenExplanationConfig.__doc__ = "``generate_bert_token_explanations_for_mlp``'s flags (BERT's all-class weights)."


def _prepare_stage(config: LimeSettings) -> tuple[int, int, Path, dict, int, str]:
    """Threads, seed and this rank's device, shared by both LIME stages.

    Returns (rank, world size, output path, the arguments recorded in the manifest, threads, device).
    """
    from common.cli import set_seed
    from common.threads import set_rank_threads

    rank, world = dist_context()
    run_args = {k: v for k, v in config.to_dict().items() if k not in ("stop_after", "threads", "device")}
    threads = set_rank_threads(config.threads)
    set_seed(config.seed)
    return rank, world, Path(config.output), run_args, threads, rank_device(config.device, world)


def run_lime_on_model(config: LimeConfig) -> int:
    """``generate_outputs.generate_lime_csv.run_lime_on_model``: see that script's docstring."""
    from common.models.classifier import load_classifier
    from common.manifest import base_manifest, manifest_path_for, write_json_atomic

    rank, world, output, run_args, threads, device = _prepare_stage(config)
    args = config.replace(device=device)
    log.info("LIME: model=%s variant=%s instances=%d samples=%d seed=%d rank=%d/%d threads=%d", args.model,
             args.variant, args.n_instances, args.num_samples, args.seed, rank, world, threads)
    instances = choose_instances(args.data, args.n_instances, args.instance_seed)
    reference = None
    if args.reference_model:
        reference = reference_predictions(args.reference_model, instances, args.max_len, args.device, threads,
                                          output.parent)
    clf = load_classifier(args.model, device=args.device, max_len=args.max_len, batch_size=args.batch_size,
                          threads=threads)
    fn = FastClassifierFn(clf)
    explainer = make_explainer(args.seed)
    own_predictions: dict[int, int] = {}

    def explain(position: int):
        text = instances.texts[position]
        start, model_before = time.perf_counter(), fn.model_seconds
        texts_before, unique_before = fn.n_texts, fn.n_unique
        if reference is None:
            label = int(fn([text])[0].argmax())
        else:
            label = int(reference[position])
        exp = lime_utils.explain_text(explainer, text, fn, (label,), args.num_samples,
                           instance_lime_seed(args.seed, instances.ids[position]))
        elapsed = time.perf_counter() - start
        if exp is None:
            log.warning("Instance %d has no words; it is skipped.", instances.ids[position])
            return [], {}
        predicted = int(np.argmax(exp.predict_proba))
        own_predictions[position] = predicted
        common_fields = [int(instances.ids[position]), text, int(instances.labels[position]), predicted, label]
        tail = [fmt(exp.intercept[label]), fmt(exp.score), fmt(local_pred(exp)), args.variant, args.seed,
                args.num_samples]
        rows = [common_fields + [word, fmt(weight), rank_] + tail for word, weight, rank_ in explanation_rows(exp, label)]
        return rows, {"explain_seconds": round(elapsed, 6), "model_seconds": round(fn.model_seconds - model_before, 6),
                      "n_texts": fn.n_texts - texts_before, "n_unique": fn.n_unique - unique_before}

    run_key = {k: v for k, v in run_args.items() if k not in ("output",)}
    run_key["model_fingerprint"] = artefact_fingerprint(Path(args.model))
    explanation_key = digest({**{k: v for k, v in run_key.items() if k not in ("variant", "model")},
                              "classifier": {k: v for k, v in clf.info.items() if k not in ("path", "threads")},
                              "classifier_type": type(clf).__name__,
                              "batch_dependent": bool(getattr(clf, "batch_dependent", False)),
                              "code": code_fingerprint()})
    started = time.time()

    def stage_manifest() -> dict:  # built only when written (it hashes the model and the data)
        return base_manifest("lime", run_args, args.seed, inputs={
            "model": args.model, "reference_model": args.reference_model or None, "data": _data_input(args.data)})

    if rank == 0 and reuse_identical_explanations(output, explanation_key, args.variant, stage_manifest):
        return 0
    job = ShardedCsvJob(output, LIME_COLUMNS, run_key, len(instances), rank, world)
    metrics: dict = {}

    def publish(merged: Path, result: JobResult) -> None:
        metrics.update({"n_instances": len(instances), "world_size": world, "explained_this_run": result.explained_now,
                        "resumed_instances": result.resumed, **summarize_timing(result.stats)})
        metrics.update(_csv_summary(merged, reference is not None))
        manifest = stage_manifest()
        manifest.update({"variant": args.variant, "classifier": clf.info, "instance_ids": instances.ids.tolist(),
                         "instance_seed": args.instance_seed, "wall_seconds": round(time.time() - started, 3),
                         "explanation_key": explanation_key, "csv_sha256": sha256_file(merged),
                         "metrics": metrics})
        write_json_atomic(manifest_path_for(output), manifest)

    result = job.run(explain, desc=f"LIME {args.variant}" + (f" rank {rank}" if world > 1 else ""),
                     stop_after=args.stop_after, publish=publish)
    if not result.finished:
        return 3
    if rank != 0:
        return 0
    log.info("Wrote %s (%d rows); %s", output, metrics.get("n_rows", 0),
             {k: metrics[k] for k in ("seconds_per_explanation_mean", "outside_model_fraction",
                                      "label_agreement_with_reference") if k in metrics})
    return 0


def _data_input(data: str | None) -> str | None:
    return data if data and Path(data).exists() else None


def reuse_identical_explanations(output: Path, explanation_key: str, variant: str,
                                 make_manifest: Callable[[], dict]) -> bool:
    """Keep an up-to-date output, or copy a finished sibling CSV that explains the same model file with the
    same settings, renamed. True when nothing is left to explain.

    The explanation key is every setting, the model's fingerprint, the loaded classifier's description
    and the hash of every toolkit source file the process has imported (:func:`code_fingerprint`), so a
    code edit that could change an explanation always re-explains. The output itself counts when its
    manifest records the same key and variant and the CSV still has the recorded hash: Make reruns the
    stage when a knob of the LIME group changes or a checkout refreshes a source file's time, and the
    hours of explanations are kept when nothing that decides them changed.

    Two variant names can resolve to one file (``base`` and ``base_onnx`` are both explained through
    ``models/onnx/base.onnx``; ``pruned20`` and ``pruned20_onnx`` through ``pruned20.onnx`` when
    LIME_VIA_ONNX=1). LIME is deterministic for a given (model, seed, samples, instances), so the second
    run would write the same rows: they are copied with the ``variant`` column replaced, and the manifest
    names the source (``reused_from``). A sibling counts only when its manifest records the same
    explanation key (not the variant name) and the CSV still has the hash its manifest recorded.
    """
    from common.manifest import manifest_path_for, read_manifest, write_json_atomic, atomic_output_file

    current = read_manifest(manifest_path_for(output)) if output.is_file() else None
    if (current and current.get("explanation_key") == explanation_key and current.get("variant") == variant
            and current.get("csv_sha256") == sha256_file(output)):
        output.touch()  # Make rebuilt it because a stamp or a source changed; the explanations did not
        log.info("%s already holds these explanations (same model fingerprint and settings): kept.", output)
        return True
    for sibling in sorted(output.parent.glob("*.csv")):
        if sibling == output:
            continue
        source = read_manifest(manifest_path_for(sibling))
        if not source or source.get("explanation_key") != explanation_key:
            continue
        if source.get("csv_sha256") != sha256_file(sibling):
            log.warning("%s does not match the hash its manifest records; not reused.", sibling)
            continue
        with open(sibling, newline="") as fh, atomic_output_file(output) as tmp, open(tmp, "w", newline="") as out:
            reader, writer = csv.reader(fh), csv.writer(out, lineterminator="\n")
            header = next(reader)
            column = header.index("variant")
            writer.writerow(header)
            for row in reader:
                row[column] = variant
                writer.writerow(row)
            out.flush()
            manifest = make_manifest()
            manifest.update({key: source[key] for key in ("classifier", "instance_ids", "instance_seed", "metrics")
                             if key in source})
            manifest.update({"variant": variant, "explanation_key": explanation_key, "reused_from": str(sibling),
                             "csv_sha256": sha256_file(tmp)})
            write_json_atomic(manifest_path_for(output), manifest)
        log.info("%s explains the same model file with the same settings as %s: its rows were copied (variant "
                 "renamed), nothing re-explained.", output, sibling)
        return True
    return False


def _csv_summary(path: Path, has_reference: bool) -> dict:
    import pandas as pd

    frame = pd.read_csv(path)
    per_instance = frame.drop_duplicates("instance_id")
    out = {"n_rows": int(len(frame)), "n_explained_instances": int(len(per_instance)),
           "accuracy_on_instances": float((per_instance.predicted_label == per_instance.true_label).mean())}
    if has_reference:
        out["label_agreement_with_reference"] = float(
            (per_instance.predicted_label == per_instance.explained_label).mean())
    return out


# ----------------------------------------------------------------------------------------------- MLP input
def run_token_explanations(config: TokenExplanationConfig) -> int:
    """LIME weights of every class for a seeded class-stratified sample of training instances (MLP input)."""
    from common.models.classifier import load_classifier
    from common.manifest import base_manifest, manifest_path_for, write_json_atomic

    rank, world, output, run_args, threads, device = _prepare_stage(config)
    args = config.replace(device=device)
    instances = choose_instances(args.data, args.n_instances, args.seed, split="train")
    clf = load_classifier(args.model, device=args.device, max_len=args.max_len, batch_size=args.batch_size,
                          threads=threads)
    fn = FastClassifierFn(clf)
    explainer = make_explainer(args.seed)
    labels = list(range(len(LABEL_NAMES)))

    def explain(position: int):
        text = instances.texts[position]
        start, model_before = time.perf_counter(), fn.model_seconds
        texts_before, unique_before = fn.n_texts, fn.n_unique
        per_label = explain_each_label(explainer, text, fn, labels, args.num_samples,
                                       instance_lime_seed(args.seed, instances.ids[position]))
        if not per_label:
            log.warning("Training row %d has no words; it is skipped.", instances.ids[position])
            return [], {}
        predicted = int(np.argmax(next(iter(per_label.values())).predict_proba))
        rows = []
        for label, exp in per_label.items():
            for word, weight, rank_ in explanation_rows(exp, label):
                rows.append([int(instances.ids[position]), text, int(instances.labels[position]), predicted, label,
                             word, fmt(weight), rank_, fmt(exp.intercept[label]), fmt(exp.score), args.num_samples,
                             args.seed])
        return rows, {"explain_seconds": round(time.perf_counter() - start, 6),
                      "model_seconds": round(fn.model_seconds - model_before, 6),
                      "n_texts": fn.n_texts - texts_before, "n_unique": fn.n_unique - unique_before}

    run_key = {k: v for k, v in run_args.items() if k != "output"}
    run_key["model_fingerprint"] = artefact_fingerprint(Path(args.model))
    job = ShardedCsvJob(output, MLP_COLUMNS, run_key, len(instances), rank, world)
    started = time.time()

    def publish(merged: Path, result: JobResult) -> None:
        metrics = {"n_instances": len(instances), "explained_labels": labels, "world_size": world,
                   "explained_this_run": result.explained_now, "resumed_instances": result.resumed,
                   **summarize_timing(result.stats)}
        manifest = base_manifest("bert_token_explanations", run_args, args.seed, inputs={
            "model": args.model, "data": _data_input(args.data)})
        manifest.update({"classifier": clf.info, "split": "train", "instance_ids": instances.ids.tolist(),
                         "wall_seconds": round(time.time() - started, 3), "metrics": metrics})
        write_json_atomic(manifest_path_for(output), manifest)

    result = job.run(explain, desc="LIME (train, all classes)", stop_after=args.stop_after, publish=publish)
    if not result.finished:
        return 3
    if rank != 0:
        return 0
    log.info("Wrote %s (%d instances x %d classes)", output, len(instances), len(labels))
    return 0
