# Two entry points, each doing its own set-up (a local virtualenv and the dependencies):
#   make demo   runs the main demo (a fan-out workflow from examples/)
#   make test   installs what the tests need (OpenSSH server, GNU Parallel) and runs the suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bundle]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tea run examples/parallel_fanout.yaml --input '{"topic": "edge agents"}'

test: $(STAMP)
	bash scripts/test-deps.sh
	$(BIN)/ruff check tea executors remote tests benchmarks
	$(BIN)/mypy tea executors remote
	$(BIN)/pytest -q -n 2 -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check tea executors remote tests benchmarks
	$(BIN)/mypy tea executors remote

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist .cache
