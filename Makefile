# The pipeline: every artefact is a file target; `make help` lists targets and knobs.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules
.DELETE_ON_ERROR:
.SECONDARY:
.DEFAULT_GOAL := all

# ---------------------------------------------------------------------------------------------- knobs
BASE_MODEL ?= minilm## base model: minilm (offline MiniLM-L6-H384 from PyPI), a hub id (bert-base-uncased) or a folder
DATA ?= ag_news## ag_news (hub) or a folder with train/test parquet|csv|jsonl (here: ../shared/data/ag_news)
SEED ?= 42## one seed for data subsets, training and LIME
EPOCHS ?= 2## fine-tuning epochs
TRAIN_SAMPLES ?= 0## class-stratified training subset (0 = all rows)
MAX_LEN ?= 128## max tokens per text (longer texts are truncated)
DEVICE ?= auto## auto (cuda if present) | cpu | cuda | cuda:N
PRUNE_PCTS ?= 20 30## pruning percentages built by `make report`/`make bench`
SWEEP_PCTS ?= 20 30 40 50 60## pruning percentages of `make sweep` (each: prune, re-fine-tune, shrink, export, dynamic + static int8)
PRUNE_EPOCHS ?= 2## re-fine-tuning epochs after pruning
PRUNE_HEAD_FFN_RATIO ?= 0.5## share of heads pruned / share of FFN neurons pruned at the same encoder-weight sparsity (0.5 spares heads, 2 spares FFN; 1 was the default before the function recipe)
PRUNE_RECIPE ?= function## re-fine-tuning recipe: function (the teacher's probabilities on clean texts + LIME-style word-deleted copies) | logits (the historical CE + KL at T=2 on clean texts)
PERTURB_COPIES ?= 3## function recipe: word-deleted copies (LIME's own perturbation) of each training text per epoch, >= 1
PERTURB_LOSS ?= kl## function recipe: kl (KL(teacher || student) at T=1) | mse (squared error of the probabilities)
HIDDEN_WEIGHT ?= 0## function recipe: weight of the per-layer hidden-state MSE to the teacher (0 = off; see README for the measurement)
SAVE_STEPS ?= 0## checkpoint every N steps while fine-tuning/re-fine-tuning (0 = auto: ~10 per run; resume after a kill)
DISTILL ?= --distill## --distill | --no-distill (knowledge distillation from the unpruned model while re-fine-tuning)
CALIB_ROWS ?= 128## static int8: seeded training rows (never test rows) that calibrate the activation scales
STATIC_FORMAT ?= qoperator_u8## static int8: qoperator_u8 (fastest measured here) | qoperator_s8 | qdq_u8 | qdq_s8
TEST_SAMPLES ?= 0## evaluate on a stratified test subset (0 = the full test split)
THREADS ?= 0## CPU threads for inference and benchmarks (0 = all cores)
OPTIMUM_PEER ?= auto## peer row in `make bench`/`make sweep`, Optimum's int8 for this CPU: auto (when .venv-interop exists) | 1 (build the venv first) | 0 (skip)
OPENVINO_PEER ?= auto## peer row in `make bench`/`make sweep`, OpenVINO's int8 (optimum-intel export + NNCF): auto (when .venv-openvino exists) | 1 (build the venv first) | 0 (skip)
HALF_ON_CPU ?= 0## 1: `make bench` measures base_fp16/base_bf16 on a CPU without native fp16/bf16 too (default: skipped there with the reason; torch emulates them at ~0.15x fp32)
LIME_INSTANCES ?= 100## test instances explained per variant
LIME_SAMPLES ?= 1000## LIME perturbation samples per explanation
LIME_VIA_ONNX ?= 1## 1: explain fp32 pruned variants through their parity-checked ONNX export (same function, faster); 0: through torch
LIME_SAMPLE_CURVE ?= 250 500 1000## num_samples values of the stability curve (descriptive: the verdicts' margin is the positive control's, not LIME's floor)
# $(call at_most,N,VALUE): VALUE capped at N (a non-number is passed through for the knob check to name).
at_most = $(shell n='$(2)'; case "$$n" in (''|*[!0-9]*) echo "$$n";; (*) [ "$$n" -lt $(1) ] && echo "$$n" || echo $(1);; esac)
# The curve only shows how LIME's seed-to-seed agreement grows with num_samples (it decides no verdict): 30
# instances trace it (~15 min here, against ~1 h at 100); never more than LIME_INSTANCES.
LIME_CURVE_INSTANCES ?= $(call at_most,30,$(LIME_INSTANCES))## test instances explained per point of the stability curve (default: 30, at most LIME_INSTANCES)
CONTROL ?= 1## 1: the drift report judges a positive control (the base recipe fine-tuned with CONTROL_SEED); 0: off
CONTROL_SEED ?= 43## training seed of the positive control (same data and split as base; must differ from SEED)
SP_SAMPLE_SIZE ?= 40## SP-LIME candidate pool (each costs one explanation)
SP_EXPLANATIONS ?= 6## SP-LIME explanations picked
SP_FEATURES ?= 10## SP-LIME words per explanation (largest |weight|) in the coverage matrix and global importance
MLP_EXPLAINED ?= 300## training instances explained by BERT for the XAI student
MLP_SEEDS ?= 42 43 44## seeds of the MLP students (CIs over seeds)
MLP_LAMBDA ?= 1.0## weight of the XAI explanation loss
MLP_LAMBDAS ?= 0 0.1 0.3 1 3## the lambda sweep
PYTHON ?= .venv/bin/python## interpreter (make setup creates .venv)
NLTK_DATA ?= $(HOME)/nltk_data## where NLTK's tagger lives (here: ../shared/nltk_data)
export NLTK_DATA

# Knob values reach the shell as data, never as code. Free-text knobs (DATA, BASE_MODEL, paths) are
# single-quoted where a recipe or $(shell ...) uses them ($(call shell_quote,...); DATA_ARG does it for
# DATA). Every other knob must be a number, or a plain word, checked here once for every goal, so a rule
# may write `--epochs $(EPOCHS)` as is. A new knob goes into one of these lists.
shell_quote = '$(subst ','\'',$(1))'
INTEGER_KNOBS := SEED TRAIN_SAMPLES MAX_LEN PRUNE_PCTS SAVE_STEPS TEST_SAMPLES THREADS LIME_INSTANCES LIME_SAMPLES \
  LIME_VIA_ONNX LIME_SAMPLE_CURVE LIME_CURVE_INSTANCES SP_SAMPLE_SIZE SP_EXPLANATIONS SP_FEATURES MLP_EXPLAINED MLP_SEEDS \
  CONTROL CONTROL_SEED CALIB_ROWS SWEEP_PCTS HALF_ON_CPU
NUMBER_KNOBS := EPOCHS PRUNE_EPOCHS PRUNE_HEAD_FFN_RATIO PERTURB_COPIES HIDDEN_WEIGHT MLP_LAMBDA MLP_LAMBDAS
WORD_KNOBS := DEVICE DISTILL PRUNE_RECIPE PERTURB_LOSS STATIC_FORMAT OPTIMUM_PEER OPENVINO_PEER
DIGITS := 0 1 2 3 4 5 6 7 8 9
WORD_CHARS := $(DIGITS) a b c d e f g h i j k l m n o p q r s t u v w x y z A B C D E F G H I J K L M N O P Q R S T U V W X Y Z _ - : .
# $(call strip_chars,TEXT,CHARS): TEXT without any of CHARS (and without spaces)
strip_chars = $(if $(2),$(call strip_chars,$(subst $(firstword $(2)),,$(1)),$(wordlist 2,$(words $(2)),$(2))),$(strip $(1)))
# $(call check_knob,NAME,CHARS,WHAT)
check_knob = $(if $(call strip_chars,$($(1)),$(2)),$(error $(1)=$($(1)) is not $(3); fix the value given to make))
$(foreach k,$(INTEGER_KNOBS),$(call check_knob,$(k),$(DIGITS),a whole number (or a list of them)))
$(foreach k,$(NUMBER_KNOBS),$(call check_knob,$(k),$(DIGITS) . e E + -,a number (or a list of them)))
$(foreach k,$(WORD_KNOBS),$(call check_knob,$(k),$(WORD_CHARS),a plain word (letters, digits, _ - : .)))

