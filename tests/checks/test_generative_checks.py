"""VAE checks: the loss in closed form on the probe's fixed inputs, prior samples, the functions the task names."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from harness.checks import run_check
from harness.probes.fixed_inputs import build
from tests.checks.conftest import Spec
from tests.checks.fabricate import context, probe_record

SPEC = Spec("vae_loss_closed_form", params={"call": "vae_loss"})


def student_losses() -> dict[str, float]:
    """What students' loss functions return on the fixed inputs, computed in float32 as their code does."""
    recon, x, mu, logvar = build("vae_loss")
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return {"sum": float(bce + kl), "per_example": float((bce + kl) / 16), "bce_only": float(bce),
            "kl_sign": float(bce - kl), "mse": float(F.mse_loss(recon, x, reduction="sum") + kl), "bce": float(bce),
            "kl": float(kl)}


def call_context(root, record):
    return context(root, probe_record(calls={"vae_loss": record}))


def test_the_closed_form_loss_passes_summed_or_per_example_or_as_a_tuple(tmp_path) -> None:
    losses = student_losses()
    records = [
        {"function": "loss_function", "value": losses["sum"], "values": [], "error": None},
        {"function": "vae_loss", "value": losses["per_example"], "values": [], "error": None},
        {"function": "vae_loss", "value": None, "values": [losses["sum"], losses["bce"], losses["kl"]], "error": None},
        {"function": "loss_fn", "value": None, "values": [losses["bce"], losses["kl"]], "error": None},
    ]
    for n, record in enumerate(records):
        result = run_check(call_context(tmp_path / str(n), record), SPEC)
        assert result.status == "passed", (n, result.message)


@pytest.mark.parametrize(("mistake", "named"), [
    ("bce_only", "BCE only: the KL divergence term is missing"),
    ("kl_sign", "the KL term has the wrong sign (BCE - KL)"),
    ("mse", "MSE instead of binary cross-entropy as the reconstruction term"),
])
def test_the_usual_mistakes_are_named(tmp_path, mistake, named) -> None:
    losses = student_losses()
    result = run_check(call_context(tmp_path, {"function": "loss_function", "value": losses[mistake], "values": [],
                                               "error": None}), SPEC)
    assert result.status == "failed"
    assert result.message.startswith(f"your loss_function returns {losses[mistake]:.6g} on a fixed batch of 16, where "
                                     f"BCE + KL gives {losses['sum']:.6g} (summed) or ")
    assert f": {named}; the loss is -sum[x log r + (1 - x) log(1 - r)]" in result.message


def test_a_missing_or_failing_loss_function(tmp_path) -> None:
    missing = {"function": None, "error": "none of loss_function, vae_loss, loss_fn is defined"}
    result = run_check(call_context(tmp_path / "a", missing), SPEC)
    assert result.message == (
        "none of loss_function, vae_loss, loss_fn is defined: define the VAE loss as a function "
        "loss_function(recon_x, x, mu, logvar) that returns the loss"
    )
    failing = {"function": "loss_function", "value": None, "values": [], "error": "TypeError: takes 2 arguments"}
    assert run_check(call_context(tmp_path / "b", failing), SPEC).message == (
        "calling your loss_function(recon_x, x, mu, logvar) on a batch of 16 flattened images raised "
        "TypeError: takes 2 arguments"
    )
    assert run_check(context(tmp_path / "c", probe_record()), SPEC).status == "error"  # no call recorded: rubric/probe fault


def samples_context(root, z: torch.Tensor, name: str = "z"):
    values = root / "values"
    values.mkdir(parents=True, exist_ok=True)
    torch.save(z.float().clone(), values / f"{name}.pt")
    return context(root, probe_record(task_values={name: {"tensor": f"values/{name}.pt", "shape": list(z.shape)}}))


SAMPLES = Spec("standard_normal_samples", params={"values": ["z", "z_samples"], "min_samples": 16})


def test_standard_normal_samples_pass_from_a_file_or_a_json_list(tmp_path) -> None:
    generator = torch.Generator().manual_seed(0)
    assert run_check(samples_context(tmp_path / "a", torch.randn(64, 2, generator=generator)), SAMPLES).status == "passed"
    small = torch.randn(16, 2, generator=generator).tolist()  # 32 numbers: recorded as JSON
    ctx = context(tmp_path / "b", probe_record(task_values={"z_samples": small}))
    assert run_check(ctx, SAMPLES).status == "passed"


