"""The mle-sheet06 samples graded end to end: each sample's automatic task scores and the messages a student reads.

The samples (``submissions/make_mle_sheet06_samples.py``), one notebook each: the reference and a
correct notebook written by another hand; ``no_bias_count`` builds the SIGNS CNN's convolutions
without biases (131,946 parameters); ``relu_latent`` puts a ReLU on the code of Conv_AE and
PCA_AE; ``broken`` mistypes ``np.load`` in the first data cell, so Exercise 2 never trains.
"""

from __future__ import annotations

import pytest

from tests.sample_reports import automatic_scores, check_result

ASSIGNMENT = "mle-sheet06"
FULL = {"notebook": 2.0, "cnn": 8.0, "conv-ae": 8.0, "pca-ae": 5.0, "latent-3d": 2.0}
"""Points of every automatic task."""
MANUAL = ("ex1-gaussian-sum", "ex1-conv-output", "cnn-learning-rates", "observation")

BROKEN_CELLS = 23
"""Code cells of the notebook; 8 of them raise in ``broken`` (np.laod, then NameErrors through Exercise 2)."""

EXPECTED = {
    "reference": FULL,
    "different": FULL,
    # architecture_matches (2, the "no bias" convolutions) and parameter_count (1) fail.
    "no_bias_count": {**FULL, "cnn": 5.0},
    # Conv_AE: architecture_matches (2: the ReLU on the code) and reconstruction_error (2) fail, its latent-3 code
    # collapses to the mean image. PCA_AE: architecture_matches (1), principal_angles (2), reconstruction_error (1).
    "relu_latent": {**FULL, "conv-ae": 4.0, "pca-ae": 1.0},
    # runs_without_error: 15 of 23 cells ran cleanly. The CNN graded is the untrained one of the shape
    # check (its architecture is right): test_accuracy (2) fails, and there is no accuracy curve (plotted_accuracy, 1).
    # Exercise 3 runs on its own and gets everything.
    "broken": {**FULL, "notebook": 1 + (BROKEN_CELLS - 8) / BROKEN_CELLS, "cnn": 5.0},
}


@pytest.fixture(scope="module")
def reports(graded_samples):
    """Every mle-sheet06 sample's report, by student."""
    _, _, reports = graded_samples(ASSIGNMENT)
    return reports




def _failures(report) -> dict[tuple[str, str], str]:
    """(task, check) -> message of every check that did not pass."""
    return {
        (task.task, result.check): result.message
        for task in report.tasks
        for result in task.checks
        if result.status != "passed"
    }




def test_every_sample_is_graded(graded_samples) -> None:
    _, summary, reports = graded_samples(ASSIGNMENT)
    assert sorted(reports) == sorted(EXPECTED)
    assert summary.failed_to_load == 0 and not summary.faults


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_automatic_task_scores(reports, student) -> None:
    assert automatic_scores(reports[student]) == pytest.approx(EXPECTED[student], abs=1e-3)


@pytest.mark.parametrize("student", ["reference", "different"])
def test_correct_notebooks_get_full_automatic_marks(reports, student) -> None:
    report = reports[student]
    assert _failures(report) == {}
    assert report.score == pytest.approx(sum(FULL.values()))
    assert {t.task: t.note for t in report.tasks if t.manual} == dict.fromkeys(MANUAL, "not graded yet")


@pytest.mark.parametrize(
    ("task_id", "graded"),
    [
        ("cnn", "an instance of SignNet"),  # Sequential blocks, padding=1, F.log_softmax, F.nll_loss
        # the latent-3 one, by the reference's shape; its decoder reshapes with .view(), not nn.Unflatten
        ("conv-ae", "`autoencoders[3]` (an instance of ConvAutoencoder, trained: an optimizer stepped it)"),
        ("pca-ae", "`linear_ae` (an instance of LinearAE, trained: an optimizer stepped it)"),
    ],
)
def test_the_other_hand_is_graded_on_its_own_names(reports, task_id, graded) -> None:
    architecture = check_result(reports["different"], task_id, "architecture_matches")
    assert graded in architecture.details["model"]


def test_the_reference_models_are_the_ones_the_sheet_asks_for(reports) -> None:
    report = reports["reference"]
    cnn = check_result(report, "cnn", "architecture_matches").details["model"]
    assert cnn == (
        "graded `cnn_model` (an instance of CNN_Classifier, trained: an optimizer stepped it); "
        "`cnn_model at top level, a notebook cell, line 1` (an untrained copy) passed over"
    )
    assert "an instance of Conv_AE" in check_result(report, "conv-ae", "architecture_matches").details["model"]
    assert check_result(report, "conv-ae", "bottleneck_width").details["measured"] == 3
    angles = check_result(report, "pca-ae", "principal_angles").details
    assert angles["latent"] == 10 and angles["measured"] <= 20


def test_convolutions_without_bias_are_named(reports) -> None:
    failures = _failures(reports["no_bias_count"])
    assert set(failures) == {("cnn", "architecture_matches"), ("cnn", "parameter_count")}
    assert "found Conv2d(3->4, kernel 3, stride 1, padding 1, no bias)" in failures[("cnn", "architecture_matches")]
    assert failures[("cnn", "parameter_count")] == (
        "the model has 131,946 trainable parameters; the assignment's network has 131,958"
    )


def test_a_relu_on_the_code_is_caught(reports) -> None:
    failures = _failures(reports["relu_latent"])
    assert set(failures) == {
        ("conv-ae", "architecture_matches"),
        ("conv-ae", "reconstruction_error"),
        ("pca-ae", "architecture_matches"),
        ("pca-ae", "principal_angles"),
        ("pca-ae", "reconstruction_error"),
    }
    angles = failures[("pca-ae", "principal_angles")]
    assert "is not PCA's" in angles and "without non-linear activations" in angles
    assert "1.5x the reference's" in failures[("conv-ae", "reconstruction_error")]
    # the architecture is judged on what the network computes: the ReLU on the code is a difference, named
    for task_id, code in (("conv-ae", "Linear(40000->3)"), ("pca-ae", "Linear(784->10)")):
        assert check_result(reports["relu_latent"], task_id, "architecture_matches").message == (
            f"your network differs from the assignment's:\n  a ReLU is applied to the latent code (the output of {code}); "
            "the assignment's encoder ends without an activation")


def test_a_typo_in_the_first_data_cell_costs_exercise_2_only(reports) -> None:
    failures = _failures(reports["broken"])
    assert set(failures) == {("notebook", "runs_without_error"), ("cnn", "test_accuracy"), ("cnn", "plotted_accuracy")}
    assert failures[("notebook", "runs_without_error")].startswith(
        "cell 2 raised AttributeError: module 'numpy' has no attribute 'laod'; cell 3 raised NameError"
    )
    assert failures[("cnn", "test_accuracy")].startswith("accuracy on unseen test images is")
    assert failures[("cnn", "plotted_accuracy")].startswith("no plotted accuracy curve was found")
