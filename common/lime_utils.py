"""LIME for any artefact: fast classifier_fn, reproducible explanations, resumable sharded CSVs.

Why things are done the way they are (see DESIGN.md, "LIME facts that bite"):

* ``LimeTextExplainer`` advances its random state with every call, so the state is
  reset per instance to a seed derived from (LIME seed, instance id)
  (:func:`instance_lime_seed`): each explanation is reproducible alone, after a resume
  and on any rank, does not depend on which other instances are explained, every
  variant sees exactly the same perturbed texts, and two instances never share their
  perturbation masks (their sampling noise is independent, as the bootstrap assumes).
* Dynamic int8 classifiers (``batch_dependent``) quantize activations with one scale
  per batch, so a text's probabilities depend on its batch mates. For them LIME always
  predicts an instance's perturbation set in length-sorted batches of a fixed size
  (``BATCH_DEPENDENT_BATCH_SIZE``), whatever ``--batch-size`` says: the batch composition
  is then a function of the instance alone, so explanations do not depend on the flag
  (and stay as fast as sorted batching; one batch of every perturbation would pad them all
  to the longest).
* ``feature_selection='none'`` (and ``num_features`` = number of words) keeps every
  word, so whole weight vectors can be compared between variants.
* The instances are a class-stratified choice from the test split that depends only
  on ``instance_seed``, never on the LIME seed: the noise-floor run (another LIME
  seed) explains the same texts.
* Results are appended per instance to a hidden part file with a progress log of
  byte offsets; a killed run truncates to the last finished instance and resumes.
  Under ``torchrun`` each rank explains ``positions % world == rank`` into its own
  part; rank 0 merges the parts in instance order, so the CSV is byte-identical to
  a single-process run.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from common import LABEL_NAMES
from common.cli import UserError
from common.manifest import artefact_fingerprint, digest, sha256_file

log = logging.getLogger(__name__)

LIME_COLUMNS = ["instance_id", "text", "true_label", "predicted_label", "explained_label", "word", "weight",
                "rank", "intercept", "score", "local_pred", "variant", "seed", "num_samples"]
MLP_COLUMNS = ["instance_id", "text", "true_label", "predicted_label", "explained_label", "word", "weight",
               "rank", "intercept", "score", "num_samples", "seed"]
DEFAULT_INSTANCE_SEED = 42
BATCH_DEPENDENT_BATCH_SIZE = 32  # LIME's batch size for dynamic-int8 models, independent of --batch-size
WAIT_POLL_S = 0.5


def fmt(value: float) -> str:
    """Floats in CSVs: fixed significant digits, so reruns compare byte for byte."""
    value = float(value)
    return "0" if value == 0 else f"{value:.8g}"


# ----------------------------------------------------------------------------------------------- model function
class FastClassifierFn:
    """``classifier_fn`` for LIME over any :class:`~common.classifier.Classifier`.

    Identical perturbed strings are predicted once; the classifier sorts the unique
    strings by token length and pads each batch to its own longest item. The last
    call is memoised, so explaining several labels of one instance (LIME re-samples
    the same texts after a random-state reset) costs one pass. ``model_seconds``
    accumulates the time spent inside, for the overhead measurement.
    """

    def __init__(self, classifier):
        self.classifier = classifier
        self.model_seconds = 0.0
        self.n_texts = 0
        self.n_unique = 0
        self._last_keys: list[str] | None = None
        self._last_probs: np.ndarray | None = None

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        start = time.perf_counter()
        texts = list(texts)
        position = {}
        for text in texts:
            position.setdefault(text, len(position))
        keys = list(position)
        if keys == self._last_keys:
            probs = self._last_probs
        else:
            # batch-dependent (dynamic int8) models: a fixed batch size = a fixed composition per instance
            batch_size = BATCH_DEPENDENT_BATCH_SIZE if getattr(self.classifier, "batch_dependent", False) else None
            probs = self.classifier.predict_proba(keys, batch_size=batch_size)
            self._last_keys, self._last_probs = keys, probs
            self.n_unique += len(keys)
        self.n_texts += len(texts)
        out = probs[np.fromiter((position[t] for t in texts), dtype=np.int64, count=len(texts))]
        self.model_seconds += time.perf_counter() - start
        return out


# ----------------------------------------------------------------------------------------------- explanations
def make_explainer(seed: int):
    from lime.lime_text import LimeTextExplainer

    return LimeTextExplainer(class_names=list(LABEL_NAMES), random_state=seed, feature_selection="none")


def instance_lime_seed(seed: int, instance_id: int) -> int:
    """LIME's random state for one instance: derived from (seed, instance_id), independent across instances."""
    return int(np.random.SeedSequence([int(seed), int(instance_id)]).generate_state(1)[0])


