# The two set-up commands of the README: `make demo` (the main job) and `make test`.
# Both create the virtual environment and install gradebench into it on first use.

VENV ?= .venv
DATA ?= .gradebench/data-small
ASSIGNMENTS ?= dl2025-a2 adl2024-a2 idl-ex2 mle-sheet06
OUT ?= out
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test bench install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Main job: prepare the small offline datasets, then grade every sample submission of every assignment with
# the fast profile (each rubric is first calibrated on its reference submission) and write the reports under
# $(OUT)/<assignment>/ and the overview $(OUT)/index.html linking every report.
demo: install
	$(BIN)/gradebench data prepare --small --data $(DATA)
	@set -e; for a in $(ASSIGNMENTS); do \
		echo "== $$a"; \
		$(BIN)/gradebench grade submissions/$$a --rubric rubrics/$$a.yaml --data $(DATA) --out $(OUT)/$$a --profile fast --jobs 2; \
	done
	$(BIN)/gradebench overview $(OUT)

# Every test; benchmarks run once each as smoke tests (timings come from `make bench`).
test: install
	$(BIN)/pytest --benchmark-disable --durations=15

# Benchmarks with timings (medians, side by side).
bench: install
	$(BIN)/pytest tests/benchmarks --benchmark-only --benchmark-columns=min,median,max,rounds