PY := PYTHONUNBUFFERED=1 $(PYTHON) -m
FT := models/fine_tuned/bert_agnews
STAMPS := models/.knobs

# A stamp file per knob group, rewritten only when the values change, so an
# artefact built with other knob values is rebuilt instead of silently reused.
# Dry runs (make -n) and goals that build nothing never rewrite a stamp: a changed
# value then points at a fresh temporary stamp, so `make -n` shows the rebuild.
NO_STAMP_GOALS := help clean setup test test-fast lint-docker docker-cpu docker-cuda nltk-data .venv-interop/.installed \
  .venv-openvino/.installed
DRY_RUN := $(if $(filter -%,$(firstword $(MAKEFLAGS))),,$(findstring n,$(firstword $(MAKEFLAGS))))
STAMP_READONLY := $(DRY_RUN)$(if $(MAKECMDGOALS),$(if $(filter-out $(NO_STAMP_GOALS),$(MAKECMDGOALS)),,yes))
knob_stamp = $(shell f=$(STAMPS)/$(1); v=$(call shell_quote,$(strip $(2))); \
  if [ -f $$f ] && [ "$$(cat $$f)" = "$$v" ]; then echo $$f; \
  elif [ -n "$(STAMP_READONLY)" ]; then t=$$(mktemp -d)/$(1); printf '%s\n' "$$v" > $$t; echo $$t; \
  else mkdir -p $(STAMPS); printf '%s\n' "$$v" > $$f; echo $$f; fi)
# A build whose DATA/BASE_MODEL come from an unreachable hub stops here, in one line, before any stamp is
# written (the libraries would retry for ~30 s first). Dry runs and goals that build nothing skip the probe.
HUB_PROBE_SKIP := $(DRY_RUN)$(if $(MAKECMDGOALS),$(if $(filter-out $(NO_STAMP_GOALS) demo,$(MAKECMDGOALS)),,yes))
HUB_PROBLEM := $(if $(HUB_PROBE_SKIP),,$(shell python3 $(dir $(lastword $(MAKEFILE_LIST)))common/hubcheck.py --data $(call shell_quote,$(DATA)) --base-model $(call shell_quote,$(BASE_MODEL))))
$(if $(HUB_PROBLEM),$(error $(patsubst %.,%,$(HUB_PROBLEM))))
TRAIN_KNOBS := $(call knob_stamp,train,BASE_MODEL=$(BASE_MODEL) DATA=$(DATA) SEED=$(SEED) EPOCHS=$(EPOCHS) TRAIN_SAMPLES=$(TRAIN_SAMPLES) MAX_LEN=$(MAX_LEN))
# The ratio enters the stamp only when it is not 1 and the recipe knobs only for the function recipe, so models
# pruned before the knobs existed (ratio 1, logits recipe) stay built.
PRUNE_KNOBS := $(call knob_stamp,prune,PRUNE_EPOCHS=$(PRUNE_EPOCHS) DISTILL=$(DISTILL)$(if $(filter-out 1,$(PRUNE_HEAD_FFN_RATIO)), PRUNE_HEAD_FFN_RATIO=$(PRUNE_HEAD_FFN_RATIO))$(if $(filter-out logits,$(PRUNE_RECIPE)), PRUNE_RECIPE=$(PRUNE_RECIPE) PERTURB_COPIES=$(PERTURB_COPIES) PERTURB_LOSS=$(PERTURB_LOSS) HIDDEN_WEIGHT=$(HIDDEN_WEIGHT)))
RECIPE_ARGS := --recipe $(PRUNE_RECIPE)$(if $(filter-out logits,$(PRUNE_RECIPE)), --perturb-copies $(PERTURB_COPIES) --perturb-loss $(PERTURB_LOSS) --hidden-weight $(HIDDEN_WEIGHT))
STATIC_KNOBS := $(call knob_stamp,static,DATA=$(DATA) SEED=$(SEED) MAX_LEN=$(MAX_LEN) CALIB_ROWS=$(CALIB_ROWS) STATIC_FORMAT=$(STATIC_FORMAT))
EVAL_KNOBS := $(call knob_stamp,eval,DATA=$(DATA) TEST_SAMPLES=$(TEST_SAMPLES) MAX_LEN=$(MAX_LEN) DEVICE=$(DEVICE) THREADS=$(THREADS))
LIME_KNOBS := $(call knob_stamp,lime,DATA=$(DATA) SEED=$(SEED) MAX_LEN=$(MAX_LEN) LIME_INSTANCES=$(LIME_INSTANCES) LIME_SAMPLES=$(LIME_SAMPLES) LIME_VIA_ONNX=$(LIME_VIA_ONNX))
CURVE_KNOBS := $(call knob_stamp,curve,DATA=$(DATA) SEED=$(SEED) MAX_LEN=$(MAX_LEN) LIME_CURVE_INSTANCES=$(LIME_CURVE_INSTANCES))
CONTROL_KNOBS := $(call knob_stamp,control,CONTROL=$(CONTROL) CONTROL_SEED=$(CONTROL_SEED))
SP_KNOBS := $(call knob_stamp,sp,SP_SAMPLE_SIZE=$(SP_SAMPLE_SIZE) SP_EXPLANATIONS=$(SP_EXPLANATIONS) SP_FEATURES=$(SP_FEATURES))
EXPLAIN_KNOBS := $(call knob_stamp,explain,DATA=$(DATA) SEED=$(SEED) MAX_LEN=$(MAX_LEN) MLP_EXPLAINED=$(MLP_EXPLAINED) LIME_SAMPLES=$(LIME_SAMPLES))
MLP_KNOBS := $(call knob_stamp,mlp,MLP_SEEDS=$(MLP_SEEDS) MLP_LAMBDA=$(MLP_LAMBDA))
# The stamp file keeps its old name `sweep`, so renaming the variable rebuilds nothing already built.
MLP_SWEEP_KNOBS := $(call knob_stamp,sweep,MLP_SEEDS=$(MLP_SEEDS) MLP_LAMBDAS=$(MLP_LAMBDAS))

# Each stage's Python prerequisites come from its real imports (tools/stage_deps.py, stdlib only, run at
# every parse and written only when they change), so they cannot drift from the code: editing a module
# rebuilds exactly the artefacts whose stages import it, loader plugins included.
STAGE_DEPS_MK := .deps/stages.mk
# Goals that build nothing (help, setup, test, ...) skip it.
NO_DEPS_GOALS := $(if $(MAKECMDGOALS),$(if $(filter-out $(NO_STAMP_GOALS),$(MAKECMDGOALS)),,yes))
ifeq ($(NO_DEPS_GOALS),)
STAGE_DEPS_STATUS := $(shell python3 tools/stage_deps.py --output $(STAGE_DEPS_MK) && echo ok)
$(if $(filter ok,$(STAGE_DEPS_STATUS)),,$(error tools/stage_deps.py failed: run `python3 tools/stage_deps.py` to see why))
include $(STAGE_DEPS_MK)
# $(call stage_src,SCRIPT...) -> the repository modules those stage scripts import (the scripts excluded)
stage_src = $(sort $(foreach s,$(1),$(DEPS_$(s))))
else
stage_src =
endif
FT_SRC := $(call stage_src,train/fine_tuning/run_fine_tune_bert_agnews.py)
PRUNE_SRC := $(call stage_src,train/pruning/run_structural_pruning.py)
SHRINK_SRC := $(call stage_src,tools/apply_shrink_to_model.py)
QUANT_SRC := $(call stage_src,train/quantization/run_dynamic_quantization.py)
EVAL_SRC := $(call stage_src,inference/run_inference_on_model.py)
PROPS_SRC := $(call stage_src,analysis/model_properties/run_model_properties.py)
ONNX_SRC := $(call stage_src,export_onnx/export_onnx.py)
OV_SRC := $(call stage_src,export_onnx/export_openvino.py)
BENCH_SRC := $(call stage_src,inference/run_onnx_benchmark.py tools/optimum_peer.py tools/openvino_peer.py)
LIME_SRC := $(call stage_src,generate_outputs/generate_lime_csv/run_lime_on_model.py)
EXPLAIN_SRC := $(call stage_src,generate_outputs/generate_lime_csv/generate_bert_token_explanations_for_mlp.py)
SP_SRC := $(call stage_src,generate_outputs/sp_lime/run_sp_lime_hf_model.py)
SIM_SRC := $(call stage_src,generate_outputs/lime_similarity_pipeline/run_lime_similarity.py)
POS_SRC := $(call stage_src,analysis/nltk/nltk_analyze_all_models.py)
REPORT_SRC := $(call stage_src,generate_outputs/report/build_report.py)
DELETION_SRC := $(call stage_src,generate_outputs/deletion_test/run_deletion_test.py)
DELETION_REPORT_SRC := $(call stage_src,generate_outputs/deletion_test/build_deletion_report.py)
SWEEP_SRC := $(call stage_src,generate_outputs/sweep/build_sweep.py)
RECIPES_SRC := $(call stage_src,analysis/recipes/compare_recipes.py)
DATA_ARG := --data $(call shell_quote,$(DATA))

