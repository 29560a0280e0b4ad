"""Networks written with functional ops, graded end to end (submissions/make_trace_samples.py).

The samples under ``submissions/trace/dl2025-a2`` are graded against the dl2025-a2 rubric's ``cnn`` and ``ae``
tasks (calibrated on the dl2025-a2 reference), in the assignment's shared batch on the small synthetic data: they
hand in only the CNN and autoencoder notebooks, so the rubric's other tasks find nothing to grade.
"""

from __future__ import annotations

import pytest

from tests.sample_reports import automatic_scores, check_result, failed_checks

TASKS = {"cnn": 13.0, "ae": 6.0}
"""Points of the tasks graded."""


@pytest.fixture(scope="module")
def reports(graded_samples):
    """Every trace sample's report, by student (graded in dl2025-a2's shared batch: only TASKS are asserted)."""
    _, summary, reports = graded_samples("dl2025-a2", "trace")
    assert not summary.faults
    return reports


EXPECTED = {
    "functional_cnn": {"cnn": 13.0, "ae": 0.0},
    "ae_dim512": {"cnn": 0.0, "ae": 6.0},
    # architecture_matches (1 point) fails: the ReLU on the code
    # the ReLU on the 2-d code costs the architecture point (1) and, since it leaves the code mostly zeros, the
    # reconstruction is no better than predicting the mean image, which the reconstruction bar now refuses (2)
    "ae_latent_relu": {"cnn": 0.0, "ae": 3.0},
}
"""Per-task scores of every sample whose scores do not hang on training luck (softmax_head's are asserted below)."""


def test_every_sample_is_graded(reports) -> None:
    assert sorted(reports) == ["ae_dim512", "ae_latent_relu", "functional_cnn", "softmax_head"]


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_task_scores(reports, student) -> None:
    assert automatic_scores(reports[student], TASKS) == pytest.approx(EXPECTED[student], abs=1e-3), failed_checks(reports[student], ["ae"])


def test_the_softmax_head_loses_architecture_output_and_loss_points_and_trains_worse(reports) -> None:
    report = reports["softmax_head"]
    lost = {check: 1.0 for check in ("output_kind", "loss_choice")} | {"architecture_matches": 2.0}
    failed = {check for (task, check) in failed_checks(report, ["cnn"])}
    assert set(lost) <= failed <= set(lost) | {"test_accuracy", "per_class_accuracy"}  # Softmax + NLLLoss trains badly
    accuracy_points = sum(check_result(report, "cnn", check).score for check in ("test_accuracy", "per_class_accuracy"))
    assert automatic_scores(report, TASKS) == pytest.approx(
        {"cnn": TASKS["cnn"] - sum(lost.values()) - (4.0 - accuracy_points), "ae": 0.0}, abs=1e-3)


def test_a_functional_cnn_passes_architecture_parameters_and_the_800_features(reports) -> None:
    report = reports["functional_cnn"]
    assert failed_checks(report, ["cnn"]) == {}
    assert automatic_scores(report, ["cnn"]) == {"cnn": TASKS["cnn"]}
    assert check_result(report, "cnn", "feature_width").details["measured"] == 800


def test_a_softmax_head_loses_the_architecture_points_naming_softmax(reports) -> None:
    report = reports["softmax_head"]
    architecture = check_result(report, "cnn", "architecture_matches")
    assert (architecture.status, architecture.score) == ("failed", 0.0)
    assert architecture.message == (
        "your network differs from the assignment's:\n  your network applies Softmax where the assignment has LogSoftmax")
    for check in ("parameter_count", "feature_width", "runs_without_error"):
        assert check_result(report, "cnn", check).status == "passed"


def test_an_autoencoder_with_dim2_512_passes_its_architecture(reports) -> None:
    report = reports["ae_dim512"]
    assert check_result(report, "ae", "architecture_matches").status == "passed"


def test_a_relu_on_the_latent_code_is_named(reports) -> None:
    architecture = check_result(reports["ae_latent_relu"], "ae", "architecture_matches")
    assert architecture.status == "failed"
    assert architecture.message == (
        "your network differs from the assignment's:\n  a ReLU is applied to the latent code (the output of "
        "Linear(dim2->2)); the assignment's encoder ends without an activation")
