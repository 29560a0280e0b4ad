"""The samples whose models live only inside functions, graded end to end (``submissions/make_hook_samples.py``).

``idl-ex2/models_in_functions`` keeps every model a local of a ``main()``; ``dl2025-a2/scratch_models``
trains ``cnn`` beside ``fnn``, a ``tmp`` block and a fresh untrained ``model = ConvNet()`` built only to
count parameters, and trains its feed-forward ``net`` inside ``train_and_eval()``;
``dl2025-a2/ae_in_function`` builds, trains and plots its autoencoders inside a function. Each trained
model is found where it was built and graded, and the report says which variable, where, and that it
was trained. The samples are graded in their assignment's shared batch (``graded_samples(assignment, "hook")``:
every generator's samples at once), after the reference calibrates the rubric (cached on the data).
"""

from __future__ import annotations

import pytest

from tests.sample_reports import automatic_scores, check_result, failed_checks

DL2025_PART1 = {"ff": 9.0, "cnn": 13.0}
DL2025_PART2 = {"ae": 6.0, "ae-runs": 2.0, "pca": 3.0, "latent-size": 3.0, "vae": 0.0, "vae-samples": 0.0}
IDL_FULL = {"autoencoder": 7.0, "classifier": 7.0, "classifier-decoding": 7.0, "few-labels": 6.0, "fine-tuning": 6.0}

EXPECTED = {
    "dl2025-a2": {
        # Part 1 only: full marks for both notebooks; Part 2 was not handed in.
        "scratch_models": {**DL2025_PART1, **dict.fromkeys(DL2025_PART2, 0.0)},
        # Part 2's autoencoders.ipynb only (no vae.ipynb): full marks for the autoencoder tasks.
        "ae_in_function": {**dict.fromkeys(DL2025_PART1, 0.0), **DL2025_PART2},
    },
    "idl-ex2": {
        "models_in_functions": IDL_FULL,
    },
}
"""Automatic points per task of every hook sample, by assignment."""

GRADED = {
    ("dl2025-a2", "scratch_models", "cnn"): (
        "graded `cnn` (an instance of ConvNet, trained: an optimizer stepped it), the one of 4 instances most like "
        "the assignment's network; `model` (an untrained copy) passed over"
    ),
    ("dl2025-a2", "scratch_models", "ff"): (
        "graded `net`, a local of train_and_eval() in a notebook cell (an instance of Net, trained: an optimizer "
        "stepped it)"
    ),
    ("dl2025-a2", "ae_in_function", "ae"): (
        "graded `autoencoder`, a local of run() in a notebook cell (an instance of Autoencoder, trained: an "
        "optimizer stepped it)"
    ),
}
"""What the report says was graded, for the tasks whose model only a construction record could find."""

SAMPLES = [(assignment, student) for assignment, students in EXPECTED.items() for student in students]


@pytest.fixture(scope="module")
def reports(graded_samples):
    """The hook samples' reports, by (assignment, student)."""
    return {(a, s): graded_samples(a, "hook")[2][s] for a, s in SAMPLES}


@pytest.mark.parametrize(("assignment", "student"), SAMPLES)
def test_automatic_task_scores(reports, assignment, student) -> None:
    report = reports[assignment, student]
    assert automatic_scores(report) == pytest.approx(EXPECTED[assignment][student], abs=1e-3), failed_checks(report)


SHARED_WEIGHTS = {"classifier-decoding": "clf_ae", "fine-tuning": "clf"}
"""idl-ex2: the local of q3's and q5's ``main()`` whose weights the shared_weights checks compared."""


@pytest.mark.parametrize(("assignment", "student", "task"), sorted(GRADED))
def test_the_report_names_the_local_or_trained_model_graded(reports, assignment, student, task) -> None:
    check = "architecture_matches"
    assert check_result(reports[assignment, student], task, check).details["model"] == GRADED[assignment, student, task]


@pytest.mark.parametrize("task", sorted(SHARED_WEIGHTS))
def test_idl_ex2_weights_are_compared_on_the_locals_of_main(reports, task) -> None:
    result = check_result(reports["idl-ex2", "models_in_functions"], task, "shared_weights")
    assert (result.status, result.details["model"]) == ("passed", SHARED_WEIGHTS[task])
