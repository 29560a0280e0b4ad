# The two set-up commands of the README: `make demo` (the main job) and `make test`.
# Both create the virtual environment and install gradebench into it on first use.

VENV ?= .venv
DATA ?= .gradebench/data-small
ASSIGNMENTS ?= dl2025-a2 adl2024-a2 idl-ex2 mle-sheet06
OUT ?= out
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test test-fast test-e2e bench install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# the wheel (what students install) has no reference implementations; the grader's environment finds them,
	@# and the rest of the course repository, in the repository root
	$(BIN)/python -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_path('purelib'), 'gradebench-course.pth').write_text('$(CURDIR)\n')"
	touch $@

# Main job: prepare the small offline datasets, then grade every sample submission of every assignment with
# the fast profile, one submission per CPU core at once (each rubric is first calibrated on its reference
# submission), and write the reports under $(OUT)/<assignment>/ and the overview $(OUT)/index.html linking
# every report.
demo: install
	$(BIN)/gradebench data prepare --small --data $(DATA)
	@set -e; for a in $(ASSIGNMENTS); do \
		echo "== $$a"; \
		$(BIN)/gradebench grade submissions/$$a --rubric rubrics/$$a.yaml --data $(DATA) --out $(OUT)/$$a --profile fast; \
	done
	$(BIN)/gradebench overview $(OUT)

# Every test, in two tiers: the fast unit tier first (checks, rubric, scoring, store, loading, sandbox and
# engine units; in FAST_WORKERS pytest-xdist workers, a file's tests in one worker: about 2.5 minutes on 2 cores,
# 4 in one process with FAST_WORKERS=0), then the end-to-end tier (graded samples, hostile corpus, crash safety,
# reference training). The sample tests share one graded batch per assignment (tests/conftest.py).
# `make test-e2e WORKERS=2` runs the end-to-end tier in two pytest-xdist workers, grouped so that a file's
# tests, and the files sharing the graded sample batches, stay in one worker (each batch graded once); it is
# not the default, since those batches already keep both cores busy: 29 min here in 2 workers, 23 min serially
# on the same day.
# Benchmarks are not part of it: `make bench`.
WORKERS ?= 0
XDIST := $(if $(filter-out 0,$(WORKERS)),-n $(WORKERS) --dist loadgroup)
FAST_WORKERS ?= 2
FAST_XDIST := $(if $(filter-out 0,$(FAST_WORKERS)),-n $(FAST_WORKERS) --dist loadfile)

test: test-fast test-e2e

test-fast: install
	$(BIN)/pytest -m "not e2e and not bench" $(FAST_XDIST) --benchmark-disable --durations=10

test-e2e: install
	$(BIN)/pytest -m "e2e and not bench" $(XDIST) --benchmark-disable --durations=15

# Benchmarks with timings (medians, side by side).
bench: install
	$(BIN)/pytest tests/benchmarks -m bench --benchmark-only --benchmark-columns=min,median,max,rounds