# ---------------------------------------------------------------------------------------------- variants
# name -> artefact. Derived from PRUNE_PCTS; never typed out per variant.
PRUNED := $(addprefix pruned,$(PRUNE_PCTS))
TORCH_VARIANTS := base base_8bit $(PRUNED) $(addsuffix _masked,$(PRUNED)) $(addsuffix _8bit,$(PRUNED))
ONNX_VARIANTS := base_onnx base_onnx_int8 $(addsuffix _onnx,$(PRUNED)) $(addsuffix _onnx_int8,$(PRUNED)) \
  $(addsuffix _masked_onnx,$(PRUNED)) base_onnx_static $(addsuffix _onnx_static,$(PRUNED))
# Our graphs run by OpenVINO: each fp32 graph's IR (_ov) and its NNCF static int8 (_ov_int8).
OV_VARIANTS := base_ov base_ov_int8 $(addsuffix _ov,$(PRUNED)) $(addsuffix _ov_int8,$(PRUNED))
HALF_VARIANTS := base_fp16 base_bf16
VARIANTS := $(TORCH_VARIANTS) $(ONNX_VARIANTS) $(OV_VARIANTS)
# What ships is an ONNX graph (it loads in ONNX Runtime and Optimum without the toolkit), so the default explains
# the ONNX graphs: the torch variants (the HF folders compute their ONNX graph's function, parity-checked; torch
# int8 needs the toolkit's loader) and the masked intermediates are benchmarked, not explained. OpenVINO's int8
# graphs are explained (NNCF changes the function); its fp32 IRs are not by default: each is its ONNX graph's
# function to max |dlogit| <= 1e-4 (parity-checked), so it stays "unverified" and never ships. A variant added with
# LIME_EXTRA is judged like any other.
LIME_VARIANTS ?= $(filter-out %_masked_onnx,$(ONNX_VARIANTS)) $(filter %_ov_int8,$(OV_VARIANTS))## variants explained by LIME for the drift/POS reports (default: the ONNX graphs but the masked intermediates, and the OpenVINO int8 graphs)
LIME_EXTRA ?=## variants explained beside LIME_VARIANTS, any percentage (the sweep's pick: `make sweep LIME_EXTRA=pruned50_onnx_int8`)
$(call check_knob,LIME_VARIANTS,$(WORD_CHARS),a list of variant names)
$(call check_knob,LIME_EXTRA,$(WORD_CHARS),a list of variant names)
# LIME_EXTRA adds to the list, whoever set it (override: a LIME_VARIANTS given to make is extended too).
override LIME_VARIANTS := $(strip $(LIME_VARIANTS) $(filter-out $(LIME_VARIANTS),$(LIME_EXTRA)))
# Lists of variants: a report built over other variants (one removed, too) is rebuilt.
LIST_KNOBS := $(call knob_stamp,lists,PRUNE_PCTS=$(PRUNE_PCTS) LIME_VARIANTS=$(LIME_VARIANTS) LIME_SAMPLE_CURVE=$(LIME_SAMPLE_CURVE))

# Variant name -> artefact file and dtype: the one table, common/variants.py's TABLE (Python reads the same
# rows), printed as `pattern=file=dtype` rows; the first row whose pattern matches the name wins.
VARIANT_TABLE := $(shell python3 common/variants.py)
$(if $(VARIANT_TABLE),,$(error common/variants.py failed: run `python3 common/variants.py` to see why))
# $(call variant_field,VARIANT,N) -> field N (2: the file Make must build, 3: the dtype) of its first matching row
variant_field = $(or $(firstword $(foreach row,$(VARIANT_TABLE),$(call _row_field,$(1),$(subst =, ,$(row)),$(2)))),$(error unknown variant $(1): add a row to common/variants.py))
_row_field = $(if $(filter $(word 1,$(2)),$(1)),$(patsubst $(word 1,$(2)),$(word $(3),$(2)),$(1)))
artefact = $(call variant_field,$(1),2)
variant_dtype = $(call variant_field,$(1),3)
# the path load_classifier takes (a folder for folder artefacts)
model_path = $(patsubst %/manifest.json,%,$(call artefact,$(1)))
# $(call artefact_prereqs,PREFIX,SUFFIX,VARIANTS): PREFIX<variant>SUFFIX depends on the variant's artefact
artefact_prereqs = $(foreach v,$(3),$(eval $(1)$(v)$(2): $(call artefact,$(v))))

.PHONY: all recipes refit-control report demo setup test test-fast help clean bench sweep bench-lime lime-report mlp mlp-sweep nltk-data \
  docker-cpu docker-cuda docker-bench lint-docker interop
all: report ## build every artefact and outputs/reports/report.md (same as `make report`)

# ---------------------------------------------------------------------------------------------- setup & tests
setup: .venv/.installed ## create .venv with the pinned requirements.txt and this package installed (editable)
.venv/.requirements: requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --upgrade pip
	.venv/bin/pip install -r requirements.txt
	touch $@
# Editable, so stage scripts run as files from any folder and edits need no reinstall; no dependency is resolved
# here (requirements.txt pins them) and no build environment is downloaded (setuptools is in the venv).
.venv/.installed: .venv/.requirements pyproject.toml
	.venv/bin/pip install --no-deps --no-build-isolation -e .
	touch $@

test: ## run the whole test suite (slow tests too; they skip when DATA/NLTK_DATA are absent)
	$(PYTHON) -m pytest -q

test-fast: ## unit and end-to-end tests only (no MiniLM; two quick checks read the shared data/NLTK tagger when present)
	$(PYTHON) -m pytest -q -m 'not slow'

help: ## list targets and knobs
	@echo 'Targets:'
	@grep -hE '^[a-zA-Z0-9_./%-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-48s %s\n", $$1, $$2}'
	@echo 'Knobs (make VAR=value):'
	@grep -hE '^[A-Z_]+ \?=.*## ' $(MAKEFILE_LIST) | sed -E 's/ \?= ?([^#]*)## /\t\1\t/' | awk -F'\t' '{printf "  %-16s %-22s %s\n", $$1, "[" $$2 "]", $$3}'

clean: ## delete models/ and outputs/ (everything generated)
	rm -rf models outputs

nltk-data: ## download NLTK's POS tagger into NLTK_DATA (needs network)
	$(PYTHON) -c "import nltk, os; [nltk.download(p, download_dir=os.environ['NLTK_DATA']) for p in ('averaged_perceptron_tagger_eng', 'universal_tagset')]"

# ---------------------------------------------------------------------------------------------- fine-tuning (issue: spine)
models/fine_tuned/bert_agnews/manifest.json: train/fine_tuning/run_fine_tune_bert_agnews.py $(FT_SRC) $(TRAIN_KNOBS) ## fine-tune BASE_MODEL on DATA
	$(PY) train.fine_tuning.run_fine_tune_bert_agnews --base-model $(call shell_quote,$(BASE_MODEL)) $(DATA_ARG) --output $(@D) \
	  --train-samples $(TRAIN_SAMPLES) --epochs $(EPOCHS) --max-len $(MAX_LEN) --seed $(SEED) --device $(DEVICE) --save-steps $(SAVE_STEPS)

# The positive control for the drift report: the base recipe with another training seed, the same data seed
# (so the same training rows and validation split). Exported to ONNX so LIME is as fast as base's.
models/fine_tuned/bert_agnews_seed%/manifest.json: train/fine_tuning/run_fine_tune_bert_agnews.py $(FT_SRC) $(TRAIN_KNOBS) ## positive control: fine-tune with training seed %% (CONTROL_SEED)
	$(PY) train.fine_tuning.run_fine_tune_bert_agnews --base-model $(call shell_quote,$(BASE_MODEL)) $(DATA_ARG) --output $(@D) \
	  --train-samples $(TRAIN_SAMPLES) --epochs $(EPOCHS) --max-len $(MAX_LEN) --seed $* --data-seed $(SEED) --device $(DEVICE) --save-steps $(SAVE_STEPS)

