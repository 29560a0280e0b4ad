"""Hold what the student's process exported against what the host can check itself.

The probe runs inside the student's process, after their code, and that code can replace it: every
file in the artifacts folder is the student's claim. Before a check believes the predictions a model
exported, the host compares them with what it knows on its own:

- the evaluation images: the host wrote them, so the exported outputs must have one finite row per
  image, and the exported inputs must be those images, scaled and normalised per channel
  (``ToTensor`` and ``Normalize``: ``scale * pixel / 255 + shift``) and nothing else;
- the network: where the task fixes the architecture, the recorded layers are the reference's one to
  one and the exported weights fit it, the host loads them into the reference network, runs it on its
  own copy of every evaluation image (normalised as the student's inputs were) and the exported
  predictions must agree with that run.

Where the host cannot rebuild the network (a student's own class, or layers that differ from the
reference's), a second, clean sandboxed process builds the student's class again from their definitions
alone and runs the exported weights on every evaluation image (``harness.checks.rebuild``); the exported
predictions must agree with that run. Only where that process cannot build it either (constructor
arguments that are no plain values, definitions that need the run) are the exported predictions used as
they are, said to be unverified, with the reason (``Verdict.unverified``): a check whose result rests on
them holds its points for a TA's review (``CheckResult.held``) unless the rubric says ``unverified: believe``.
``CheckContext.verified_predictions`` makes the verdict once per task context.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.engines.base import RunSettings

EXPORTED_INPUTS = RunSettings.export_inputs
"""Evaluation images the probe exports after the student's preprocessing (the first ones): the inputs file
holds exactly ``min(EXPORTED_INPUTS, images)`` rows."""

AGREEMENT = 0.99
"""Share of the evaluation images on which the exported outputs must agree with the host's run (``agreement_of``)."""

RECOMPUTE_BATCH = 1_000
"""Images per forward pass when the host recomputes predictions."""

UNVERIFIED_NOTE = "outputs not verified: your model's class cannot be rebuilt on the grader"
"""Said beside a result computed from predictions the host could not recompute."""


class Forgery(AssertionError):
    """The exported files contradict what the host knows (rows, test images): not something honest code writes.

    An ``AssertionError``, so the check that meets it fails with its message; the architecture checks also
    stop believing the rest of the model's record.
    """


@dataclass(frozen=True)
class Normalisation:
    """How the student's code turned the evaluation images into model inputs: per channel ``scale * x + shift``."""

    scale: tuple[float, ...]
    """Per channel: the factor on the pixel value in [0, 1] (``1 / std`` of a ``Normalize``)."""
    shift: tuple[float, ...]
    """Per channel: the offset added (``-mean / std`` of a ``Normalize``)."""
    example_shape: tuple[int, ...]
    """One input's shape as the model was fed it (``(1, 28, 28)`` or ``(784,)``)."""

    def apply(self, images: np.ndarray) -> torch.Tensor:
        """The model inputs for uint8 ``images`` (N, H, W) or (N, H, W, C), shaped (N, *example_shape), float32."""
        pixels = _channels_first(images).astype(np.float32) / np.float32(255.0)  # (N, C, H, W), as ToTensor
        scale = np.asarray(self.scale, dtype=np.float32).reshape(1, -1, 1, 1)
        shift = np.asarray(self.shift, dtype=np.float32).reshape(1, -1, 1, 1)
        return torch.from_numpy(pixels * scale + shift).reshape(len(images), *self.example_shape)


@dataclass(frozen=True)
class Verdict:
    """What the host made of a model's exported predictions on one dataset."""

    outputs: torch.Tensor
    """The predictions a result is computed from: the exported ones when they are believed, else the host's own."""
    believed: bool
    """False when the exported predictions contradict what the host can check (``problem`` says how)."""
    verified: bool
    """True when the host recomputed the predictions itself and they agreed."""
    problem: str = ""
    """Why the exported predictions are not believed, for the student; empty when they are."""
    note: str = ""
    """How the predictions were checked, for the report."""
    agreement: float | None = None
    """Share of images on which the exported and recomputed predictions pick the same class (when recomputed)."""
    unverified: str = ""
    """Why the host could not recompute believed predictions (the rebuild's reason), for the student and the TA;
    empty when it recomputed them or does not believe them. A result resting on them is held for a TA's review."""

    @property
    def held(self) -> str:
        """What a check resting on these predictions says when it holds its points for a TA (empty: nothing held)."""
        if not (self.believed and not self.verified):
            return ""
        return f"the grader could not rebuild your model to confirm its predictions ({self.unverified or 'no reason recorded'})"


def _channels_first(images: np.ndarray) -> np.ndarray:
    """Evaluation images as (N, C, H, W): greyscale (N, H, W) gains a channel, colour (N, H, W, C) is transposed."""
    if images.ndim == 4:
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return images[:, None]


