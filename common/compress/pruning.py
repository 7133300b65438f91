"""Structured pruning of attention heads and FFN neurons, then re-fine-tuning with fixed masks.

Design decisions (also in the README):

* **Importance** - first-order Taylor importance ``|dL/dmask * mask|`` of every head and
  every FFN intermediate neuron (Michel et al. 2019, "Are Sixteen Heads Really Better
  than One?"). All masks are 1 and ``requires_grad``; they scale each head's slice of the
  attention context and each neuron's activation through :class:`common.models.pruning_spec.MaskHooks`.
  The absolute gradient is summed over the batches of a seeded, class-stratified slice of
  the **training** split (never test, never validation), in eval mode (no dropout noise),
  with the model's weights frozen (only the masks need gradients). Raw sums are kept in a
  sidecar ``importance.json``; for ranking, each layer's scores are divided by their L2
  norm, as Michel et al. do, so layers with larger gradients do not dominate.
* **Heads: global ranking.** The ``sparsity``% least important heads of the whole model
  are removed (Michel et al. found global, per-layer-normalised ranking better than a fixed
  per-layer quota: some layers need all their heads, others few), never the last head of a
  layer (a layer without heads has no attention and BERT cannot run it shrunk).
* **FFN neurons: per layer.** Each layer loses ``sparsity``% of its neurons. A global
  ranking over 6x1536 neurons is dominated by how gradient magnitudes differ between layers
  (normalisation by the layer's L2 norm scales by the layer's total, which with ~1.5k
  neurons mostly reflects the score distribution's shape, not the layer's importance) and
  can hollow a layer out; a per-layer quota keeps every layer's width proportional, which is
  the conservative choice with only a few thousand training rows to recover from, and gives
  uniform, predictable matrix shapes (and speed-ups) after shrinking. Heads are few (72 in
  MiniLM), so a per-layer quota would round badly (20% of 12 = 2.4); globally the count is exact.
* **Head/FFN ratio** (``head_ffn_ratio`` r, default 1): the head share pruned is r times the FFN share, with
  both chosen so that the *encoder parameters* removed stay the requested percentage (:func:`split_sparsity`:
  attention is 4H^2 of a layer's weights, the FFN 2HI, a third and two thirds in BERT/MiniLM). r = 1 is the
  historical equal percentage; r < 1 spares heads, r > 1 spares FFN neurons. The sweep's x axis (encoder
  sparsity) so stays comparable across ratios.
* **Re-fine-tuning** - the masks stay fixed (hooks) while :func:`common.compress.training.train`
  trains on the train split, by default distilling from the unpruned model (a copy taken
  before any hook is attached). Afterwards the weights that only feed pruned units are
  zeroed, so the saved folder computes the pruned function without hooks and reloads with
  a plain ``from_pretrained``; ``pruning_spec.json`` (``shrunk=false``) lists what is kept.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.cli import UserError, resolve_device, set_seed
from common.data import Split, load_dataset, stratified_indices
from common.compress.function_matching import (check_recipe, function_fidelity, function_training_set, load_teacher,
                                               recipe_fields, recipe_run_key)
from common.manifest import atomic_output_dir, base_manifest, read_manifest, write_json_atomic
from common.metrics import classification_metrics
from common.models.modeling import count_parameters, is_model_folder, load_model_folder, save_model_folder
from common.models.pruning_spec import (SPEC_FILE, LayerSpec, MaskHooks, PruningSpec, apply_mask_hooks, build_from_config,
                                 shrunk_spec, zero_pruned_weights)
from common.compress.training import PRUNING_STATE_FILE, TrainingFlags, load_pruning_state, save_pruning_state, training_fields
from common.stage import config_class, flag

log = logging.getLogger(__name__)

IMPORTANCE_FILE = "importance.json"
MAX_SPARSITY = 95.0
IMPORTANCE_METHOD = "first-order Taylor |dL/dmask * mask| (Michel et al. 2019), summed over batches"


# ----------------------------------------------------------------------------------------------- importance
def _batches(split: Split, tokenizer, max_len: int, batch_size: int):
    order = np.argsort([len(t) for t in split.texts], kind="stable")  # similar lengths -> little padding
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer([split.texts[i] for i in idx], truncation=True, max_length=max_len, padding=True,
                        return_tensors="pt")
        enc["labels"] = torch.as_tensor(split.labels[idx], dtype=torch.long)
        yield enc


def compute_importance(model, tokenizer, split: Split, max_len: int = 128, batch_size: int = 32,
                       device: str = "cpu", progress: bool = True) -> dict[str, np.ndarray]:
    """Raw Taylor importance of heads (layers x heads) and FFN neurons (layers x intermediate).

    ``sum over batches of |dL/dm|`` with every mask ``m = 1`` (so ``|dL/dm * m| = |dL/dm|``).
    The model is left unchanged (weights, ``requires_grad`` flags and hooks restored).
    """
    if len(split) == 0:
        raise UserError("The importance slice of the training data is empty; use --importance-samples > 0 "
                        "and a non-empty train split.")
    config = model.config
    n_layers, n_heads = config.num_hidden_layers, config.num_attention_heads
    head_size = config.hidden_size // n_heads
    model.to(device).eval()
    grad_flags = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    head_masks = [torch.ones(n_heads, device=device, requires_grad=True) for _ in range(n_layers)]
    neuron_masks = [torch.ones(config.intermediate_size, device=device, requires_grad=True)
                    for _ in range(n_layers)]
    head_scores = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    neuron_scores = torch.zeros(n_layers, config.intermediate_size, dtype=torch.float64)
    hooks = MaskHooks(model, head_masks, neuron_masks, head_size)
    try:
        batches = _batches(split, tokenizer, max_len, batch_size)
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, total=(len(split) + batch_size - 1) // batch_size, desc="importance",
                           unit="batch")
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = model(**batch).loss
            grads = torch.autograd.grad(loss, head_masks + neuron_masks)
            head_scores += torch.stack([g.abs() for g in grads[:n_layers]]).double().cpu()
            neuron_scores += torch.stack([g.abs() for g in grads[n_layers:]]).double().cpu()
    finally:
        hooks.remove()
        for name, p in model.named_parameters():
            p.requires_grad_(grad_flags[name])
    return {"heads": head_scores.numpy(), "neurons": neuron_scores.numpy()}


def normalise_per_layer(scores: np.ndarray) -> np.ndarray:
    """Divide each layer's (row's) scores by their L2 norm (Michel et al.)."""
    norm = np.sqrt((scores ** 2).sum(axis=1, keepdims=True))
    return scores / (norm + 1e-20)


# ----------------------------------------------------------------------------------------------- selection
def check_sparsity(sparsity: float) -> float:
    if not 0.0 <= sparsity <= MAX_SPARSITY:
        raise UserError(f"--sparsity {sparsity:g} is outside 0..{MAX_SPARSITY:g}; give the percentage of heads and "
                        f"FFN neurons to remove, e.g. --sparsity 20.")
    return float(sparsity)


def attention_share(config) -> float:
    """The attention blocks' share of a layer's prunable weights: Q, K, V, O (4 H^2) vs the FFN's two
    matrices (2 H I); biases and LayerNorms are negligible."""
    hidden, inner = config.hidden_size, config.intermediate_size
    return 4 * hidden / (4 * hidden + 2 * inner)


def check_head_ffn_ratio(head_ffn_ratio: float) -> float:
    if head_ffn_ratio <= 0:
        raise UserError(f"--head-ffn-ratio {head_ffn_ratio:g} must be > 0 (1: the same share of heads and FFN "
                        "neurons; 0.5: half the head share; 2: twice).")
    return float(head_ffn_ratio)


def split_sparsity(sparsity: float, head_ffn_ratio: float, config) -> tuple[float, float]:
    """(head %, FFN %) with head % = ratio x FFN % whose weighted sum is ``sparsity`` % of the encoder weights."""
    check_head_ffn_ratio(head_ffn_ratio)
    share = attention_share(config)
    ffn = sparsity / (share * head_ffn_ratio + 1 - share)
    heads = head_ffn_ratio * ffn
    if max(heads, ffn) > MAX_SPARSITY:
        raise UserError(f"--sparsity {sparsity:g} with --head-ffn-ratio {head_ffn_ratio:g} needs {heads:.0f} % of "
                        f"the heads and {ffn:.0f} % of the FFN neurons (at most {MAX_SPARSITY:g} % each); lower one "
                        "of them.")
    return heads, ffn


def select_heads(head_importance: np.ndarray, sparsity: float) -> list[list[int]]:
    """Global ranking: drop the ``sparsity``% least important heads, keeping >= 1 head per layer."""
    n_layers, n_heads = head_importance.shape
    target = int(round(sparsity / 100.0 * n_layers * n_heads))
    scores = normalise_per_layer(head_importance)
    kept = [set(range(n_heads)) for _ in range(n_layers)]
    removed = 0
    # Ties broken by (layer, head) so the choice is deterministic.
    for flat in np.lexsort((np.arange(scores.size), scores.ravel())):
        if removed >= target:
            break
        layer, head = divmod(int(flat), n_heads)
        if len(kept[layer]) > 1:
            kept[layer].discard(head)
            removed += 1
    return [sorted(k) for k in kept]


def select_neurons(neuron_importance: np.ndarray, sparsity: float) -> list[list[int]]:
    """Per layer: drop the ``sparsity``% least important FFN neurons of every layer (>= 1 kept)."""
    n_layers, width = neuron_importance.shape
    n_drop = min(int(round(sparsity / 100.0 * width)), width - 1)
    kept = []
    for layer in range(n_layers):
        order = np.lexsort((np.arange(width), neuron_importance[layer]))
        kept.append(sorted(int(i) for i in order[n_drop:]))
    return kept


def build_spec(config, importance: dict[str, np.ndarray], sparsity: float, head_ffn_ratio: float = 1.0) -> PruningSpec:
    head_pct, ffn_pct = split_sparsity(sparsity, head_ffn_ratio, config)
    heads = select_heads(importance["heads"], head_pct)
    neurons = select_neurons(importance["neurons"], ffn_pct)
    return PruningSpec(num_heads=config.num_attention_heads,
                       head_size=config.hidden_size // config.num_attention_heads,
                       intermediate_size=config.intermediate_size,
                       layers=[LayerSpec(h, n) for h, n in zip(heads, neurons)],
                       extra={"sparsity": sparsity, "head_ffn_ratio": head_ffn_ratio, "head_sparsity_pct": head_pct,
                              "ffn_sparsity_pct": ffn_pct, "importance": IMPORTANCE_METHOD,
                              "heads": "global ranking, per-layer L2-normalised, >=1 kept per layer",
                              "neurons": "per-layer quota"})


def shrunk_parameter_count(config, spec: PruningSpec) -> dict[str, int]:
    """Parameters the model will have once shrunk (built on the meta device: no memory, no weights)."""
    with torch.device("meta"):
        model = build_from_config(config, shrunk_spec(spec))
    return count_parameters(model)


# ----------------------------------------------------------------------------------------------- stage
def check_model_folder(path: str | Path, flag: str = "--model") -> Path:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{flag} {path} does not exist; build the fine-tuned model first "
                        f"(`make models/fine_tuned/bert_agnews/manifest.json`) or fix the path.")
    if not is_model_folder(path):
        raise UserError(f"{flag} {path} is not a model folder (no config.json); pass a fine-tuned model folder.")
    return path


def _run_key(args: dict, model_dir: Path) -> dict:
    from common.compress.training import NOT_IN_RUN_KEY

    key = {k: v for k, v in args.items() if k not in NOT_IN_RUN_KEY}
    if key.get("head_ffn_ratio") == 1.0:  # the default: the key of the runs made before the flag existed
        del key["head_ffn_ratio"]
    recipe_run_key(key)
    source = read_manifest(model_dir)
    # The source model's identity: its manifest (cheap) or, without one, its weights.
    digest = hashlib.sha256()
    if source is not None:
        digest.update((model_dir / "manifest.json").read_bytes())
    else:
        for file in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.pt")):
            digest.update(file.read_bytes())
    key["source_model_digest"] = digest.hexdigest()
    return key


def _test_metrics(model, tokenizer, test: Split, device: str, max_len: int) -> dict:
    from common.models.classifier import TorchClassifier

    clf = TorchClassifier(model, tokenizer, device=device, max_len=max_len, batch_size=64, progress=True)
    return classification_metrics(test.labels, clf.predict(test.texts))


@dataclass(frozen=True)
class PruneSettings(TrainingFlags):
    """The checks of the pruning stage's flags (its fields: :data:`PruneConfig`)."""

    def check(self) -> None:
        check_sparsity(self.sparsity)
        check_head_ffn_ratio(self.head_ffn_ratio)
        if self.importance_samples <= 0:
            raise UserError("--importance-samples must be > 0 (training rows used to score heads and neurons).")
        super().check()
        if self.distill and self.distill_temperature <= 0:
            raise UserError("--distill-temperature must be > 0.")
        check_recipe(self.recipe, self.perturb_copies, self.perturb_loss, self.hidden_weight, self.distill)