# ---------------------------------------------------------------------------------------------- evaluation
# outputs/metrics/<variant>.json for any variant (accuracy, F1, confusion, latency, throughput, size, RSS), in
# the variant's dtype (base_fp16/base_bf16: the fine-tuned folder in 16 bits). This rule is its only producer.
EVAL := inference/run_inference_on_model.py
outputs/metrics/%.json: $(EVAL) $(EVAL_SRC) $(EVAL_KNOBS) | outputs/metrics
	$(PY) inference.run_inference_on_model --model $(call model_path,$*) --variant $* --output $@ \
	  $(DATA_ARG) --test-samples $(TEST_SAMPLES) --max-len $(MAX_LEN) --device $(DEVICE) --threads $(THREADS) \
	  --dtype $(call variant_dtype,$*)
$(call artefact_prereqs,outputs/metrics/,.json,$(VARIANTS) $(HALF_VARIANTS))

outputs/metrics outputs/reports outputs/lime outputs/deletion outputs/sweep models/onnx models/quantized:
	mkdir -p $@

# ---------------------------------------------------------------------------------------------- compression
models/pruned/bert_agnews_%pct/manifest.json: $(FT)/manifest.json train/pruning/run_structural_pruning.py $(PRUNE_SRC) $(PRUNE_KNOBS) ## prune %% of heads and FFN neurons, re-fine-tune (PRUNE_RECIPE; 0 %: the re-fine-tuning control)
	$(PY) train.pruning.run_structural_pruning --model $(FT) --sparsity $* --output $(@D) \
	  --head-ffn-ratio $(PRUNE_HEAD_FFN_RATIO) $(DATA_ARG) --train-samples $(TRAIN_SAMPLES) --epochs $(PRUNE_EPOCHS) --max-len $(MAX_LEN) --seed $(SEED) --device $(DEVICE) $(DISTILL) \
	  $(RECIPE_ARGS) --save-steps $(SAVE_STEPS)

# The second positive control: base re-fine-tuned with the same recipe, steps and data and nothing pruned
# (variant pruned0), so the report separates what pruning changes from what re-fine-tuning changes.
refit-control: models/onnx/pruned0_ov_int8.xml models/onnx/pruned0_int8.onnx ## base re-fine-tuned with PRUNE_RECIPE and no pruning (pruned0), exported like every pruned variant

models/shrunk/pruned%/manifest.json: models/pruned/bert_agnews_%pct/manifest.json tools/apply_shrink_to_model.py $(SHRINK_SRC) ## physically shrink a pruned model
	$(PY) tools.apply_shrink_to_model --model_path $(<D) --output_path_shrunk_model $(@D) --save_method save_pretrained $(DATA_ARG)

models/quantized/bert_agnews_8bit.pt: $(FT)/manifest.json train/quantization/run_dynamic_quantization.py $(QUANT_SRC) | models/quantized ## dynamic int8 of the base model
	$(PY) train.quantization.run_dynamic_quantization --model $(FT) --output $@ $(DATA_ARG)

models/quantized/pruned%_8bit.pt: models/shrunk/pruned%/manifest.json train/quantization/run_dynamic_quantization.py $(QUANT_SRC) | models/quantized ## dynamic int8 of a shrunk model
	$(PY) train.quantization.run_dynamic_quantization --model $(<D) --output $@ $(DATA_ARG)

outputs/metrics/properties/%.json: $(PROPS_SRC) analysis/model_properties/run_model_properties.py
	$(PY) analysis.model_properties.run_model_properties --model $(call model_path,$*) --variant $* --output $@
$(call artefact_prereqs,outputs/metrics/properties/,.json,$(VARIANTS))

outputs/metrics/properties/properties.md: $(addprefix outputs/metrics/properties/,$(addsuffix .json,$(VARIANTS))) $(LIST_KNOBS) ## size/params/sparsity/heads/FFN width table
	$(PY) analysis.model_properties.run_model_properties --table $(@D) --variants $(VARIANTS) --output $@

# ---------------------------------------------------------------------------------------------- ONNX
EXPORT := export_onnx/export_onnx.py
models/onnx/base.onnx: $(FT)/manifest.json $(EXPORT) $(ONNX_SRC) | models/onnx ## export the fine-tuned model (parity-checked)
	$(PY) export_onnx.export_onnx --model $(FT) --output $@ $(DATA_ARG) --max-len $(MAX_LEN)
models/onnx/pruned%_masked.onnx: models/pruned/bert_agnews_%pct/manifest.json $(EXPORT) $(ONNX_SRC) | models/onnx ## export a masked (not shrunk) pruned model
	$(PY) export_onnx.export_onnx --model $(<D) --output $@ $(DATA_ARG) --max-len $(MAX_LEN)
models/onnx/pruned%.onnx: models/shrunk/pruned%/manifest.json $(EXPORT) $(ONNX_SRC) | models/onnx ## export a shrunk pruned model
	$(PY) export_onnx.export_onnx --model $(<D) --output $@ $(DATA_ARG) --max-len $(MAX_LEN)
models/onnx/control_seed%.onnx: models/fine_tuned/bert_agnews_seed%/manifest.json $(EXPORT) $(ONNX_SRC) | models/onnx ## export the positive control (parity-checked)
	$(PY) export_onnx.export_onnx --model $(<D) --output $@ $(DATA_ARG) --max-len $(MAX_LEN)
INT8_RECIPE = $(PY) export_onnx.export_onnx --model $< --int8 --output $@ $(DATA_ARG) --max-len $(MAX_LEN)
STATIC_RECIPE = $(PY) export_onnx.export_onnx --model $< --int8 --mode static --static-format $(STATIC_FORMAT) --calib-rows $(CALIB_ROWS) \
	  --seed $(SEED) --output $@ $(DATA_ARG) --max-len $(MAX_LEN)
models/onnx/%_int8.onnx: models/onnx/%.onnx $(EXPORT) $(ONNX_SRC) | models/onnx ## ONNX Runtime dynamic int8 of an exported model
	$(INT8_RECIPE)
models/onnx/%_static.onnx: models/onnx/%.onnx $(EXPORT) $(ONNX_SRC) $(STATIC_KNOBS) | models/onnx ## static int8 (scales calibrated on CALIB_ROWS training rows; batch-invariant) of an exported model
	$(STATIC_RECIPE)
# The same two rules for pruned graphs, with a shorter stem: make takes the matching pattern rule with the
# shortest stem, and for pruned40_int8.onnx that would otherwise be pruned%.onnx with the stem `40_int8`
# (pruning at "40_int8" percent). With these, any percentage works, in PRUNE_PCTS or not.
models/onnx/pruned%_int8.onnx: models/onnx/pruned%.onnx $(EXPORT) $(ONNX_SRC) | models/onnx
	$(INT8_RECIPE)
models/onnx/pruned%_static.onnx: models/onnx/pruned%.onnx $(EXPORT) $(ONNX_SRC) $(STATIC_KNOBS) | models/onnx
	$(STATIC_RECIPE)
# OpenVINO: an fp32 graph's IR and its NNCF static int8, beside it (the .bin next to the .xml, the Make target).
OV_EXPORT := export_onnx/export_openvino.py
OV_KNOBS := $(call knob_stamp,openvino,DATA=$(DATA) SEED=$(SEED) MAX_LEN=$(MAX_LEN) CALIB_ROWS=$(CALIB_ROWS))
models/onnx/%_ov.xml: models/onnx/%.onnx $(OV_EXPORT) $(OV_SRC) | models/onnx ## OpenVINO IR (fp32; max |dlogit| <= 1e-4 against the ONNX graph) of an exported graph
	$(PY) export_onnx.export_openvino --model $< --output $@ $(DATA_ARG) --max-len $(MAX_LEN)