def check_outputs(outputs: Any, images: int) -> torch.Tensor:
    """The exported outputs as float (N, C): ``Forgery`` unless one row per image, AssertionError for non-finite ones."""
    if not isinstance(outputs, torch.Tensor):
        raise Forgery("the exported predictions are not a tensor")
    if outputs.ndim != 2 or len(outputs) != images:
        raise Forgery(
            f"your model returned outputs of shape {tuple(outputs.shape)} for {images:,} images; "
            f"expected one row of class scores per image"
        )
    outputs = outputs.float()
    bad = int((~torch.isfinite(outputs)).any(dim=1).sum())
    assert bad == 0, (
        f"your model's outputs on {bad:,} of the {images:,} test images contain NaN or infinite values: "
        "check the training (a learning rate too high diverges) and the forward pass (a log of 0)"
    )
    return outputs


def find_normalisation(inputs: Any, images: np.ndarray) -> Normalisation:
    """How ``inputs`` (the exported first evaluation images, preprocessed) were made from the host's ``images``.

    Raises ``Forgery`` unless the inputs file holds the first ``EXPORTED_INPUTS`` images, each equal to
    the host's image under one scale and shift per channel (to float32 rounding).
    """
    expected = min(len(images), EXPORTED_INPUTS)
    forged = "the predictions your notebook exported cannot be believed"
    if not (isinstance(inputs, torch.Tensor) and inputs.ndim >= 2):
        raise Forgery(f"the exported test images are not a batch of tensors: {forged}")
    if len(inputs) != expected:
        raise Forgery(
            f"your notebook exported {len(inputs):,} test image{'' if len(inputs) == 1 else 's'} with its predictions; "
            f"the grader gave it {len(images):,} and expects the first {expected:,} back: {forged}"
        )
    host = _channels_first(np.asarray(images[:expected])).astype(np.float64) / 255.0  # (k, C, H, W)
    channels = host.shape[1]
    theirs = inputs.detach().double().reshape(expected, -1).numpy()
    if theirs.shape[1] != host[0].size:
        raise Forgery(
            f"the test images your notebook exported have {theirs.shape[1]:,} values each; the grader's have "
            f"{host[0].size:,}: {forged}"
        )
    theirs = theirs.reshape(expected, channels, -1)  # (k, C, H * W)
    host = host.reshape(expected, channels, -1)
    scale, shift = [], []
    for channel in range(channels):
        fit = _affine_fit(host[:, channel].ravel(), theirs[:, channel].ravel())
        if fit is None:
            raise Forgery(
                "the test images your notebook exported are not the grader's test images (after scaling and "
                f"normalisation): {forged}"
            )
        scale.append(fit[0])
        shift.append(fit[1])
    return Normalisation(tuple(scale), tuple(shift), tuple(inputs.shape[1:]))


def _affine_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """``(a, b)`` with ``y == a * x + b`` to float32 rounding (least squares, then the worst residual); else None."""
    if not np.isfinite(y).all() or x.var() == 0:
        return None
    a = float(((x - x.mean()) * (y - y.mean())).mean() / x.var())
    b = float(y.mean() - a * x.mean())
    if abs(a) < 1e-3:  # a constant: the inputs carry no image at all
        return None
    # float32 arithmetic of ToTensor and Normalize leaves about 1e-7 of the values' size; far below one grey level
    tolerance = 1e-4 * max(1.0, abs(a), abs(b))
    return (a, b) if float(np.abs(y - (a * x + b)).max()) <= tolerance else None


def load_weights_by_order(reference: torch.nn.Module, state: Any) -> torch.nn.Module | None:
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


