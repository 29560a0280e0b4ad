"""Checks on autoencoders: reconstruction error, the bottleneck, the output shape and the reconstruction loss.

The probe exports, for the chosen model, the first evaluation images as the student's code
preprocessed them (``inputs-<dataset>.pt``) and the model's outputs on the evaluation images
(``outputs-<dataset>.pt``, one flattened row per image): the reconstruction error is computed here,
in the student's own pixel scale, from those two files.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import field_validator, model_validator

from harness.checks import CheckSpecLike, check, options, reference_value
from harness.rubric import CheckParams, Count, PositiveNumber, TaskId, did_you_mean
from harness.syntax import parse

if TYPE_CHECKING:  # imported where used: registering checks and validating a rubric must not import torch
    import torch

    from harness.checks.context import CheckContext

METRICS = {"mse": "mean squared error", "l1": "mean absolute (L1) error"}

Metric = Literal["mse", "l1"]
"""How a reconstruction error is measured (keys of ``METRICS``)."""


MEAN_IMAGE_MARGIN = 0.98
"""A reconstruction bar never exceeds this fraction of what predicting the mean image scores (see
``mean_image_error``): a model that outputs the same image for every input, however that image was chosen,
fails every reconstruction-error check, whatever the reference's calibrated error allows."""


def _reconstructions(ctx: CheckContext) -> tuple[torch.Tensor, torch.Tensor]:
    """The chosen model's exported inputs and its outputs on them, one flattened row per image: (N, D) each.

    Fails the check (AssertionError) with the reason when the model exported no inputs or outputs,
    when its outputs are not one image per input, or when the host does not believe them
    (``harness.checks.verify``: inputs that are not the host's test images, outputs its own run contradicts).
    """
    import torch

    model = ctx.require_model()
    relative = (model.get("inputs") or {}).get(ctx.dataset or "")
    if not relative:
        ctx.model_outputs()  # fails with the reason the model produced no outputs, if that is why
        raise AssertionError("your model's inputs on the evaluation images were not exported, so its reconstructions cannot be scored")
    if ctx.hidden_images is not None:  # the exported files held against the host's own images (and run)
        verdict = ctx.verified_predictions()
        assert verdict.believed, verdict.problem
        if verdict.held:
            ctx.details["held"] = verdict.held
    inputs = ctx.load_tensor(relative)
    assert isinstance(inputs, torch.Tensor), "the exported inputs are not a tensor"
    outputs = ctx.model_outputs()[: len(inputs)]
    inputs = inputs.float().reshape(len(inputs), -1)  # (N, 784)
    outputs = outputs.reshape(len(outputs), -1)  # (N, D)
    assert len(outputs) == len(inputs) and len(inputs) > 0, (
        f"your model returned {len(outputs)} outputs for {len(inputs)} images; an autoencoder returns one image per input"
    )
    assert outputs.shape[1] == inputs.shape[1], (
        f"your model returns {outputs.shape[1]:,} values per image for inputs of {inputs.shape[1]:,} values: "
        "an autoencoder's output must have the input's shape"
    )
    return inputs, outputs


def _error(difference: torch.Tensor, metric: str) -> torch.Tensor:
    """The per-pixel error of a difference of images: mean squared (mse) or mean absolute (l1)."""
    return difference.pow(2).mean() if metric == "mse" else difference.abs().mean()


def mean_image_error(inputs: torch.Tensor, metric: str = "mse") -> float:
    """What the best constant prediction scores on ``inputs`` (N, D): the error of predicting, for every input, the
    pixel-wise mean of the inputs (mse) or their pixel-wise median (l1, where the median is the best constant).

    No constant image does better on these inputs, the mean training image included: a bar below this value
    fails every model that ignores its input. Measured in the inputs' own scale (the student's preprocessing).
    """
    centre = inputs.mean(0) if metric == "mse" else inputs.median(0).values  # (D,)
    return float(_error(inputs - centre, metric))


