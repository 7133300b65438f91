"""One producer per file, and a report that reads exactly the files Make passes it.

Nothing is trained: ``make -t`` marks a tree built with one PRUNE_PCTS, ``make -n`` gives the report command for
another, and the report stage runs that command on planted files - records, an interop table and an SP-LIME
section left over from the first list among them.
"""
from __future__ import annotations

import json
import shlex
import subprocess

import pandas as pd
import pytest

from common.schema import SUMMARY_COLUMNS
from tests.test_makefile import KNOBS, make, tree  # noqa: F401  (tree is a fixture)
from tests.test_report import _metrics
from tests.test_stage_deps import REPORT_FOLDERS

REPORT_MODULE = "generate_outputs.report.build_report"


def report_argv(repo, *args: str) -> list[str]:
    """The arguments `make -n` would pass the report stage."""
    dry = make(repo, "-n", *args)
    command = next(line for line in dry.replace("\\\n", " ").splitlines() if f"-m {REPORT_MODULE} " in line)
    words = shlex.split(command)
    return words[words.index(REPORT_MODULE) + 1:]


def _record(path, variant, throughput):
    path.write_text(json.dumps({**_metrics(variant, 0.9, throughput), "status": "ok"}))


def _plant_outputs(repo, current: list[str], stale: list[str]):
    """What the stages leave after `make report PRUNE_PCTS="20 30"` then a rebuild of the lists for 20 alone:
    records, evaluation JSONs and an interop table of the dropped variants stay on disk."""
    metrics = repo / "outputs" / "metrics"
    for i, variant in enumerate(current + stale):
        _record(metrics / f"{variant}.bench.json", variant, 100.0 + i)
        _record(metrics / f"{variant}.json", variant, 50.0 + i)  # the evaluation rule's, never read by the report
    summary = pd.DataFrame([{c: None for c in SUMMARY_COLUMNS} | {"variant": v, "status": "ok"} for v in current])
    summary.to_csv(metrics / "summary.csv", index=False)
    (metrics / "interop.md").write_text("# Interop\n\n| pruned30 | ok |\n")
    (metrics / "interop.manifest.json").write_text(json.dumps({"inputs": {v: {} for v in ["base", *stale]}}))
    sp = repo / "outputs" / "sp_lime_sets"
    (sp / "base_sp_lime.md").write_text("# SP\n\npicked instances of base\n")
    (sp / "old_sp_lime.md").write_text("# SP\n\nan earlier run that mentions pruned30\n")


def _everything(repo) -> str:
    out = repo / "outputs" / "reports"
    return "\n".join((out / name).read_text() for name in ("report.md", "report.csv", "report.manifest.json"))


def test_a_dropped_prune_percentage_is_nowhere_in_the_report(tree, monkeypatch):  # noqa: F811
    from generate_outputs.report.build_report import main

    for folder in REPORT_FOLDERS:
        (tree / folder).mkdir(parents=True, exist_ok=True)
    make(tree, "-t", "report", "PRUNE_PCTS=20 30")
    argv = report_argv(tree, "report", "PRUNE_PCTS=20")
    records = [argv[i + 1] for i, word in enumerate(argv) if word == "--metrics"]
    current = [r.split("/")[-1].removesuffix(".bench.json") for r in records]
    assert "pruned20_onnx_int8" in current and not [v for v in current if "30" in v]
    stale = [v.replace("20", "30") for v in current if "20" in v]
    _plant_outputs(tree, current, stale)
    argv = report_argv(tree, "report", "PRUNE_PCTS=20")  # again: interop.md now exists, so make passes it
    assert "--interop" in argv
    monkeypatch.chdir(tree)
    assert main(argv) == 0
    text = _everything(tree)
    assert "pruned30" not in text
    assert "pruned20_onnx_int8" in text and "built for another list of variants" in text
    assert "picked instances of base" in text
    # the numbers are the benchmark's records', not the evaluation rule's JSONs'
    row = next(line for line in (tree / "outputs/reports/report.md").read_text().splitlines()
               if line.startswith("| pruned20 "))
    assert "102" in row and "52" not in row
    # planted positive: the command for both lists shows pruned30, so the check above can fail
    assert main(report_argv(tree, "-B", "outputs/reports/report.md", "PRUNE_PCTS=20 30")) == 0
    assert "pruned30" in _everything(tree)