def recompute(network: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``network``'s outputs (N, D) on ``inputs``, in evaluation mode, in batches (a tuple's first tensor, flattened,
    as the probe exports them)."""
    network.eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(inputs), RECOMPUTE_BATCH):
            output = network(inputs[start : start + RECOMPUTE_BATCH])
            while isinstance(output, (tuple, list)) and output:
                output = output[0]
            chunks.append(output.float().reshape(len(output), -1))
    return torch.cat(chunks)


def _recompute_on(network: torch.nn.Module, normalisation: Normalisation, images: np.ndarray) -> torch.Tensor:
    """The network's outputs on the host's images, shaped as the student fed them, else as images (C, H, W)."""
    inputs = normalisation.apply(images)
    try:
        return recompute(network, inputs)
    except Exception:  # e.g. flat (N, 784) inputs for a network that takes (N, 1, 28, 28)
        return recompute(network, inputs.reshape(len(images), *_channels_first(images[:1]).shape[1:]))


def agreement_of(exported: torch.Tensor, recomputed: torch.Tensor, input_width: int) -> float:
    """Share of rows on which the exported outputs agree with the host's.

    An output as wide as the input is an image (an autoencoder's reconstruction): its row agrees when every
    value is within 1e-3 (plus 1e-3 relative) of the host's. A narrower output holds class scores: its row
    agrees when it picks the same class, so a Softmax beside the reference's LogSoftmax still agrees.
    """
    if exported.shape != recomputed.shape:
        return 0.0
    if exported.shape[1] == input_width:
        close = (exported - recomputed).abs() <= 1e-3 + 1e-3 * recomputed.abs()
        return float(close.all(dim=1).float().mean())
    return float((recomputed.argmax(1) == exported.argmax(1)).float().mean())


def same_layers(recorded: Any, reference: torch.nn.Module) -> bool:
    """Whether the recorded leaf layers are the reference's, one to one: types and hyperparameters, in order.

    Only then is the reference network the student's network: one that differs even in a layer without
    weights (a ReLU on an autoencoder's code) computes something else from the same weights.
    """
    from harness.architecture import describe_layers

    def key(layers: Any) -> list[str]:
        return [json.dumps([layer.get("type"), layer.get("hyper")], sort_keys=True) for layer in layers]

    try:
        return isinstance(recorded, list) and key(recorded) == key(describe_layers(reference))
    except (AttributeError, TypeError, ValueError):
        return False


def _verify_rebuilt(
    outputs: torch.Tensor, rebuilt: torch.Tensor | str, normalisation: Normalisation, images: int
) -> Verdict:
    """The verdict when a second, clean process rebuilt the student's class: ``rebuilt`` are its outputs, or why
    it could not build it (then the exported outputs stay, unverified, with that reason)."""
    if isinstance(rebuilt, str):
        return Verdict(outputs, believed=True, verified=False, note=f"{UNVERIFIED_NOTE} ({rebuilt})", unverified=rebuilt)
    return _judged(
        outputs, rebuilt, normalisation, images,
        verified="a second, clean run of your class with the weights your notebook exported agrees",
        how=("built your class again in a clean process from your definitions, loaded the weights your notebook "
             f"exported and ran it on all {images:,} test images"),
    )


def _judged(
    outputs: torch.Tensor, recomputed: torch.Tensor, normalisation: Normalisation, images: int, *, verified: str,
    how: str,
) -> Verdict:
    """The exported ``outputs`` against the host's ``recomputed`` ones: believed when they agree, else the
    recomputed ones are graded. ``verified``: who agrees, for the note; ``how``: what the grader did, for the
    problem a student reads."""
    agreement = agreement_of(outputs, recomputed, int(np.prod(normalisation.example_shape)))
    if agreement >= AGREEMENT:
        note = f"outputs verified: {verified} on {agreement:.1%} of {images:,} test images"
        return Verdict(outputs, believed=True, verified=True, note=note, agreement=agreement)
    problem = (
        f"the predictions your notebook exported are not what your network computes on the test images: the grader "
        f"{how}, and the predictions differ on {1 - agreement:.1%} of them"
    )
    return Verdict(recomputed, believed=False, verified=True, problem=problem, agreement=agreement)


def verify(
    outputs: Any,
    inputs: Any,
    state: Any,
    images: np.ndarray,
    reference: torch.nn.Module | None,
    layers: Any = None,
    rebuild: Callable[[torch.Tensor], torch.Tensor | str] | None = None,
) -> Verdict:
    """The verdict on one model's exported predictions (``outputs``) on the host's evaluation ``images``.

    ``inputs`` and ``state`` are the exported first inputs and weights (None when not exported);
    ``reference`` the network the task fixes (None when the student designs their own), used when the
    recorded ``layers`` are exactly its layers (``same_layers``). Otherwise ``rebuild`` (when given) returns
    the student's own network's outputs on the model inputs, recomputed in a second clean process, or why it
    could not build it (``harness.checks.rebuild.Rebuilder`` bound to the model). Raises ``Forgery``
    when the outputs or inputs files contradict the host's images, AssertionError for non-finite outputs.
    """
    outputs = check_outputs(outputs, len(images))
    if inputs is None:
        raise Forgery(
            "your notebook exported predictions without the test images they were computed on: "
            "the predictions your notebook exported cannot be believed"
        )
    normalisation = find_normalisation(inputs, images)
    rebuildable = reference is not None and same_layers(layers, reference)
    network = load_weights_by_order(copy.deepcopy(reference), state) if rebuildable else None
    if network is None:
        if rebuildable and state is None:
            return Verdict(outputs, believed=False, verified=False, problem=(
                "your model's weights were not exported, so the grader cannot check that the predictions your "
                "notebook exported are what your network computes on the test images"))
        if rebuild is not None and state is not None:
            return _verify_rebuilt(outputs, rebuild(normalisation.apply(np.asarray(images))), normalisation, len(images))
        why = "its weights were not exported" if state is None else "the grader has no second run to rebuild it in"
        return Verdict(outputs, believed=True, verified=False, note=UNVERIFIED_NOTE, unverified=why)
    try:
        recomputed = _recompute_on(network, normalisation, np.asarray(images))
    except Exception as error:  # the reference network takes neither the student's input shape nor the image's
        why = f"{type(error).__name__} running the assignment's network"
        return Verdict(outputs, believed=True, verified=False, note=f"{UNVERIFIED_NOTE} ({why})", unverified=why)
    return _judged(
        outputs, recomputed, normalisation, len(images), verified="the grader's own run of your weights agrees",
        how=f"ran the weights it exported in the assignment's network on all {len(images):,} test images",
    )