def count_words(explainer, text: str) -> int:
    from lime.lime_text import IndexedString

    return IndexedString(text, bow=explainer.bow, split_expression=explainer.split_expression,
                         mask_string=explainer.mask_string).num_words()


def explain_text(explainer, text: str, classifier_fn: Callable, labels: Sequence[int], num_samples: int,
                 seed: int):
    """One reproducible explanation of ``labels`` (every word kept), or None for a text without words."""
    from sklearn.utils import check_random_state

    num_words = count_words(explainer, text)
    if num_words == 0:
        return None
    explainer.random_state = check_random_state(seed)
    explainer.base.random_state = explainer.random_state
    return explainer.explain_instance(text, classifier_fn, labels=tuple(int(k) for k in labels),
                                      num_features=num_words, num_samples=num_samples)


def explain_each_label(explainer, text: str, classifier_fn: FastClassifierFn, labels: Sequence[int],
                       num_samples: int, seed: int) -> dict:
    """label -> explanation of that label alone. LIME keeps only the last label's score and local_pred, so
    each label gets its own call (same perturbations after the reset; the model runs once, memoised)."""
    out = {}
    for label in labels:
        exp = explain_text(explainer, text, classifier_fn, (label,), num_samples, seed)
        if exp is None:
            return {}
        out[int(label)] = exp
    return out


def explanation_rows(exp, label: int) -> list[tuple[str, float, int]]:
    """(word, weight, rank) for one label, rank 1 = largest |weight| (LIME's order)."""
    mapper = exp.domain_mapper
    return [(mapper.indexed_string.word(feature), float(weight), rank)
            for rank, (feature, weight) in enumerate(exp.local_exp[label], start=1)]


def local_pred(exp) -> float:
    value = np.asarray(exp.local_pred).ravel()
    return float(value[0]) if value.size else float("nan")


# ----------------------------------------------------------------------------------------------- instances
@dataclass
class Instances:
    ids: np.ndarray       # row numbers in the split file
    texts: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


def choose_instances(data: str, n: int, instance_seed: int = DEFAULT_INSTANCE_SEED, split: str = "test") -> Instances:
    """A class-stratified, seeded choice of ``n`` rows of ``split``, in file order (same for every variant)."""
    from common.data import load_dataset, load_test_split, stratified_indices

    if n < 1:
        raise UserError(f"--n-instances must be at least 1 (got {n}).")
    if split == "test":
        rows = load_test_split(data, 0)
    else:
        rows = load_dataset(data, 0, instance_seed, validation_fraction=0).train
    ids = stratified_indices(rows.labels, n, instance_seed)
    return Instances(ids=ids, texts=[rows.texts[i] for i in ids], labels=rows.labels[ids])


def reference_predictions(reference: str | os.PathLike, instances: Instances, max_len: int, device: str,
                          threads: int, cache_dir: Path) -> np.ndarray:
    """The reference (base) model's predicted labels for the instances, computed once and cached."""
    from common.classifier import load_classifier
    from common.manifest import write_json_atomic

    reference = Path(reference)
    key = digest({"model": artefact_fingerprint(reference), "max_len": max_len,
                   "ids": instances.ids.tolist(), "texts": digest(instances.texts)})
    cache = Path(cache_dir) / f".reference_predictions_{key[:16]}.json"
    if cache.is_file():
        with contextlib.suppress(ValueError, KeyError, OSError):
            cached = json.loads(cache.read_text())
            if cached["key"] == key:
                return np.asarray(cached["predicted"], dtype=np.int64)
    log.info("Predicting the reference model %s on %d instances (cached in %s)", reference, len(instances), cache)
    clf = load_classifier(reference, device=device, max_len=max_len, threads=threads)
    predicted = clf.predict(instances.texts).astype(np.int64)
    write_json_atomic(cache, {"key": key, "reference": str(reference), "predicted": predicted.tolist()})
    return predicted


# ----------------------------------------------------------------------------------------------- distribution
def dist_context() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment; (0, 1) when launched alone."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise UserError("RANK/WORLD_SIZE are set but not integers; launch with torchrun or unset them.") from None
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"RANK={rank} WORLD_SIZE={world} is inconsistent; launch with torchrun or unset them.")
    return rank, world