def test_uniform_and_posterior_samples_are_told_apart(tmp_path) -> None:
    generator = torch.Generator().manual_seed(0)
    uniform = run_check(samples_context(tmp_path / "a", torch.rand(64, 2, generator=generator)), SAMPLES)
    assert uniform.status == "failed"
    assert uniform.message.startswith("`z` lies in [0, 1) (means 0.")
    assert uniform.message.endswith("uniform draws (torch.rand); sample the prior N(0, I) with torch.randn")
    posterior = 0.1 * torch.randn(64, 2, generator=generator) + torch.tensor([1.5, -2.0])
    result = run_check(samples_context(tmp_path / "b", posterior), SAMPLES)
    assert result.status == "failed"
    assert result.message.startswith("`z` (64 samples of 2 dimensions: means 1.5")
    assert "are these the encoder's latent vectors of some images (posterior samples)?" in result.message
    few = run_check(samples_context(tmp_path / "c", torch.randn(4, 2, generator=generator)), SAMPLES)
    assert few.message == "`z` holds 4 samples; draw at least 16 latent vectors"
    absent = run_check(context(tmp_path / "d", probe_record()), SAMPLES)
    assert absent.message == (
        "no latent samples were found after your code ran (looked for z, z_samples, and for a torch.randn draw "
        "passed to your decoder): draw them with z = torch.randn(n, latent_dim) and decode them"
    )


def draws_context(root, *draws: tuple[torch.Tensor, str, str]):
    """A run whose draws/ folder holds ``(tensor, function, module)`` draws, as harness.probes.draws writes them."""
    folder = root / "draws"
    folder.mkdir(parents=True)
    entries = []
    for index, (tensor, function, module) in enumerate(draws):
        torch.save(tensor.float().clone(), folder / f"{index}.pt")
        entries.append({"tensor": f"draws/{index}.pt", "shape": list(tensor.shape), "function": function,
                        "drawn_with": "torch.randn", "module": module})
    (folder / "draws.json").write_text(json.dumps({"format": 1, "draws": entries}))
    return context(root, probe_record())


def test_latent_samples_drawn_inside_a_function_are_judged_from_the_decoded_draw(tmp_path) -> None:
    generator = torch.Generator().manual_seed(0)
    dummy = torch.randn(8, 1, 28, 28, generator=generator)  # a shape test through the network: not latent samples
    good = draws_context(tmp_path / "a", (dummy, "<module>", "VAE"),
                         (torch.randn(64, 2, generator=generator), "plot_generated_samples", "Decoder"))
    result = run_check(good, SAMPLES)
    assert result.status == "passed", result.message
    assert result.details["source"] == "torch.randn in plot_generated_samples -> Decoder"
    uniform = draws_context(tmp_path / "b", (torch.rand(64, 2, generator=generator), "plot_generated_samples", "Linear"))
    result = run_check(uniform, SAMPLES)
    assert result.status == "failed"
    assert result.message.startswith(
        "the torch.randn draw in plot_generated_samples() passed to your Linear lies in [0, 1) (means 0."
    )


def test_a_malformed_draws_file_counts_as_no_draw(tmp_path) -> None:
    folder = tmp_path / "draws"
    folder.mkdir(parents=True)
    (folder / "draws.json").write_text(json.dumps({"format": 1, "draws": [{"tensor": 3, "shape": "64x2"}]}))
    result = run_check(context(tmp_path, probe_record()), SAMPLES)
    assert result.status == "failed" and result.message.startswith("no latent samples were found after your code ran")


def test_defines(tmp_path) -> None:
    ctx = context(tmp_path, probe_record(callables=["VAE", "plot_generated_samples", "train"]))
    assert run_check(ctx, Spec("defines", params={"names": ["plot_generated_samples"]})).status == "passed"
    result = run_check(ctx, Spec("defines", params={"names": ["plot_generated_samples", "loss_function"]}, points=2))
    assert (result.status, result.score) == ("failed", 1.0)
    assert result.message == "your code does not define loss_function, which the task asks you to write and run"