models/onnx/%_ov_int8.xml: models/onnx/%.onnx $(OV_EXPORT) $(OV_SRC) $(OV_KNOBS) | models/onnx ## OpenVINO NNCF static int8 (CALIB_ROWS training rows; >= 99 % argmax agreement) of an exported graph
	$(PY) export_onnx.export_openvino --model $< --int8 --calib-rows $(CALIB_ROWS) --seed $(SEED) --output $@ \
	  $(DATA_ARG) --max-len $(MAX_LEN)

# ---------------------------------------------------------------------------------------------- benchmark
# The benchmark's per-variant records have a name of their own, <variant>.bench.json: outputs/metrics/<variant>.json
# has one producer (the evaluation rule above), and the report reads exactly the records of the variants listed here.
BENCH_VARIANTS := $(VARIANTS) $(HALF_VARIANTS)
BENCH_RECORDS := $(addprefix outputs/metrics/,$(addsuffix .bench.json,$(BENCH_VARIANTS)))
# The peers, each built from base's folder in a venv of its own (they pin other transformers) and cached in
# outputs/peers/<peer>: Optimum's int8 (tools/optimum_peer.py, .venv-interop) and OpenVINO's int8 (optimum-intel +
# NNCF, tools/openvino_peer.py, .venv-openvino). A venv is a prerequisite only when it exists or its knob is 1, so
# `make bench` works without them (the summary says which peer was skipped and why).
INTEROP_VENV := .venv-interop
OPENVINO_VENV := .venv-openvino
peer_venv = $(if $(filter 1,$(1)),$(2)/.installed,$(if $(filter auto,$(1)),$(wildcard $(2)/.installed)))
PEER_VENV := $(call peer_venv,$(OPTIMUM_PEER),$(INTEROP_VENV)) $(call peer_venv,$(OPENVINO_PEER),$(OPENVINO_VENV))
PEER_ARGS := $(if $(call peer_venv,$(OPTIMUM_PEER),$(INTEROP_VENV)),--peer optimum=$(INTEROP_VENV)/bin/python) \
  $(if $(call peer_venv,$(OPENVINO_PEER),$(OPENVINO_VENV)),--peer openvino=$(OPENVINO_VENV)/bin/python)
PEER_RECORDS_IN = $(1)/optimum_int8.bench.json $(1)/openvino_int8.bench.json
PEER_KNOBS := $(call knob_stamp,peer,OPTIMUM_PEER=$(OPTIMUM_PEER) OPENVINO_PEER=$(OPENVINO_PEER) PEER_VENV=$(strip $(PEER_VENV)))
HALF_KNOBS := $(call knob_stamp,half,HALF_ON_CPU=$(HALF_ON_CPU))
# $(call bench_run,VARIANTS): one benchmark run of VARIANTS into the target's folder (`make bench`, `make sweep`)
bench_run = $(PY) inference.run_onnx_benchmark --output-dir $(@D) --record-suffix .bench.json $(DATA_ARG) --test-samples $(TEST_SAMPLES) --max-len $(MAX_LEN) \
	  --device $(DEVICE) --threads $(THREADS) --baseline base $(PEER_ARGS) --peer-cache-dir outputs/peers \
	  $(if $(filter 1,$(HALF_ON_CPU)),--half-on-cpu) \
	  $(foreach v,$(1),--variant $(v)=$(call model_path,$(v)))
outputs/metrics/summary.csv: $(foreach v,$(BENCH_VARIANTS),$(call artefact,$(v))) inference/run_onnx_benchmark.py tools/optimum_peer.py tools/openvino_peer.py $(BENCH_SRC) $(PEER_VENV) $(EVAL_KNOBS) $(LIST_KNOBS) $(PEER_KNOBS) $(HALF_KNOBS) | outputs/metrics
	$(call bench_run,$(BENCH_VARIANTS))
# written before the CSV, by the same command (the peer's record too, saying why when it was skipped)
outputs/metrics/summary.md outputs/metrics/pareto.png $(BENCH_RECORDS) $(call PEER_RECORDS_IN,outputs/metrics): outputs/metrics/summary.csv ;
bench: outputs/metrics/summary.csv ## benchmark every variant side by side with the peers (Optimum's and OpenVINO's int8: x_<peer>, x_best_peer) -> outputs/metrics/summary.{csv,md}, pareto.png, <variant>.bench.json

# ---------------------------------------------------------------------------------------------- sparsity sweep
# Every SWEEP_PCTS percentage's dynamic and static int8 graph (the pattern rules above), base and base's int8 graphs,
# in one benchmark run of their own (outputs/sweep: outputs/metrics is `make bench`'s), then the sweep stage.
SWEEP_VARIANTS := base base_onnx_int8 base_onnx_static base_ov base_ov_int8 \
  $(foreach p,$(SWEEP_PCTS),pruned$(p)_onnx_int8 pruned$(p)_onnx_static pruned$(p)_ov pruned$(p)_ov_int8)
SWEEP_RECORDS := $(addprefix outputs/sweep/,$(addsuffix .bench.json,$(SWEEP_VARIANTS)))
SWEEP_PRUNING := $(foreach p,$(SWEEP_PCTS),models/pruned/bert_agnews_$(p)pct/manifest.json)
SWEEP_LIST_KNOBS := $(call knob_stamp,sweep_list,SWEEP_PCTS=$(SWEEP_PCTS))
# The explanation verdicts gate the pick where they were built (kept up to date then); LIME_EXTRA asks for them, so
# `make sweep LIME_EXTRA=<pick>` explains the pick (and, if the report's LIME is not built yet, every LIME_VARIANTS).
SWEEP_VERDICTS := $(if $(LIME_EXTRA),outputs/reports/lime_similarity.md outputs/reports/deletion.md,$(wildcard outputs/reports/lime_similarity.md outputs/reports/deletion.md))
outputs/sweep/summary.csv: $(foreach v,$(SWEEP_VARIANTS),$(call artefact,$(v))) inference/run_onnx_benchmark.py tools/optimum_peer.py tools/openvino_peer.py $(BENCH_SRC) $(PEER_VENV) $(EVAL_KNOBS) $(SWEEP_LIST_KNOBS) $(PEER_KNOBS) | outputs/sweep
	$(call bench_run,$(SWEEP_VARIANTS))
outputs/sweep/summary.md $(SWEEP_RECORDS) $(call PEER_RECORDS_IN,outputs/sweep): outputs/sweep/summary.csv ;
outputs/sweep/sweep.md: outputs/sweep/summary.csv $(SWEEP_PRUNING) $(SWEEP_VERDICTS) generate_outputs/sweep/build_sweep.py $(SWEEP_SRC) | outputs/sweep ## sparsity sweep: table, frontier plot and the pick
	$(PY) generate_outputs.sweep.build_sweep --output-dir $(@D) --reports-dir outputs/reports --baseline base \
	  $(foreach f,$(SWEEP_RECORDS),--record $(f)) $(foreach f,$(call PEER_RECORDS_IN,outputs/sweep),--peer-record $(f)) \
	  $(foreach f,$(SWEEP_PRUNING),--pruning-manifest $(f))
outputs/sweep/sweep.csv outputs/sweep/frontier.png outputs/sweep/sweep.manifest.json: outputs/sweep/sweep.md ;
sweep: outputs/sweep/sweep.md ## prune, shrink, export, int8 (ORT dynamic + static) and OpenVINO (fp32 + int8) every SWEEP_PCTS, benchmark them in one run with the peers -> outputs/sweep/sweep.{md,csv}, frontier.png

