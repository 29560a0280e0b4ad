"""Checks on the VAE: the loss in closed form, samples from the prior, the functions the task names.

``vae_loss_closed_form`` reads what the probe recorded when it called the student's loss
function on fixed inputs (probe.json ``calls``; ``harness.probes.fixed_inputs`` builds the very
same tensors here) and compares it with ``harness.losses.vae_loss`` and with the usual mistakes.
``standard_normal_samples`` reads a recorded value (probe.json ``task_values``: a JSON list, or a
tensor file for more than 100 numbers), else the random draw the code passed to its decoder
(``draws/``, recorded by ``harness.probes.draws``: samples drawn inside a function).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from harness.checks import CheckSpecLike, Partial, check, options
from harness.contract import CallRecord
from harness.rubric import CheckParams, PositiveNumber, ProbeCallId, ProbeValueNames, PythonNames

if TYPE_CHECKING:  # imported where used: registering checks and validating a rubric must not import torch
    import torch

    from harness.checks.context import CheckContext


def _loss_variants(inputs: tuple[torch.Tensor, ...]) -> list[tuple[str, float]]:
    """The correct negative ELBO and the usual mistakes, on the fixed inputs; (description, value), correct first."""
    from torch.nn import functional as F

    from harness.losses import vae_loss

    recon, x, mu, logvar = (t.double() for t in inputs)
    n, pixels = x.shape
    total, bce, kl = (float(v) for v in vae_loss(recon, x, mu, logvar))
    mse = float(F.mse_loss(recon, x, reduction="sum"))
    variants = [
        ("correct", total), ("correct", total / n),
        ("BCE only: the KL divergence term is missing", bce), ("BCE only: the KL divergence term is missing", bce / n),
        ("the KL term has the wrong sign (BCE - KL)", bce - kl), ("the KL term has the wrong sign (BCE - KL)", (bce - kl) / n),
        ("the KL divergence alone: the reconstruction term is missing", kl),
        ("the KL divergence alone: the reconstruction term is missing", kl / n),
        ("MSE instead of binary cross-entropy as the reconstruction term", mse + kl),
        ("MSE instead of binary cross-entropy as the reconstruction term", (mse + kl) / n),
        ("the binary cross-entropy is averaged over pixels (reduction='mean') but the KL divergence is summed, "
         "so the KL term dominates", bce / (n * pixels) + kl),
        ("the binary cross-entropy is averaged over pixels (reduction='mean') but the KL divergence is summed, "
         "so the KL term dominates", bce / (n * pixels) + kl / n),
    ]
    return variants


def _recorded(entry: CallRecord) -> list[float]:
    """The numbers the call returned: its value, else the first of a tuple, then the sum of a (bce, kl) pair."""
    values = [v for v in entry.values if v is not None]
    found = []
    if entry.value is not None:
        found.append(float(entry.value))
    if values:
        found.append(float(values[0]))
        if len(values) >= 2:
            found.append(float(values[0] + values[1]))
    return [v for v in found if math.isfinite(v)]


class VaeLossOptions(CheckParams):
    """The ``params`` of ``vae_loss_closed_form``: ``{call: vae_loss}``."""

    call: ProbeCallId
    """The id of the probe call (in the task's probe.calls) that called the student's loss function."""
    tolerance: PositiveNumber = 1e-3
    """Allowed relative deviation from the reference loss (default 1e-3)."""


class VaeLossParams(CheckParams):
    """What ``vae_loss_closed_form`` reads: its ``params``."""

    params: VaeLossOptions
    """Options: ``call`` (required), ``tolerance``."""


@check("vae_loss_closed_form", params=VaeLossParams)
def check_vae_loss_closed_form(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that the student's VAE loss is BCE + KL(q || N(0, I)) in closed form, summed or per example.

    The probe called the function (``params.call``, a call id of the task's probe block) on a fixed
    batch of 16; its value must equal ``harness.losses.vae_loss``'s total or total / 16 within
    ``params.tolerance`` (relative, default 1e-3). Otherwise the message names the mistake it equals
    (no KL term, KL sign, MSE, mean-reduced BCE), if any.
    """
    from harness.probes.fixed_inputs import build

    given = options(spec, VaeLossOptions)
    call, tolerance = given.call, given.tolerance
    if ctx.probe is None:
        raise AssertionError(ctx.model_note or "your code could not be inspected after it ran")
    entry = ctx.probe.calls.get(call)
    if entry is None:
        raise RuntimeError(f"the probe recorded no call {call!r} (is it in the task's probe.calls?)")
    if not entry.function:
        raise AssertionError(
            f"{entry.error or 'the loss function was not found'}: define the VAE loss as a function "
            "loss_function(recon_x, x, mu, logvar) that returns the loss"
        )
    name = entry.function
    if entry.error:
        raise AssertionError(
            f"calling your {name}(recon_x, x, mu, logvar) on a batch of 16 flattened images raised {entry.error}"
        )
    recorded = _recorded(entry)
    assert recorded, f"your {name}(recon_x, x, mu, logvar) returned no finite number"
    variants = _loss_variants(build("vae_loss"))
    correct = variants[0][1]
    ctx.details.update(measured=recorded[0], expected_sum=correct, expected_per_example=variants[1][1])

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= tolerance * max(abs(b), 1e-12)

    if any(close(value, expected) for value in recorded for what, expected in variants if what == "correct"):
        return
    for value in recorded:
        for what, expected in variants:
            if what != "correct" and close(value, expected):
                raise AssertionError(
                    f"your {name} returns {value:.6g} on a fixed batch of 16, where BCE + KL gives {correct:.6g} "
                    f"(summed) or {variants[1][1]:.6g} (per example): {what}; the loss is "
                    "-sum[x log r + (1 - x) log(1 - r)] - 0.5 * sum(1 + logvar - mu^2 - exp(logvar))"
                )
    raise AssertionError(
        f"your {name} returns {recorded[0]:.6g} on a fixed batch of 16, where BCE + KL gives {correct:.6g} (summed) or "
        f"{variants[1][1]:.6g} (per example): the loss is the binary cross-entropy summed over pixels plus "
        "KL = -0.5 * sum(1 + logvar - mu^2 - exp(logvar))"
    )


def _load_value(ctx: CheckContext, record: Any) -> torch.Tensor | None:
    """A recorded task value as a float64 tensor: a tensor file reference, or a (nested) JSON list of numbers."""
    import torch

    if isinstance(record, dict) and isinstance(record.get("tensor"), str):
        value = ctx.load_tensor(record["tensor"])
        return value.double() if isinstance(value, torch.Tensor) else None
    if isinstance(record, list):
        try:
            return torch.tensor(record, dtype=torch.float64)
        except (TypeError, ValueError):
            return None
    return None


def _decoded_draw(ctx: CheckContext) -> dict[str, Any] | None:
    """The recorded random draw that looks like a batch of latent vectors, or None.

    Candidates are draws of at least two rows (``draws/draws.json``: fed to a module while the
    code ran, e.g. the ``z`` a ``plot_generated_samples`` draws and decodes). A latent vector is
    narrower than an image, so a dummy image batch pushed through the network is passed over
    for the narrowest draw (the latest among equals).
    """
    if ctx.artifacts_dir is None:
        return None
    candidates = [d for d in ctx.artifacts().latent_draws() if len(d["shape"]) >= 2 and d["shape"][0] >= 2]
    if not candidates:
        return None
    return min(reversed(candidates), key=lambda d: math.prod(d["shape"][1:]))


class NormalSamplesOptions(CheckParams):
    """The ``params`` of ``standard_normal_samples``: ``{values: [z, z_samples]}``."""

    values: ProbeValueNames
    """Names the latent samples may have in the student's namespace (recorded through the task's probe.values)."""
    min_samples: Annotated[int, Field(strict=True, ge=2)] = 16
    """How many latent vectors must be drawn at least (default 16)."""
    significance: Annotated[float, Field(strict=True, gt=0, lt=1)] = 1e-4
    """Probability that a true N(0, I) sample fails the test, in (0, 1) (default 1e-4)."""


class NormalSamplesParams(CheckParams):
    """What ``standard_normal_samples`` reads: its ``params``."""

    params: NormalSamplesOptions
    """Options: ``values`` (required), ``min_samples``, ``significance``."""


@check("standard_normal_samples", params=NormalSamplesParams)
def check_standard_normal_samples(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that the latent vectors drawn for generation are samples of N(0, I).

    Reads the first of ``params.values`` the probe recorded, else the narrowest random draw the code
    passed to a module (latent samples drawn inside a function): an (n, d) sample (more dimensions are
    flattened after the first) with n >= ``min_samples`` (default 16). Each dimension's variance must lie
    in the chi-square interval of probability 1 - ``significance`` (default 1e-4) around 1, its mean within
    the normal interval around 0, and correlations between dimensions within 4 / sqrt(n). The message
    recognises uniform draws (torch.rand) and encoder outputs (posterior samples).
    """
    import torch
    from scipy import stats

    given = options(spec, NormalSamplesOptions)
    names, min_samples, significance = list(given.values), given.min_samples, given.significance
    if ctx.probe is None:
        raise AssertionError(ctx.model_note or "your code could not be inspected after it ran")
    recorded = ctx.probe.task_values or {}
    name = next((n for n in names if n in recorded), None)
    if name is not None:
        z, label = _load_value(ctx, recorded[name]), f"`{name}`"
        ctx.details.update(source=name)
    else:
        draw = _decoded_draw(ctx)
        assert draw is not None, (
            f"no latent samples were found after your code ran (looked for {', '.join(names)}, and for a "
            "torch.randn draw passed to your decoder): draw them with "
            f"{names[0] if names else 'z'} = torch.randn(n, latent_dim) and decode them"
        )
        z = ctx.load_tensor(draw["tensor"])
        z = z.double() if isinstance(z, torch.Tensor) else None
        where = "at top level" if draw["function"] == "<module>" else f"in {draw['function']}()"
        label = f"the {draw['drawn_with']} draw {where} passed to your {draw['module']}"
        ctx.details.update(source=f"{draw['drawn_with']} in {draw['function']} -> {draw['module']}")
    assert z is not None and z.numel() > 0, f"{label} is not an array of numbers"
    z = z.reshape(len(z), -1) if z.ndim > 1 else z.reshape(-1, 1)  # (n, d)
    n, d = z.shape
    ctx.details.update(samples=n, dims=d)
    assert n >= min_samples, f"{label} holds {n} samples; draw at least {min_samples} latent vectors"
    assert torch.isfinite(z).all(), f"{label} contains NaN or infinite values"
    mean, var = z.mean(0), z.var(0)
    ctx.details.update(mean=[round(float(v), 4) for v in mean[:8]], variance=[round(float(v), 4) for v in var[:8]])
    low, high = (stats.chi2.ppf(q, n - 1) / (n - 1) for q in (significance / 2, 1 - significance / 2))
    mean_bound = stats.norm.ppf(1 - significance / 2) / math.sqrt(n)
    corr = torch.corrcoef(z.T) if d > 1 else torch.ones(1, 1, dtype=z.dtype)
    off = (corr - torch.eye(d, dtype=z.dtype)).abs().max().item() if d > 1 else 0.0
    ctx.details["measured"] = float(max((var - 1).abs().max(), mean.abs().max()))
    shown = (f"means {', '.join(f'{float(v):.2f}' for v in mean[:4])}, variances "
             f"{', '.join(f'{float(v):.2f}' for v in var[:4])}{' ...' if d > 4 else ''}")
    if bool(((z >= 0) & (z < 1)).all()):
        raise AssertionError(
            f"{label} lies in [0, 1) ({shown}): uniform draws (torch.rand); sample the prior N(0, I) with torch.randn"
        )
    fine = bool(((var >= low) & (var <= high)).all()) and bool((mean.abs() <= mean_bound).all()) and off <= 4 / math.sqrt(n)
    if fine:
        return
    raise AssertionError(
        f"{label} ({n} samples of {d} dimensions: {shown}) is not a sample of N(0, I) (variances within "
        f"{low:.2f}..{high:.2f} and means within +-{mean_bound:.2f} expected for {n} samples): are these the encoder's "
        "latent vectors of some images (posterior samples)? To generate, draw z = torch.randn(n, latent_dim) and decode it"
    )


class DefinesOptions(CheckParams):
    """The ``params`` of ``defines``: ``{names: [plot_generated_samples]}``."""

    names: PythonNames
    """The functions or classes the code must define (one name or a list)."""


class DefinesParams(CheckParams):
    """What ``defines`` reads: its ``params``."""

    params: DefinesOptions
    """Options: ``names`` (required)."""


@check("defines", params=DefinesParams)
def check_defines(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that the code defines the functions or classes the task names (``params.names``): probe.json ``callables``."""
    names = list(options(spec, DefinesOptions).names)
    if ctx.probe is None:
        raise AssertionError(ctx.model_note or "your code could not be inspected after it ran")
    if ctx.probe.callables is None:
        raise RuntimeError("the probe recorded no callables (probe.json predates them)")
    defined = set(ctx.probe.callables)
    missing = [name for name in names if name not in defined]
    ctx.details.update(measured=len(names) - len(missing), expected=len(names))
    if not missing:
        return
    message = f"your code does not define {', '.join(missing)}, which the task asks you to write and run"
    if len(missing) < len(names):
        raise Partial(1 - len(missing) / len(names), message)
    raise AssertionError(message)
