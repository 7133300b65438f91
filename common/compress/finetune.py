"""The fine-tuning stage: data -> base model + 4-label head -> Trainer -> HF folder + manifest."""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from common.models.classifier import load_classifier
from common.cli import set_seed
from common.data import load_dataset
from common.manifest import atomic_output_dir, base_manifest, read_manifest, write_json_atomic
from common.metrics import classification_metrics
from common.models.modeling import new_classifier, resolve_base_model, save_model_folder
from common.compress.training import NOT_IN_RUN_KEY, TrainingFlags, model_to_save, train, training_fields
from common.stage import config_class, flag

log = logging.getLogger(__name__)


FineTuneConfig = config_class("FineTuneConfig", [
    ("base_model", str, flag("minilm", aliases=["--base_model"], help=(
        "minilm (offline MiniLM-L6-H384), a hub id such as bert-base-uncased, or a local folder"))),
    ("output", str, flag("models/fine_tuned/bert_agnews")),
    *training_fields("fine-tuning"),
    ("data_seed", int | None, flag(None, help=(
        "seed of the training subset and validation split (default: --seed); fix it to vary only the training "
        "seed"))),
], TrainingFlags, __name__, "``train/fine_tuning/run_fine_tune_bert_agnews.py``'s flags.")


def checkpoint_dir_for(output: Path) -> Path:
    return output.with_name(output.name + ".checkpoints")


def run_key_of(args: dict) -> dict:
    """Arguments that change the artefact (so a mismatch forbids reuse or resume). An unset --data-seed
    (= --seed) is left out, so models built before the flag existed still match."""
    return {k: v for k, v in args.items() if k not in NOT_IN_RUN_KEY and not (k == "data_seed" and v is None)}


def evaluate_on_test(model_dir: Path, test, device: str, max_len: int) -> dict:
    clf = load_classifier(model_dir, device=device, max_len=max_len, batch_size=64, progress=True)
    pred = clf.predict(test.texts)
    return classification_metrics(test.labels, pred)


def fine_tune(config: FineTuneConfig) -> int:
    args = config.to_dict()
    output = Path(args["output"])
    run_key = run_key_of(args)
    existing = read_manifest(output)
    if existing and not args.get("force") and run_key_of(existing.get("arguments", {})) == run_key:
        log.info("%s is already built with these arguments; nothing to do (use --force to rebuild)", output)
        # Mark it up to date for Make (a knob stamp may be newer although the values are unchanged).
        (output / "manifest.json").touch()
        return 0
    set_seed(args["seed"])
    # A second fine-tune that differs only in its training seed keeps the data seed (same rows, same validation).
    data_seed = args["seed"] if args.get("data_seed") is None else args["data_seed"]
    data = load_dataset(args["data"], args["train_samples"], data_seed, args["validation_fraction"])
    log.info("data %s: %d train / %d validation / %d test rows", data.source, len(data.train),
             len(data.validation), len(data.test))
    model, tokenizer = new_classifier(args["base_model"])
    start = time.time()
    stats = train(model, tokenizer, data.train, data.validation, config.train_config(), checkpoint_dir_for(output),
                  run_key)
    model = model_to_save(model, stats)
    if model is None:
        return 0
    with atomic_output_dir(output) as tmp:
        save_model_folder(model, tokenizer, tmp)
        metrics = evaluate_on_test(tmp, data.test, args["device"], args["max_len"])
        manifest = base_manifest("fine_tune", args, seed=args["seed"])
        manifest.update({
            "base_model": args["base_model"],
            "base_model_path": resolve_base_model(args["base_model"]),
            "data": {"source": data.source, "content_hash": data.content_hash, "n_train": len(data.train),
                     "n_validation": len(data.validation), "n_test": len(data.test)},
            "training": stats,
            "wall_time_s": time.time() - start,
            "train_samples_per_s": stats["train_samples_per_s"],
            "metrics": metrics,
        })
        write_json_atomic(tmp / "manifest.json", manifest)  # written last: the Make target
    shutil.rmtree(checkpoint_dir_for(output), ignore_errors=True)
    log.info("test accuracy %.4f, macro-F1 %.4f on %d rows -> %s", metrics["accuracy"], metrics["macro_f1"],
             metrics["n_test"], output)
    return 0
