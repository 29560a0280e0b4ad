"""Scoring: check results and manual scores become per-task scores and a total, in rubric order."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.models import CheckResult, ExecutionResult, SandboxResult
from harness.rubric import Rubric, parse_rubric
from harness.errors import RubricError
from harness.scoring import NO_RESULT, NOT_GRADED, ManualScore, Review, score_load_failure, score_submission

RUBRIC = """\
assignment: dl2025-a2
title: Deep Learning 2025, Assignment 2
datasets: [mnist]
tasks:
  - id: ff
    title: 1.2 Feed-forward network
    source: FFMNIST.ipynb
    checks:
      - {check: parameter_count, equals: 101770, points: 1}
      - {check: test_accuracy, min: 0.9, points: 2}
  - id: ff-why
    title: Why ReLU?
    manual: {points: 1}
  - id: cnn
    title: 1.3 CNN on MNIST
    source: CNNMNIST.ipynb
    checks:
      - {check: feature_width, layer: Flatten, equals: 800, points: 1}
      - {check: test_accuracy, min: 0.9, points: 1}
      - {check: test_accuracy, min: 0.97, points: 2}
  - id: cnn-why-800
    title: Why 800 features?
    manual: {points: 2}
"""


@pytest.fixture(scope="module")
def rubric() -> Rubric:
    return parse_rubric(RUBRIC, "dl2025-a2.yaml")


def passed(task: str, check: str, points: float) -> CheckResult:
    return CheckResult(task, check, "passed", "", points, points)


def failed(task: str, check: str, points: float, message: str = "wrong") -> CheckResult:
    return CheckResult(task, check, "failed", message, points, 0.0)


def all_passed() -> list[CheckResult]:
    return [
        passed("ff", "parameter_count", 1),
        passed("ff", "test_accuracy", 2),
        passed("cnn", "feature_width", 1),
        passed("cnn", "test_accuracy", 1),
        passed("cnn", "test_accuracy", 2),
    ]


FULL_MANUAL = {"ff-why": ManualScore(1, "good"), "cnn-why-800": ManualScore(2, "")}


def test_full_marks(rubric: Rubric) -> None:
    report = score_submission(rubric, "smithjohn_12345", "c0ffee", all_passed(), FULL_MANUAL)
    assert (report.score, report.points) == (10, 10)
    assert [t.task for t in report.tasks] == ["ff", "ff-why", "cnn", "cnn-why-800"]
    assert [t.score for t in report.tasks] == [3, 1, 4, 2]
    assert [t.manual for t in report.tasks] == [False, True, False, True]
    assert report.tasks[1].note == "good"
    assert (report.student, report.assignment, report.content_hash) == ("smithjohn_12345", "dl2025-a2", "c0ffee")
    assert (report.rubric_hash, report.profile, report.load_failure) == (rubric.hash, "full", "")


def test_zero_and_partial_credit(rubric: Rubric) -> None:
    results = [
        failed("ff", "parameter_count", 1, "the model has 50,890 trainable parameters; expected 101,770"),
        CheckResult("ff", "test_accuracy", "failed", "85% < 90%", 2, 0.5),  # partial credit
        passed("cnn", "test_accuracy", 1),
        failed("cnn", "test_accuracy", 2),
        failed("cnn", "feature_width", 1),
    ]
    report = score_submission(rubric, "s", "h", results, {"ff-why": ManualScore(0.5)}, profile="fast")
    ff, ff_why, cnn, why800 = report.tasks
    assert (ff.score, ff.points) == (0.5, 3)
    assert [c.score for c in ff.checks] == [0.0, 0.5]
    assert ff.checks[0].message.startswith("the model has 50,890")
    assert ff_why.score == 0.5
    assert (cnn.score, cnn.points) == (1, 4)
    # checks come back in rubric order, the two test_accuracy results matched in order
    assert [(c.check, c.score) for c in cnn.checks] == [("feature_width", 0), ("test_accuracy", 1), ("test_accuracy", 0)]
    assert (why800.score, why800.note) == (0, NOT_GRADED)
    assert report.score == 2.0 and report.points == 10
    assert report.profile == "fast"


def test_scores_add_up_without_float_noise(rubric: Rubric) -> None:
    results = [CheckResult("cnn", "feature_width", "failed", "", 1, 0.1), CheckResult("cnn", "test_accuracy", "failed", "", 1, 0.2)]
    report = score_submission(rubric, "s", "h", results, {})
    assert report.tasks[2].score == 0.3


def test_missing_manual_scores_are_not_graded_yet(rubric: Rubric) -> None:
    report = score_submission(rubric, "s", "h", all_passed(), {"cnn-why-800": ManualScore(None, "ask about padding")})
    assert report.tasks[1].note == NOT_GRADED
    assert report.tasks[3].note == f"{NOT_GRADED} (ask about padding)"
    assert report.score == 7 and report.points == 10


def test_a_check_without_result_scores_zero_as_skipped(rubric: Rubric) -> None:
    results = [r for r in all_passed() if r.task != "ff"]
    report = score_submission(rubric, "s", "h", results, FULL_MANUAL)
    ff = report.tasks[0]
    assert ff.score == 0
    assert [c.status for c in ff.checks] == ["skipped", "skipped"]
    assert ff.note == NO_RESULT


def test_all_skipped_with_one_reason_becomes_the_task_note(rubric: Rubric) -> None:
    reason = "FFMNIST.ipynb is not in the submission"
    results = [
        CheckResult("ff", "parameter_count", "skipped", reason, 1, 0),
        CheckResult("ff", "test_accuracy", "skipped", reason, 2, 0),
    ]
    report = score_submission(rubric, "s", "h", results, {})
    assert report.tasks[0].note == reason


def test_executions_are_kept(rubric: Rubric) -> None:
    sandbox = SandboxResult("timeout", "timed out after 300 s", None, 300.0, 290.0, 10**9, "", "", True)
    execution = ExecutionResult("CNNMNIST.ipynb", sandbox, cells_run=4, cells_total=9)
    report = score_submission(rubric, "s", "h", all_passed(), {}, executions=[execution])
    assert report.executions == (execution,)


@pytest.mark.parametrize(
    ("result", "match"),
    [
        (CheckResult("ff", "test_accuracy", "passed", "", 2, 2.5), r"task 'ff', check 'test_accuracy': score 2.5 is outside \[0, 2\]"),
        (CheckResult("ff", "test_accuracy", "failed", "", 2, -0.1), r"score -0.1 is outside \[0, 2\]"),
        (CheckResult("ff", "test_accuracy", "failed", "", 2, float("nan")), r"score nan is not a finite number"),
        (CheckResult("ff", "test_accuracy", "passed", "", 3, 3), r"the result is worth 3 points but the rubric says 2"),
        (CheckResult("rnn", "test_accuracy", "passed", "", 1, 1), r"check result for 'rnn', which is not a task of rubric 'dl2025-a2'"),
        (CheckResult("ff-why", "test_accuracy", "passed", "", 1, 1), r"'ff-why', which is a manual task"),
        (CheckResult("ff", "feature_width", "passed", "", 1, 1), r"task 'ff' has no check 'feature_width'; its checks: parameter_count, test_accuracy"),
    ],
)
def test_results_the_rubric_cannot_hold_are_rejected(rubric: Rubric, result: CheckResult, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        score_submission(rubric, "s", "h", [result], {})


def test_too_many_results_for_a_check_are_rejected(rubric: Rubric) -> None:
    results = all_passed() + [passed("ff", "test_accuracy", 2)]
    with pytest.raises(ValueError, match=r"task 'ff' has 1 'test_accuracy' check\(s\) but 2 results came for them"):
        score_submission(rubric, "s", "h", results, {})


@pytest.mark.parametrize(
    ("manual", "match"),
    [
        ({"cnn-why-800": ManualScore(3)}, r"manual task 'cnn-why-800': score 3 is outside \[0, 2\]"),
        ({"cnn": ManualScore(1)}, r"manual score for 'cnn', which is not a manual task"),
        ({"essay": ManualScore(1)}, r"manual score for 'essay'"),
    ],
)
def test_bad_manual_scores_are_rejected(rubric: Rubric, manual: dict[str, ManualScore], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        score_submission(rubric, "s", "h", all_passed(), manual)


def test_load_failure_scores_every_task_zero(rubric: Rubric) -> None:
    reason = "CNNMNIST.ipynb is not a notebook: invalid JSON at line 1 column 1"
    report = score_load_failure(rubric, "doejane_67890", Path("/in/doejane_67890/CNNMNIST.ipynb"), reason, "beef")
    assert report.load_failure == reason
    assert report.score == 0 and report.points == 10
    assert [t.task for t in report.tasks] == ["ff", "ff-why", "cnn", "cnn-why-800"]
    assert report.tasks[0].note == "not graded: CNNMNIST.ipynb could not be loaded"
    assert report.tasks[1].note == NOT_GRADED and report.tasks[1].manual
    assert (report.content_hash, report.rubric_hash) == ("beef", rubric.hash)


def test_load_failure_keeps_manual_scores_when_given(rubric: Rubric) -> None:
    report = score_load_failure(rubric, "s", "s.zip", "not a zip file", manual={"ff-why": ManualScore(1, "from the PDF")})
    assert report.score == 1
    assert report.tasks[1].note == "from the PDF"


def test_manual_items_no_ta_has_graded_are_pending_and_counted_apart(rubric: Rubric) -> None:
    report = score_submission(rubric, "s", "h", all_passed(), {"ff-why": ManualScore(1, "good")})
    assert [t.pending for t in report.tasks] == [False, False, False, True]
    assert (report.score, report.pending_points, report.points) == (8, 2, 10)


def test_a_late_hand_in_loses_the_rubrics_share_of_what_it_earned() -> None:
    rubric = parse_rubric(RUBRIC + "late_penalty: {percent: 10}\n", "dl2025-a2.yaml")
    on_time = score_submission(rubric, "s", "h", all_passed(), FULL_MANUAL)
    late = score_submission(rubric, "s", "h", all_passed(), FULL_MANUAL, late=True)
    assert (on_time.late, on_time.late_penalty, on_time.score) == (False, 0.0, 10)
    assert (late.late, late.late_penalty, late.earned, late.score) == (True, 1.0, 10, 9)


def test_without_a_late_policy_lateness_is_recorded_but_costs_nothing(rubric: Rubric) -> None:
    report = score_submission(rubric, "s", "h", all_passed(), FULL_MANUAL, late=True)
    assert (report.late, report.late_penalty, report.score) == (True, 0.0, 10)


@pytest.mark.parametrize("percent", [0, -5, 101])
def test_a_late_penalty_outside_0_to_100_percent_is_a_rubric_error(percent: float) -> None:
    from harness.errors import RubricError

    with pytest.raises(RubricError, match=r"late_penalty > percent"):
        parse_rubric(RUBRIC + f"late_penalty: {{percent: {percent}}}\n", "dl2025-a2.yaml")


HELD = "the grader could not rebuild your model to confirm its predictions (no class Net is defined in your code)"


def held(task: str, check: str, points: float) -> CheckResult:
    """A passed check whose result rests on predictions the grader could not verify."""
    return CheckResult(task, check, "passed", "", points, points, {"measured": 0.95, "threshold": 0.9}, held=HELD)


def with_held_accuracy() -> list[CheckResult]:
    """Every check passed; the CNN's two accuracy checks (3 points) rest on unverified predictions."""
    return [*all_passed()[:3], held("cnn", "test_accuracy", 1), held("cnn", "test_accuracy", 2)]


