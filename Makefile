# Planet Terrain: every command a developer or CI needs. `make help` lists them.
# Works from nothing on Debian 12: the first target that needs them installs QGIS (apt) and the venv (pip).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SYS_PY ?= /usr/bin/python3
APT_PACKAGES := qgis python3-qgis qgis-providers xvfb python3-venv python3-pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SHARED ?= $(abspath ../shared)
RASTER ?= $(SHARED)/data/rasters/AS15-M-0295_SML_geo.tif
OUT ?= build/demo
PLUGIN := planet_terrain_plugin
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)
QGIS_PROFILE ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default
export QT_QPA_PLATFORM ?= offscreen

.DEFAULT_GOAL := help
.PHONY: help sysdeps venv test demo deploy package bench bench-input-sizes fewshot clean gallery

help: ## List the commands
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN{FS=":.*?## "}{printf "  make %-10s %s\n", $$1, $$2}'

sysdeps: ## Install Debian's QGIS 3.22 and friends (apt; skipped when present)
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then echo "system packages present"; else \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); fi

$(VENV)/.installed: requirements-dev.txt requirements-batch.txt
	@$(MAKE) --no-print-directory sysdeps
	@test -x $(PY) || $(SYS_PY) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed ## Create the venv (QGIS's Python + pinned requirements-dev.txt)

test: venv ## Run the test suite inside a real, headless QGIS
	$(PY) -m pytest $(PYTEST_ARGS)

demo: venv ## Apollo 15 Moon raster, shipped model, headless qgis_process: extent + 20 km grid + PNG map (build/demo)
	$(PY) -m scripts.demo --raster "$(RASTER)" --out "$(OUT)"

screenshot: venv ## The panel after a 20 km grid and "Why this label" with a heatmap, from the real QGIS desktop under Xvfb (build/screenshot/dock.png, why.png, desktop.png)
	$(PY) -m scripts.screenshot --out build/screenshot

deploy: ## Link the plugin into your QGIS profile (QGIS_PROFILE=... to choose another)
	mkdir -p "$(QGIS_PROFILE)/python/plugins"
	ln -sfn "$(abspath $(PLUGIN))" "$(QGIS_PROFILE)/python/plugins/$(PLUGIN)"
	@echo "Linked. Restart QGIS and enable 'Planet Terrain' in Plugins > Manage and Install Plugins."

package: ## Build dist/planet_terrain_plugin-<version>.zip for "Install from ZIP" / the plugin repository
	@test -f "$(GALLERY)" || $(MAKE) --no-print-directory gallery
	$(SYS_PY) -m scripts.package --out dist

GALLERY ?= $(MODELS_DIR)/planet_terrain_resnet50.gallery.npz
gallery: venv ## Training gallery for "why this label" (thumbnails + embeddings of training images; DATA_ROOT=...) -> GALLERY
	GDAL_PAM_ENABLED=NO $(PY) -m export.gallery --data-root $(DATA_ROOT) --out $(GALLERY)

bench: venv ## Performance table: pipeline vs bare onnxruntime, baselines, memory at 1k-100k cells (build/bench)
	$(PY) -m benchmarks.run $(BENCH_ARGS)

bench-input-sizes: venv ## The input-size arms' cost: random-weight 96/128/160 px exports, ms/image and cells/s through classify_grid (build/bench)
	$(PY) -m training.cv_cost --keep build/bench/input_sizes --out build/bench/input_sizes_cost.md
	GDAL_PAM_ENABLED=NO $(PY) -m benchmarks.input_sizes build/bench/input_sizes

fewshot: venv ## Few-shot heads vs the shipped head: HiRISE k = 1-20 and the Apollo crater/plain case (build/fewshot)
	GDAL_PAM_ENABLED=NO $(PY) -m benchmarks.fewshot

clean: ## Remove build outputs (keeps the venv)
	rm -rf build dist .pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +

-include training.mk

MOSAIC_OUT ?= build/mosaic-demo
.PHONY: mosaic-demo bench-mosaic

mosaic-demo: venv ## Batch + Dask: a 10k x 10k mosaic of the shared rasters, 2 local workers, killed and resumed, merged to a styled GeoPackage
	$(PY) -m scripts.mosaic_demo --rasters "$(SHARED)/data/rasters" --out "$(MOSAIC_OUT)" $(MOSAIC_ARGS)

bench-mosaic: venv ## Batch scaling: 1 vs 2 Dask workers on a 10k x 10k mosaic, memory per worker, a killed worker (build/bench-mosaic)
	$(PY) -m benchmarks.mosaic $(BENCH_ARGS)
