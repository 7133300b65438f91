"""Stages whose config declares its flags (common.stage.config_entry): the parser is generated from the
fields, so a config is exactly its flags, in their order; an unknown setting is a UserError naming it."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
from pathlib import Path

import pytest

from common.cli import UserError
from common.stage import OneOf, StageConfig, config_class, config_entry, config_parser, flag, shared_flag

# stage script -> (config module, class, the fewest flags it runs with)
STAGES = {
    "generate_outputs.generate_lime_csv.run_lime_on_model": (
        "common.explain.stages", "LimeConfig", ["--model", "m", "--variant", "v", "--output", "o.csv"]),
    "generate_outputs.generate_lime_csv.generate_bert_token_explanations_for_mlp": (
        "common.explain.stages", "TokenExplanationConfig", ["--model", "m", "--output", "o.csv"]),
    "generate_outputs.generate_lime_csv.bench_lime_speed": (
        "common.explain.speed", "LimeBenchConfig", ["--model", "m", "--onnx", "m.onnx"]),
    "generate_outputs.sp_lime.run_sp_lime_hf_model": ("common.explain.sp_lime", "SpLimeConfig", ["--model_dir", "m"]),
    "generate_outputs.deletion_test.run_deletion_test": (
        "common.explain.deletion", "DeletionTestConfig", ["--base-lime", "b.csv", "--variant-lime", "v.csv", "--output", "o.csv"]),
    "generate_outputs.deletion_test.build_deletion_report": (
        "common.explain.deletion_report", "DeletionReportConfig", ["--variant", "d.csv"]),
    "generate_outputs.lime_similarity_pipeline.run_lime_similarity": (
        "common.explain.drift_report", "SimilarityConfig", ["--base", "b.csv", "--noise", "n.csv"]),
    "analysis.nltk.nltk_analyze_all_models": ("common.explain.pos", "PosConfig", ["--base", "b.csv", "--noise", "n.csv"]),
    "generate_outputs.report.build_report": ("common.report.stage", "ReportConfig", []),
    "train_mlp_models.evaluate_mlp_models": (
        "common.mlp.evaluation", "EvaluationConfig",
        ["--vanilla", "v.pt", "--xai", "x.pt", "--output-dir", "o", "--explanations", "e.csv"]),
    "train.fine_tuning.run_fine_tune_bert_agnews": ("common.compress.finetune", "FineTuneConfig", []),
    "train.pruning.run_structural_pruning": (
        "common.compress.pruning", "PruneConfig", ["--model", "m", "--sparsity", "20", "--output", "o"]),
    "train.quantization.run_dynamic_quantization": (
        "common.quantize.torch_dynamic", "QuantizeConfig", ["--model", "m", "--output", "q.pt"]),
    "inference.run_onnx_benchmark": ("common.bench.run", "BenchConfig", ["--variant", "base=m"]),
    "inference.run_inference_on_model": (
        "common.bench.evaluation", "ModelEvaluationConfig", ["--model", "m", "--variant", "v", "--output", "o.json"]),
    "inference.evaluate_agnews_quantized_16bit": (
        "common.bench.evaluation", "HalfPrecisionEvaluationConfig",
        ["--model", "m", "--variant", "v", "--output", "o.json"]),
    "export_onnx.export_onnx": ("common.export.stage", "ExportConfig", ["--model", "m", "--output", "m.onnx"]),
    "export_onnx.save_shrunk_pytorch_model": (
        "common.compress.shrink", "ShrinkConfig", ["--model_path", "m", "--output_path_shrunk_model", "s"]),
    "tools.apply_shrink_to_model": (
        "common.compress.shrink", "ShrinkConfig", ["--model-path", "m", "--output-path-shrunk-model", "s"]),
    "tools.interop": ("common.bench.interop", "InteropConfig", ["--interop-python", "p", "--output", "o.md"]),
    "tools.static_int8_formats": (
        "tools.lab.static_formats", "StaticFormatsConfig", ["--model", "m.onnx", "--output", "o.md"]),
    "tools.fused_attention_compare": (
        "tools.lab.fused_attention", "FusedCompareConfig", ["--models", "a", "b", "--output", "o.md"]),
    "analysis.model_properties.run_model_properties": (
        "common.bench.properties", "PropertiesConfig", ["--table", "t", "--output", "o.md"]),
    "train_mlp_models.sweep_lambda": (
        "common.mlp.evaluation", "SweepConfig", ["--lambdas", "0", "1", "--output-dir", "o", "--explanations", "e.csv"]),
    "train_mlp_models.train_mlp_vanilla": ("common.mlp.stages", "TrainingConfig", ["--output", "m.pt"]),
    "train_mlp_models.train_mlp_xai_loss": (
        "common.mlp.stages", "XaiTrainingConfig", ["--output", "m.pt", "--explanations", "e.csv"]),
}


def _parsed(script: str) -> tuple[type[StageConfig], dict]:
    module_name, class_name, argv = STAGES[script]
    config_cls = getattr(importlib.import_module(module_name), class_name)
    return config_cls, vars(importlib.import_module(script).main.build_parser().parse_args(argv))


@pytest.mark.parametrize("script", sorted(STAGES))
def test_each_stage_config_is_its_flags_and_refuses_an_unknown_key(script):
    config_cls, parsed = _parsed(script)
    assert issubclass(config_cls, StageConfig) and config_cls.__dataclass_params__.frozen
    # the planted negative: what the flags give is a valid config, recorded in manifests as vars(args) was
    assert config_cls.from_dict(parsed).to_dict() == parsed
    assert list(config_cls.from_dict(parsed).to_dict()) == list(parsed)
    with pytest.raises(UserError) as error:
        config_cls.from_dict({**parsed, "nonsense_knob": 1})
    assert "nonsense_knob" in str(error.value) and config_cls.__name__ in str(error.value)


@pytest.mark.parametrize("script, bad, named", [
    ("generate_outputs.generate_lime_csv.run_lime_on_model", {"output": "o.txt"}, "--output"),
    ("generate_outputs.generate_lime_csv.run_lime_on_model", {"num_samples": 1}, "--num-samples"),
    ("generate_outputs.deletion_test.run_deletion_test", {"max_k": 0}, "--max-k"),
    ("generate_outputs.deletion_test.build_deletion_report", {"variant": []}, "--variant"),
    ("generate_outputs.sp_lime.run_sp_lime_hf_model", {"num_explanations": 50}, "--num-explanations"),
    ("analysis.nltk.nltk_analyze_all_models", {"top_k": 0}, "--top-k"),
    ("train_mlp_models.evaluate_mlp_models", {"seeds": ["1"]}, "--seeds"),
])
def test_bad_values_are_refused_on_construction(script, bad, named):
    config_cls, parsed = _parsed(script)
    with pytest.raises(UserError) as error:
        config_cls.from_dict({**parsed, **bad})
    assert named in str(error.value)


@pytest.mark.parametrize("script", ["generate_outputs.deletion_test.run_deletion_test",
                                    "analysis.nltk.nltk_analyze_all_models"])
def test_a_bad_value_through_main_is_exit_2_before_any_work(script, tmp_path, caplog):
    argv = {"generate_outputs.deletion_test.run_deletion_test": [
        "--base-lime", "b.csv", "--variant-lime", "v.csv", "--output", str(tmp_path / "o.csv"), "--max-k", "0"],
        "analysis.nltk.nltk_analyze_all_models": [
        "--base", "b.csv", "--noise", "n.csv", "--output-dir", str(tmp_path / "r"), "--top-k", "0"]}[script]
    with pytest.raises(SystemExit) as exited:
        importlib.import_module(script).main(argv)
    assert exited.value.code == 2 and "must be at least 1" in caplog.text
    assert list(tmp_path.iterdir()) == []


@dataclasses.dataclass(frozen=True)
class ToyConfig(StageConfig):
    source: str = flag(help="read this")
    count: int = flag(3, aliases=["--n"])
    rate: float = flag(0.5)
    output: str = flag(help="write this")  # required after ones with defaults: fields are keyword-only
    item: list[str] = flag([], action="append")
    seeds: list[int] | None = flag(None, nargs="*")
    fast: bool = flag(True)
    max_len: int = shared_flag("max_len")


def test_the_fields_generate_the_flags():
    parser = config_parser(ToyConfig, "toy")
    args = parser.parse_args(["--source", "s", "--output", "o", "--n", "4", "--item", "a", "--item", "b",
                              "--seeds", "1", "2", "--no-fast", "--max_len", "7", "--rate", "2"])
    assert vars(args) == {"source": "s", "count": 4, "rate": 2.0, "output": "o", "item": ["a", "b"],
                          "seeds": [1, 2], "fast": False, "max_len": 7}
    assert ToyConfig.from_namespace(args).to_dict() == vars(args)
    defaults = vars(parser.parse_args(["--source", "s", "--output", "o"]))
    assert defaults == {"source": "s", "count": 3, "rate": 0.5, "output": "o", "item": [], "seeds": None,
                        "fast": True, "max_len": 128}
    # a list default is not shared between configs, and appending does not grow the parser's default
    assert ToyConfig(source="s", output="o").item is not ToyConfig(source="s", output="o").item
    parser.parse_args(["--source", "s", "--output", "o", "--item", "a"])
    assert parser.parse_args(["--source", "s", "--output", "o"]).item == []


@pytest.mark.parametrize("argv", [
    ["--output", "o"],  # --source is required
    ["--source", "s", "--output", "o", "--count", "x"],  # the annotation's type converts
    ["--source", "s", "--output", "o", "--seeds", "a"],
])
def test_generated_flags_refuse_what_the_fields_refuse(argv):
    with pytest.raises(SystemExit) as exited:
        config_parser(ToyConfig, "toy").parse_args(argv)
    assert exited.value.code == 2


def test_config_entry_runs_the_config(capsys):
    seen = []
    main = config_entry("toy", ToyConfig, lambda config: seen.append(config) or 0)
    assert main(["--source", "s", "--output", "o"]) == 0
    assert seen == [ToyConfig(source="s", output="o")]
    assert isinstance(main.build_parser(), argparse.ArgumentParser)
    with pytest.raises(SystemExit) as exited:
        main(["--source", "s", "--output", "o", "--unknown", "1"])
    assert exited.value.code == 2


# ----------------------------------------------------------------------------------------------- stage.py options
@pytest.mark.parametrize("script, argv, expected", [
    # the seed's spellings stay the first ones, the other spelling beside them
    ("tools.apply_shrink_to_model", ["--model_path", "m", "--output-path-shrunk-model", "s", "--save-method",
                                     "torch_save"], {"model_path": "m", "output_path_shrunk_model": "s",
                                                     "save_method": "torch_save"}),
    ("train_mlp_models.train_mlp_vanilla", ["--output", "m.pt", "--lambda", "2", "--lr", "0.5"],
     {"xai_lambda": 2.0, "learning_rate": 0.5, "loss": "cross_entropy"}),
    ("train_mlp_models.train_mlp_xai_loss", ["--output", "m.pt", "--explanations", "e.csv"], {"loss": "xai"}),
    ("inference.evaluate_agnews_quantized_16bit", ["--model", "m", "--variant", "v", "--output", "o.json"],
     {"dtype": "fp16"}),
    ("train.fine_tuning.run_fine_tune_bert_agnews", ["--base_model", "b", "--force"], {"base_model": "b", "force": True}),
    ("train.pruning.run_structural_pruning", ["--model", "m", "--sparsity", "20", "--output", "o", "--no-distill"],
     {"distill": False, "force": False}),
    ("inference.run_onnx_benchmark", ["--no-reuse", "--variant", "a=b", "--variant", "c=d", "--latency-threads", "1",
                                      "2"], {"no_reuse": True, "variant": ["a=b", "c=d"], "latency_threads": [1, 2]}),
])
def test_converted_stages_keep_their_spellings_and_values(script, argv, expected):
    parsed = vars(importlib.import_module(script).main.build_parser().parse_args(argv))
    assert {k: parsed[k] for k in expected} == expected


@pytest.mark.parametrize("script, argv", [
    ("train_mlp_models.train_mlp_vanilla", ["--output", "m.pt", "--xai-lambda", "2"]),  # only --lambda, as before
    ("inference.evaluate_agnews_quantized_16bit", ["--model", "m", "--variant", "v", "--output", "o", "--dtype", "fp32"]),
    ("inference.run_inference_on_model", ["--model", "m", "--variant", "v", "--output", "o", "--max_len", "8"]),
    ("analysis.model_properties.run_model_properties", ["--output", "o.md"]),  # --model or --table is required
    ("analysis.model_properties.run_model_properties", ["--model", "m", "--table", "t", "--output", "o.md"]),
    ("tools.static_int8_formats", ["--model", "m", "--output", "o", "--formats", "nonsense"]),
    ("inference.run_onnx_benchmark", ["--no-no-reuse"]),  # a negative flag gets no double negative
])
def test_converted_stages_refuse_what_their_parsers_refused(script, argv):
    with pytest.raises(SystemExit) as exited:
        importlib.import_module(script).main.build_parser().parse_args(argv)
    assert exited.value.code == 2


_EITHER = OneOf(required=True)
_AT_MOST_ONE = OneOf()


@dataclasses.dataclass(frozen=True)
class GroupedConfig(StageConfig):
    model: str | None = flag(None, one_of=_EITHER)
    table: str | None = flag(None, one_of=_EITHER)
    xai_lambda: float = flag(1.0, option="--lambda", aliases=["--weight"])
    quiet: bool = flag(False, one_of=_AT_MOST_ONE)
    loud: bool = flag(False, one_of=_AT_MOST_ONE)
    output: str = flag(option="--output_path")


def test_option_replaces_the_field_spelling_and_one_of_groups_are_exclusive():
    parser = config_parser(GroupedConfig, "grouped")
    assert vars(parser.parse_args(["--table", "t", "--weight", "3", "--output_path", "o"])) == {
        "model": None, "table": "t", "xai_lambda": 3.0, "quiet": False, "loud": False, "output": "o"}
    assert parser.parse_args(["--model", "m", "--lambda", "2", "--loud", "--output_path", "o"]).xai_lambda == 2.0
    for argv in (["--output_path", "o"], ["--model", "m", "--table", "t", "--output_path", "o"],
                 ["--model", "m", "--xai-lambda", "2", "--output_path", "o"], ["--model", "m", "--output-path", "o"],
                 ["--model", "m", "--quiet", "--loud", "--output_path", "o"]):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(argv)
        assert exited.value.code == 2, argv
    # a config error names the flag the user types
    with pytest.raises(UserError, match="--output_path"):
        GroupedConfig.from_dict({"model": "m"})
    with pytest.raises(UserError, match="--lambda"):
        GroupedConfig.from_dict({"model": "m", "output": "o", "xai_lambda": "x"})


@dataclasses.dataclass(frozen=True)
class _CheckedGroup(StageConfig):
    def check(self) -> None:
        if self.count < 1:
            raise UserError("--count must be >= 1.")


def _shared_group(count: int) -> list[tuple]:
    return [("count", int, flag(count, help="how many")), ("name", str, flag("n"))]


def test_config_class_puts_a_shared_group_where_the_stage_lists_it():
    config_cls = config_class("SplicedConfig", [("output", str, flag(help="o")), *_shared_group(3),
                                                ("last", bool, flag(True))], _CheckedGroup, __name__, "doc")
    assert [f.name for f in dataclasses.fields(config_cls)] == ["output", "count", "name", "last"]
    assert config_cls.__module__ == __name__ and config_cls.__doc__ == "doc"
    assert issubclass(config_cls, _CheckedGroup) and config_cls.__dataclass_params__.frozen
    parsed = vars(config_parser(config_cls, "spliced").parse_args(["--output", "o", "--count", "2", "--no-last"]))
    assert parsed == {"output": "o", "count": 2, "name": "n", "last": False}
    assert list(config_cls.from_dict(parsed).to_dict()) == list(parsed)
    with pytest.raises(UserError, match="--count"):  # the base's check runs
        config_cls.from_dict({**parsed, "count": 0})


# ----------------------------------------------------------------------------------------------- no own parsers
ROOT = Path(__file__).resolve().parents[1]
STAGE_FOLDERS = ("train", "inference", "export_onnx", "tools", "generate_outputs", "analysis", "train_mlp_models")
# Not stages: lab code behind tools/ scripts, make's import scanner, the two scripts that run in the
# third-party venv (they cannot import this toolkit), and the resource monitor, which wraps another command
# (a positional `-- COMMAND...`) and has no config.
NOT_STAGES = ("tools/lab/", "tools/stage_deps.py", "tools/optimum_peer.py", "tools/interop_thirdparty.py",
              "analysis/monitoring/monitor.py")
OWN_PARSER_MARKS = ("stage_entry(", "build_parser", "ArgumentParser(", "add_argument(", "stage_parser(",
                    "add_shared_flags(")


def own_parsers(root: Path) -> list[str]:
    """``path: mark`` for every stage script under ``root`` that builds its own argparse parser instead of
    ``main = config_entry(__doc__, Config, run)`` (its flags would then be written twice: parser and config)."""
    found = []
    for folder in STAGE_FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(NOT_STAGES):
                continue
            text = path.read_text(encoding="utf-8")
            found += [f"{rel}: {mark}" for mark in OWN_PARSER_MARKS if mark in text]
    return found


def test_the_scan_finds_a_planted_own_parser(tmp_path):
    for rel, text in {
        "train/own.py": "from common.stage import stage_entry\nmain = stage_entry(build_parser, C, run)\n",
        "inference/argv.py": "import argparse\np = argparse.ArgumentParser()\np.add_argument('--x')\n",
        "tools/lab/helper.py": "def build_parser(): ...\n",  # lab code is no stage
        "train/good.py": "from common.stage import config_entry\nmain = config_entry(__doc__, C, run)\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert own_parsers(tmp_path) == ["train/own.py: stage_entry(", "train/own.py: build_parser",
                                     "inference/argv.py: ArgumentParser(", "inference/argv.py: add_argument("]


def test_no_stage_script_builds_its_own_parser():
    assert own_parsers(ROOT) == []


def test_no_library_module_builds_a_stage_parser_for_a_script():
    """The indirect way (``main = training_main(...)`` returning ``stage_entry(...)``): only config_entry calls
    stage_entry."""
    callers = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "common").rglob("*.py")
                     if "stage_entry(" in p.read_text(encoding="utf-8"))
    assert callers == ["common/stage.py"]
