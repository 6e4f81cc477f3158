# decaylab — thin wrappers over the CLI. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DECAYLAB := $(VENV)/bin/decaylab
STUDY ?= studies/digits.yaml
STORAGE ?= results
RUN ?=
OUT ?=
# Exact pins: these wheels are the ones available on this kind of machine (x86_64, CPython 3.11);
# override TORCH_PINS for another platform, e.g. TORCH_PINS="torch torchvision".
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# two test processes (pytest-xdist): tests that start a Ray cluster share one of them (tests/conftest.py)
PYTEST_JOBS ?= -n 2 --dist loadgroup

.PHONY: help install sweep report status test test-fast lint bench docs readme-result clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: STUDY=$(STUDY) STORAGE=$(STORAGE) RUN=<run dir> OUT=<report dir>"

install: $(VENV)/.installed  ## create .venv and install decaylab with its dependencies

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[dev,track]'
	touch $@

sweep: install  ## run STUDY (default: the embedded digits study) end to end, then write its report
	$(DECAYLAB) sweep $(STUDY) --storage $(STORAGE) --report

report: install  ## write the report of RUN (a run directory) into OUT (default reports/<study>)
	@test -n "$(RUN)" || { echo "usage: make report RUN=results/<study> [OUT=reports/<name>]"; exit 2; }
	$(DECAYLAB) report $(RUN) $(if $(OUT),--report-dir $(OUT))

status: install  ## show trial counts of RUN
	@test -n "$(RUN)" || { echo "usage: make status RUN=results/<study>"; exit 2; }
	$(DECAYLAB) status $(RUN)

test: install  ## the whole test suite, slow tests included
	$(PY) -m pytest -q $(PYTEST_JOBS) --durations=20 $(PYTEST_ARGS)

test-fast: install  ## the suite without @pytest.mark.slow
	$(PY) -m pytest -q $(PYTEST_JOBS) -m "not slow" $(PYTEST_ARGS)

lint: install  ## ruff
	$(VENV)/bin/ruff check .

bench: install  ## benchmarks on an idle machine: one record in bench/results/, then BENCHMARKS.md regenerated
	$(PY) -m bench.run_all $(BENCH_ARGS)
	$(PY) -m bench.report --check

docs: install  ## regenerate the reference pages in docs/reference/ from the code
	$(PY) -m orchestrator.docs

readme-result: install  ## after `make sweep`: record its run for README.md (docs/results/digits.json, the figure)
	$(PY) -m orchestrator.docs.expected $(STORAGE)/digits reports/digits

clean:  ## remove caches (not results)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