def reconstruction_error(ctx: CheckContext, metric: str = "mse") -> tuple[float, int]:
    """The chosen model's reconstruction error on its exported inputs, and how many images it was measured on.

    Fails the check (AssertionError) with the reason when the reconstructions cannot be scored
    (see ``_reconstructions``).
    """
    import torch

    inputs, outputs = _reconstructions(ctx)
    value = _error(outputs - inputs, metric)
    assert torch.isfinite(value), "your model's reconstructions contain NaN or infinite values"
    ctx.details["ranges"] = {"inputs": [float(inputs.min()), float(inputs.max())],
                             "outputs": [float(outputs.min()), float(outputs.max())]}
    # how much the images vary from one to the next, per pixel: a dead code makes every reconstruction alike
    ctx.details["spread"] = {"inputs": float(inputs.std(0).mean()), "outputs": float(outputs.std(0).mean())}
    return float(value), len(inputs)


def _range_advice(ctx: CheckContext) -> str:
    """Why the error is high when the model cannot reach its inputs' range (a Sigmoid output on normalised pixels)."""
    ranges = ctx.details.get("ranges") or {}
    (low, high), (out_low, out_high) = ranges.get("inputs", (0, 1)), ranges.get("outputs", (0, 1))
    if (low < -0.05 or high > 1.05) and out_low >= 0 and out_high <= 1:
        return (
            f": your inputs run from {low:.3g} to {high:.3g} (normalised) while the outputs stay in [0, 1] (a Sigmoid "
            "output); feed the autoencoder pixels in [0, 1] (transforms.ToTensor() alone), as the assignment does"
        )
    spread = ctx.details.get("spread") or {}
    if spread and spread["outputs"] < 0.25 * spread["inputs"]:
        return (
            f": your reconstructions hardly differ from one image to the next (spread {spread['outputs']:.3g} per pixel "
            f"against the images' {spread['inputs']:.3g}), as if the latent code carried nothing: check that it is not "
            "switched off (a ReLU on the code can leave it all zeros) and that the decoder reads it"
        )
    return ": train longer, or widen the bottleneck if the task allows"


class ReconstructionErrorOptions(CheckParams):
    """The ``params`` of ``reconstruction_error``: ``{metric: l1, max_ratio: 1.5}``."""

    metric: Metric = "mse"
    """How the error is measured per pixel: mse or l1 (default mse)."""
    max_ratio: PositiveNumber | None = None
    """The error may be at most this multiple of the calibrated reference's error in the same task."""


class ReconstructionErrorParams(CheckParams):
    """What ``reconstruction_error`` reads: ``max``, ``params.max_ratio`` or both (the lower bar counts)."""

    max: PositiveNumber | None = None
    """The largest error per pixel allowed, in the student's preprocessing."""
    params: ReconstructionErrorOptions = ReconstructionErrorOptions()
    """Options: ``metric``, ``max_ratio``."""

    @model_validator(mode="after")
    def _some_bar(self) -> ReconstructionErrorParams:
        """At least one bar."""
        if self.max is None and self.params.max_ratio is None:
            raise ValueError("give the bar: max (an error per pixel) or params.max_ratio (a multiple of the reference's)")
        return self