def test_a_record_the_report_is_given_must_exist_and_a_summary_must_name_its_variants(tmp_path, capsys):
    from generate_outputs.report.build_report import main

    metrics = tmp_path / "outputs" / "metrics"
    metrics.mkdir(parents=True)
    _record(metrics / "base.bench.json", "base", 100.0)
    out = tmp_path / "outputs" / "reports" / "report.md"
    base = ["--outputs", str(tmp_path / "outputs"), "--output", str(out), "--metrics", str(metrics / "base.bench.json")]
    assert main(base) == 0 and "| base " in out.read_text()
    out.unlink()
    with pytest.raises(SystemExit) as exc:
        main(base + ["--metrics", str(metrics / "pruned20.bench.json")])
    assert exc.value.code == 2 and not out.exists()
    assert "pruned20.bench.json (a metrics record) does not exist" in capsys.readouterr().err
    # a summary.csv without the producer's variant column is refused, not guessed at
    (metrics / "summary.csv").write_text("name,throughput_ratio\nbase,1.0\n")
    with pytest.raises(SystemExit) as exc:
        main(base)
    assert exc.value.code == 2 and not out.exists()
    assert "summary.csv lacks columns ['variant']" in capsys.readouterr().err


def test_the_benchmark_writes_its_records_under_its_own_name_and_a_failure_replaces_a_stale_one(
        tiny_bert, toy_data, tmp_path):
    from inference.run_onnx_benchmark import main

    out = tmp_path / "metrics"
    out.mkdir()
    broken = tmp_path / "broken.onnx"
    broken.write_text("not a graph")
    (out / "broken_onnx.bench.json").write_text(json.dumps(_metrics("broken_onnx", 0.99, 1e6)))  # earlier run
    assert main(["--output-dir", str(out), "--record-suffix", ".bench.json", "--data", str(toy_data),
                 "--max-len", "64", "--device", "cpu", "--threads", "1", "--latency-requests", "2",
                 "--throughput-texts", "8", "--test-samples", "16", "--agreement-rows", "4",
                 "--variant", f"base={tiny_bert}", "--variant", f"broken_onnx={broken}"]) == 0
    base = json.loads((out / "base.bench.json").read_text())
    assert base["status"] == "ok" and base["n_test"] == 16 and "accuracy" in base
    failed = json.loads((out / "broken_onnx.bench.json").read_text())
    assert failed["status"].startswith("failed") and "accuracy" not in failed
    assert not list(out.glob("base.json")) and not list(out.glob("broken_onnx.json"))  # the evaluation rule's names
    with pytest.raises(SystemExit) as exc:
        main(["--output-dir", str(out), "--record-suffix", ".bench", "--variant", f"base={tiny_bert}"])
    assert exc.value.code == 2


def _make_artefacts(repo, variants: list[str]) -> dict[str, list[str]]:
    """variant -> [file, dtype] as the Makefile's table lookup answers (parsed with the real Makefile)."""
    probe = repo / "probe.mk"
    probe.write_text("$(foreach v,%s,$(info ART $(v) $(call artefact,$(v)) $(call variant_dtype,$(v))))\n"
                     % " ".join(variants))
    res = subprocess.run(["make", "--no-print-directory", "-n", "-f", "Makefile", "-f", "probe.mk", "help", *KNOBS],
                         cwd=repo, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return {line.split()[1]: line.split()[2:] for line in res.stdout.splitlines() if line.startswith("ART ")}


def test_make_and_python_read_one_variant_table(tree):  # noqa: F811
    from common.variants import artefact, dtype_for, model_path

    seed = {"base": "models/fine_tuned/bert_agnews/manifest.json",
            "base_bf16": "models/fine_tuned/bert_agnews/manifest.json",
            "base_8bit": "models/quantized/bert_agnews_8bit.pt",
            "base_onnx_int8": "models/onnx/base_int8.onnx",
            "pruned20": "models/shrunk/pruned20/manifest.json",
            "pruned20_masked": "models/pruned/bert_agnews_20pct/manifest.json",
            "pruned20_8bit": "models/quantized/pruned20_8bit.pt",
            "pruned20_onnx": "models/onnx/pruned20.onnx",
            "pruned20_onnx_int8": "models/onnx/pruned20_int8.onnx",
            "pruned35_masked_onnx": "models/onnx/pruned35_masked.onnx"}
    from_make = _make_artefacts(tree, list(seed))
    for variant, path in seed.items():
        assert artefact(variant) == path and from_make[variant] == [path, dtype_for(variant)], variant
    assert from_make["base_bf16"][1] == "bf16" and from_make["pruned20"][1] == "fp32"
    assert model_path("pruned20_masked") == "models/pruned/bert_agnews_20pct"
    # a name no row matches is refused by both, not mapped to a guess
    with pytest.raises(ValueError, match="unknown variant 'distilled20'"):
        artefact("distilled20")
    (tree / "probe.mk").write_text("$(info $(call artefact,distilled20))\n")
    res = subprocess.run(["make", "-n", "-f", "Makefile", "-f", "probe.mk", "help", *KNOBS], cwd=tree,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "unknown variant distilled20" in res.stderr