# Recipes side by side: this PRUNE_RECIPE's ORT int8 and OpenVINO int8 graphs of RECIPE_PCTS (and the refit control,
# pruned0) against another recipe's, kept in RECIPE_BASELINE (its graphs <dir>/pruned<p>_int8.onnx,
# <dir>/pruned<p>_ov_int8.xml, pruned manifests <dir>/pruned<p>/, reports <dir>/reports/). Verdicts come from each
# recipe's report folder (this one: outputs/reports, as `make lime-report` left it).
RECIPE_PCTS ?= 20 40 60## pruning percentages of `make recipes`
RECIPE_BASELINE ?=## folder of another recipe's graphs and reports for `make recipes` (empty: this recipe only)
RECIPE_BASELINE_NAME ?= logits## the recipe RECIPE_BASELINE holds (its rows' label)
$(call check_knob,RECIPE_PCTS,$(DIGITS),a list of whole numbers)
$(call check_knob,RECIPE_BASELINE_NAME,$(WORD_CHARS),a plain word)
RECIPE_GRAPHS := $(foreach p,0 $(RECIPE_PCTS),models/onnx/pruned$(p)_int8.onnx models/onnx/pruned$(p)_ov_int8.xml)
outputs/reports/recipes.md: $(FT)/manifest.json $(RECIPE_GRAPHS) analysis/recipes/compare_recipes.py $(RECIPES_SRC) | outputs/reports ## recipes side by side: accuracy, label agreement with base (every test row), both gates' verdicts
	$(PY) analysis.recipes.compare_recipes --base $(FT) $(DATA_ARG) --max-len $(MAX_LEN) --output $@ \
	  $(foreach p,0 $(RECIPE_PCTS),--variant $(PRUNE_RECIPE):pruned$(p)_onnx_int8=models/onnx/pruned$(p)_int8.onnx \
	    --variant $(PRUNE_RECIPE):pruned$(p)_ov_int8=models/onnx/pruned$(p)_ov_int8.xml --pruned $(PRUNE_RECIPE):$(p)=models/pruned/bert_agnews_$(p)pct) \
	  --reports $(PRUNE_RECIPE)=outputs/reports \
	  $(if $(RECIPE_BASELINE),--reports $(RECIPE_BASELINE_NAME)=$(call shell_quote,$(RECIPE_BASELINE))/reports \
	    $(foreach p,$(RECIPE_PCTS),--variant $(RECIPE_BASELINE_NAME):pruned$(p)_onnx_int8=$(call shell_quote,$(RECIPE_BASELINE))/pruned$(p)_int8.onnx \
	      --variant $(RECIPE_BASELINE_NAME):pruned$(p)_ov_int8=$(call shell_quote,$(RECIPE_BASELINE))/pruned$(p)_ov_int8.xml \
	      --pruned $(RECIPE_BASELINE_NAME):$(p)=$(call shell_quote,$(RECIPE_BASELINE))/pruned$(p)))
recipes: outputs/reports/recipes.md ## re-fine-tuning recipes side by side (RECIPE_PCTS, RECIPE_BASELINE) -> outputs/reports/recipes.{md,csv}

# ---------------------------------------------------------------------------------------------- LIME
LIME := generate_outputs/generate_lime_csv/run_lime_on_model.py
LIME_ARGS = $(DATA_ARG) --n-instances $(LIME_INSTANCES) --max-len $(MAX_LEN) --reference-model $(FT)
CURVE_ARGS = $(DATA_ARG) --n-instances $(LIME_CURVE_INSTANCES) --max-len $(MAX_LEN) --reference-model $(FT)
outputs/lime/base_noise.csv: $(FT)/manifest.json $(LIME) $(LIME_SRC) $(LIME_KNOBS) | outputs/lime ## noise floor: base explained with another LIME seed
	$(PY) generate_outputs.generate_lime_csv.run_lime_on_model --model models/onnx/base.onnx --variant base_noise \
	  --num-samples $(LIME_SAMPLES) --seed $$(( $(SEED) + 1 )) --output $@ $(LIME_ARGS)
outputs/lime/base_noise.csv: models/onnx/base.onnx
outputs/lime/curve_s%_a.csv: $(FT)/manifest.json models/onnx/base.onnx $(LIME) $(LIME_SRC) $(CURVE_KNOBS) | outputs/lime
	$(PY) generate_outputs.generate_lime_csv.run_lime_on_model --model models/onnx/base.onnx --variant base_s$*_a \
	  --num-samples $* --seed $(SEED) --output $@ $(CURVE_ARGS)
outputs/lime/curve_s%_b.csv: $(FT)/manifest.json models/onnx/base.onnx $(LIME) $(LIME_SRC) $(CURVE_KNOBS) | outputs/lime
	$(PY) generate_outputs.generate_lime_csv.run_lime_on_model --model models/onnx/base.onnx --variant base_s$*_b \
	  --num-samples $* --seed $$(( $(SEED) + 1 )) --output $@ $(CURVE_ARGS)
# The base model is explained through its parity-checked fp32 ONNX export (the same function, faster).
outputs/lime/base.csv: models/onnx/base.onnx $(LIME) $(LIME_SRC) $(LIME_KNOBS) | outputs/lime
	$(PY) generate_outputs.generate_lime_csv.run_lime_on_model --model $< --variant base \
	  --num-samples $(LIME_SAMPLES) --seed $(SEED) --output $@ $(LIME_ARGS)
# Likewise every shrunk or masked pruned variant (fp32 torch) is explained through its own parity-checked
# fp32 ONNX export when LIME_VIA_ONNX=1: the same function (max |dlogit| <= 1e-4, checked at export), ~3x
# faster here. Int8 and 16-bit variants are always explained as they are. The CSV's manifest names the file used.
# Two names explained through one file with the same settings (base and base_onnx; pruned20 and pruned20_onnx)
# are explained once: the second CSV copies the first's rows with its variant name (manifest: reused_from).
lime_artefact = $(if $(filter 1,$(LIME_VIA_ONNX)),$(if $(filter $(PRUNED) $(addsuffix _masked,$(PRUNED)),$(1)),models/onnx/$(1).onnx,$(call artefact,$(1))),$(call artefact,$(1)))
lime_model = $(patsubst %/manifest.json,%,$(call lime_artefact,$(1)))
outputs/lime/%.csv: $(LIME) $(LIME_SRC) $(LIME_KNOBS) | outputs/lime ## LIME explanations of one variant
	$(PY) generate_outputs.generate_lime_csv.run_lime_on_model --model $(call lime_model,$*) --variant $* \
	  --num-samples $(LIME_SAMPLES) --seed $(SEED) --output $@ $(LIME_ARGS)
$(foreach v,$(filter-out base,$(LIME_VARIANTS)),$(eval outputs/lime/$(v).csv: $(call lime_artefact,$(v))))
# The rerun: the same model explained again with the noise run's seed (S+1), for the symmetric statistic of the
# drift verdict (common/explain/drift.py). The similarity stage builds only the reruns it needs (what could ship,
# fastest first), through these rules; base's rerun is the noise run, and base_onnx's is copied from it.
outputs/lime/%.rerun.csv: $(LIME) $(LIME_SRC) $(LIME_KNOBS) | outputs/lime ## second LIME run of one variant (seed SEED+1)
	$(PY) generate_outputs.generate_lime_csv.run_lime_on_model --model $(call lime_model,$*) --variant $* \
	  --num-samples $(LIME_SAMPLES) --seed $$(( $(SEED) + 1 )) --output $@ $(LIME_ARGS)
$(foreach v,$(filter-out base,$(LIME_VARIANTS)),$(eval outputs/lime/$(v).rerun.csv: $(call lime_artefact,$(v))))

outputs/lime/control_seed%.csv: models/onnx/control_seed%.onnx $(FT)/manifest.json $(LIME) $(LIME_SRC) $(LIME_KNOBS) | outputs/lime ## LIME of the positive control (base's seed, like every variant)
	$(PY) generate_outputs.generate_lime_csv.run_lime_on_model --model $< --variant control_seed$* \
	  --num-samples $(LIME_SAMPLES) --seed $(SEED) --output $@ $(LIME_ARGS)
# Named explicitly so make prefers the rule above to the generic outputs/lime/%.csv (whose inputs all exist).
outputs/lime/control_seed$(CONTROL_SEED).csv: models/onnx/control_seed$(CONTROL_SEED).onnx
outputs/lime/control_seed%.rerun.csv: models/onnx/control_seed%.onnx $(FT)/manifest.json $(LIME) $(LIME_SRC) $(LIME_KNOBS) | outputs/lime ## the positive control's second LIME run (seed SEED+1): the margin's anchor
	$(PY) generate_outputs.generate_lime_csv.run_lime_on_model --model $< --variant control_seed$* \
	  --num-samples $(LIME_SAMPLES) --seed $$(( $(SEED) + 1 )) --output $@ $(LIME_ARGS)
outputs/lime/control_seed$(CONTROL_SEED).rerun.csv: models/onnx/control_seed$(CONTROL_SEED).onnx

