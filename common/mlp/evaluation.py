"""The evaluation and lambda-sweep stages: students compared by seed, their report and plot.

See :mod:`common.mlp`.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError
from common.manifest import digest
from common.models.mlp_student import MLPClassifier, PAYLOAD_FORMAT, StudentConfig
from common.mlp.explained import fmt_ci, lime_agreement, mean_ci, metric_bounds, summarise_agreement
from common.mlp.training import (Experiment, ResultCache, prepare_experiment, student_metrics, teacher_probabilities,
                                 train_seeds, training_targets)
from common.mlp.stages import StudentFlags, check_seeds, input_paths, cache_dir_for, config_from_args, student_fields
from common.stage import StageConfig, config_class, flag, shared_flag

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- stage: evaluate
STUDENTS = ("vanilla", "xai")
REPORT_METRICS = [  # (key, label in the report)
    ("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("teacher_agreement", "agreement with BERT"),
    ("own_spearman_pred", "Spearman (grad x input)"), ("own_jaccard_top5_pred", "top-5 Jaccard (grad x input)"),
    ("own_jaccard_top10_pred", "top-10 Jaccard (grad x input)"), ("lime_spearman_pred", "Spearman (LIME)"),
    ("lime_jaccard_top5_pred", "top-5 Jaccard (LIME)"), ("lime_jaccard_top10_pred", "top-10 Jaccard (LIME)"),
    ("heldout_explanation_loss", "held-out 1 - cosine (all classes)"),
    ("inloss_own_spearman_pred", "Spearman (grad x input), in-loss instances"),
    ("inloss_explanation_loss", "1 - cosine (all classes), in-loss instances"),
]


def _student_payload_info(path: Path) -> dict:
    from common.models.classifier import load_payload

    if not path.is_file():
        raise UserError(f"Student {path} does not exist; train it first (make {path}).")
    payload = load_payload(path)
    if payload.get("format") != PAYLOAD_FORMAT:
        raise UserError(f"{path} is a {payload.get('format')!r} payload, not an MLP student ({PAYLOAD_FORMAT}).")
    return {"seeds": [int(s) for s in payload["seeds"]], "config": StudentConfig.from_dict(dict(payload["hyper_parameters"])),
            "vocabulary": list(payload["vocabulary"])}


def difference(xai: list[float], vanilla: list[float], paired: bool) -> dict:
    """XAI minus vanilla: paired by seed when both used the same seeds, else a Welch-style interval."""
    from scipy.stats import t

    if paired:
        return mean_ci([a - b for a, b in zip(xai, vanilla)])
    a = np.asarray([v for v in xai if not math.isnan(v)], float)
    b = np.asarray([v for v in vanilla if not math.isnan(v)], float)
    if a.size < 2 or b.size < 2:
        return {"mean": float(a.mean() - b.mean()) if a.size and b.size else float("nan"), "ci_low": float("nan"),
                "ci_high": float("nan"), "n": int(min(a.size, b.size))}
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    half = float(t.ppf(0.975, min(a.size, b.size) - 1) * se)
    mean = float(a.mean() - b.mean())
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(min(a.size, b.size))}


def direction(stats: dict) -> str:
    if math.isnan(stats["ci_low"]):
        return "undetermined (fewer than 2 seeds)"
    if stats["ci_low"] > 0:
        return "raised"
    if stats["ci_high"] < 0:
        return "lowered"
    return "did not significantly change"


@dataclass(frozen=True)
class EvaluationConfig(StageConfig):
    """``train_mlp_models/evaluate_mlp_models.py``'s flags."""

    vanilla: str = flag(help="the cross-entropy student (models/mlp/vanilla.pt)")
    xai: str = flag(help="the XAI-loss student (models/mlp/xai.pt)")
    output_dir: str = flag(help="folder for mlp.csv, mlp.md, mlp_per_seed.csv")
    data: str = shared_flag("data")
    explanations: str = flag(help="BERT's LIME weights on training rows (CSV)")
    teacher: str = flag("", help="fine-tuned BERT, for agreement with its test predictions")
    seeds: list[int] | None = flag(None, nargs="*", help="students to evaluate (default: every seed stored in the "
                                                          "payloads)")
    lime_samples: int = flag(0, help="LIME samples on the students (0 = the num_samples BERT's explanations used)")
    test_samples: int = flag(0, help="stratified test subset (0 = the full test split)")
    cache_dir: str = flag("", help="teacher predictions cache (default: the explanations CSV's folder)")
    # device and max tokens of the teacher's predictions
    device: str = shared_flag("device")
    max_len: int = shared_flag("max_len")
    threads: int = shared_flag("threads")


