"""The student-training stage (``train_mlp_models/train_mlp_{vanilla,xai_loss}.py``, one stage behind
``--loss``) and the CLI pieces the MLP stages share.

See :mod:`common.mlp`.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from common.cli import UserError
from common.manifest import digest
from common.models.mlp_student import (MLPClassifier, PAYLOAD_FORMAT, StudentConfig, TARGETS, XAI_CLASSES, build_payload,
                              save_payload)
from common.mlp.explained import fmt_ci, mean_ci, metric_bounds
from common.mlp.training import prepare_experiment, student_metrics, train_seeds, training_targets
from common.stage import StageConfig, config_class, flag, shared_flag

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- CLI pieces
LOSSES = ("cross_entropy", "xai")


@dataclass(frozen=True)
class StudentFlags(StageConfig):
    """The checks of the student flags the training stage and the sweep share (their fields:
    :func:`student_fields`); the hyper-parameters are checked by StudentConfig, built from them by
    :func:`config_from_args`."""

    def check(self) -> None:
        config_from_args(self, 0.0)


def student_fields() -> list[tuple]:
    """The student flags (training stage and sweep) as config fields in flag order, StudentConfig's defaults."""
    defaults = StudentConfig()
    return [
        ("targets", str, flag(defaults.targets, choices=TARGETS, help=(
            "true labels, BERT's predicted labels, or BERT's probabilities (distillation)"))),
        ("hidden", int, flag(defaults.hidden, help="hidden units")),
        ("dropout", float, flag(defaults.dropout)),
        ("epochs", int, flag(defaults.epochs)),
        ("batch_size", int, flag(defaults.batch_size)),
        ("learning_rate", float, flag(defaults.learning_rate, aliases=["--lr"])),
        ("weight_decay", float, flag(defaults.weight_decay)),
        ("xai_batch", int, flag(defaults.xai_batch, help="(instance, class) pairs per step in the explanation term")),
        ("xai_classes", str, flag(defaults.xai_classes, choices=XAI_CLASSES, help=(
            "explain every class (all) or only BERT's predicted class in the loss"))),
        ("min_df", int, flag(defaults.min_df, help="vocabulary: minimum document frequency")),
        ("max_features", int, flag(defaults.max_features, help="vocabulary cap (0 = none)")),
        ("holdout_fraction", float, flag(defaults.holdout_fraction, help=(
            "share of explained instances kept out of the XAI loss (evaluation only)"))),
        ("holdout_seed", int, flag(defaults.holdout_seed, help="seed of that split (the same for every student seed)")),
        ("cache_dir", str, flag("", help=(
            "teacher predictions cache (default: the explanations CSV's folder, else outputs/intermediate_data)"))),
        # the teacher's device and max tokens (students train on CPU)
        ("device", str, shared_flag("device")),
        ("max_len", int, shared_flag("max_len")),
        ("threads", int, shared_flag("threads")),
    ]


@dataclass(frozen=True)
class TrainingSettings(StudentFlags):
    """The checks and recorded arguments of the training stage (its fields: :data:`TrainingConfig`)."""

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise UserError(f"--loss {self.loss} is not one of {', '.join(LOSSES)}.")
        if self.loss == "xai" and not self.explanations:
            raise UserError("--explanations is required with --loss xai: pass BERT's LIME weights "
                            "(make outputs/intermediate_data/bert_token_explanations.csv).")
        if Path(self.output).suffix != ".pt":
            raise UserError(f"--output {self.output} must be a .pt file.")
        config_from_args(self, self.xai_lambda if self.loss == "xai" else 0.0)

    def recorded_arguments(self) -> dict:
        """The manifest's ``arguments``: what each entry point recorded before they shared one parser (no
        run-time flags, no loss switch, the lambda only where it is used)."""
        skip = {"threads", "device", "force", "loss"} | ({"xai_lambda"} if self.loss != "xai" else set())
        return {k: v for k, v in self.to_dict().items() if k not in skip}


def _training_fields(loss: str) -> list[tuple]:
    """The training stage's flags in flag order; ``loss`` is the default of ``--loss`` (each entry point's own)."""
    return [
        ("output", str, flag(help="payload to write (e.g. models/mlp/vanilla.pt)")),
        ("data", str, shared_flag("data")),
        ("explanations", str, flag("", help=(
            "BERT's LIME weights on training rows (outputs/intermediate_data/bert_token_explanations.csv); required "
            "with --loss xai, else used for held-out explanation agreement"))),
        ("teacher", str, flag("", help="fine-tuned BERT (needed for --targets bert_hard|bert_soft)")),
        ("seeds", list[int], flag([42, 43, 44], nargs="+", help="one student per seed")),
        ("xai_lambda", float, flag(1.0, option="--lambda", help=(
            "weight of the explanation loss (1 - cosine), with --loss xai"))),
        *student_fields(),
        ("force", bool, flag(False, help="retrain even if the output is up to date")),
        ("loss", str, flag(loss, choices=LOSSES, help=(
            "cross_entropy (the vanilla student) or xai (cross-entropy + lambda * explanation loss)"))),
    ]


# train_mlp_vanilla and train_mlp_xai_loss: one stage, each entry point with its own default of --loss
TrainingConfig = config_class("TrainingConfig", _training_fields("cross_entropy"), TrainingSettings, __name__,
                              "The training stage's flags (``train_mlp_vanilla``: ``--loss cross_entropy`` by default).")