CURVE_CSVS := $(foreach s,$(LIME_SAMPLE_CURVE),outputs/lime/curve_s$(s)_a.csv outputs/lime/curve_s$(s)_b.csv)
LIME_CSVS := $(addprefix outputs/lime/,$(addsuffix .csv,$(LIME_VARIANTS)))
CONTROL_CSV := $(if $(filter 1,$(CONTROL)),$(if $(filter $(SEED),$(CONTROL_SEED)),$(error CONTROL_SEED must differ from SEED ($(SEED)): the positive control is another training seed),outputs/lime/control_seed$(CONTROL_SEED).csv))
# Controls: base_onnx (the same function) must come out equivalent; the second fine-tune is the margin's anchor
# (its two LIME runs are prerequisites). Every other variant's rerun is built by the stage when it is needed
# (through SUBMAKE: a sub-make named through a variable of its own, so `make -n` does not run the stage).
CONTROL_RERUN := $(patsubst %.csv,%.rerun.csv,$(CONTROL_CSV))
NEGATIVE_RERUN := $(if $(filter base_onnx,$(LIME_VARIANTS)),outputs/lime/base_onnx.rerun.csv)
SIM_CONTROL_ARGS := $(if $(filter base_onnx,$(LIME_VARIANTS)),--negative-control base_onnx) \
  $(if $(CONTROL_CSV),--variant $(CONTROL_CSV) --positive-control control_seed$(CONTROL_SEED) \
  --rerun control_seed$(CONTROL_SEED)=$(CONTROL_RERUN))
SUBMAKE := $(MAKE) --no-print-directory
outputs/reports/lime_similarity.md: outputs/lime/base.csv outputs/lime/base_noise.csv $(LIME_CSVS) $(CONTROL_CSV) $(CONTROL_RERUN) $(NEGATIVE_RERUN) $(CURVE_CSVS) outputs/reports/deletion.md outputs/metrics/summary.csv generate_outputs/lime_similarity_pipeline/run_lime_similarity.py $(SIM_SRC) $(LIST_KNOBS) $(CONTROL_KNOBS) | outputs/reports ## LIME agreement verdicts (two seeds per judged model, margin from the positive control; what could ship, fastest first)
	bash generate_outputs/lime_similarity_pipeline/run_pipeline.sh --base outputs/lime/base.csv \
	  --noise outputs/lime/base_noise.csv --output-dir $(@D) --seed $(SEED) \
	  $(foreach v,$(filter-out base,$(LIME_VARIANTS)),--variant outputs/lime/$(v).csv --rerun $(v)=outputs/lime/$(v).rerun.csv) $(SIM_CONTROL_ARGS) \
	  --bench-summary outputs/metrics/summary.csv --deletion outputs/reports/deletion.csv --build-rerun '$(SUBMAKE)' \
	  $(foreach s,$(LIME_SAMPLE_CURVE),--curve $(s)=outputs/lime/curve_s$(s)_a.csv,outputs/lime/curve_s$(s)_b.csv)
lime-report: outputs/reports/lime_similarity.md outputs/reports/pos_analysis.md outputs/reports/deletion.md ## drift, POS and deletion-test reports

# Deletion test: base's top LIME words deleted on base and on the variant (no sampling noise), and the
# variant's own top words on the variant. The models are the ones the LIME CSVs explained (named in their
# manifests), so any name LIME explains works; a LIME CSV already depends on its model.
DELETION := generate_outputs/deletion_test/run_deletion_test.py
outputs/deletion/%.csv: outputs/lime/base.csv outputs/lime/%.csv $(DELETION) $(DELETION_SRC) $(LIME_KNOBS) | outputs/deletion ## deletion test of one variant vs base (per instance)
	$(PY) generate_outputs.deletion_test.run_deletion_test --base-lime outputs/lime/base.csv --variant-lime outputs/lime/$*.csv \
	  --variant $* --max-len $(MAX_LEN) --seed $(SEED) --device $(DEVICE) --threads $(THREADS) --output $@
# The positive control's LIME CSV (CONTROL_CSV), where the Makefile defines one, is judged like a variant.
DELETION_CONTROL := $(if $(filter undefined,$(origin CONTROL_CSV)),,$(patsubst outputs/lime/%,outputs/deletion/%,$(CONTROL_CSV)))
DELETION_CSVS := $(addprefix outputs/deletion/,$(addsuffix .csv,$(filter-out base,$(LIME_VARIANTS)))) $(DELETION_CONTROL)
outputs/reports/deletion.md: $(DELETION_CSVS) generate_outputs/deletion_test/build_deletion_report.py $(DELETION_REPORT_SRC) $(LIST_KNOBS) | outputs/reports ## deletion-test verdicts of every variant (same_evidence = the shipping gate)
	$(PY) generate_outputs.deletion_test.build_deletion_report --output-dir $(@D) --seed $(SEED) \
	  $(foreach f,$(DELETION_CSVS),--variant $(f)) $(if $(DELETION_CONTROL),--positive-control control_seed$(CONTROL_SEED))
outputs/reports/deletion.csv: outputs/reports/deletion.md ;  # written before the Markdown, by the same command

outputs/reports/pos_analysis.md: outputs/lime/base.csv outputs/lime/base_noise.csv $(LIME_CSVS) $(CONTROL_CSV) analysis/nltk/nltk_analyze_all_models.py $(POS_SRC) $(LIST_KNOBS) $(CONTROL_KNOBS) | outputs/reports ## POS tags of explanation words, per variant vs base (margin from the positive control)
	$(PY) analysis.nltk.nltk_analyze_all_models --base outputs/lime/base.csv --noise outputs/lime/base_noise.csv --output-dir $(@D) \
	  $(foreach v,$(filter-out base,$(LIME_VARIANTS)),--variant outputs/lime/$(v).csv) $(if $(CONTROL_CSV),--positive-control $(CONTROL_CSV))

SP_PREFIX := base
outputs/sp_lime_sets/$(SP_PREFIX)_picked.csv: models/onnx/base.onnx generate_outputs/sp_lime/run_sp_lime_hf_model.py $(SP_SRC) $(LIME_KNOBS) $(SP_KNOBS) ## SP-LIME picks and global features of the base model
	$(PY) generate_outputs.sp_lime.run_sp_lime_hf_model --model_dir $< --output_prefix $(SP_PREFIX) --output-dir $(@D) \
	  $(DATA_ARG) --sample-size $(SP_SAMPLE_SIZE) --num-explanations $(SP_EXPLANATIONS) --num-features $(SP_FEATURES) \
	  --num-samples $(LIME_SAMPLES) --seed $(SEED) --max-len $(MAX_LEN)
SP_LIME_MD := outputs/sp_lime_sets/$(SP_PREFIX)_sp_lime.md
# the report's SP-LIME section, written before the picks CSV by the same command
$(SP_LIME_MD): outputs/sp_lime_sets/$(SP_PREFIX)_picked.csv ;

bench-lime: models/onnx/base.onnx ## LIME speed vs plain lime + HF pipeline on the same model -> outputs/metrics/lime_speed.json
	$(PY) generate_outputs.generate_lime_csv.bench_lime_speed --model $(FT) --onnx $< $(DATA_ARG) \
	  --num-samples $(LIME_SAMPLES) --seed $(SEED) --output outputs/metrics/lime_speed.json

outputs/intermediate_data/bert_token_explanations.csv: models/onnx/base.onnx generate_outputs/generate_lime_csv/generate_bert_token_explanations_for_mlp.py $(EXPLAIN_SRC) $(EXPLAIN_KNOBS) ## LIME weights of BERT on training instances (MLP input)
	$(PY) generate_outputs.generate_lime_csv.generate_bert_token_explanations_for_mlp --model $< $(DATA_ARG) \
	  --n-instances $(MLP_EXPLAINED) --num-samples $(LIME_SAMPLES) --seed $(SEED) --max-len $(MAX_LEN) --output $@

# ---------------------------------------------------------------------------------------------- MLP students
EXPL := outputs/intermediate_data/bert_token_explanations.csv
MLP_ARGS = $(DATA_ARG) --explanations $(EXPL) --teacher $(FT) --seeds $(MLP_SEEDS)
models/mlp/vanilla.pt: $(EXPL) train_mlp_models/train_mlp_vanilla.py $(call stage_src,train_mlp_models/train_mlp_vanilla.py) $(MLP_KNOBS) ## MLP student, cross-entropy
	$(PY) train_mlp_models.train_mlp_vanilla --output $@ $(MLP_ARGS)