def rank_device(device: str, world: int) -> str:
    """Under torchrun, ``auto``/``cuda`` means this rank's own GPU (cuda:LOCAL_RANK)."""
    from common.cli import resolve_device

    device = resolve_device(device)
    if device == "cuda" and world > 1:
        import torch

        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % max(torch.cuda.device_count(), 1)}"
    return device


def default_threads(threads: int) -> int:
    """0 = the cores divided among the ranks on this node."""
    if threads:
        return threads
    local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")) or 1)
    return max(1, (os.cpu_count() or 1) // max(local, 1))


# ----------------------------------------------------------------------------------------------- the CSV job
@dataclass
class JobResult:
    finished: bool
    explained_now: int = 0
    resumed: int = 0
    stats: dict = field(default_factory=dict)


class ShardedCsvJob:
    """Append rows per item into a rank part file (resumable); rank 0 merges all parts in item order.

    ``run_key`` identifies the settings: a part written with other settings is discarded.
    ``explain(position) -> list[row]`` does the work for one item.
    """

    def __init__(self, output: Path, columns: list[str], run_key: dict, n_items: int, rank: int = 0,
                 world: int = 1):
        self.output = Path(output)
        self.columns = columns
        self.key = digest(run_key)
        self.n_items = n_items
        self.rank, self.world = rank, world

    def _part(self, rank: int, suffix: str) -> Path:
        return self.output.with_name(f".{self.output.name}.part{rank}of{self.world}{suffix}")

    def _read_progress(self, rank: int) -> tuple[dict[int, tuple[int, int]], dict] | None:
        """Finished positions -> (start, end) byte offsets, and stats; None when the part is unusable."""
        progress = self._part(rank, ".progress")
        if not progress.is_file():
            return None
        spans: dict[int, tuple[int, int]] = {}
        stats: dict = {"explain_seconds": [], "model_seconds": [], "n_texts": 0, "n_unique": 0}
        with open(progress) as fh:
            lines = fh.read().split("\n")
        try:
            header = json.loads(lines[0])
        except ValueError:
            return None
        if header.get("key") != self.key:
            return None
        start = 0
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut by a kill: everything after it is redone
                break
            spans[int(entry["position"])] = (start, int(entry["end"]))
            start = int(entry["end"])
            for name in ("explain_seconds", "model_seconds"):
                stats[name].append(float(entry.get(name, 0.0)))
            stats["n_texts"] += int(entry.get("n_texts", 0))
            stats["n_unique"] += int(entry.get("n_unique", 0))
        return spans, stats

    def run(self, explain: Callable[[int], tuple[list[list], dict]], desc: str, stop_after: int = 0,
            publish: Callable[[Path, JobResult], None] | None = None) -> JobResult:
        """Explain this rank's items (resuming), then on rank 0 merge every part into the output.

        ``publish(merged_tmp_csv, result)`` runs on rank 0 after the merged CSV is complete but before it
        is renamed into place, so the stage writes its manifest first and the Make target appears last.
        """
        from tqdm import tqdm

        part, progress, done = self._part(self.rank, ""), self._part(self.rank, ".progress"), self._part(self.rank, ".done")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        state = self._read_progress(self.rank)
        if state is None:
            for path in (part, progress, done):
                path.unlink(missing_ok=True)
            with open(progress, "w") as fh:
                fh.write(json.dumps({"key": self.key}) + "\n")
            spans = {}
        else:
            spans = state[0]
            end = max((e for _, e in spans.values()), default=0)
            with open(part, "a+b") as fh:  # drop rows of an instance a kill cut short
                fh.truncate(end)
            # keep the progress log consistent with the part: rewrite only its valid lines
            lines = progress.read_text().split("\n")
            progress.write_text("\n".join(lines[:1 + len(spans)]) + "\n")
            if spans:
                log.info("Resuming %s: %d instance(s) of this part already explained", self.output, len(spans))
        mine = [p for p in range(self.n_items) if p % self.world == self.rank]
        todo = [p for p in mine if p not in spans]
        explained = 0
        with open(part, "ab") as part_fh, open(progress, "a") as progress_fh, \
                tqdm(total=len(mine), initial=len(mine) - len(todo), desc=desc, unit="instance",
                     position=self.rank if self.world > 1 else None) as bar:
            for position in todo:
                if stop_after and explained >= stop_after:
                    log.warning("Stopping after %d instance(s) (--stop-after); rerun to resume.", explained)
                    return JobResult(False, explained, len(mine) - len(todo))
                rows, stats = explain(position)
                buffer = io.StringIO()
                csv.writer(buffer, lineterminator="\n").writerows(rows)
                part_fh.write(buffer.getvalue().encode())
                part_fh.flush()
                os.fsync(part_fh.fileno())
                progress_fh.write(json.dumps({"position": position, "end": part_fh.tell(), **stats}) + "\n")
                progress_fh.flush()
                explained += 1
                bar.update(1)
        done.write_text("done\n")
        if self.rank != 0:
            return JobResult(True, explained, len(mine) - len(todo))
        result = JobResult(True, explained, len(mine) - len(todo))

        def before_rename(merged: Path, stats: dict) -> None:
            result.stats = stats
            if publish is not None:
                publish(merged, result)

        self._merge(before_rename)
        return result

    def _merge(self, before_rename: Callable[[Path, dict], None]) -> None:
        """Wait for every rank's part, write them in item order to a temporary sibling of the output,
        call ``before_rename(tmp, merged_stats)``, then rename it into place and delete the parts."""
        from common.manifest import atomic_output_file

        def finished(rank: int) -> bool:  # a stale marker from a run with other settings does not count
            if not self._part(rank, ".done").is_file():
                return False
            state = self._read_progress(rank)
            return state is not None and set(state[0]) >= {p for p in range(self.n_items) if p % self.world == rank}

        waiting_since = time.time()
        pending = [r for r in range(self.world) if not finished(r)]
        while pending:
            if time.time() - waiting_since > 60:
                log.info("Waiting for rank(s) %s to finish their parts", pending)
                waiting_since = time.time()
            time.sleep(WAIT_POLL_S)
            pending = [r for r in range(self.world) if not finished(r)]
        chunks: dict[int, tuple[int, int, int]] = {}
        stats: dict = {"explain_seconds": [], "model_seconds": [], "n_texts": 0, "n_unique": 0}
        for rank in range(self.world):
            state = self._read_progress(rank)
            if state is None:
                raise UserError(f"Part {self._part(rank, '')} is missing or was written with other settings; "
                                f"rerun the command.")
            spans, rank_stats = state
            for position, (start, end) in spans.items():
                chunks[position] = (rank, start, end)
            for name in ("explain_seconds", "model_seconds"):
                stats[name] += rank_stats[name]
            stats["n_texts"] += rank_stats["n_texts"]
            stats["n_unique"] += rank_stats["n_unique"]
        missing = sorted(set(range(self.n_items)) - set(chunks))
        if missing:
            raise UserError(f"Instances {missing[:5]} are missing from the parts of {self.output}; rerun the command.")
        parts = {rank: self._part(rank, "").read_bytes() for rank in range(self.world)}
        with atomic_output_file(self.output) as tmp:
            with open(tmp, "wb") as fh:
                header = io.StringIO()
                csv.writer(header, lineterminator="\n").writerow(self.columns)
                fh.write(header.getvalue().encode())
                for position in range(self.n_items):
                    rank, start, end = chunks[position]
                    fh.write(parts[rank][start:end])
            before_rename(tmp, stats)
        for rank in range(self.world):
            for suffix in ("", ".progress", ".done"):
                self._part(rank, suffix).unlink(missing_ok=True)


def summarize_timing(stats: dict) -> dict:
    explain = np.asarray(stats.get("explain_seconds", []), dtype=float)
    model = np.asarray(stats.get("model_seconds", []), dtype=float)
    if explain.size == 0:
        return {}
    total = float(explain.sum())
    return {
        "timed_explanations": int(explain.size),
        "seconds_per_explanation_mean": float(explain.mean()),
        "seconds_per_explanation_median": float(np.median(explain)),
        "model_time_fraction": float(model.sum() / total) if total > 0 else None,
        "outside_model_fraction": float(1 - model.sum() / total) if total > 0 else None,
        "unique_text_fraction": (stats["n_unique"] / stats["n_texts"]) if stats.get("n_texts") else None,
    }


# ----------------------------------------------------------------------------------------------- the LIME stage
def _prepare_stage(args) -> tuple[int, int, Path, dict, int]:
    """Flag checks, threads, seed and this rank's device, shared by both LIME stages.

    Returns (rank, world size, output path, the arguments recorded in the manifest, threads).
    """
    from common.cli import set_seed
    from common.evaluation import set_threads

    rank, world = dist_context()
    output = Path(args.output)
    if args.num_samples < 2:
        raise UserError(f"--num-samples must be at least 2 (got {args.num_samples}).")
    if output.suffix != ".csv":
        raise UserError(f"--output {output} must be a .csv file.")
    run_args = {k: v for k, v in vars(args).items() if k not in ("stop_after", "threads", "device")}
    threads = default_threads(args.threads)
    set_threads(threads)
    set_seed(args.seed)
    args.device = rank_device(args.device, world)
    return rank, world, output, run_args, threads


def run_lime_on_model(args) -> int:
    """``generate_outputs.generate_lime_csv.run_lime_on_model``: see that script's docstring."""
    from common.classifier import load_classifier
    from common.manifest import base_manifest, manifest_path_for, write_json_atomic

    rank, world, output, run_args, threads = _prepare_stage(args)
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
        exp = explain_text(explainer, text, fn, (label,), args.num_samples,
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
    explanation_key = digest({k: v for k, v in run_key.items() if k not in ("variant", "model")})
    started = time.time()
    if rank == 0 and reuse_identical_explanations(output, explanation_key, args.variant,
                                                  base_manifest("lime", run_args, args.seed, inputs={
                                                      "model": args.model,
                                                      "reference_model": args.reference_model or None,
                                                      "data": _data_input(args.data)})):
        return 0
    job = ShardedCsvJob(output, LIME_COLUMNS, run_key, len(instances), rank, world)
    metrics: dict = {}

    def publish(merged: Path, result: JobResult) -> None:
        metrics.update({"n_instances": len(instances), "world_size": world, "explained_this_run": result.explained_now,
                        "resumed_instances": result.resumed, **summarize_timing(result.stats)})
        metrics.update(_csv_summary(merged, reference is not None))
        manifest = base_manifest("lime", run_args, args.seed, inputs={
            "model": args.model, "reference_model": args.reference_model or None,
            "data": _data_input(args.data)})
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


def reuse_identical_explanations(output: Path, explanation_key: str, variant: str, manifest: dict) -> bool:
    """Keep an up-to-date output, or copy a finished sibling CSV that explains the same model file with the
    same settings, renamed. True when nothing is left to explain.

    The output itself counts when its manifest records the same explanation key and variant and the CSV
    still has the recorded hash: Make reruns the stage when any knob of the LIME group or any source file
    changes, and the hours of explanations are kept when the inputs that decide them did not.

    Two variant names can resolve to one file (``base`` and ``base_onnx`` are both explained through
    ``models/onnx/base.onnx``; ``pruned20`` and ``pruned20_onnx`` through ``pruned20.onnx`` when
    LIME_VIA_ONNX=1). LIME is deterministic for a given (model, seed, samples, instances), so the second
    run would write the same rows: they are copied with the ``variant`` column replaced, and the manifest
    names the source (``reused_from``). A sibling counts only when its manifest records the same
    explanation key (every setting and the model's fingerprint; not the variant name) and the CSV still
    has the hash its manifest recorded.
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


def add_lime_arguments(parser, *, variant: bool = True) -> None:
    parser.add_argument("--model", required=True, help="any artefact load_classifier reads (folder, .pt, .onnx)")
    if variant:
        parser.add_argument("--variant", required=True, help="variant name written into the CSV")
    parser.add_argument("--data", default="", help="folder with train/test files, or ag_news; empty = demo sample")
    parser.add_argument("--n-instances", "--n_instances", type=int, default=100, help="instances to explain")
    parser.add_argument("--num-samples", "--num_samples", type=int, default=1000, help="LIME perturbations each")
    parser.add_argument("--seed", type=int, default=42, help="LIME random_state (reset per instance)")
    parser.add_argument("--instance-seed", type=int, default=DEFAULT_INSTANCE_SEED,
                        help="seed of the class-stratified instance choice (keep it fixed across variants)")
    parser.add_argument("--output", required=True, help="CSV to write")
    parser.add_argument("--max-len", "--max_len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (length-sorted)")
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = cores / ranks on this node)")
    parser.add_argument("--stop-after", type=int, default=0, help=argparse_suppress())


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


# ----------------------------------------------------------------------------------------------- MLP input
def run_token_explanations(args) -> int:
    """LIME weights of every class for a seeded class-stratified sample of training instances (MLP input)."""
    from common.classifier import load_classifier
    from common.manifest import base_manifest, manifest_path_for, write_json_atomic

    rank, world, output, run_args, threads = _prepare_stage(args)
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
            "model": args.model, "data": args.data if args.data and Path(args.data).exists() else None})
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