def test_points_resting_on_unverified_predictions_are_held_until_a_ta_reviews_them(rubric: Rubric) -> None:
    report = score_submission(rubric, "s", "h", with_held_accuracy(), {})
    cnn = report.tasks[2]
    assert (cnn.score, cnn.held, cnn.review, cnn.note, cnn.pending) == (1.0, 3.0, "pending", "held for a TA's review", False)
    assert [c.score for c in cnn.checks] == [1.0, 1.0, 2.0]  # graded as usual: the check results keep their scores
    assert (report.score, report.held_points, report.pending_points) == (4.0, 3.0, 6.0)  # 6: 3 held + 3 of written answers


def test_a_ta_releases_held_points(rubric: Rubric) -> None:
    report = score_submission(rubric, "s", "h", with_held_accuracy(), {"cnn": Review(True, "the class is in cell 3")})
    cnn = report.tasks[2]
    assert (cnn.score, cnn.review, cnn.note) == (4.0, "released", "held points released by a TA: the class is in cell 3")
    assert (report.score, report.held_points) == (7.0, 0.0)


def test_a_ta_rejects_held_points_with_a_comment(rubric: Rubric) -> None:
    comment = "the recorded class is not the network your notebook trained"
    report = score_submission(rubric, "s", "h", with_held_accuracy(), {"cnn": Review(False, comment)})
    cnn = report.tasks[2]
    assert (cnn.score, cnn.review, cnn.note) == (1.0, "rejected", f"held points rejected by a TA: {comment}")
    assert (report.score, report.held_points) == (4.0, 0.0)
    undecided = score_submission(rubric, "s", "h", with_held_accuracy(), {"cnn": Review(None, "asked the student")})
    assert (undecided.tasks[2].score, undecided.tasks[2].note) == (1.0, "held for a TA's review: asked the student")


