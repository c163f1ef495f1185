# Training, evaluation and export of the default model (issue 3). Included from the root Makefile, which
# defines PY (.venv/bin/python) and the `venv` target. Every path is overridable on the command line, e.g.
#   make train DATA_ROOT=/data/hirise-map-proj-v3-full
#   make train RESUME=1            # continue runs/default/last.pt after an interruption
DATA_ROOT ?= ../shared/data/hirise-map-proj-v3
V1_ROOT ?= ../shared/data/hirise-map-proj-v1
TRAIN_CONFIG ?= training/configs/default.json
RUN ?= runs/default
MODELS_DIR ?= planet_terrain_plugin/models
# Variants copied into the plugin. fp32 (~90 MB) stays in $(RUN)/export (the plugin ships <= ~80 MB); int8 stays
# there too. The plugin makes int8 its CPU default only when export recorded it close enough to fp32 (v1.0.0's
# was not; v1.1.0's is, see MODEL_CARD.md); `SHIP_VARIANTS=fp16,int8` ships it, at 23 MB more in the repository.
SHIP_VARIANTS ?= fp16

.PHONY: train calibrate evaluate export smoke score pretrain ablation int8 ood known-direction landform-gate mirror-views
PRETRAIN_CONFIG ?= training/configs/pretrain.json
ABLATION_SPEC ?= training/configs/ablation.json

train: venv ## Train the default model (DATA_ROOT, V1_ROOT, TRAIN_CONFIG, RUN, RESUME=1)
	$(PY) -m training.train --config $(TRAIN_CONFIG) --out $(RUN) --data-root $(DATA_ROOT) --v1-root $(V1_ROOT) $(if $(RESUME),--resume)

calibrate: venv ## Fit temperature and abstention threshold on the validation split of RUN
	$(PY) -m training.calibrate --run $(RUN)

evaluate: calibrate ## Calibrate, then score RUN on the test split (metrics.json, report.md, PNGs)
	$(PY) -m training.evaluate --run $(RUN)
	$(PY) -m training.report --run $(RUN)

export: venv ## ONNX fp32 (+parity) / int8 / fp16 of RUN; ships SHIP_VARIANTS to MODELS_DIR
	$(PY) -m export.to_onnx --run $(RUN) --ship $(MODELS_DIR) --ship-variants $(SHIP_VARIANTS)

smoke: venv ## The whole chain at toy size (train -> export -> classify), ~2 min
	$(PY) -m pytest -q tests/test_training_smoke.py

score: venv ## Score the shipped model through the plugin's image command line on the test split's unseen sources
	$(PY) -m training.score_entry_point --data-root $(DATA_ROOT) --v1-root $(V1_ROOT) --out $(RUN)/entry_point_test.json

pretrain: venv ## Self-supervised pretraining (SimCLR or BYOL) of the backbone -> RUN_pretrain/backbone.pt (PRETRAIN_CONFIG)
	$(PY) -m training.pretrain --config $(PRETRAIN_CONFIG) --out $(RUN)_pretrain --data-root $(DATA_ROOT) --v1-root $(V1_ROOT) $(if $(RESUME),--resume)

ablation: venv ## Issue-5 ablation (needs runs/default and runs/default_v1, see MODEL_CARD.md): one arm per lever -> runs/ablation/{ablation,significance}.md
	$(PY) -m training.ablation --spec $(ABLATION_SPEC)

OOD_MODEL ?= $(MODELS_DIR)/planet_terrain_resnet50.fp16.onnx
ood: venv ## Fit the OOD score of OOD_MODEL (a file with logits [+ embedding]), measure it -> $(RUN)_ood (SHIP=1: replace OOD_MODEL)
	$(PY) -m training.ood --model $(OOD_MODEL) --out $(RUN)_ood $(if $(SHIP),--ship $(OOD_MODEL))

known-direction: venv ## Validation only: a logistic known-vs-"other" direction in OOD_MODEL's embedding against the softmax gate, and where Apollo cells fall on it (MODEL_CARD.md)
	$(PY) -m training.known_direction --model $(OOD_MODEL)

landform-gate: venv ## Validation: the direction as a gate beside a lower softmax threshold (TEST=1: the test split too, once), and what it would do on Apollo cells (MODEL_CARD.md)
	$(PY) -m training.landform_gate --model $(OOD_MODEL) $(if $(TEST),--test)

MODEL_VERSION ?=
mirror-views: venv ## The shipped one-view fp16 with the mirror view in its graph, recalibrated on validation, measured (MODEL_VERSION=1.3.0; SHIP=1: replace it; then make int8)
	$(PY) -m export.ship_views --version $(MODEL_VERSION) --data-root $(DATA_ROOT) --v1-root $(V1_ROOT) $(if $(SHIP),--ship)

int8: venv ## int8 of the shipped model (OOD score kept in float32), scored against fp32 on the test split, written beside it (the plugin zip carries it)
	$(PY) -m export.shipped_int8 --data-root $(DATA_ROOT) --v1-root $(V1_ROOT)

# Grouped k-fold cross-validation (docs/cv.md): the figure arms are chosen on. `make cv ARM=v110 CONFIG=...`
ARM ?= default
CONFIG ?= $(TRAIN_CONFIG)
FOLDS ?= 5
.PHONY: cv cv-compare cv-tta cv-pretrain
cv: venv ## Grouped 5-fold CV of CONFIG -> runs/cv/ARM (FOLD=i: that fold only; resumable; CV_ARGS=...)
	$(PY) -m training.cv --config $(CONFIG) --folds $(FOLDS) --out runs/cv/$(ARM) --data-root $(DATA_ROOT) --v1-root $(V1_ROOT) $(if $(FOLD),--fold $(FOLD)) $(CV_ARGS)

cv-compare: venv ## Paired difference of two finished CV arms with its 95 % interval: make cv-compare A=v110 B=input128 (PARTIAL=1: the folds both finished)
	$(PY) -m training.cv compare runs/cv/$(A) runs/cv/$(B) --out runs/cv/$(B)_vs_$(A).md $(if $(PARTIAL),--finished-only)

cv-summary: venv ## Summary of ARM's folds -> runs/cv/ARM/summary.md (PARTIAL=1: the folds finished so far -> summary_partial.md)
	$(PY) -m training.cv summary runs/cv/$(ARM) $(if $(PARTIAL),--finished-only)

cv-pretrain: venv ## Self-supervised pretraining per CV fold, each on its fold's sources only -> runs/cv/ARM/fold*/backbone.pt (PRETRAIN_CONFIG; FOLD=i; resumable)
	$(PY) -m training.cv_pretrain --config $(PRETRAIN_CONFIG) --folds $(FOLDS) --out runs/cv/$(ARM) --data-root $(DATA_ROOT) --v1-root $(V1_ROOT) $(if $(FOLD),--fold $(FOLD)) $(CV_ARGS)

VIEWS ?= 4
cv-tta: venv ## Score ARM's finished folds again with VIEWS-view TTA (temperature refitted on each fold's validation) -> runs/cv/ARM_ttaVIEWS, an arm for cv-compare
	$(PY) -m training.cv_tta runs/cv/$(ARM) --views $(VIEWS)
