# Two set-up commands: `make dev` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 3000
# The demo EHR (ehr_server/, Node): installed with `npm ci` when node is on PATH, skipped otherwise.
NODE   := $(shell command -v node 2>/dev/null)
EHR_STAMP := ehr_server/node_modules/.demo-ehr-installed

.PHONY: dev test install ehr-server lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml layers/platform/pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e layers/platform -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ehr-server

ifdef NODE
ehr-server: $(EHR_STAMP)
$(EHR_STAMP): ehr_server/package.json ehr_server/package-lock.json
	cd ehr_server && npm ci --no-audit --no-fund --loglevel=error
	touch $(EHR_STAMP)
else
ehr-server:
	@echo "node not found: skipping the demo EHR (ehr_server/); its tests will be skipped"
endif

dev: install
	PORT=$(PORT) $(PY) -m local_stack

test: install
	$(PY) -m pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(VENV)/bin/cfn-lint template.yaml

# the figures the issues' quality bars quote (minutes; the other bench/ scripts are listed in the README)
bench: $(STAMP)
	$(PY) bench/crud.py
	$(PY) bench/cold_start.py --cpu --runs 3 --no-traced
	$(PY) bench/write_cpu.py --skip-moto --repeat 3 --writes 200

clean:
	rm -rf $(VENV) .pytest_cache ehr_server/node_modules