XaiTrainingConfig = config_class("XaiTrainingConfig", _training_fields("xai"), TrainingSettings, __name__,
                                 "``train_mlp_xai_loss``'s flags: the training stage's, ``--loss xai`` by default.")


def config_from_args(args, xai_lambda: float) -> StudentConfig:
    return StudentConfig(hidden=args.hidden, dropout=args.dropout, epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, weight_decay=args.weight_decay, xai_lambda=xai_lambda,
                         xai_batch=args.xai_batch, xai_classes=args.xai_classes, targets=args.targets,
                         min_df=args.min_df, max_features=args.max_features,
                         holdout_fraction=args.holdout_fraction, holdout_seed=args.holdout_seed)


def cache_dir_for(args) -> Path:
    if getattr(args, "cache_dir", ""):
        return Path(args.cache_dir)
    if getattr(args, "explanations", ""):
        return Path(args.explanations).parent
    return Path("outputs/intermediate_data")


def check_seeds(seeds: Sequence[int]) -> list[int]:
    if not seeds:
        raise UserError("--seeds needs at least one seed.")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {list(seeds)} repeats a seed; give distinct seeds.")
    return [int(s) for s in seeds]


def input_paths(args) -> dict:
    data = args.data if args.data and Path(args.data).exists() else None
    return {"data": data, "explanations": args.explanations or None, "teacher": args.teacher or None}


# ----------------------------------------------------------------------------------------------- stage: train
def run_training(args: TrainingConfig) -> int:
    """``train_mlp_vanilla`` (loss='cross_entropy') and ``train_mlp_xai_loss`` (loss='xai')."""
    import time

    from common.models.classifier import load_classifier
    from common.threads import set_threads
    from common.manifest import base_manifest, manifest_path_for, read_manifest, write_json_atomic

    output, loss = Path(args.output), args.loss
    xai_lambda = float(args.xai_lambda) if loss == "xai" else 0.0
    config = config_from_args(args, xai_lambda)
    seeds = check_seeds(args.seeds)
    set_threads(args.threads)
    started = time.time()
    run_args = args.recorded_arguments()
    inputs = input_paths(args)
    if config.targets == "true":
        inputs.pop("teacher")
    manifest = base_manifest(f"mlp_{loss}", run_args, seeds[0], inputs=inputs)
    run_key = digest({"config": config.to_dict(), "seeds": seeds, "loss": loss,
                       "inputs": {k: v["sha256"] for k, v in manifest["inputs"].items()},
                       "data": args.data})
    previous = read_manifest(output) if output.is_file() else None
    if previous and previous.get("run_key") == run_key and not args.force:
        log.info("%s is up to date (same arguments and inputs); pass --force to retrain.", output)
        return 0
    log.info("MLP student (%s): seeds=%s config=%s", loss, seeds, config.to_dict())
    exp = prepare_experiment(args.data, args.explanations or None, config)
    targets = training_targets(exp, config, args.teacher or None, cache_dir_for(args), args.device, args.max_len)
    results = train_seeds(exp, config, seeds, targets)
    payload = build_payload(exp.encoder, config, seeds, [r.model for r in results])
    per_seed = {}
    for seed, result in zip(seeds, results):
        clf = MLPClassifier(result.model, exp.encoder)
        per_seed[str(seed)] = {**student_metrics(clf, exp), "history": result.history}
        log.info("seed %d: %s", seed, {k: round(v, 4) for k, v in per_seed[str(seed)].items()
                                       if isinstance(v, float)})
    save_payload(payload, output)
    # The saved file must load through the one loader and predict what was trained.
    reloaded = load_classifier(output, device="cpu")
    check = exp.test_texts[:32]
    expected = MLPClassifier(results[0].model, exp.encoder).predict_logits(check)
    if not np.allclose(reloaded.predict_logits(check), expected, atol=1e-5):
        raise RuntimeError(f"{output} does not reload to the trained student")
    numeric = sorted({k for m in per_seed.values() for k, v in m.items() if isinstance(v, float)})
    manifest.update({
        "run_key": run_key,
        "loss": "cross_entropy" if loss != "xai" else f"cross_entropy + {xai_lambda:g} * (1 - cosine(grad x input, "
                                                      f"BERT LIME weights))",
        "format": PAYLOAD_FORMAT, "seeds": seeds, "hyper_parameters": config.to_dict(),
        "vocabulary_size": len(exp.encoder),
        "vocabulary_sha256": hashlib.sha256("\n".join(exp.encoder.vocabulary).encode()).hexdigest(),
        "tokenisation": exp.encoder.tokenisation(),
        "explained_split": {"loss_rows": exp.loss_rows.tolist(), "heldout_rows": exp.heldout_rows.tolist()},
        "data": {"source": args.data, "content_hash": exp.data_hash, "n_train": len(exp.train_texts),
                 "n_test": len(exp.test_texts)},
        "wall_seconds": round(time.time() - started, 3),
        "per_seed": per_seed,
        "metrics": {k: mean_ci([m[k] for m in per_seed.values()], bounds=metric_bounds(k)) for k in numeric},
    })
    write_json_atomic(manifest_path_for(output), manifest)
    log.info("Wrote %s: test accuracy %s over %d seed(s)", output, fmt_ci(manifest["metrics"]["accuracy"]),
             len(seeds))
    return 0