SweepConfig = config_class("SweepConfig", [
    ("lambdas", list[float], flag(nargs="+", help="explanation-loss weights to try")),
    ("output_dir", str, flag(help="folder for mlp_sweep.csv/.md/.png")),
    ("data", str, shared_flag("data")),
    ("explanations", str, flag(help="BERT's LIME weights on training rows (CSV)")),
    ("teacher", str, flag("", help="fine-tuned BERT (agreement with its predictions; bert_* targets)")),
    ("seeds", list[int], flag([42, 43, 44], nargs="+", help="one student per seed and lambda")),
    *student_fields(),
], StudentFlags, __name__, "``train_mlp_models/sweep_lambda.py``'s flags.")


def run_evaluation(args: EvaluationConfig) -> int:
    """``evaluate_mlp_models``: both students on the test split and on held-out explained instances."""
    import time

    import pandas as pd
    from tabulate import tabulate

    from common.models.classifier import load_classifier
    from common.threads import set_threads
    from common.manifest import base_manifest, sha256_path, write_json_atomic, write_text_atomic

    started = time.time()
    set_threads(args.threads)
    output_dir = Path(args.output_dir)
    paths = {"vanilla": Path(args.vanilla), "xai": Path(args.xai)}
    infos = {name: _student_payload_info(path) for name, path in paths.items()}
    if args.seeds:
        for name, info in infos.items():
            absent = sorted(set(args.seeds) - set(info["seeds"]))
            if absent:
                raise UserError(f"--seeds {absent} are not in {paths[name]} (it holds {info['seeds']}); retrain it with "
                                f"those seeds or leave them out.")
            info["seeds"] = [int(s) for s in args.seeds]
    config = infos["vanilla"]["config"]
    if (infos["xai"]["config"].holdout_seed, infos["xai"]["config"].holdout_fraction) != (
            config.holdout_seed, config.holdout_fraction):
        raise UserError(f"{paths['xai']} and {paths['vanilla']} were trained with different --holdout-seed/"
                        f"--holdout-fraction; retrain them with the same values so they are judged on the same instances.")
    exp = prepare_experiment(args.data, args.explanations, config, args.test_samples)
    explained = exp.explained
    num_samples = args.lime_samples or explained.num_samples
    if num_samples != explained.num_samples:
        log.warning("LIME on the students uses %d samples but BERT's explanations used %d: the comparison mixes "
                    "sampling budgets.", num_samples, explained.num_samples)
    teacher_test = None
    if args.teacher:
        cache_dir = cache_dir_for(args)
        teacher_test = teacher_probabilities(args.teacher, exp.test_texts, cache_dir, args.device,
                                             args.max_len).argmax(axis=1)
    cache = ResultCache(output_dir / ".mlp_eval_cache.json")
    per_seed_rows = []
    for name, path in paths.items():
        payload_hash = sha256_path(path)
        for seed in infos[name]["seeds"]:
            key = digest({"payload": payload_hash, "seed": seed, "data": exp.data_hash, "test_samples": args.test_samples,
                           "explanations": sha256_path(args.explanations), "num_samples": num_samples,
                           "teacher": None if teacher_test is None else digest(teacher_test.tolist())})
            row = cache.get(key)
            if row is None:
                clf = load_classifier(path, device="cpu", seed=seed)
                exp_student = Experiment(**{**exp.__dict__, "encoder": clf.encoder,
                                            "train_features": clf.encoder.transform(exp.train_texts)})
                row = student_metrics(clf, exp_student, teacher_test)
                lime_rows = lime_agreement(clf, explained, exp.heldout_rows, exp.train_texts, num_samples)
                row.update({f"lime_{k}": v for k, v in summarise_agreement(lime_rows).items()})
                cache.put(key, row)
            log.info("%s seed %d: %s", name, seed, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)})
            per_seed_rows.append({"student": name, "seed": seed, **row})
    per_seed = pd.DataFrame(per_seed_rows)
    metric_keys = [k for k in per_seed.columns if k not in ("student", "seed", "n_test")]
    paired = infos["vanilla"]["seeds"] == infos["xai"]["seeds"]
    summary_rows, stats = [], {}
    for name in STUDENTS:
        chosen = per_seed[per_seed.student == name]
        for key in metric_keys:
            stats[(name, key)] = mean_ci(chosen[key].tolist(), bounds=metric_bounds(key))
            summary_rows.append({"student": name, "metric": key, **stats[(name, key)],
                                 "per_seed": json.dumps([round(float(v), 6) for v in chosen[key]])})
    for key in metric_keys:
        stats[("diff", key)] = difference(per_seed[per_seed.student == "xai"][key].tolist(),
                                          per_seed[per_seed.student == "vanilla"][key].tolist(), paired)
        summary_rows.append({"student": "xai_minus_vanilla", "metric": key, **stats[("diff", key)],
                             "per_seed": ""})
    write_text_atomic(output_dir / "mlp.csv", pd.DataFrame(summary_rows).to_csv(index=False, float_format="%.6g"))
    write_text_atomic(output_dir / "mlp_per_seed.csv", per_seed.to_csv(index=False, float_format="%.6g"))

    shown = [(k, label) for k, label in REPORT_METRICS if (STUDENTS[0], k) in stats]
    table = [[label] + [fmt_ci(stats[(n, k)]) for n in STUDENTS] + [fmt_ci(stats[("diff", k)])] for k, label in shown]
    all_classes = [[label.replace("(", "(all classes, ")] + [fmt_ci(stats[(n, k.replace("_pred", "_all"))])
                                                             for n in STUDENTS]
                   + [fmt_ci(stats[("diff", k.replace("_pred", "_all"))])]
                   for k, label in shown if k.endswith("_pred") and k.startswith(("own_", "lime_"))]
    lam = infos["xai"]["config"].xai_lambda
    verdict = _verdict(stats)
    lines = [
        "# MLP students: cross-entropy vs cross-entropy + explanation loss",
        "",
        f"Students: `{paths['vanilla']}` (cross-entropy) and `{paths['xai']}` (cross-entropy + {lam:g} x "
        f"(1 - cosine(grad x input, BERT's LIME weights))); targets: {config.targets}; seeds "
        f"{infos['vanilla']['seeds']}{' (paired)' if paired else ''}. Test split: {len(exp.test_texts)} rows of "
        f"`{args.data or 'demo sample'}`. Explained training instances: {len(explained.ids)} "
        f"({len(exp.loss_rows)} in the XAI loss, {len(exp.heldout_rows)} held out for the agreement rows below).",
        "",
        "Cells: mean over seeds [95% t-interval over seeds]. Explanation agreement is with BERT's LIME weights on "
        "the held-out instances, for BERT's predicted class; *grad x input* is the student's own attribution, "
        f"*LIME* is LIME run on the student through `load_classifier` ({num_samples} samples, seed {explained.seed}, "
        "the same perturbations BERT saw). Words are lower-cased on both sides (case variants' weights summed).",
        "",
        tabulate(table, headers=["metric", "vanilla", "xai", "xai - vanilla"], tablefmt="github"),
        "",
        "## Verdict",
        "",
        *verdict,
        "",
        "## All four classes",
        "",
        "The same agreement averaged over every explained class (LIME's weights for classes BERT gives little "
        "probability are small and noisier).",
        "",
        tabulate(all_classes, headers=["metric", "vanilla", "xai", "xai - vanilla"], tablefmt="github"),
        "",
        "Per-seed numbers: `mlp_per_seed.csv`; every metric with its CI: `mlp.csv`.",
        "",
    ]
    manifest = base_manifest("mlp_evaluation", {k: v for k, v in args.to_dict().items() if k != "threads"},
                             infos["vanilla"]["seeds"][0],
                             inputs={"vanilla": paths["vanilla"], "xai": paths["xai"], "explanations": args.explanations,
                                     "teacher": args.teacher or None})
    manifest.update({"lime_num_samples": num_samples, "heldout_rows": exp.heldout_rows.tolist(), "paired": paired,
                     "verdict": verdict, "wall_seconds": round(time.time() - started, 3),
                     "metrics": {f"{n}.{k}": v for (n, k), v in stats.items()}})
    write_json_atomic(output_dir / "mlp.manifest.json", manifest)
    write_text_atomic(output_dir / "mlp.md", "\n".join(lines))  # the Make target, last
    log.info("Wrote %s; %s", output_dir / "mlp.md", " ".join(verdict))
    return 0


