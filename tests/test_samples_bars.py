"""The fair-threshold samples of dl2025-a2 graded end to end (``submissions/make_bars_samples.py``).

``course_template``: the course's Part 1 notebooks run unmodified (SGD, lr 0.002, momentum 0.9, 4 epochs,
batch 64, ``Normalize((0.5,), (0.5,))``, no seed) and the CNN made from them by swapping the network: full
automatic marks for both tasks, because the reference submission that sets the accuracy bars trains with the
same recipe. ``logits_ce``: the feed-forward network without its LogSoftmax, trained with CrossEntropyLoss
(task 1.2): full automatic marks for the feed-forward task.

They are graded in dl2025-a2's shared batch (every generator's samples at once), after the reference calibrates
the rubric (cached on the data).
"""

from __future__ import annotations

import pytest

from tests.sample_reports import automatic_scores, check_result, failed_checks

BARS_SAMPLES = ("course_template", "logits_ce")
FF, CNN = 9.0, 13.0
"""Points of the feed-forward and CNN tasks."""

EXPECTED = {
    "course_template": {"ff": FF, "cnn": CNN},
    "logits_ce": {"ff": FF, "cnn": 0.0},  # Part 1's feed-forward notebook only
}


@pytest.fixture(scope="module")
def graded(graded_samples):
    """The rubric's setup and the two samples' reports, by student (fast profile, small data, two workers)."""
    setup, _, reports = graded_samples("dl2025-a2", "bars")
    return setup, reports


@pytest.mark.parametrize("student", BARS_SAMPLES)
def test_part1_scores(graded, student) -> None:
    _, reports = graded
    report = reports[student]
    assert automatic_scores(report, {"ff", "cnn"}) == pytest.approx(EXPECTED[student], abs=1e-3), failed_checks(report)


def test_the_template_is_measured_against_the_templates_own_recipe(graded) -> None:
    """The bars come from the reference trained as the template trains (not from a stronger optimiser)."""
    setup, reports = graded
    for task, factor in (("ff", 0.92), ("cnn", 0.88)):
        result = check_result(reports["course_template"], task, "test_accuracy")
        reference = setup.calibration[task]["hidden_accuracy"]
        assert result.details["threshold"] == pytest.approx(factor * reference)
        assert result.details["measured"] >= result.details["threshold"]


def test_logits_with_cross_entropy_pass_the_output_and_loss_checks(graded) -> None:
    _, reports = graded
    report = reports["logits_ce"]
    assert check_result(report, "ff", "output_kind").details["measured"] == "logits"
    assert check_result(report, "ff", "loss_choice").details["losses"] == ["CrossEntropyLoss"]
