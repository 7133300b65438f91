"""One stage contract (common/stage.py): main(argv) -> frozen, validated config -> run(config).

Unknown, missing and mistyped settings are user errors naming them; every converted stage's config has
exactly its parser's flags (so manifests record what they recorded before); the two MLP training entry
points are one stage behind --loss."""
from __future__ import annotations

import dataclasses
import importlib

import pytest

from common.cli import UserError
from common.stage import StageConfig, run_stage

# stage script -> its config class (module path, class name)
STAGES = {
    "train.fine_tuning.run_fine_tune_bert_agnews": ("common.compress.finetune", "FineTuneConfig"),
    "train.pruning.run_structural_pruning": ("common.compress.pruning", "PruneConfig"),
    "train.quantization.run_dynamic_quantization": ("common.quantize.torch_dynamic", "QuantizeConfig"),
    "export_onnx.export_onnx": ("common.export.stage", "ExportConfig"),
    "tools.apply_shrink_to_model": ("common.compress.shrink", "ShrinkConfig"),
    "tools.interop": ("common.bench.interop", "InteropConfig"),
    "analysis.model_properties.run_model_properties": ("common.bench.properties", "PropertiesConfig"),
    "train_mlp_models.train_mlp_vanilla": ("common.mlp.stages", "TrainingConfig"),
    "train_mlp_models.train_mlp_xai_loss": ("common.mlp.stages", "XaiTrainingConfig"),
    "train_mlp_models.evaluate_mlp_models": ("common.mlp.evaluation", "EvaluationConfig"),
    "train_mlp_models.sweep_lambda": ("common.mlp.evaluation", "SweepConfig"),
}


@dataclasses.dataclass(frozen=True)
class ToyConfig(StageConfig):
    output: str
    samples: int
    rate: float = 0.5
    seeds: list[int] = dataclasses.field(default_factory=lambda: [1, 2])
    limit: int | None = None

    def check(self) -> None:
        if self.samples <= 0:
            raise UserError("--samples must be > 0.")


def test_a_valid_dict_builds_a_frozen_config_with_its_values_in_field_order():
    config = ToyConfig.from_dict({"samples": 3, "output": "o", "rate": 1})
    assert config.to_dict() == {"output": "o", "samples": 3, "rate": 1, "seeds": [1, 2], "limit": None}
    assert list(config.to_dict()) == ["output", "samples", "rate", "seeds", "limit"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.samples = 4
    assert config.replace(samples=5).samples == 5 and config.samples == 3


@pytest.mark.parametrize("values, named", [
    ({"output": "o", "samples": 3, "sampels": 4, "extra": 1}, ["extra", "sampels"]),  # unknown keys
    ({"samples": 3}, ["--output"]),  # missing
    ({"output": "o", "samples": "3"}, ["--samples"]),  # a string where a number belongs
    ({"output": "o", "samples": True}, ["--samples"]),  # a bool is not a count
    ({"output": "o", "samples": 3, "seeds": [1, "x"]}, ["--seeds"]),
    ({"output": "o", "samples": 3, "limit": 2.5}, ["--limit"]),
    ({"output": "o", "samples": 0}, ["--samples"]),  # the subclass's range check
])
def test_bad_settings_are_user_errors_naming_them(values, named):
    with pytest.raises(UserError) as error:
        ToyConfig.from_dict(values)
    assert all(name in str(error.value) for name in named), str(error.value)


def test_replace_validates_again():
    with pytest.raises(UserError):
        ToyConfig.from_dict({"output": "o", "samples": 1}).replace(samples=-1)


@pytest.mark.parametrize("script", sorted(STAGES))
def test_each_stage_config_has_exactly_its_parser_flags(script):
    module_name, class_name = STAGES[script]
    config_cls = getattr(importlib.import_module(module_name), class_name)
    parser = importlib.import_module(script).main.build_parser()
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    assert {f.name for f in dataclasses.fields(config_cls)} == dests
    assert issubclass(config_cls, StageConfig) and config_cls.__dataclass_params__.frozen


def test_a_flag_the_config_does_not_know_is_refused(tmp_path):
    """The planted positive of the test above: a parser that grew a flag its config lacks fails loudly."""
    from train.quantization.run_dynamic_quantization import main
    from common.quantize.torch_dynamic import QuantizeConfig

    parser = main.build_parser()
    parser.add_argument("--new-knob", type=int, default=1)
    with pytest.raises(SystemExit) as exited:
        run_stage(["--model", str(tmp_path), "--output", str(tmp_path / "q.pt")], parser, QuantizeConfig,
                  lambda config: 0)
    assert exited.value.code == 2


def test_run_stage_turns_a_config_error_into_exit_2_before_any_work(tmp_path):
    from export_onnx.export_onnx import main

    output = tmp_path / "m.onnx"
    with pytest.raises(SystemExit) as exited:
        main(["--model", str(tmp_path), "--output", str(output), "--max-len", "4"])
    assert exited.value.code == 2 and not output.exists()


# ----------------------------------------------------------------------------------------------- MLP merge
ARGV = ["--output", "m.pt", "--explanations", "e.csv", "--seeds", "3", "4", "--lambda", "2"]


def _config(script: str, argv: list[str]):
    """The config the entry point ``script`` builds from ``argv``."""
    from common.mlp.stages import TrainingConfig

    parser = importlib.import_module(f"train_mlp_models.{script}").main.build_parser()
    return TrainingConfig.from_namespace(parser.parse_args(argv))


def test_the_xai_entry_point_is_the_vanilla_stage_with_loss_xai():
    vanilla, xai = _config("train_mlp_vanilla", ARGV), _config("train_mlp_xai_loss", ARGV)
    assert vanilla.loss == "cross_entropy" and xai.loss == "xai"
    assert _config("train_mlp_vanilla", [*ARGV, "--loss", "xai"]) == xai
    # Manifests record what each script recorded before the merge: no switch, the lambda only with xai.
    assert "xai_lambda" not in vanilla.recorded_arguments() and "loss" not in vanilla.recorded_arguments()
    assert xai.recorded_arguments()["xai_lambda"] == 2.0 and "loss" not in xai.recorded_arguments()
    assert {k: v for k, v in xai.recorded_arguments().items() if k != "xai_lambda"} == vanilla.recorded_arguments()


@pytest.mark.parametrize("argv", [
    ["--output", "m.pt", "--loss", "xai"],  # the explanation loss needs BERT's explanations
    ["--output", "m.pt", "--explanations", "e.csv", "--loss", "xai", "--lambda", "-1"],
    ["--output", "m.txt"],
    ["--output", "m.pt", "--hidden", "0"],
])
def test_training_flags_are_checked_before_any_work(argv):
    with pytest.raises(UserError):
        _config("train_mlp_vanilla", argv)


def test_vanilla_without_explanations_is_valid():
    assert _config("train_mlp_vanilla", ["--output", "m.pt"]).explanations == ""
