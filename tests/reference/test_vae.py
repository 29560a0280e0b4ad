"""The reference VAE's shapes, loss and reparameterisation agree with their definitions."""

from __future__ import annotations

import math

import torch
from torch.distributions import Normal, kl_divergence

from reference.classifiers import count_parameters
from reference.vae import VAE, vae_loss, vae_loss_per_example


def test_vae_shapes_and_parameter_count() -> None:
    torch.manual_seed(0)
    model = VAE()
    # fc1 784*400+400, mu and logvar 2*(400*2+2), fc3 2*400+400, fc4 400*784+784
    assert count_parameters(model) == 631_188
    x = torch.rand(5, 1, 28, 28)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 2)
    recon, mu2, logvar2 = model(x)
    assert recon.shape == (5, 784) and ((recon > 0) & (recon < 1)).all()
    torch.testing.assert_close(mu, mu2)
    assert model.sample(7).shape == (7, 784)


def test_sampling_is_reproducible_with_a_generator() -> None:
    model = VAE(latent_dim=3)
    a = model.sample(4, generator=torch.Generator().manual_seed(3))
    b = model.sample(4, generator=torch.Generator().manual_seed(3))
    c = model.sample(4, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_vae_loss_against_its_closed_form() -> None:
    torch.manual_seed(0)
    x = torch.rand(3, 784)
    recon = torch.rand(3, 784) * 0.98 + 0.01
    mu, logvar = torch.randn(3, 2), torch.randn(3, 2)
    total, bce, kl = vae_loss(recon, x, mu, logvar)
    bce_by_hand = -(x * torch.log(recon) + (1 - x) * torch.log(1 - recon)).sum()
    kl_reference = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum()
    torch.testing.assert_close(bce, bce_by_hand, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(kl, kl_reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(total, bce + kl)
    per_example = vae_loss_per_example(recon, x, mu, logvar)
    torch.testing.assert_close(per_example[0], total / 3)
    # Image-shaped targets give the same loss.
    torch.testing.assert_close(vae_loss(recon, x.view(3, 1, 28, 28), mu, logvar)[0], total)


def test_kl_is_zero_for_the_prior() -> None:
    _, _, kl = vae_loss(torch.full((2, 4), 0.5), torch.full((2, 4), 0.5), torch.zeros(2, 3), torch.zeros(2, 3))
    assert kl.item() == 0.0


def test_reparameterisation_has_the_right_mean_and_variance() -> None:
    model = VAE(latent_dim=2)
    n = 200_000
    mu = torch.tensor([1.0, -2.0]).expand(n, 2)
    logvar = torch.tensor([math.log(0.25), math.log(4.0)]).expand(n, 2)
    z = model.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(dim=0), torch.tensor([1.0, -2.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(dim=0), torch.tensor([0.25, 4.0]), atol=0, rtol=0.02)


def test_reparameterisation_is_differentiable() -> None:
    model = VAE()
    mu = torch.zeros(4, 2, requires_grad=True)
    logvar = torch.zeros(4, 2, requires_grad=True)
    model.reparameterize(mu, logvar).sum().backward()
    assert mu.grad is not None and torch.equal(mu.grad, torch.ones(4, 2))
    assert logvar.grad is not None and logvar.grad.abs().sum() > 0