@check("reconstruction_error", params=ReconstructionErrorParams, measures={"reconstruction_error": "measured"})
def check_reconstruction_error(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check the model's reconstruction error on the evaluation images against ``max`` and/or ``params.max_ratio``.

    params: ``metric`` (mse | l1, default mse, per pixel, in the student's preprocessing);
    ``max_ratio``: the error may be at most this multiple of the calibrated reference's (its measured
    ``reconstruction_error`` in the same task).
    """
    given = options(spec, ReconstructionErrorOptions)
    metric, ratio = given.metric, given.max_ratio
    error, images = reconstruction_error(ctx, metric)
    baseline = mean_image_error(_reconstructions(ctx)[0], metric)
    ctx.details.update(measured=error, images=images, metric=metric, mean_image=baseline)
    bars: list[tuple[float, str]] = []
    if spec.max is not None:
        bars.append((float(spec.max), f"{spec.max:.4g}"))
    if ratio is not None:
        reference = reference_value(ctx, spec)
        bars.append((float(ratio) * float(reference), f"{float(ratio) * float(reference):.4g} ({float(ratio):g}x the reference's {float(reference):.4g})"))
    if not bars:
        raise RuntimeError(f"check reconstruction_error of task {ctx.task_id} needs max or params.max_ratio")
    floor = MEAN_IMAGE_MARGIN * baseline
    if floor < min(bars)[0]:  # the rubric's bar would let a model that ignores its input pass
        ctx.details["capped_by_mean_image"] = True
        bars.append((floor, (
            f"{floor:.4g}, just below the {baseline:.4g} that predicting the mean image for every input scores: "
            f"a model must reconstruct each image better than that"
        )))
    bar, how = min(bars)
    ctx.details["threshold"] = bar
    assert error <= bar, (
        f"your model reconstructs unseen images with a {METRICS[metric]} of {error:.4g} per pixel; it must be at most "
        f"{how}{_range_advice(ctx)}"
    )


class ReconstructionCompareOptions(CheckParams):
    """The ``params`` of ``reconstruction_compare``: ``{task: autoencoder, relation: worse}``."""

    task: TaskId
    """The task whose model this task's model is compared with (graded earlier)."""
    relation: Literal["worse", "better"]
    """How this task's model must reconstruct compared with the other: worse or better."""
    metric: Metric = "mse"
    """How the error is measured per pixel: mse or l1 (default mse)."""


class ReconstructionCompareParams(CheckParams):
    """What ``reconstruction_compare`` reads: its ``params``."""

    params: ReconstructionCompareOptions
    """Options: ``task`` and ``relation`` (required), ``metric``."""


@check("reconstruction_compare", params=ReconstructionCompareParams)
def check_reconstruction_compare(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that this task's model reconstructs worse (or better) than another task's model.

    params: ``task`` (the other task's id, graded earlier), ``relation`` (worse | better), ``metric``
    (mse | l1). Both errors are measured on the same evaluation images in each model's own preprocessing.
    """
    given = options(spec, ReconstructionCompareOptions)
    metric, relation, other_id = given.metric, given.relation, given.task
    other = ctx.require_related(other_id)
    error, _ = reconstruction_error(ctx, metric)
    try:
        other_error, _ = reconstruction_error(other, metric)
    except AssertionError as reason:
        raise AssertionError(f"the model of task {other_id!r} cannot be compared with: {reason}") from None
    ctx.details.update(measured=error, other=other_error, metric=metric)
    holds = error > other_error if relation == "worse" else error < other_error
    assert holds, (
        f"this task's model reconstructs unseen images with a {METRICS[metric]} of {error:.4g}, the model of task "
        f"{other_id!r} with {other_error:.4g}; it should reconstruct {relation} than that: check that each model is "
        f"trained as its task describes (here: {ctx.model_note}; task {other_id!r}: {other.model_note})"
    )


def _width(shape: list[int]) -> int:
    return math.prod(shape[1:]) if len(shape) > 1 else shape[0]


def bottleneck(ctx: CheckContext) -> tuple[int, str]:
    """The narrowest layer output (features per example) in the chosen model's forward pass, and that layer."""
    model = ctx.require_model()
    shapes = [entry for entry in model.get("layer_shapes", []) if isinstance(entry.get("output_shape"), list) and entry["output_shape"]]
    if not shapes:
        error = model.get("forward_error")
        raise AssertionError(
            f"your model's forward pass fails on a batch of images ({error})" if error
            else "no layer of your model ran on a batch of images, so its bottleneck cannot be measured"
        )
    narrowest = min(shapes, key=lambda entry: _width(entry["output_shape"]))
    return _width(narrowest["output_shape"]), f"{narrowest['type']} ({narrowest['path']})"


class BottleneckOptions(CheckParams):
    """The ``params`` of ``bottleneck_width``: ``{same_as_task: autoencoder}``."""

    same_as_task: TaskId | None = None
    """A task (graded earlier) whose model's latent size this model must have."""


class BottleneckParams(CheckParams):
    """What ``bottleneck_width`` reads: ``equals``, ``min`` and/or ``max``, or ``params.same_as_task``."""

    equals: Count | None = None
    """The latent size the model must have (features per image at its narrowest layer)."""
    min: Count | None = None
    """The smallest latent size allowed."""
    max: Count | None = None
    """The largest latent size allowed."""
    params: BottleneckOptions = BottleneckOptions()
    """Options: ``same_as_task``."""

    @model_validator(mode="after")
    def _one_way(self) -> BottleneckParams:
        """Either the bounds or another task's latent size."""
        bounds = self.equals is not None or self.min is not None or self.max is not None
        if bounds == (self.params.same_as_task is not None):
            raise ValueError("give the latent size by equals, min and/or max, or by params.same_as_task: one of the two")
        return self


@check("bottleneck_width", params=BottleneckParams)
def check_bottleneck_width(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check the narrowest layer output (the latent size) of the model: ``min``/``max``/``equals``, or ``params.same_as_task``."""
    width, layer = bottleneck(ctx)
    ctx.details.update(measured=width, layer=layer)
    same_as = options(spec, BottleneckOptions).same_as_task
    if same_as is not None:
        other = ctx.require_related(str(same_as))
        try:
            expected, other_layer = bottleneck(other)
        except AssertionError as reason:
            raise AssertionError(f"the model of task {same_as!r} cannot be compared with: {reason}") from None
        ctx.details["expected"] = expected
        assert width == expected, (
            f"your model's narrowest layer, {layer}, has {width:,} features per image; the model of task {same_as!r} "
            f"has {expected:,} at {other_layer}: the task asks for the same latent size"
        )
        return
    if spec.equals is not None:
        assert width == spec.equals, (
            f"your model's narrowest layer, {layer}, has {width:,} features per image; the task asks for {spec.equals}"
        )
        return
    if spec.min is None and spec.max is None:
        raise RuntimeError(f"check bottleneck_width of task {ctx.task_id} needs min, max, equals or params.same_as_task")
    if spec.min is not None:
        assert width >= spec.min, (
            f"your model's narrowest layer, {layer}, has {width:,} features per image; the task asks for at least {spec.min:g}"
        )
    if spec.max is not None:
        assert width <= spec.max, (
            f"your model's narrowest layer, {layer}, has {width:,} features per image; the task asks for a bottleneck "
            f"of at most {spec.max:g} (a latent space of around that size)"
        )


class OutputShapeOptions(CheckParams):
    """The ``params`` of ``output_shape``: ``{shape: [1, 28, 28]}``."""

    shape: list[Count] | None = None
    """The output's shape per example, without the batch dimension ([1, 28, 28])."""


class OutputShapeParams(CheckParams):
    """What ``output_shape`` reads: ``params.shape`` (or ``equals`` with the same list)."""

    equals: list[Count] | None = None
    """The output's shape per example, as ``params.shape``."""
    params: OutputShapeOptions = OutputShapeOptions()
    """Options: ``shape``."""

    @model_validator(mode="after")
    def _one_shape(self) -> OutputShapeParams:
        """Exactly one place gives the shape."""
        if (self.equals is None) == (self.params.shape is None):
            raise ValueError("give the shape per example once: params.shape (e.g. [1, 28, 28])")
        return self


@check("output_shape", params=OutputShapeParams)
def check_output_shape(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check the model's output shape per example on the dummy batch (``params.shape``, e.g. [1, 28, 28])."""
    expected = options(spec, OutputShapeOptions).shape or spec.equals
    if not isinstance(expected, list) or not all(isinstance(d, int) for d in expected):
        raise RuntimeError(f"check output_shape of task {ctx.task_id} needs params.shape, a list of sizes like [1, 28, 28]")
    model = ctx.require_model()
    shape = model.get("output_shape")
    if shape is None:
        error = model.get("forward_error")
        raise AssertionError(f"your model's forward pass fails on a batch of images ({error})" if error else
                             "your model produced no output on a batch of images")
    got = list(shape[1:])
    ctx.details.update(measured=got, expected=expected)
    wanted = " x ".join(map(str, expected))
    if got == expected:
        return
    if math.prod(got) == math.prod(expected):
        raise AssertionError(
            f"your model returns {' x '.join(map(str, got)) or 'a scalar'} values per image; the task asks for {wanted}: "
            f"reshape the decoder's output (x.view(-1, {', '.join(map(str, expected))}))"
        )
    raise AssertionError(f"your model returns {' x '.join(map(str, got)) or 'a scalar'} values per image; the task asks for {wanted}")


_LOSSES: dict[str, str] = {
    "L1Loss": r"\bL1Loss\b|\bl1_loss\b|\babs\(\s*[^()]*-[^()]*\)\s*\.mean\(|\(\s*[^()]*-[^()]*\)\s*\.abs\(\)\s*\.mean\(",
    "MSELoss": r"\bMSELoss\b|\bmse_loss\b|\(\s*[^()]*-[^()]*\)\s*(?:\*\*\s*2|\.pow\(2\))\s*\)?\s*\.mean\(",
    "BCELoss": r"\bBCELoss\b|\bbinary_cross_entropy\b(?!_with)",
    "BCEWithLogitsLoss": r"\bBCEWithLogitsLoss\b|\bbinary_cross_entropy_with_logits\b",
    "CrossEntropyLoss": r"\bCrossEntropyLoss\b|\bcross_entropy\b",
    "NLLLoss": r"\bNLLLoss\b|\bnll_loss\b",
    "SmoothL1Loss": r"\bSmoothL1Loss\b|\bsmooth_l1_loss\b",
    "HuberLoss": r"\bHuberLoss\b|\bhuber_loss\b",
}
"""Per nn loss class: its class name, its functional form and, for L1/MSE, the usual hand-written means."""


def losses_in_code(ctx: CheckContext) -> set[str]:
    """Losses the student's code uses: loss objects the probe found in the namespace, and forms in the source."""
    found = {entry.type for entry in (ctx.probe.losses if ctx.probe else ())}
    found |= {name for name, pattern in _LOSSES.items() if re.search(pattern, ctx.source_text)}
    return found


class LossUsedParams(CheckParams):
    """What ``loss_used`` reads: ``{check: loss_used, equals: L1Loss}``."""

    equals: str
    """The loss the code must train with: the name of a torch.nn loss class (L1Loss, MSELoss, BCELoss...)."""

    @field_validator("equals")
    @classmethod
    def _a_torch_loss(cls, name: str) -> str:
        """The name of a torch.nn loss class, so a typo does not fail every student."""
        if name not in torch_loss_names():
            hint = did_you_mean(name, torch_loss_names())
            raise ValueError(f"{name!r} is not a torch.nn loss class{hint}; e.g. {', '.join(_LOSSES)}")
        return name


@functools.cache
def torch_loss_names() -> tuple[str, ...]:
    """The names of torch.nn's loss classes (``L1Loss``, ``MSELoss``...), sorted.

    Read from the ``__all__`` of torch's installed ``nn/modules/__init__.py`` (the names ``torch.nn`` exports),
    as :func:`harness.rubric.spec_signature` reads a model spec: importing torch takes seconds, and validating
    a rubric needs only the names. torch itself is imported only when that file cannot be read that way.
    """
    found = importlib.util.find_spec("torch")  # finds the package without importing it
    try:
        if found is None or not found.submodule_search_locations:
            raise OSError("torch is not an installed package")
        init = Path(found.submodule_search_locations[0]) / "nn" / "modules" / "__init__.py"
        tree = parse(init.read_text(encoding="utf-8"))
        listed = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                      and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets))
        return tuple(sorted(n for n in listed if isinstance(n, str) and n.endswith("Loss")))
    except (OSError, SyntaxError, ValueError, StopIteration):
        import torch

        return tuple(sorted(n for n, v in vars(torch.nn).items() if n.endswith("Loss") and isinstance(v, type)))


@check("loss_used", params=LossUsedParams)
def check_loss_used(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that the code trains with the loss the task names (``equals: L1Loss``): an nn loss or its functional form."""
    expected = spec.equals
    if not isinstance(expected, str) or not expected:
        raise RuntimeError(f"check loss_used of task {ctx.task_id} needs equals: the loss class name (L1Loss, MSELoss...)")
    ctx.require_work("the loss in your code never trained anything")
    used = losses_in_code(ctx)
    ctx.details.update(measured=sorted(used), expected=expected)
    if expected in used:
        return
    functional = {"L1Loss": "F.l1_loss", "MSELoss": "F.mse_loss", "BCELoss": "F.binary_cross_entropy"}.get(expected)
    how = f"nn.{expected}()" + (f" or {functional}" if functional else "")
    assert used, f"no loss function was found in your code; the task asks for {expected}: use {how}"
    raise AssertionError(f"your code uses {', '.join(sorted(used))}; the task asks for {expected}: use {how}")