def _verdict(stats: dict) -> list[str]:
    """Plain sentences computed from the numbers (paired XAI - vanilla differences and their CIs)."""
    lines = []
    for source, label in (("own", "the student's own attribution (grad x input)"), ("lime", "LIME on the student")):
        key = f"{source}_spearman_pred"
        if ("diff", key) not in stats:
            continue
        d = stats[("diff", key)]
        j = stats[("diff", f"{source}_jaccard_top5_pred")]
        lines.append(f"- Explanation agreement via {label}: the XAI loss **{direction(d)}** Spearman with BERT's "
                     f"LIME ({stats[('vanilla', key)]['mean']:.3f} -> {stats[('xai', key)]['mean']:.3f}, "
                     f"difference {fmt_ci(d)}); top-5 Jaccard difference {fmt_ci(j)} ({direction(j)}).")
    for key, label in (("accuracy", "test accuracy"), ("teacher_agreement", "agreement with BERT's predictions")):
        if ("diff", key) not in stats:
            continue
        d = stats[("diff", key)]
        cost = -d["mean"] * 100
        change = "no change" if abs(cost) < 0.005 else f"a {'cost' if cost > 0 else 'gain'} of {abs(cost):.2f} points"
        lines.append(f"- {label[0].upper() + label[1:]}: {stats[('vanilla', key)]['mean']:.4f} -> "
                     f"{stats[('xai', key)]['mean']:.4f}, {change} "
                     f"(difference {fmt_ci(d, 4)}; {direction(d)}).")
    return lines