models/mlp/xai.pt: $(EXPL) train_mlp_models/train_mlp_xai_loss.py $(call stage_src,train_mlp_models/train_mlp_xai_loss.py) $(MLP_KNOBS) ## MLP student, cross-entropy + lambda * explanation loss
	$(PY) train_mlp_models.train_mlp_xai_loss --output $@ --lambda $(MLP_LAMBDA) $(MLP_ARGS)
outputs/reports/mlp.md: models/mlp/vanilla.pt models/mlp/xai.pt train_mlp_models/evaluate_mlp_models.py $(call stage_src,train_mlp_models/evaluate_mlp_models.py) | outputs/reports ## compare the students (accuracy, agreement, explanation agreement)
	$(PY) train_mlp_models.evaluate_mlp_models --vanilla models/mlp/vanilla.pt --xai models/mlp/xai.pt \
	  --output-dir $(@D) $(MLP_ARGS) --lime-samples 0
outputs/reports/mlp_sweep.md: $(EXPL) train_mlp_models/sweep_lambda.py $(call stage_src,train_mlp_models/sweep_lambda.py) $(MLP_SWEEP_KNOBS) | outputs/reports ## lambda sweep table + PNG
	$(PY) train_mlp_models.sweep_lambda --lambdas $(MLP_LAMBDAS) --output-dir $(@D) $(MLP_ARGS)
mlp: outputs/reports/mlp.md ## train and evaluate both students
mlp-sweep: outputs/reports/mlp_sweep.md ## the lambda sweep

# ---------------------------------------------------------------------------------------------- report
REPORT_INPUTS := $(BENCH_RECORDS) outputs/metrics/summary.csv outputs/metrics/properties/properties.md \
  outputs/reports/lime_similarity.md outputs/reports/pos_analysis.md outputs/reports/deletion.md \
  outputs/sp_lime_sets/$(SP_PREFIX)_picked.csv \
  outputs/reports/mlp.md outputs/reports/mlp_sweep.md
# The sweep (`make sweep`, ~1 h) is in the report once built, and kept up to date from then on.
REPORT_INPUTS += $(wildcard outputs/sweep/sweep.md)
outputs/reports/report.md: $(REPORT_INPUTS) generate_outputs/report/build_report.py $(REPORT_SRC) ## the one report
	$(PY) generate_outputs.report.build_report --outputs outputs --models models --output $@ \
	  $(foreach f,$(BENCH_RECORDS),--metrics $(f)) --sp-lime $(SP_LIME_MD) $(if $(wildcard outputs/metrics/interop.md),--interop outputs/metrics/interop.md) \
	  --knobs $(call shell_quote,BASE_MODEL=$(BASE_MODEL) DATA=$(DATA) SEED=$(SEED) EPOCHS=$(EPOCHS) TRAIN_SAMPLES=$(TRAIN_SAMPLES) MAX_LEN=$(MAX_LEN) PRUNE_PCTS=$(PRUNE_PCTS) PRUNE_EPOCHS=$(PRUNE_EPOCHS) LIME_INSTANCES=$(LIME_INSTANCES) LIME_SAMPLES=$(LIME_SAMPLES) TEST_SAMPLES=$(TEST_SAMPLES) DEVICE=$(DEVICE))
report: outputs/reports/report.md ## build everything and the report

# The demo: the whole chain on a small budget, offline, < 15 min on 2 CPU cores.
# DATA defaults to the shipped demo sample (common/demo_data, NOT AG News) unless given.
DEMO_DATA := $(if $(filter command line environment,$(origin DATA)),$(DATA),common/demo_data)
DEMO_KNOBS = DATA=$(call shell_quote,$(DEMO_DATA)) EPOCHS=3 PRUNE_PCTS=30 PRUNE_EPOCHS=1 TEST_SAMPLES=$(if $(filter common/demo_data,$(DEMO_DATA)),0,400) \
  TRAIN_SAMPLES=$(if $(filter common/demo_data,$(DEMO_DATA)),0,400) LIME_INSTANCES=6 LIME_SAMPLES=200 LIME_SAMPLE_CURVE='100 200' \
  SP_SAMPLE_SIZE=8 SP_EXPLANATIONS=3 MLP_EXPLAINED=40 MLP_SEEDS='1 2 3' MLP_LAMBDAS='0 1'
demo: ## the whole chain on a small budget (shipped demo sample unless DATA is given) -> outputs/reports/report.md
	$(MAKE) report $(DEMO_KNOBS)

# ---------------------------------------------------------------------------------------------- interop
# Every ONNX graph and HF folder, loaded by third-party clients (Optimum, plain transformers with
# trust_remote_code) in a throwaway venv that cannot import the toolkit; logits compared with the toolkit's.
INTEROP_VARIANTS := base $(PRUNED) $(addsuffix _masked,$(PRUNED)) $(ONNX_VARIANTS) $(OV_VARIANTS)
$(INTEROP_VENV)/.installed: ## throwaway venv: Optimum + ONNX Runtime + the transformers<4.58 they pin (downloads from PyPI)
	python3 -m venv $(INTEROP_VENV)
	$(INTEROP_VENV)/bin/pip install torch==2.13.0 "optimum-onnx[onnxruntime]"
	touch $@
# OpenVINO's peer as its users build it: optimum-intel (which pins transformers < 5.6) in a venv of its own. PyPI's
# torchvision wheel (optimum-intel requires it) is a CUDA build that cannot load beside the CPU torch, and a broken
# torchvision breaks `transformers`' processors: it is removed (optimum-intel needs it only for vision models).
$(OPENVINO_VENV)/.installed: ## throwaway venv: optimum-intel + OpenVINO + NNCF for the OpenVINO int8 peer and `make interop` (downloads from PyPI)
	python3 -m venv $(OPENVINO_VENV)
	$(OPENVINO_VENV)/bin/pip install torch==2.13.0 "optimum-intel[openvino]==2.2.0" openvino==2026.4.1 nncf==3.4.0
	$(OPENVINO_VENV)/bin/pip uninstall -y torchvision
	touch $@
outputs/metrics/interop.md: $(foreach v,$(INTEROP_VARIANTS),$(call artefact,$(v))) $(INTEROP_VENV)/.installed $(OPENVINO_VENV)/.installed tools/interop.py tools/interop_thirdparty.py $(call stage_src,tools/interop.py) $(EVAL_KNOBS) $(LIST_KNOBS) | outputs/metrics ## third-party loaders vs the toolkit: max |dlogit|, argmax agreement
	$(PY) tools.interop --interop-python $(INTEROP_VENV)/bin/python --openvino-python $(OPENVINO_VENV)/bin/python --output $@ $(DATA_ARG) --max-len $(MAX_LEN) --seed $(SEED) \
	  $(foreach v,$(INTEROP_VARIANTS),--artefact $(v)=$(call model_path,$(v)))
interop: outputs/metrics/interop.md ## load every artefact in Optimum / optimum-intel / plain transformers -> outputs/metrics/interop.md

# ---------------------------------------------------------------------------------------------- docker
IMAGE ?= bert-agnews-toolkit## docker image name prefix
docker-cpu: ## build the CPU image
	docker build -f docker/Dockerfile.cpu -t $(call shell_quote,$(IMAGE):cpu) .
docker-cuda: ## build the CUDA image
	docker build -f docker/Dockerfile.cuda -t $(call shell_quote,$(IMAGE):cuda) .
# A DATA folder is mounted read-only where the same DATA value finds it from /app, so the knob stamps in
# the mounted models/ agree between host and container (nothing is rebuilt just for running in Docker).
DOCKER_DATA := $(if $(strip $(DATA)),$(wildcard $(DATA)/.))
docker-bench: ## run `make bench` in the CUDA image on all GPUs (models/, outputs/ and a DATA folder mounted)
	mkdir -p models outputs
	docker run --rm --gpus all -v $(call shell_quote,$(CURDIR)/models:/app/models) -v $(call shell_quote,$(CURDIR)/outputs:/app/outputs) \
	  $(if $(DOCKER_DATA),-v $(call shell_quote,$(abspath $(DATA)):$(if $(filter /%,$(DATA)),$(DATA),$(abspath /app/$(DATA))):ro)) \
	  $(call shell_quote,$(IMAGE):cuda) bench DATA=$(call shell_quote,$(DATA))
lint-docker: ## hadolint both Dockerfiles
	$(dir $(PYTHON))hadolint docker/Dockerfile.cpu docker/Dockerfile.cuda
