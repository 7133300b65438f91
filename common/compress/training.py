"""Fine-tuning with the Hugging Face ``Trainer`` (so ``torchrun`` gives DDP unchanged).

Used by the fine-tuning stage and by pruning's re-fine-tuning (fixed masks via
:class:`common.models.pruning_spec.MaskHooks`, optional knowledge distillation from the
unpruned teacher). Checkpoints go to a sibling ``<output>.checkpoints`` folder
keyed by the run's arguments; a rerun with the same arguments resumes from the
last checkpoint, one with other arguments starts afresh.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from common.cli import UserError
from common.data import Split
from common.stage import StageConfig, flag, shared_flag

log = logging.getLogger(__name__)
RUN_KEY_FILE = "run_key.json"
# Arguments that do not change the trained model: a rerun differing only in these reuses the artefact
# and resumes its checkpoints.
NOT_IN_RUN_KEY = ("output", "device", "max_steps_this_run", "force", "save_steps")
# --save-steps 0: checkpoint about this many times per run, whatever its length (a fixed step count never
# checkpoints a short run and checkpoints a long one too often).
AUTO_CHECKPOINTS_PER_RUN = 10
TRAINER_STATE_FILE = "trainer_state.json"
# In the checkpoint folder: the importance scores and the masked model's test metrics of the pruning run keyed
# there, so a resumed re-fine-tune starts training at once instead of scoring and evaluating again.
PRUNING_STATE_FILE = "pruning_state.json"


@dataclass
class TrainConfig:
    epochs: float = 2.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    max_len: int = 128
    seed: int = 42
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    device: str = "auto"
    precision: str = "auto"  # auto|fp32|fp16|bf16 (16-bit only on GPU)
    save_steps: int = 0  # 0 = auto: AUTO_CHECKPOINTS_PER_RUN checkpoints per run
    max_steps_this_run: int = 0  # >0: stop after this many steps (simulates an interruption)
    distill_temperature: float = 2.0
    distill_weight: float = 0.5
    # The function recipe (common.compress.function_matching): batches carrying ``teacher_probs`` are trained on
    # them alone (perturb_loss), plus hidden_weight x the hidden-state MSE to the teacher.
    perturb_loss: str = "kl"
    hidden_weight: float = 0.0

    def __post_init__(self):
        if self.epochs <= 0:
            raise ValueError("epochs must be > 0")
        if self.batch_size <= 0 or self.max_len <= 0:
            raise ValueError("batch_size and max_len must be > 0")
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ValueError("precision must be auto, fp32, fp16 or bf16")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError("distill_weight must be within 0..1")
        if self.save_steps < 0:
            raise ValueError("save_steps must be >= 0 (0 = auto)")


@dataclass(frozen=True)
class TrainingFlags(StageConfig):
    """The checks of the data and Trainer flags shared by fine-tuning and pruning's re-fine-tuning (their fields:
    :func:`training_fields`)."""

    def check(self) -> None:
        self.train_config()  # the Trainer's own checks, before any heavy work

    def train_config(self) -> TrainConfig:
        """The Trainer settings among these flags (a subclass's distillation flags too)."""
        names = {f.name for f in fields(TrainConfig)}
        try:
            return TrainConfig(**{k: v for k, v in self.to_dict().items() if k in names})
        except ValueError as exc:
            raise UserError(f"Invalid training flag: {exc}.") from None


def training_fields(what: str = "training") -> list[tuple]:
    """The data and Trainer flags shared by fine-tuning and pruning's re-fine-tuning (one spelling each), as
    config fields in flag order; ``what`` names the training in their help."""
    return [
        ("data", str, flag("", help="ag_news (hub) or a folder with train/test files; empty = demo sample")),
        ("train_samples", int, flag(0, aliases=["--train_samples"], help="stratified subset; 0 = all")),
        ("validation_fraction", float, flag(0.05, help="share of train held out for validation")),
        ("epochs", float, flag(2.0, help=f"{what} epochs")),
        ("learning_rate", float, flag(5e-5, aliases=["--lr"], help=f"{what} learning rate")),
        ("batch_size", int, flag(32, help="global batch size (split over DDP ranks)")),
        ("max_len", int, flag(128, aliases=["--max_len"])),
        ("seed", int, flag(42)),
        ("device", str, shared_flag("device")),
        ("precision", str, flag("auto", choices=["auto", "fp32", "fp16", "bf16"], help=(
            "mixed precision on GPU (auto: bf16 where supported, else fp16); CPU trains in fp32"))),
        ("save_steps", int, flag(0, help=(
            f"checkpoint every N optimiser steps (0 = auto: {AUTO_CHECKPOINTS_PER_RUN} checkpoints per run)"))),
        ("max_steps_this_run", int, flag(0, help=argparse.SUPPRESS)),
        ("force", bool, flag(False, help="rebuild even if the output exists with the same arguments")),
    ]


def model_to_save(model, stats: dict):
    """The trained model this process writes after :func:`train`, or None: the run stopped early as asked
    (rerun to resume), or this is a DDP rank other than 0."""
    if not stats["completed"]:
        log.warning("stopped after %d/%d steps as asked; rerun the same command to resume", stats["global_step"],
                    stats["max_steps"])
        return None
    if not is_main_process():
        return None
    return model.module if hasattr(model, "module") else model


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


class _TokenizedSplit(torch.utils.data.Dataset):
    def __init__(self, split: Split, tokenizer, max_len: int):
        enc = tokenizer(split.texts, truncation=True, max_length=max_len)
        self.items = [{"input_ids": ids, "attention_mask": am, "labels": int(label)}
                      for ids, am, label in zip(enc["input_ids"], enc["attention_mask"], split.labels)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _make_trainer_class():
    from transformers import Trainer

    class DistillTrainer(Trainer):
        """CE loss, mixed with temperature-scaled KL to a teacher's logits when one is given."""

        def __init__(self, *args, teacher=None, temperature=2.0, distill_weight=0.5, perturb_loss="kl",
                     hidden_weight=0.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.teacher, self.temperature, self.distill_weight = teacher, temperature, distill_weight
            self.perturb_loss, self.hidden_weight = perturb_loss, hidden_weight
            if teacher is not None:
                self.teacher.to(self.args.device).eval()

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "teacher_probs" in inputs:
                return self._function_loss(model, inputs, return_outputs)
            labels = inputs["labels"]
            outputs = model(**inputs)
            loss = torch.nn.functional.cross_entropy(outputs.logits, labels)
            if self.teacher is not None and self.distill_weight > 0:
                with torch.no_grad():
                    teacher_logits = self.teacher(**{k: v for k, v in inputs.items() if k != "labels"}).logits
                t = self.temperature
                kd = torch.nn.functional.kl_div(torch.log_softmax(outputs.logits / t, dim=-1),
                                                torch.softmax(teacher_logits.float() / t, dim=-1),
                                                reduction="batchmean") * t * t
                loss = (1 - self.distill_weight) * loss + self.distill_weight * kd
            return (loss, outputs) if return_outputs else loss

        def _function_loss(self, model, inputs, return_outputs):
            from common.compress.function_matching import hidden_state_loss, perturbation_loss

            target = inputs.pop("teacher_probs")
            features = {k: v for k, v in inputs.items() if k != "labels"}
            hidden = self.hidden_weight > 0 and self.teacher is not None
            outputs = model(**features, output_hidden_states=hidden)
            loss = perturbation_loss(outputs.logits, target, self.perturb_loss)
            if hidden:
                with torch.no_grad():
                    teacher_hidden = self.teacher(**features, output_hidden_states=True).hidden_states
                loss = loss + self.hidden_weight * hidden_state_loss(outputs.hidden_states, teacher_hidden,
                                                                     features["attention_mask"])
            return (loss, outputs) if return_outputs else loss

    return DistillTrainer


def _stop_after(n_steps: int):
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= n_steps:
                control.should_save = True
                control.should_training_stop = True
            return control

    return StopAfter()


def checkpoint_problem(folder: Path) -> str | None:
    """Why a Trainer checkpoint folder cannot be resumed from (None when it is complete).

    A kill -9 while the Trainer writes a checkpoint leaves it without ``trainer_state.json`` (written
    last) or with a cut ``optimizer.pt``; resuming from it fails on every rerun. torch's ``.pt``/``.pth``
    /``.bin`` files are zip archives whose directory is at the end, so a cut one does not open.
    """
    import zipfile

    state_file = folder / TRAINER_STATE_FILE
    if not state_file.is_file():
        return f"no {TRAINER_STATE_FILE}"
    try:
        json.loads(state_file.read_text())
    except (OSError, ValueError) as exc:
        return f"{TRAINER_STATE_FILE} unreadable ({type(exc).__name__})"
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("pytorch_model*.bin"))
    if not weights:
        return "no model weights"
    for file in weights:
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            try:
                with safe_open(str(file), framework="pt") as fh:
                    fh.keys()
            except Exception as exc:  # safetensors checks the header against the file size
                return f"{file.name} cut or corrupt ({type(exc).__name__})"
    if not (folder / "optimizer.pt").is_file():
        return "no optimizer.pt"
    for file in sorted(folder.glob("*.pt")) + sorted(folder.glob("*.pth")) + sorted(folder.glob("*.bin")):
        try:
            with zipfile.ZipFile(file) as archive:
                archive.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            return f"{file.name} cut or corrupt ({type(exc).__name__})"
    return None


def last_complete_checkpoint(checkpoint_dir: Path, remove_incomplete: bool = True) -> str | None:
    """The newest complete ``checkpoint-N`` in ``checkpoint_dir``; incomplete newer ones are reported
    (and removed on the main process, so the Trainer's rotation never counts them)."""
    def step(path: Path) -> int:
        suffix = path.name.rsplit("-", 1)[-1]
        return int(suffix) if suffix.isdigit() else -1

    candidates = sorted((p for p in Path(checkpoint_dir).glob("checkpoint-*") if p.is_dir() and step(p) >= 0),
                        key=step, reverse=True)
    for folder in candidates:
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        log.warning("checkpoint %s is incomplete (%s), probably cut by a killed run; %s", folder, problem,
                    "removing it and falling back to an older one" if remove_incomplete else "skipping it")
        if remove_incomplete:
            shutil.rmtree(folder, ignore_errors=True)
    if candidates:
        log.warning("no complete checkpoint left in %s; training starts over", checkpoint_dir)
    return None


def _precision_flags(precision: str, device: str) -> dict:
    if not device.startswith("cuda"):
        return {}
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"fp16": precision == "fp16", "bf16": precision == "bf16"}


def claim_checkpoint_dir(checkpoint_dir: Path, run_key: dict) -> bool:
    """Make ``checkpoint_dir`` this run's (``run_key.json``): whether it already was (its checkpoints may be
    resumed). A folder of a run with other arguments is cleared; only the main process writes."""
    from common.manifest import write_json_atomic

    key_file = checkpoint_dir / RUN_KEY_FILE
    same_run = checkpoint_dir.is_dir() and key_file.is_file() and json.loads(key_file.read_text()) == run_key
    if is_main_process():
        if checkpoint_dir.is_dir() and not same_run:
            log.info("checkpoints in %s are from a run with other arguments; starting afresh", checkpoint_dir)
            shutil.rmtree(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(key_file, run_key)  # atomic: other DDP ranks read it concurrently
    return same_run


def train(model, tokenizer, train_split: Split, validation: Split, config: TrainConfig, checkpoint_dir: Path,
          run_key: dict, teacher=None, train_dataset=None, data_collator=None) -> dict:
    """Train ``model`` in place; returns training statistics for the manifest.

    ``train_dataset``/``data_collator`` replace the tokenised ``train_split`` (the function recipe's
    teacher-labelled perturbation set, :mod:`common.compress.function_matching`).

    Returns ``{"completed": False, ...}`` when stopped early by ``max_steps_this_run``.
    """
    from transformers import DataCollatorWithPadding, TrainingArguments

    from common.cli import resolve_device

    device = resolve_device(config.device)
    checkpoint_dir = Path(checkpoint_dir)
    same_run = claim_checkpoint_dir(checkpoint_dir, run_key)
    resume = last_complete_checkpoint(checkpoint_dir, remove_incomplete=is_main_process()) if same_run else None
    if resume:
        log.info("resuming from checkpoint %s", resume)

    train_ds = train_dataset if train_dataset is not None else _TokenizedSplit(train_split, tokenizer, config.max_len)
    eval_ds = _TokenizedSplit(validation, tokenizer, config.max_len) if len(validation) else None
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=max(1, config.batch_size // world_size()),
        per_device_eval_batch_size=64,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        train_sampling_strategy="group_by_length",
        eval_strategy="epoch" if eval_ds is not None else "no",
        save_strategy="steps",
        # A float below 1 is the Trainer's "share of the run's total steps".
        save_steps=config.save_steps if config.save_steps > 0 else 1.0 / AUTO_CHECKPOINTS_PER_RUN,
        save_total_limit=2,
        logging_steps=10,
        report_to=[],
        use_cpu=device == "cpu",
        ddp_backend="gloo" if device == "cpu" and world_size() > 1 else None,
        dataloader_num_workers=0,
        remove_unused_columns=False,  # the function recipe's batches carry teacher_probs for the loss
        disable_tqdm=not is_main_process(),
        **_precision_flags(config.precision, device),
    )

    def compute_metrics(pred):
        logits, labels = pred
        return {"accuracy": float((np.argmax(logits, axis=1) == labels).mean())}

    callbacks = [_stop_after(config.max_steps_this_run)] if config.max_steps_this_run > 0 else []
    trainer = _make_trainer_class()(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
        data_collator=data_collator or DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics,
        callbacks=callbacks, teacher=teacher, temperature=config.distill_temperature,
        distill_weight=config.distill_weight, perturb_loss=config.perturb_loss, hidden_weight=config.hidden_weight)
    start = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    wall = time.time() - start
    state = trainer.state
    completed = state.global_step >= state.max_steps
    val_acc = [h["eval_accuracy"] for h in state.log_history if "eval_accuracy" in h]
    return {
        "completed": bool(completed),
        "resumed_from": resume,
        "global_step": int(state.global_step),
        "max_steps": int(state.max_steps),
        "save_steps": int(getattr(state, "save_steps", 0) or 0) or config.save_steps,
        "train_wall_s": wall,
        "train_samples_per_s": float(result.metrics.get("train_samples_per_second", 0.0)),
        "train_loss": float(result.metrics.get("train_loss", float("nan"))),
        "validation_accuracy_per_epoch": val_acc,
        "device": device,
        "world_size": world_size(),
        "precision": {k: v for k, v in _precision_flags(config.precision, device).items() if v} or "fp32",
        "train_config": asdict(config),
    }


def load_pruning_state(checkpoints: Path, run_key: dict) -> dict | None:
    """The importance scores (arrays, dtypes kept) and post-pruning metrics an interrupted run with this
    ``run_key`` left in ``checkpoints``; None when there are none (or another run's)."""
    try:
        state = json.loads((checkpoints / PRUNING_STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("run_key") != run_key:
        return None
    importance = {name: np.asarray(values, dtype=state["dtypes"][name]) for name, values in state["importance"].items()}
    return {"importance": importance, "before": state["before"]}


def save_pruning_state(checkpoints: Path, run_key: dict, importance: dict[str, np.ndarray], before: dict) -> None:
    """Keep what the re-fine-tune's resume needs beside its checkpoints, under the run key the trainer checks
    (a folder of another run is cleared first, as the trainer would)."""
    from common.manifest import write_json_atomic

    claim_checkpoint_dir(checkpoints, run_key)
    if not is_main_process():
        return
    write_json_atomic(checkpoints / PRUNING_STATE_FILE, {
        "run_key": run_key, "importance": {k: v.tolist() for k, v in importance.items()},
        "dtypes": {k: str(v.dtype) for k, v in importance.items()}, "before": before})
