"""Checks on how well the model does, measured on the host against hidden labels.

The sandbox saw the hidden evaluation images but never their labels: the probe exported the
model's raw outputs, and the accuracy is computed here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import model_validator

from harness.checks import CheckSpecLike, NotAvailable, Partial, check, reference_value
from harness.rubric import CheckParams, Fraction, NoParams

if TYPE_CHECKING:  # imported where used: registering checks and validating a rubric must not import torch
    from harness.checks.context import CheckContext


def __getattr__(name: str) -> Any:
    """``load_weights_by_order``, kept importable from here, imported from ``harness.checks.verify`` (torch) on first use."""
    if name == "load_weights_by_order":
        from harness.checks.verify import load_weights_by_order

        return load_weights_by_order
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _threshold(ctx: CheckContext, spec: CheckSpecLike) -> tuple[float, str]:
    """The bar a measured value must reach, and how it was set (for the message): a relative bar reads the
    reference's value of what the check declared it measures."""
    if spec.min is not None:
        return float(spec.min), f"{spec.min:.1%}"
    if spec.relative_to_reference is not None:
        reference = reference_value(ctx, spec)
        bar = float(spec.relative_to_reference) * float(reference)
        return bar, f"{bar:.1%} ({spec.relative_to_reference:.0%} of the reference's {reference:.1%})"
    raise RuntimeError(f"check {spec.check} of task {ctx.task_id} needs min or relative_to_reference")


def _predictions(ctx: CheckContext) -> tuple[np.ndarray, np.ndarray]:
    """Predicted classes and hidden labels; fails the check when the exported predictions are not believed.

    The predictions are the exported ones once the host has checked them (``harness.checks.verify``); when
    they contradict the host's own run of the exported weights, the accuracy of that run is measured and
    shown, and the check fails with the reason.
    """
    if ctx.hidden_labels is None:
        raise RuntimeError(f"no hidden labels for task {ctx.task_id}'s dataset {ctx.dataset!r}")
    labels = np.asarray(ctx.hidden_labels)
    verdict = ctx.verified_predictions()
    outputs = verdict.outputs
    assert len(outputs) == len(labels), (
        f"your model returned outputs of shape {tuple(outputs.shape)} for {len(labels)} images; "
        f"expected one row of class scores per image"
    )
    ctx.details["verified"] = verdict.verified
    if verdict.note:
        ctx.details["note"] = verdict.note
    if verdict.held:
        ctx.details["held"] = verdict.held
    return outputs.argmax(dim=1).numpy(), labels


class AccuracyParams(CheckParams):
    """What ``test_accuracy`` and ``per_class_accuracy`` read: exactly one bar,
    ``{min: 0.97}`` (absolute) or ``{relative_to_reference: 0.98}`` (98% of the calibrated reference's)."""

    min: Fraction | None = None
    """The accuracy to reach, a fraction in (0, 1] (0.97, not 97)."""
    relative_to_reference: Fraction | None = None
    """The accuracy to reach as a fraction in (0, 1] of what the reference reached on the same data."""

    @model_validator(mode="after")
    def _one_bar(self) -> AccuracyParams:
        """Exactly one of the two bars."""
        if self.min is None and self.relative_to_reference is None:
            raise ValueError(
                "give the bar to reach: min (an accuracy such as 0.97) or relative_to_reference (such as 0.98)"
            )
        return self


def _believed(ctx: CheckContext, measured: str) -> None:
    """Fail the check when the exported predictions are not believed, quoting what the host measured itself."""
    verdict = ctx.verified_predictions()
    if not verdict.believed:
        ctx.details["believed"] = False
        grader = f" (the grader's own run reaches {measured})" if verdict.verified else ""
        raise AssertionError(verdict.problem + grader)


@check("test_accuracy", params=AccuracyParams, measures={"hidden_accuracy": "measured"})
def check_test_accuracy(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check the model's accuracy on the hidden evaluation images against the rubric's bar."""
    predicted, labels = _predictions(ctx)
    accuracy = float((predicted == labels).mean())
    ctx.details.update(measured=accuracy, images=len(labels))
    bar, how = _threshold(ctx, spec)
    ctx.details["threshold"] = bar
    _believed(ctx, f"{accuracy:.1%} accuracy")
    assert accuracy >= bar, f"accuracy on unseen test images is {accuracy:.1%}; it must reach {how}"


@check("per_class_accuracy", params=AccuracyParams, measures={"hidden_min_class_accuracy": "weakest_class"})
def check_per_class_accuracy(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that every class reaches the bar on the hidden images (partial credit per class)."""
    predicted, labels = _predictions(ctx)
    classes = np.unique(labels)
    per_class = {int(c): float((predicted[labels == c] == c).mean()) for c in classes}
    ctx.details["per_class"] = {str(c): round(a, 4) for c, a in per_class.items()}
    ctx.details["weakest_class"] = min(ctx.details["per_class"].values())
    bar, how = _threshold(ctx, spec)
    ctx.details["threshold"] = bar
    _believed(ctx, f"{min(per_class.values()):.1%} in its weakest class")
    weak = {c: a for c, a in per_class.items() if a < bar}
    if weak:
        listed = ", ".join(f"{c} ({a:.1%})" for c, a in sorted(weak.items()))
        message = f"{len(weak)} of {len(classes)} classes fall below {how}: {listed}"
        raise Partial(1 - len(weak) / len(classes), message)


@check("forward_consistent", params=NoParams)
def check_forward_consistent(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that the exported predictions are what the exported weights compute in the assignment's network.

    The host loads the weights into the reference network and runs it on its own copy of every hidden
    image (``harness.checks.verify``). Only a network whose weights fit the reference's layers can be
    recomputed; for any other the check has nothing to compare and passes (the architecture checks mark
    the difference, and the accuracy checks say their predictions were not verified).
    """
    model = ctx.require_model()
    if not ctx.reference_code:
        raise NotAvailable("recomputing your predictions from your weights needs the assignment's network, which "
                           "only the course's grader has: it is checked when your submission is graded")
    assert ctx.reference_model is not None, "this task has no reference network to recompute predictions with"
    assert model.get("state_dict"), "your model exported no weights to recompute predictions from"
    verdict = ctx.verified_predictions()
    if verdict.agreement is None and verdict.believed:  # another architecture: nothing to recompute with
        ctx.details["applicable"] = False
        if verdict.held:  # nor could a clean rebuild: the consistency it would vouch for is the TA's to judge
            ctx.details["held"] = verdict.held
        return
    ctx.details.update(agreement=verdict.agreement, images=len(verdict.outputs))
    assert verdict.believed, verdict.problem

