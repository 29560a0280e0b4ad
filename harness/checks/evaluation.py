"""Checks on how well the model does, measured on the host against hidden labels.

The sandbox saw the hidden evaluation images but never their labels: the probe exported the
model's raw outputs, and the accuracy is computed here.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import model_validator

from harness.checks import CheckSpecLike, Partial, check
from harness.checks.context import CheckContext
from harness.rubric import CheckParams, Fraction, NoParams


def _threshold(ctx: CheckContext, spec: CheckSpecLike, metric: str) -> tuple[float, str]:
    """The bar a measured value must reach, and how it was set (for the message)."""
    if spec.min is not None:
        return float(spec.min), f"{spec.min:.1%}"
    if spec.relative_to_reference is not None:
        reference = ctx.reference_metrics.get(metric)
        if reference is None:
            raise RuntimeError(f"no calibrated reference value {metric!r} for task {ctx.task_id}: run `gradebench calibrate`")
        bar = float(spec.relative_to_reference) * float(reference)
        return bar, f"{bar:.1%} ({spec.relative_to_reference:.0%} of the reference's {reference:.1%})"
    raise RuntimeError(f"check {spec.check} of task {ctx.task_id} needs min or relative_to_reference")


def _predictions(ctx: CheckContext) -> tuple[np.ndarray, np.ndarray]:
    outputs = ctx.model_outputs()
    if ctx.hidden_labels is None:
        raise RuntimeError(f"no hidden labels for task {ctx.task_id}'s dataset {ctx.dataset!r}")
    labels = np.asarray(ctx.hidden_labels)
    assert outputs.ndim == 2 and len(outputs) == len(labels), (
        f"your model returned outputs of shape {tuple(outputs.shape)} for {len(labels)} images; "
        f"expected one row of class scores per image"
    )
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


@check("test_accuracy", params=AccuracyParams)
def check_test_accuracy(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check the model's accuracy on the hidden evaluation images against the rubric's bar."""
    predicted, labels = _predictions(ctx)
    accuracy = float((predicted == labels).mean())
    ctx.details.update(measured=accuracy, images=len(labels))
    bar, how = _threshold(ctx, spec, "hidden_accuracy")
    ctx.details["threshold"] = bar
    assert accuracy >= bar, f"accuracy on unseen test images is {accuracy:.1%}; it must reach {how}"


@check("per_class_accuracy", params=AccuracyParams)
def check_per_class_accuracy(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that every class reaches the bar on the hidden images (partial credit per class)."""
    predicted, labels = _predictions(ctx)
    classes = np.unique(labels)
    per_class = {int(c): float((predicted[labels == c] == c).mean()) for c in classes}
    ctx.details["per_class"] = {str(c): round(a, 4) for c, a in per_class.items()}
    bar, how = _threshold(ctx, spec, "hidden_min_class_accuracy")
    ctx.details["threshold"] = bar
    weak = {c: a for c, a in per_class.items() if a < bar}
    if weak:
        listed = ", ".join(f"{c} ({a:.1%})" for c, a in sorted(weak.items()))
        message = f"{len(weak)} of {len(classes)} classes fall below {how}: {listed}"
        raise Partial(1 - len(weak) / len(classes), message)


@check("forward_consistent", params=NoParams)
def check_forward_consistent(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that the exported predictions are what the exported weights compute in the assignment's network.

    Only a network whose weights fit the reference's layers can be recomputed; for any other the
    check has nothing to compare and passes (the architecture checks mark the difference).
    """
    model = ctx.require_model()
    inputs_file = (model.get("inputs") or {}).get(ctx.dataset or "")
    assert ctx.reference_model is not None, "this task has no reference network to recompute predictions with"
    assert model.get("state_dict") and inputs_file, "your model exported no weights or inputs to recompute predictions from"
    state = ctx.load_tensor(model["state_dict"])
    reference = load_weights_by_order(ctx.reference_model, state)
    if reference is None:  # another architecture (marked down elsewhere): nothing to recompute with, nothing to hold against it
        ctx.details["applicable"] = False
        return
    inputs = ctx.load_tensor(inputs_file)
    outputs = ctx.model_outputs()[: len(inputs)]
    with torch.inference_mode():
        recomputed = reference.eval()(inputs.float())
    agree = float((recomputed.argmax(1) == outputs.argmax(1)).float().mean())
    ctx.details.update(agreement=agree, images=len(inputs))
    assert agree >= 0.99, (
        f"your model's exported predictions disagree with what its own weights compute in the assignment's network "
        f"on {1 - agree:.1%} of {len(inputs)} images: its forward pass does something other than its layers"
    )


def load_weights_by_order(reference: torch.nn.Module, state: dict[str, torch.Tensor]) -> torch.nn.Module | None:
    """Load a student's state_dict into the reference module by order and shape (names differ); None if it does not fit."""
    if not isinstance(state, dict):
        return None
    target = reference.state_dict()
    ours = [(k, v) for k, v in state.items() if isinstance(v, torch.Tensor) and not k.endswith("num_batches_tracked")]
    theirs = [(k, v) for k, v in target.items() if not k.endswith("num_batches_tracked")]
    if len(ours) != len(theirs) or any(a.shape != b.shape for (_, a), (_, b) in zip(ours, theirs)):
        return None
    reference.load_state_dict({k: v for (k, _), (_, v) in zip(theirs, ours)}, strict=False)
    return reference
