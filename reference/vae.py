"""Reference variational autoencoder of vae.ipynb (dl2025-a2 tasks 2.5-2.6, adl2024-a2 task 4).

The usual fully connected VAE: 784 -> 400 -> (mu, logvar) in R^2 -> 400 -> 784 with a Sigmoid
output. ``vae_loss`` is the negative ELBO with a Bernoulli likelihood (binary cross-entropy)
and the closed-form KL divergence to N(0, I), summed over pixels, latent dimensions and the
batch, as vae.ipynb does; divide by the batch size for a per-example figure
(``vae_loss_per_example``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from harness.losses import vae_loss, vae_loss_per_example  # noqa: F401  (re-exported: the reference's loss)


class VAE(nn.Module):
    """Fully connected VAE: encoder to (mu, logvar), reparameterised sample, Sigmoid decoder."""

    def __init__(self, input_dim: int = 784, hidden_dim: int = 400, latent_dim: int = 2) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.latent_dim = latent_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.fc_mu = nn.Linear(hidden_dim, latent_dim)
        self.fc_logvar = nn.Linear(hidden_dim, latent_dim)
        self.fc3 = nn.Linear(latent_dim, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, input_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the mean and log-variance (B, latent_dim) of q(z | x) for images (B, 784) or (B, 1, 28, 28)."""
        h = F.relu(self.fc1(x.flatten(1)))  # (B, hidden_dim)
        return self.fc_mu(h), self.fc_logvar(h)  # (B, latent_dim) twice

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Sample z = mu + sigma * eps with eps ~ N(0, I), differentiable in mu and logvar."""
        std = torch.exp(0.5 * logvar)  # (B, latent_dim)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decode latent vectors (B, latent_dim) to pixel intensities (B, 784) in [0, 1]."""
        h = F.relu(self.fc3(z))  # (B, hidden_dim)
        return torch.sigmoid(self.fc4(h))  # (B, input_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (reconstruction (B, 784), mu, logvar); z is sampled in train and eval mode alike, as in vae.ipynb."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)  # (B, latent_dim)
        return self.decode(z), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generate n images (n, 784) by decoding z ~ N(0, I)."""
        device = self.fc3.weight.device
        z = torch.randn((n, self.latent_dim), generator=generator, device=device)  # (n, latent_dim)
        return self.decode(z)
