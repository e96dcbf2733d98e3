# Two entry points, each doing its own set-up (a local virtualenv and the dependencies):
#   make demo   runs the main demo (a fan-out workflow from examples/)
#   make test   installs what the tests need (OpenSSH server, GNU Parallel) and runs the suite
# The virtualenv holds exactly the pinned set of requirements-dev.lock, then tea itself
# (editable, --no-deps); `make lock` regenerates the lock (with sha256 hashes, checked
# at install by --require-hashes) from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements-dev.lock
LOCK_VENV := .cache/lock-venv
SOURCES := tea executors remote tests benchmarks

.PHONY: demo test lint bench lock clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tea run examples/parallel_fanout.yaml --input '{"topic": "edge agents"}'

test: $(STAMP)
	bash scripts/test-deps.sh
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/mypy --strict tea executors remote
	$(BIN)/pytest -q -n 2 -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/mypy --strict tea executors remote

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# A fresh virtualenv resolved from pyproject.toml alone; the lock keeps its header comments.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/pip install --quiet -e '.[dev,bundle]'
	{ grep '^#' $(LOCK); $(LOCK_VENV)/bin/pip freeze --exclude-editable; } > $(LOCK).new
	$(LOCK_VENV)/bin/python scripts/hash_lock.py $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) build dist .cache
