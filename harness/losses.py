"""Losses the host computes itself to judge a student's: the VAE's negative ELBO of vae.ipynb.

Harness code, not a solution: ``vae_loss_closed_form`` compares the student's loss with it on the host
(also where no reference code is installed), and ``reference.vae`` trains with it.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def vae_loss(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (total, bce, kl), each summed over pixels / latent dimensions and over the batch.

    bce = -sum [x log r + (1 - x) log(1 - r)]; kl = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)),
    the KL divergence of N(mu, exp(logvar)) from N(0, I); total = bce + kl.
    """
    bce = F.binary_cross_entropy(recon.flatten(1), x.flatten(1), reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kl, bce, kl


def vae_loss_per_example(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``vae_loss`` divided by the batch size: the negative ELBO per image, comparable across batch sizes."""
    total, bce, kl = vae_loss(recon, x, mu, logvar)
    n = x.shape[0]
    return total / n, bce / n, kl / n