PruneConfig = config_class("PruneConfig", [
    ("model", str, flag(help="fine-tuned (unpruned) model folder")),
    ("sparsity", float, flag(help="percent of the encoder's weights to remove as heads and FFN neurons (0-95)")),
    ("output", str, flag(help="pruned model folder, e.g. models/pruned/bert_agnews_20pct")),
    ("head_ffn_ratio", float, flag(1.0, help=(
        "share of heads pruned / share of FFN neurons pruned, with --sparsity %% of the encoder weights removed "
        "either way (1: equal shares; 0.5 spares heads; 2 spares FFN neurons)"))),
    *training_fields("re-fine-tuning"),
    ("importance_samples", int, flag(512, help="training rows (seeded, stratified slice) used to score heads and "
                                               "neurons")),
    ("distill", bool, flag(True, help="distil from the unpruned model while re-fine-tuning (default on)")),
    ("distill_temperature", float, flag(2.0, help="softmax temperature of distillation")),
    ("distill_weight", float, flag(0.5, help="weight of the distillation loss (0..1; the rest is cross-entropy on "
                                             "labels); --recipe logits only")),
    *recipe_fields(),
], PruneSettings, __name__, "``train/pruning/run_structural_pruning.py``'s flags (the re-fine-tuning ones: "
                            ":func:`~common.compress.training.training_fields`).")


