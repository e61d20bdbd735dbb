# contrastive-pruning: `make quickstart` trains a real short job, `make test` runs the test suite.
# Each creates/updates the virtual environment it needs (.venv) first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: install install-dev quickstart lint test test-all benchmarks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## A real training job that runs anywhere, offline: WRN-16-2 on the embedded Fashion-MNIST subset,
## 3 epochs, gradual magnitude pruning to 50 % (~2 minutes on 2 CPU cores). ARGS="..." adds flags.
quickstart: $(VENV)/.installed
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/python cli.py fit --config configs/quickstart.yaml $(ARGS)
	@echo "next, on CIFAR-10 (downloaded to data/ on first use; see docs/training.md):"
	@echo "  $(BIN)/python cli.py fit --config configs/experiments/sup_gmp.yaml --pruning.init_args.final_sparsity 0.9"

## ruff over the tree and mypy over the pure modules (both configured in pyproject.toml).
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

## Lint, then the test suite (maths, CLI integration, 2-process CPU DDP), two tests at a time (pytest-xdist,
## one file per worker); `make test-all` adds the slow tier.
test: lint
	WANDB_MODE=offline $(BIN)/python -m pytest -m "not slow" -n 2 --dist loadfile $(PYTEST_ARGS)

test-all: $(VENV)/.installed-dev
	WANDB_MODE=offline $(BIN)/python -m pytest $(PYTEST_ARGS)

benchmarks: $(VENV)/.installed
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache
