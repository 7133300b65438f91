"""Stages whose config declares its flags (common.stage.config_entry): the parser is generated from the
fields, so a config is exactly its flags, in their order; an unknown setting is a UserError naming it."""
from __future__ import annotations

import argparse
import dataclasses
import importlib

import pytest

from common.cli import UserError
from common.stage import StageConfig, config_entry, config_parser, flag, shared_flag

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