def test_a_rubric_may_believe_unverified_predictions(rubric: Rubric) -> None:
    believing = parse_rubric(RUBRIC + "unverified: believe\n", "dl2025-a2.yaml")
    report = score_submission(believing, "s", "h", with_held_accuracy(), {})
    assert (report.score, report.held_points, report.tasks[2].review) == (7.0, 0.0, "")
    with pytest.raises(RubricError, match="unverified"):
        parse_rubric(RUBRIC + "unverified: trust\n", "dl2025-a2.yaml")


def test_a_failed_check_has_nothing_to_hold(rubric: Rubric) -> None:
    results = [*all_passed()[:4], CheckResult("cnn", "test_accuracy", "failed", "too low", 2, 0.0)]
    assert score_submission(rubric, "s", "h", results, {}).tasks[2].review == ""


def test_a_review_names_an_automatic_task(rubric: Rubric) -> None:
    with pytest.raises(ValueError, match="review of held points for 'ff-why', which is not an automatic task"):
        score_submission(rubric, "s", "h", all_passed(), {"ff-why": Review(True)})


def test_a_task_may_believe_what_its_rubric_holds(rubric: Rubric) -> None:
    own = parse_rubric(RUBRIC.replace("    source: CNNMNIST.ipynb\n", "    source: CNNMNIST.ipynb\n    unverified: believe\n"),
                       "dl2025-a2.yaml")
    report = score_submission(own, "s", "h", with_held_accuracy(), {})
    assert (report.score, report.held_points) == (7.0, 0.0)
