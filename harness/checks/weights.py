"""Checks on weights carried from one task to another: a frozen encoder, an encoder used as initialisation.

A later task (a decoder trained on a classifier's frozen encoder, a classifier fine-tuned from an
autoencoder's encoder) holds tensors that continue an earlier task's model. Names differ between
students' classes, so tensors are matched by order and shape: the longest run of consecutive
tensors whose shapes agree between the earlier model's state_dict and a model of this task's run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from harness.checks import CheckSpecLike, Partial, check, options
from harness.contract import ModelRecord
from harness.rubric import CheckParams, PositiveNumber, TaskId

if TYPE_CHECKING:  # imported where used: registering checks and validating a rubric must not import torch
    import torch

    from harness.checks.context import CheckContext

_STATS = ("running_mean", "running_var")
"""BatchNorm buffers that move in train mode even when the parameters are frozen."""

_TRAINABLE = re.compile(r"\.trainable\s*=\s*False")


def _tensors(state: Any) -> list[tuple[str, torch.Tensor]]:
    """The floating-point tensors of a state_dict in order (``num_batches_tracked`` counters left out)."""
    import torch

    if not isinstance(state, dict):
        return []
    return [(k, v) for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]


@dataclass(frozen=True)
class Match:
    """A run of consecutive tensors shared by an earlier model and a candidate of this run."""

    candidate: ModelRecord
    """The candidate of this run that holds them."""
    names: tuple[str, ...]
    """Names of the shared tensors in the earlier model."""
    before: tuple[torch.Tensor, ...]
    after: tuple[torch.Tensor, ...]

    def _pairs(self, stats: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(a, b) for n, a, b in zip(self.names, self.before, self.after) if n.endswith(_STATS) == stats]

    def max_change(self, stats: bool = False) -> float:
        """Largest absolute change of a parameter (``stats``: of a BatchNorm running statistic)."""
        pairs = self._pairs(stats)
        return max((float((b.double() - a.double()).abs().max()) for a, b in pairs if a.numel()), default=0.0)

    def relative_change(self) -> float:
        """||after - before|| / ||before|| over the shared parameters (statistics left out)."""
        pairs = self._pairs(False)
        moved = sum(float((b.double() - a.double()).pow(2).sum()) for a, b in pairs)
        size = sum(float(a.double().pow(2).sum()) for a, _ in pairs)
        return (moved / size) ** 0.5 if size > 0 else float("inf")


def _longest_run(ours: list[tuple[str, torch.Tensor]], theirs: list[tuple[str, torch.Tensor]]) -> tuple[int, int, int]:
    """(start in ``ours``, start in ``theirs``, length) of the longest run of equal shapes holding a weight matrix."""
    best = (0, 0, 0)
    previous = [0] * (len(theirs) + 1)
    for i in range(1, len(ours) + 1):
        current = [0] * (len(theirs) + 1)
        for j in range(1, len(theirs) + 1):
            if ours[i - 1][1].shape == theirs[j - 1][1].shape:
                current[j] = previous[j - 1] + 1
                length = current[j]
                if length > best[2] and any(t.ndim >= 2 for _, t in ours[i - length:i]):
                    best = (i - length, j - length, length)
        previous = current
    return best


def find_shared(ctx: CheckContext, other: CheckContext) -> tuple[Match | None, int]:
    """The candidate of this task's run that best continues ``other``'s model, and how many candidates were tried.

    Preference: this task's chosen model; then a model that is not a whole copy of the earlier one
    (a re-loaded checkpoint says nothing about what was trained since); then the longest shared run;
    then the smallest change.
    """
    before = _tensors(other.load_tensor(other.model["state_dict"])) if other.model and other.model.get("state_dict") else []
    if not before:
        return None, 0
    same_run = ctx.artifacts_dir is not None and other.artifacts_dir is not None and (
        ctx.artifacts_dir.resolve() == other.artifacts_dir.resolve()
    )
    ranked = []
    tried = 0
    for candidate in ctx.probe.models if ctx.probe else ():
        if candidate.origin != "instance" or not candidate.state_dict:
            continue
        if same_run and candidate.id == other.model.get("id"):
            continue  # the earlier model itself
        tried += 1
        after = _tensors(ctx.load_tensor(candidate.state_dict))
        i, j, length = _longest_run(before, after)
        if not length:
            continue
        match = Match(
            candidate,
            tuple(n for n, _ in before[i:i + length]),
            tuple(t for _, t in before[i:i + length]),
            tuple(t for _, t in after[j:j + length]),
        )
        whole_copy = len(after) == len(before) and length == len(before)
        chosen = ctx.model is not None and candidate.id == ctx.model.get("id")
        ranked.append(((chosen, not whole_copy, length, -match.relative_change()), match))
    if not ranked:
        return None, tried
    return max(ranked, key=lambda entry: entry[0])[1], tried


class SharedWeightsOptions(CheckParams):
    """The ``params`` of ``shared_weights``: ``{task: classifier, mode: frozen}``."""

    task: TaskId
    """The earlier task whose model's weights this task's model continues."""
    mode: Literal["frozen", "initialised"]
    """How the weights are carried: frozen (unchanged) or initialised (the start of fine-tuning)."""
    part: Annotated[str, Field(strict=True, min_length=1)] = "encoder"
    """What the shared weights are, for messages (default encoder)."""
    atol: Annotated[float, Field(strict=True, ge=0)] = 1e-6
    """frozen: the largest absolute change a parameter may show (default 1e-6)."""
    max_change: PositiveNumber = 0.5
    """initialised: the largest relative change of the shared weights after fine-tuning (default 0.5)."""
    min_change: Annotated[float, Field(strict=True, ge=0)] = 0.0
    """initialised: the smallest relative change, when the task requires fine-tuning them (default 0)."""


class SharedWeightsParams(CheckParams):
    """What ``shared_weights`` reads: its ``params``."""

    params: SharedWeightsOptions
    """Options: ``task`` and ``mode`` (required), ``part``, ``atol``, ``max_change``, ``min_change``."""


@check("shared_weights", params=SharedWeightsParams)
def check_shared_weights(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that this task's model continues another task's weights: frozen, or used as the initialisation.

    params: ``task`` (the earlier task), ``mode`` (frozen | initialised), ``part`` (what the shared
    weights are, for messages; default "encoder").
    frozen: every shared parameter is unchanged (``atol``, default 1e-6) and so are the BatchNorm
    running statistics (half the points when only those moved: the frozen part was left in train mode).
    initialised: the shared parameters moved by at most ``max_change`` (relative Frobenius norm,
    default 0.5; a fresh random initialisation is about 1.4 away) and at least ``min_change`` (default 0).
    """
    given = options(spec, SharedWeightsOptions)
    mode, other_id, part, atol = given.mode, given.task, given.part, given.atol
    other = ctx.require_related(other_id)
    if other.model is None or not other.model.get("state_dict"):
        reason = other.model_note if other.model is None else f"{other.model_note}, but its weights were not exported"
        raise AssertionError(f"the model of task {other_id!r} is needed to compare with and is missing: {reason}")
    if ctx.probe is None:
        raise AssertionError(ctx.model_note or "your code could not be inspected after it ran")
    match, tried = find_shared(ctx, other)
    if match is None and tried == 0:
        stopped = ctx.stopped_with()
        raise AssertionError(
            f"no model was left after this task's code ran{f' ({stopped})' if stopped else ''}, so none can hold the "
            f"weights of the model of task {other_id!r} ({other.model.get('class_name')})"
        )
    if match is None:
        raise AssertionError(
            f"none of the {tried} models found after this task's code ran holds the weights of the model of task "
            f"{other_id!r} ({other.model.get('class_name')}): build this task's model on that trained {part} (load its state_dict)"
        )
    change, stats_change, relative = match.max_change(), match.max_change(stats=True), match.relative_change()
    ctx.details.update(measured=round(relative, 6), max_change=change, stats_change=stats_change,
                       model=match.candidate.name, tensors=len(match.names))
    holder = f"`{match.candidate.name}`"
    if mode == "initialised":
        max_change, min_change = given.max_change, given.min_change
        assert relative <= max_change, (
            f"the {part} of {holder} does not start from the trained weights of task {other_id!r}: it is {relative:.0%} "
            f"away from them (at most {max_change:.0%} expected after fine-tuning): load the trained {part}'s "
            "state_dict before training, rather than starting from a fresh one"
        )
        assert relative >= min_change, (
            f"the {part} of {holder} is unchanged from the weights of task {other_id!r} ({relative:.2%} change): the task "
            f"fine-tunes it, so leave its parameters trainable and in the optimizer"
        )
        return
    if change > atol:
        advice = (
            "`trainable = False` does nothing in PyTorch; set requires_grad_(False) on its parameters"
            if _TRAINABLE.search(ctx.source_text)
            else "set requires_grad_(False) on its parameters and give the optimizer only the decoder's"
        )
        raise AssertionError(
            f"the {part}'s weights changed (max change {change:.3g}) although it should be frozen: {advice}"
        )
    if stats_change > atol:
        raise Partial(
            0.5,
            f"the {part}'s BatchNorm running statistics changed during training (max change {stats_change:.3g}): "
            f"call .eval() on the frozen {part}",
        )
