"""The idl-ex2 samples graded end to end: each sample's automatic task scores and the messages a student reads.

The samples (``submissions/make_idl_ex2_samples.py``) are code packages: q1.py ... q5.py run in order in
one working folder, so q3.py and q5.py load the checkpoints q1.py and q2.py saved. The reference and
``mnistlib_package`` (a package with thin scripts, another architecture and other names) get every
automatic point; ``bn_not_frozen``, ``keras_trainable`` and ``logits_decoder`` each get question 3
wrong in their own way; ``broken`` crashes in q1.py before saving its checkpoint, which q3.py and
q5.py then cannot load.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.sample_reports import automatic_scores, check_result, failed_checks
from tests.test_samples_hook import EXPECTED as HOOK_EXPECTED

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "idl-ex2"
FULL = {"autoencoder": 7.0, "classifier": 7.0, "classifier-decoding": 7.0, "few-labels": 6.0, "fine-tuning": 6.0}
"""Points of every automatic task."""
MANUAL = (
    "autoencoder-report", "classifier-decoding-discussion", "few-labels-discussion", "fine-tuning-discussion",
    "theory-lti", "theory-ti", "theory-jacobians",
)

EXPECTED = {
    "reference": FULL,
    "mnistlib_package": FULL,
    # shared_weights gives half its 2 points: the parameters stayed, the BatchNorm statistics moved.
    "bn_not_frozen": {**FULL, "classifier-decoding": 6.0},
    # shared_weights (2) fails: the encoder was trained on; so it reconstructs better than the autoencoder of
    # question 1 and reconstruction_compare (1) fails too. Its q2 accuracy curves, divided by the number of
    # batches, read far above 100%: plotted_accuracy (1) fails (the host's own accuracy is right).
    "keras_trainable": {**FULL, "classifier": 6.0, "classifier-decoding": 4.0},
    # bottleneck_width (1) fails: the decoder reads 10 logits, the autoencoder's code has 12 features.
    "logits_decoder": {**FULL, "classifier-decoding": 6.0},
    # q1.py raises after training, before saving: runs_without_error (1) fails, the trained model is still graded.
    # q3.py trains its decoder, then fails loading q1's checkpoint for the comparison: runs_without_error (1) and
    # its figure (1). q5.py fails at once: only within_budget (1) is left.
    "broken": {**FULL, "autoencoder": 6.0, "classifier-decoding": 5.0, "fine-tuning": 1.0},
}

MISSING_CHECKPOINT = "the script raised FileNotFoundError: [Errno 2] No such file or directory: 'checkpoints/autoencoder.pt'"


@pytest.fixture(scope="module")
def reports(graded_samples):
    """Every idl-ex2 sample's report, by student."""
    _, _, reports = graded_samples(ASSIGNMENT)
    return reports








def test_every_sample_is_graded_without_grader_faults(graded_samples) -> None:
    _, summary, reports = graded_samples(ASSIGNMENT)
    assert sorted(reports) == sorted([*EXPECTED, *HOOK_EXPECTED[ASSIGNMENT]])  # the hook samples: test_samples_hook.py
    assert summary.failed_to_load == 0 and not summary.faults
    errors = [
        (student, task.task, result.check, result.message)
        for student, report in reports.items() for task in report.tasks for result in task.checks
        if result.status == "error"
    ]
    assert errors == []


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_automatic_task_scores(reports, student) -> None:
    assert automatic_scores(reports[student]) == pytest.approx(EXPECTED[student], abs=1e-3)


@pytest.mark.parametrize("student", ["reference", "mnistlib_package"])
def test_correct_packages_get_full_automatic_marks(reports, student) -> None:
    report = reports[student]
    assert failed_checks(report) == {}
    assert report.score == pytest.approx(sum(FULL.values()))
    assert [e.source for e in report.executions] == ["q1.py", "q2.py", "q3.py", "q4.py", "q5.py"]
    assert {t.task: t.note for t in report.tasks if t.manual} == dict.fromkeys(MANUAL, "not graded yet")


def test_the_package_is_graded_on_its_own_names(reports) -> None:
    report = reports["mnistlib_package"]
    assert check_result(report, "autoencoder", "bottleneck_width").details["measured"] == 10
    frozen = check_result(report, "classifier-decoding", "shared_weights")
    assert frozen.details["model"] == "clf_ae" and frozen.details["max_change"] == 0.0
    assert check_result(report, "fine-tuning", "shared_weights").details["model"] == "clf_pretrained"