# ----------------------------------------------------------------------------------------------- stage: sweep
SWEEP_METRICS = [("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("teacher_agreement", "agreement with BERT"),
                 ("own_spearman_pred", "Spearman (grad x input)"), ("own_jaccard_top5_pred", "top-5 Jaccard"),
                 ("own_jaccard_top10_pred", "top-10 Jaccard"), ("heldout_explanation_loss", "held-out 1 - cosine"),
                 ("inloss_own_spearman_pred", "Spearman, in-loss instances"),
                 ("inloss_explanation_loss", "1 - cosine, in-loss instances")]


def run_sweep(args: SweepConfig) -> int:
    """``sweep_lambda``: one XAI student per (lambda, seed); lambda 0 is the vanilla student."""
    import time

    import pandas as pd
    from tabulate import tabulate

    from common.threads import set_threads
    from common.manifest import base_manifest, write_json_atomic, write_text_atomic

    started = time.time()
    lambdas = sorted({float(v) for v in args.lambdas})
    if not lambdas or any(v < 0 or not math.isfinite(v) for v in lambdas):
        raise UserError(f"--lambdas {args.lambdas} must be finite numbers >= 0.")
    seeds = check_seeds(args.seeds)
    set_threads(args.threads)
    output_dir = Path(args.output_dir)
    base_config = config_from_args(args, 0.0)
    exp = prepare_experiment(args.data, args.explanations, base_config)
    targets = training_targets(exp, base_config, args.teacher or None, cache_dir_for(args), args.device, args.max_len)
    teacher_test = None
    if args.teacher:
        teacher_test = teacher_probabilities(args.teacher, exp.test_texts, cache_dir_for(args), args.device,
                                             args.max_len).argmax(axis=1)
    from common.manifest import sha256_path

    inputs_key = {"data": exp.data_hash, "explanations": sha256_path(args.explanations),
                  "teacher": None if teacher_test is None else digest(teacher_test.tolist()),
                  "targets": digest(np.asarray(targets).round(6).tolist())}
    cache = ResultCache(output_dir / ".mlp_sweep_cache.json")
    rows = []
    for xai_lambda in lambdas:
        config = StudentConfig.from_dict({**base_config.to_dict(), "xai_lambda": xai_lambda})
        for seed in seeds:
            key = digest({"config": config.to_dict(), "seed": seed, **inputs_key})
            result = cache.get(key)
            if result is None:
                model = train_seeds(exp, config, [seed], targets)[0].model
                result = student_metrics(MLPClassifier(model, exp.encoder), exp, teacher_test)
                cache.put(key, result)
            log.info("lambda %g seed %d: %s", xai_lambda, seed,
                     {k: round(v, 4) for k, v in result.items() if isinstance(v, float)})
            rows.append({"lambda": xai_lambda, "seed": seed, **result})
    per_seed = pd.DataFrame(rows)
    keys = [k for k, _ in SWEEP_METRICS if k in per_seed.columns]
    summary = []
    for xai_lambda in lambdas:
        chosen = per_seed[per_seed["lambda"] == xai_lambda]
        entry = {"lambda": xai_lambda, "n_seeds": len(chosen)}
        for key in keys:
            s = mean_ci(chosen[key].tolist(), bounds=metric_bounds(key))
            entry.update({key: s["mean"], f"{key}_ci_low": s["ci_low"], f"{key}_ci_high": s["ci_high"]})
        summary.append(entry)
    summary_frame = pd.DataFrame(summary)
    write_text_atomic(output_dir / "mlp_sweep.csv", summary_frame.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(output_dir / "mlp_sweep_per_seed.csv", per_seed.to_csv(index=False, float_format="%.6g"))
    _plot_sweep(summary_frame, keys, output_dir / "mlp_sweep.png")
    labels = dict(SWEEP_METRICS)
    table = [[f"{e['lambda']:g}"] + [fmt_ci({"mean": e[k], "ci_low": e[f"{k}_ci_low"], "ci_high": e[f"{k}_ci_high"]})
                                     for k in keys] for e in summary]
    lines = [
        "# Lambda sweep: weight of the explanation loss",
        "",
        f"One student per lambda and seed (seeds {seeds}; lambda 0 = vanilla cross-entropy), targets "
        f"{base_config.targets}. Test split: {len(exp.test_texts)} rows. Explanation agreement: the student's "
        f"grad x input vs BERT's LIME weights for BERT's predicted class on {len(exp.heldout_rows)} held-out "
        f"explained instances ({len(exp.loss_rows)} in the loss). Cells: mean [95% t-interval over seeds].",
        "",
        tabulate(table, headers=["lambda"] + [labels[k] for k in keys], tablefmt="github"),
        "",
        "![accuracy and explanation agreement vs lambda](mlp_sweep.png)",
        "",
        "Per-seed numbers: `mlp_sweep_per_seed.csv`.",
        "",
    ]
    manifest = base_manifest("mlp_sweep", {k: v for k, v in args.to_dict().items() if k != "threads"}, seeds[0],
                             inputs=input_paths(args))
    manifest.update({"lambdas": lambdas, "seeds": seeds, "hyper_parameters": base_config.to_dict(),
                     "heldout_rows": exp.heldout_rows.tolist(), "wall_seconds": round(time.time() - started, 3),
                     "metrics": summary})
    write_json_atomic(output_dir / "mlp_sweep.manifest.json", manifest)
    write_text_atomic(output_dir / "mlp_sweep.md", "\n".join(lines))  # the Make target, last
    log.info("Wrote %s", output_dir / "mlp_sweep.md")
    return 0


def _plot_sweep(summary, keys: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    from common.manifest import atomic_output_file

    lambdas = summary["lambda"].to_numpy(float)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = ((axes[0], [k for k in ("accuracy", "macro_f1", "teacher_agreement") if k in keys], "test split"),
              (axes[1], [k for k in ("own_spearman_pred", "own_jaccard_top5_pred", "own_jaccard_top10_pred")
                         if k in keys], "agreement with BERT's LIME (held-out)"))
    labels = dict(SWEEP_METRICS)
    for ax, chosen, ylabel in panels:
        for key in chosen:
            mean = summary[key].to_numpy(float)
            low = summary[f"{key}_ci_low"].to_numpy(float)
            high = summary[f"{key}_ci_high"].to_numpy(float)
            ax.plot(lambdas, mean, marker="o", label=labels[key])
            if not np.isnan(low).all():
                bounds = metric_bounds(key)  # older CSVs may hold unclipped intervals
                if bounds is not None:
                    low, high = np.clip(low, *bounds), np.clip(high, *bounds)
                ax.fill_between(lambdas, low, high, alpha=0.15)
        # symlog keeps lambda = 0 on the axis; ticks at the swept values read as the values, not as 10^k.
        ax.set_xscale("symlog", linthresh=min([v for v in lambdas if v > 0], default=1.0))
        ax.set_xticks(lambdas)
        ax.set_xticklabels([f"{v:g}" for v in lambdas])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("lambda (weight of the explanation loss)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("MLP student: accuracy and explanation agreement vs lambda (mean, 95% CI over seeds)")
    fig.tight_layout()
    with atomic_output_file(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
