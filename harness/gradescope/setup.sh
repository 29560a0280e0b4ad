#!/usr/bin/env bash
# Gradescope's image set-up, run once when the autograder zip is uploaded (the zip holds a checkout of
# gradebench with this file, run_autograder and gradebench.yaml at its top, as the README describes).
set -euo pipefail
apt-get update && apt-get install -y --no-install-recommends bubblewrap python3-venv
cd /autograder/source
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --no-cache-dir .
ln -sf /autograder/venv/bin/gradebench /usr/local/bin/gradebench
# The datasets the assignments read, and their hidden evaluation splits (real files when --from is given).
gradebench data prepare --data /autograder/data
# Each submission runs in a fresh copy of this image: calibrate relative bars and budgets on the
# reference submission once, here, so that no submission's run has to.
gradebench autograde --config /autograder/source/gradebench.yaml --calibrate-only