def prune_model(prune_config: PruneConfig) -> int:
    """The pruning stage: importance -> spec -> accuracy with masks -> re-fine-tune -> pruned folder."""
    from common.models.classifier import load_classifier
    from common.compress.training import model_to_save, train

    args = prune_config.to_dict()
    sparsity = check_sparsity(args["sparsity"])
    model_dir = check_model_folder(args["model"])
    if (model_dir / SPEC_FILE).is_file():
        raise UserError(f"--model {model_dir} is already pruned (it has {SPEC_FILE}); prune the unpruned fine-tuned "
                        f"model folder instead.")
    config = prune_config.train_config()
    log.info("pruning config: %s", {k: v for k, v in args.items() if k != "max_steps_this_run"})
    output = Path(args["output"])
    run_key = _run_key(args, model_dir)
    existing = read_manifest(output)
    if existing and not args.get("force") and existing.get("run_key") == run_key:
        log.info("%s is already built with these arguments; nothing to do (use --force to rebuild)", output)
        (output / "manifest.json").touch()  # up to date for Make even if a prerequisite's mtime moved
        return 0

    start = time.time()
    set_seed(args["seed"])
    device = resolve_device(args["device"])
    data = load_dataset(args["data"], args["train_samples"], args["seed"], args["validation_fraction"])
    log.info("data %s: %d train / %d validation / %d test rows", data.source, len(data.train),
             len(data.validation), len(data.test))
    model, tokenizer, _ = load_model_folder(model_dir)
    split_sparsity(sparsity, args["head_ffn_ratio"], model.config)  # an impossible split stops before any work
    params_before = count_parameters(model)
    teacher_dir, teacher = load_teacher(args, model_dir, model, tokenizer)

    # 1. importance on a seeded slice of the training split (or what an interrupted run of this key kept)
    slice_idx = stratified_indices(data.train.labels, args["importance_samples"], args["seed"])
    importance_split = data.train.subset(slice_idx)
    checkpoints = output.with_name(output.name + ".checkpoints")
    reused = load_pruning_state(checkpoints, run_key)
    if reused:
        log.info("resuming: importance scores and post-pruning metrics from %s (not scored again)",
                 checkpoints / PRUNING_STATE_FILE)
        importance = reused["importance"]
    else:
        log.info("scoring %d heads and %d FFN neurons on %d training rows", model.config.num_hidden_layers *
                 model.config.num_attention_heads, model.config.num_hidden_layers * model.config.intermediate_size,
                 len(importance_split))
        importance = compute_importance(model, tokenizer, importance_split, args["max_len"], device=device)

    # 2. which heads / neurons stay
    spec = build_spec(model.config, importance, sparsity, args["head_ffn_ratio"])
    params_after = shrunk_parameter_count(model.config, spec)
    log.info("keeping heads per layer %s, FFN neurons per layer %s", spec.heads_per_layer, spec.neurons_per_layer)

    # 3. accuracy with masks, before re-fine-tuning
    hooks = apply_mask_hooks(model.to(device), spec)
    before = reused["before"] if reused else _test_metrics(model, tokenizer, data.test, device, args["max_len"])
    log.info("test accuracy right after pruning (masks, no re-fine-tuning): %.4f", before["accuracy"])
    if not reused:
        save_pruning_state(checkpoints, run_key, importance, before)

    # 4. re-fine-tune with the masks held fixed (function recipe: on the teacher's outputs for clean texts and
    # LIME-style copies, computed once through the content cache)
    distill_set, collator, recipe_stats, config = function_training_set(
        teacher, teacher_dir, tokenizer, data.train, config, args, output, device)
    stats = train(model, tokenizer, data.train, data.validation, config, checkpoints, run_key, teacher=teacher,
                  train_dataset=distill_set, data_collator=collator)
    model = model_to_save(model, stats)
    if model is None:
        return 0
    hooks.remove()
    model = model.cpu().eval()
    zero_pruned_weights(model, spec)

    # 5. the pruned folder (evaluated as saved: no hooks, zeroed weights)
    n_heads_total = model.config.num_hidden_layers * model.config.num_attention_heads
    n_neurons_total = model.config.num_hidden_layers * model.config.intermediate_size
    with atomic_output_dir(output) as tmp:
        save_model_folder(model, tokenizer, tmp, spec)
        write_json_atomic(tmp / IMPORTANCE_FILE, {
            "method": IMPORTANCE_METHOD,
            "samples": len(importance_split),
            "split": "train (seeded, class-stratified slice)",
            "head_importance_raw": importance["heads"],
            "neuron_importance_raw": importance["neurons"],
            "head_importance_normalised": normalise_per_layer(importance["heads"]),
        })
        clf = load_classifier(tmp, device=device, max_len=args["max_len"], batch_size=64, progress=True)
        test_pred = clf.predict(data.test.texts)
        after = classification_metrics(data.test.labels, test_pred)
        fidelity_stats = function_fidelity(clf, teacher_dir, tokenizer, data, test_pred, device, args, output)
        del clf
        source_manifest = read_manifest(model_dir) or {}
        source_accuracy = (source_manifest.get("metrics") or {}).get("accuracy")
        manifest = base_manifest("structural_pruning", args, seed=args["seed"])
        manifest.update({
            "run_key": run_key,
            "source_model": str(model_dir),
            "source_accuracy": source_accuracy,
            "data": {"source": data.source, "content_hash": data.content_hash, "n_train": len(data.train),
                     "n_validation": len(data.validation), "n_test": len(data.test),
                     "n_importance": len(importance_split)},
            "pruning": {
                "importance": IMPORTANCE_METHOD + "; per-layer L2 normalisation for the head ranking",
                "importance_file": IMPORTANCE_FILE,
                "head_selection": "global ranking, at least one head kept per layer",
                "neuron_selection": "per layer (same share of every layer)",
                "head_ffn_ratio": args["head_ffn_ratio"],
                "head_sparsity_requested_pct": spec.extra["head_sparsity_pct"],
                "ffn_sparsity_requested_pct": spec.extra["ffn_sparsity_pct"],
                "kept_heads": [l.heads for l in spec.layers],
                "heads_per_layer": spec.heads_per_layer,
                "neurons_per_layer": spec.neurons_per_layer,
                "kept_neurons": f"indices per layer in {SPEC_FILE}",
            },
            "sparsity_requested_pct": sparsity,
            "sparsity_achieved": {
                "heads": 1 - sum(spec.heads_per_layer) / n_heads_total,
                "ffn_neurons": 1 - sum(spec.neurons_per_layer) / n_neurons_total,
                "encoder_parameters": 1 - params_after["encoder"] / params_before["encoder"],
                "total_parameters": 1 - params_after["total"] / params_before["total"],
            },
            "parameters_before": params_before,
            "parameters_after_shrink": params_after,
            "remaining_encoder_parameters": params_after["encoder"],
            "distill": {"enabled": bool(args["distill"]), "temperature": args["distill_temperature"],
                        "weight": args["distill_weight"]},
            "recipe": recipe_stats,
            "teacher": str(teacher_dir),
            "fidelity": fidelity_stats,
            "training": stats,
            "metrics_after_pruning": before,
            "pruning_state_reused": bool(reused),
            "accuracy_after_pruning": before["accuracy"],
            "accuracy_after_refinetune": after["accuracy"],
            "accuracy_drop_vs_source": None if source_accuracy is None else source_accuracy - after["accuracy"],
            "wall_time_s": time.time() - start,
            "metrics": after,
        })
        write_json_atomic(tmp / "manifest.json", manifest)  # written last: the Make target
    shutil.rmtree(checkpoints, ignore_errors=True)
    log.info("pruned %.0f%%: heads %s, FFN %s; test accuracy %.4f after pruning -> %.4f after re-fine-tuning "
             "(source %s); encoder parameters %d -> %d -> %s", sparsity, spec.heads_per_layer,
             spec.neurons_per_layer, before["accuracy"], after["accuracy"], source_accuracy,
             params_before["encoder"], params_after["encoder"], output)
    return 0
