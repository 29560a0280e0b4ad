# The two set-up commands of the README: `make demo` (the main job) and `make test`.
# Both create the virtual environment and install gradebench into it on first use.

VENV ?= .venv
DATA ?= .gradebench/data
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

# Main job: prepare the offline datasets, train and evaluate every reference (printing their metrics),
# then grade the sample submissions and write the reports under $(OUT)/.
demo: install
	$(BIN)/gradebench data prepare --data $(DATA)
	$(BIN)/gradebench calibrate --data $(DATA) --profile full
	$(BIN)/gradebench grade submissions/dl2025-a2 --rubric rubrics/dl2025-a2.yaml --data $(DATA) --out $(OUT)/dl2025-a2 --jobs 2
	@echo "reports: $(OUT)/dl2025-a2/index.html"

# Every test; benchmarks run once each as smoke tests (timings come from `make bench`).
test: install
	$(BIN)/pytest --benchmark-disable

# Benchmarks with timings (medians, side by side).
bench: install
	$(BIN)/pytest tests/benchmarks --benchmark-only --benchmark-columns=min,median,max,rounds
