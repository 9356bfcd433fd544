# Two set-up commands: `make dev` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 3000

.PHONY: dev test install lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml layers/platform/pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e layers/platform -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	PORT=$(PORT) $(PY) -m local_stack

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(VENV)/bin/cfn-lint template.yaml

bench: $(STAMP)
	$(PY) bench/crud.py

clean:
	rm -rf $(VENV) .pytest_cache
