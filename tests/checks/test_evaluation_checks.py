"""Accuracy checks on hidden labels, partial credit, and recomputing predictions from exported weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.checks import run_check
from harness.checks.evaluation import load_weights_by_order
from reference.classifiers import CNN
from tests.checks.conftest import Spec


class Oracle(nn.Module):
    """A 'model' whose predictions are fixed: right for the first ``correct`` images of each class."""

    def __init__(self, labels: np.ndarray, wrong_classes: set[int] = frozenset(), fraction_wrong: float = 0.5) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        predicted = labels.copy()
        for c in wrong_classes:
            idx = np.flatnonzero(labels == c)
            predicted[idx[: int(len(idx) * fraction_wrong)]] = (c + 1) % 10
        self.register_buffer("table", torch.nn.functional.one_hot(torch.as_tensor(predicted), 10).float())

    def forward(self, x):
        return torch.log_softmax(self.table[: len(x)] * 10 * self.scale, dim=1)


def test_test_accuracy_absolute_and_relative(make_context, digits) -> None:
    images, labels = digits
    ctx = make_context(Oracle(labels, {3}, 0.5), images=images, hidden_labels=labels, reference_metrics={"hidden_accuracy": 0.98})
    assert run_check(ctx, Spec("test_accuracy", min=0.9)).status == "passed"  # 95%
    result = run_check(ctx, Spec("test_accuracy", relative_to_reference=0.99, points=3))
    assert (result.status, result.score) == ("failed", 0.0)
    assert result.message == "accuracy on unseen test images is 95.0%; it must reach 97.0% (99% of the reference's 98.0%)"


def test_relative_threshold_without_calibration_is_a_harness_error(make_context, digits) -> None:
    images, labels = digits
    ctx = make_context(Oracle(labels), images=images, hidden_labels=labels)
    result = run_check(ctx, Spec("test_accuracy", relative_to_reference=0.98))
    assert result.status == "error"
    assert result.message.startswith("RuntimeError: no calibrated reference value 'hidden_accuracy' for task ")
    assert result.message.endswith(  # the TA learns what to do: `gradebench calibrate` trains references, it sets no bar
        ": grade with the reference submission (--reference DIR, or submissions/<assignment>/reference) to calibrate "
        "relative bars"
    )


def test_per_class_accuracy_gives_partial_credit(make_context, digits) -> None:
    images, labels = digits
    ctx = make_context(Oracle(labels, {4, 9}, 0.5), images=images, hidden_labels=labels)
    result = run_check(ctx, Spec("per_class_accuracy", min=0.9, points=2))
    assert result.status == "failed"
    assert result.score == pytest.approx(1.6)
    assert result.message == "2 of 10 classes fall below 90.0%: 4 (50.0%), 9 (50.0%)"
    full = run_check(make_context(Oracle(labels), images=images, hidden_labels=labels), Spec("per_class_accuracy", min=0.9))
    assert full.status == "passed"


def test_accuracy_without_predictions_says_why(make_context) -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(10, 10)

        def forward(self, x):
            return self.fc(x)  # (B, 1, 28, 28) does not fit Linear(10)

    ctx = make_context(Broken(), images=torch.rand(20, 1, 28, 28), hidden_labels=np.zeros(20, dtype=int))
    result = run_check(ctx, Spec("test_accuracy", min=0.5))
    assert result.status == "failed"
    assert result.message.startswith("your model produced no predictions on the evaluation images: RuntimeError")


def test_forward_consistent_passes_for_an_honest_model(make_context, digits) -> None:
    images, _ = digits
    ctx = make_context(CNN(), reference=CNN(), images=images)
    assert run_check(ctx, Spec("forward_consistent")).status == "passed"


def test_forward_consistent_catches_faked_predictions(make_context, digits) -> None:
    class Faker(CNN):
        def forward(self, x):
            real = super().forward(x)
            return torch.roll(real, shifts=1, dims=1)  # the exported outputs are not what the layers compute

    images, _ = digits
    ctx = make_context(Faker(), reference=CNN(), images=images)
    result = run_check(ctx, Spec("forward_consistent"))
    assert (result.status, result.message) == ("failed", (
        "the predictions your notebook exported are not what your network computes on the test images: the grader "
        "ran the weights it exported in the assignment's network on all 200 test images, and the predictions differ "
        "on 100.0% of them"))


def test_load_weights_by_order_refuses_a_different_network() -> None:
    assert load_weights_by_order(CNN(), {"w": torch.zeros(3)}) is None
    student = CNN()
    loaded = load_weights_by_order(CNN(), {f"layer{i}": v for i, v in enumerate(student.state_dict().values())})
    assert loaded is not None
    assert torch.equal(loaded.main[0].weight, student.main[0].weight)


def test_forward_consistent_does_not_apply_to_another_architecture(make_context, digits) -> None:
    from reference.mistakes import CNNWithoutSecondPool

    images, _ = digits
    result = run_check(make_context(CNNWithoutSecondPool(), reference=CNN(), images=images), Spec("forward_consistent"))
    assert result.status == "passed"
    assert result.details == {"applicable": False}