def test_the_reference_encoders_are_frozen_and_fine_tuned(reports) -> None:
    report = reports["reference"]
    frozen = check_result(report, "classifier-decoding", "shared_weights").details
    assert (frozen["model"], frozen["max_change"], frozen["stats_change"]) == ("clf_autoencoder", 0.0, 0.0)
    tuned = check_result(report, "fine-tuning", "shared_weights").details
    assert tuned["model"] == "finetuned_classifier" and 0.0 < tuned["measured"] <= 0.5
    compare = check_result(report, "classifier-decoding", "reconstruction_compare").details
    assert compare["measured"] > compare["other"]  # the classifier's code reconstructs worse than the autoencoder's


def test_batchnorm_left_in_train_mode_is_named(reports) -> None:
    failures = failed_checks(reports["bn_not_frozen"])
    assert list(failures) == [("classifier-decoding", "shared_weights")]
    [message] = failures[("classifier-decoding", "shared_weights")]
    assert message.startswith("the encoder's BatchNorm running statistics changed during training (max change ")
    assert message.endswith("call .eval() on the frozen encoder")
    assert check_result(reports["bn_not_frozen"], "classifier-decoding", "shared_weights").score == 1.0


def test_keras_trainable_is_named(reports) -> None:
    report = reports["keras_trainable"]
    failures = failed_checks(report)
    assert list(failures) == [("classifier", "plotted_accuracy"), ("classifier-decoding", "shared_weights"),
                              ("classifier-decoding", "reconstruction_compare")]
    [accuracy] = failures[("classifier", "plotted_accuracy")]
    assert "above 100%: divide the number of correct predictions by the number of examples" in accuracy
    [frozen] = failures[("classifier-decoding", "shared_weights")]
    assert frozen.startswith("the encoder's weights changed (max change ")
    assert frozen.endswith("`trainable = False` does nothing in PyTorch; set requires_grad_(False) on its parameters")
    [compare] = failures[("classifier-decoding", "reconstruction_compare")]
    assert compare.startswith("this task's model reconstructs unseen images with a mean absolute (L1) error of ")
    assert "it should reconstruct worse than that" in compare
    # The plotted accuracies are wrong, the measured one is not: the host computes it from the model's outputs.
    measured = check_result(report, "classifier", "test_accuracy").details["measured"]
    assert measured == check_result(reports["reference"], "classifier", "test_accuracy").details["measured"]


def test_a_decoder_on_the_logits_is_named(reports) -> None:
    failures = failed_checks(reports["logits_decoder"])
    assert failures == {
        ("classifier-decoding", "bottleneck_width"): [
            "your model's narrowest layer, Linear (encoder.mlp.2), has 10 features per image; the model of task "
            "'autoencoder' has 12 at Linear (encoder.fc): the task asks for the same latent size"
        ]
    }


def test_a_crash_before_the_checkpoint_fails_the_scripts_that_load_it(reports) -> None:
    failures = failed_checks(reports["broken"])
    assert failures[("autoencoder", "runs_without_error")] == [
        "the script raised RuntimeError: Can't call numpy() on Tensor that requires grad. "
        "Use tensor.detach().numpy() instead."
    ]
    assert failures[("classifier-decoding", "runs_without_error")] == [MISSING_CHECKPOINT]
    assert failures[("classifier-decoding", "figure_kind")] == ["your code showed no figures (call plt.show() after each plot)"]
    assert failures[("fine-tuning", "runs_without_error")] == [MISSING_CHECKPOINT]
    [shared] = failures[("fine-tuning", "shared_weights")]
    assert shared.startswith("no model was left after this task's code ran (your code stopped with FileNotFoundError: ")
    assert shared.endswith("so none can hold the weights of the model of task 'autoencoder' (AutoEncoder)")
    assert set(failures) == {
        ("autoencoder", "runs_without_error"),
        ("classifier-decoding", "runs_without_error"),
        ("classifier-decoding", "figure_kind"),
        ("fine-tuning", "runs_without_error"),
        ("fine-tuning", "shared_weights"),
        ("fine-tuning", "test_accuracy"),
        ("fine-tuning", "figure_kind"),
    }
    # q1's model was trained before the crash: it is still graded, and q3 still compares with it.
    assert check_result(reports["broken"], "autoencoder", "reconstruction_error").status == "passed"
    assert check_result(reports["broken"], "classifier-decoding", "reconstruction_compare").status == "passed"


def test_the_sample_folders_match_their_generator() -> None:
    path = ROOT / "submissions" / "make_idl_ex2_samples.py"
    spec = importlib.util.spec_from_file_location("make_idl_ex2_samples", path)
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    folder = ROOT / "submissions" / ASSIGNMENT
    others = set(HOOK_EXPECTED[ASSIGNMENT])  # written by make_hook_samples.py
    assert sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in others) == sorted(generator.SAMPLES)
    for sample, files in generator.SAMPLES.items():
        on_disk = {
            p.relative_to(folder / sample).as_posix(): p.read_text(encoding="utf-8")
            for p in (folder / sample).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        }
        assert on_disk == files, f"{sample}: run python submissions/make_idl_ex2_samples.py"
