"""Reference autoencoders of every assignment.

- dl2025-a2 / adl2024-a2: the fully connected ``Autoencoder`` built from ``FF`` blocks, exactly
  as printed in the texts. Its decoder ends in a Sigmoid, so outputs are pixel intensities in
  [0, 1]; we train it with binary cross-entropy (``autoencoder_loss``): dl2025-a2 asks for the
  loss "and why this one" next to "how one could use the beta distribution as likelihood",
  i.e. a likelihood for intensities in [0, 1], and BCE is the Bernoulli negative
  log-likelihood the accompanying vae.ipynb also uses. Whatever the training loss, the
  "reconstruction error" we report and compare with PCA is the mean squared error per pixel
  on images scaled to [0, 1] (``reconstruction_error``).
- idl-ex2: ``ConvEncoder`` / ``ConvDecoder`` / ``ConvAutoencoder`` (strided convolutions with
  BatchNorm, an FC layer to the latent dimension d ~ 12, Sigmoid output), mean L1 loss.
- mle-sheet06: ``FashionConvAE`` (the sheet's ``Conv_AE``) and ``PCAAutoencoder`` (``PCA_AE``),
  MSE loss. The sheet normalises FashionMNIST to [-1, 1] with Normalize((0.5,), (0.5,)), and
  ``FashionConvAE`` has no output activation, so its reconstructions live on that scale.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from reference.classifiers import ModelSpec


class FF(nn.Module):
    """Two Linear layers with a ReLU between them, as in the texts' ``FF`` block."""

    def __init__(self, dim1: int, dim2: int, dim3: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(in_features=dim1, out_features=dim2),
            nn.ReLU(),
            nn.Linear(in_features=dim2, out_features=dim3),
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - the texts' name
        """Map (B, dim1) to (B, dim3)."""
        return self.main(input)


class Autoencoder(nn.Module):
    """The fully connected MNIST autoencoder of autoencoders.ipynb (dl2025-a2 / adl2024-a2): 784-128-dim3."""

    def __init__(self, dim1: int = 784, dim2: int = 128, dim3: int = 2) -> None:
        super().__init__()
        self.encoder = FF(dim1, dim2, dim3)
        self.decoder = nn.Sequential(
            FF(dim3, dim2, dim1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct flat images (B, dim1) in [0, 1]; image-shaped input (B, 1, 28, 28) is flattened first."""
        x = self.encoder(x.flatten(1))  # (B, dim3)
        return self.decoder(x)  # (B, dim1)


def autoencoder_loss() -> nn.Module:
    """Loss we train ``Autoencoder`` with: binary cross-entropy, mean over pixels and batch (see the module doc)."""
    return nn.BCELoss()


class ConvEncoder(nn.Module):
    """idl-ex2 encoder: three stride-2 convolutions with BatchNorm and ReLU (28->14->7->4), then an FC layer to d."""

    def __init__(self, base_channels: int = 16, latent_dim: int = 12) -> None:
        super().__init__()
        c = base_channels
        self.base_channels = base_channels
        self.latent_dim = latent_dim
        self.main = nn.Sequential(
            nn.Conv2d(1, c, kernel_size=3, stride=2, padding=1),  # (B, c, 14, 14)
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1),  # (B, 2c, 7, 7)
            nn.BatchNorm2d(2 * c),
            nn.ReLU(),
            nn.Conv2d(2 * c, 4 * c, kernel_size=3, stride=2, padding=1),  # (B, 4c, 4, 4)
            nn.BatchNorm2d(4 * c),
            nn.ReLU(),
            nn.Flatten(),  # (B, 4c * 16)
            nn.Linear(4 * c * 4 * 4, latent_dim),  # (B, d)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode images (B, 1, 28, 28) to latent vectors (B, d)."""
        return self.main(x)


class ConvDecoder(nn.Module):
    """idl-ex2 decoder: FC layer from d to (4c, 4, 4), three transposed convolutions (4->7->14->28), Sigmoid."""

    def __init__(self, base_channels: int = 16, latent_dim: int = 12) -> None:
        super().__init__()
        c = base_channels
        self.base_channels = base_channels
        self.latent_dim = latent_dim
        self.main = nn.Sequential(
            nn.Linear(latent_dim, 4 * c * 4 * 4),  # (B, 4c * 16)
            nn.Unflatten(1, (4 * c, 4, 4)),  # (B, 4c, 4, 4)
            nn.ConvTranspose2d(4 * c, 2 * c, kernel_size=3, stride=2, padding=1),  # (B, 2c, 7, 7)
            nn.BatchNorm2d(2 * c),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, kernel_size=3, stride=2, padding=1, output_padding=1),  # (B, c, 14, 14)
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.ConvTranspose2d(c, 1, kernel_size=3, stride=2, padding=1, output_padding=1),  # (B, 1, 28, 28)
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Decode latent vectors (B, d) to images (B, 1, 28, 28) in [0, 1]."""
        return self.main(z)


class ConvAutoencoder(nn.Module):
    """idl-ex2 question 1: ``ConvEncoder`` followed by ``ConvDecoder``; train with mean L1 (``nn.L1Loss()``)."""

    def __init__(self, base_channels: int = 16, latent_dim: int = 12) -> None:
        super().__init__()
        self.encoder = ConvEncoder(base_channels, latent_dim)
        self.decoder = ConvDecoder(base_channels, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct images (B, 1, 28, 28) in [0, 1]."""
        return self.decoder(self.encoder(x))  # (B, 1, 28, 28)


class FashionConvAE(nn.Module):
    """mle-sheet06 exercise 3 ``Conv_AE``: stride-1 pools (28->27->26->25), FC code, transposed convs 3->7->14->28.

    128,259 parameters at latent dimension 2. No output activation: the sheet trains it with
    MSE on FashionMNIST normalised to [-1, 1]. (The sheet's own shape check,
    ``reconstructed, latent = model(X)``, unpacks the batch of two reconstructions, not a
    (reconstruction, code) pair: ``forward`` returns only the reconstruction.)
    """

    def __init__(self, latent_dim: int = 2) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, stride=1, padding="same"),  # (B, 16, 28, 28)
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=1, padding=0),  # (B, 16, 27, 27)
            nn.Conv2d(16, 32, kernel_size=3, stride=1, padding="same"),  # (B, 32, 27, 27)
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=1, padding=0),  # (B, 32, 26, 26)
            nn.Conv2d(32, 64, kernel_size=3, stride=1, padding="same"),  # (B, 64, 26, 26)
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=1, padding=0),  # (B, 64, 25, 25)
            nn.Flatten(),  # (B, 40000)
            nn.Linear(64 * 25 * 25, latent_dim),  # (B, latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 64 * 3 * 3),  # (B, 576)
            nn.Unflatten(1, (64, 3, 3)),  # (B, 64, 3, 3)
            nn.ConvTranspose2d(64, 32, kernel_size=3, stride=2, padding=0, output_padding=0),  # (B, 32, 7, 7)
            nn.ReLU(),
            nn.ConvTranspose2d(32, 16, kernel_size=3, stride=2, padding=1, output_padding=1),  # (B, 16, 14, 14)
            nn.ReLU(),
            nn.ConvTranspose2d(16, 1, kernel_size=3, stride=2, padding=1, output_padding=1),  # (B, 1, 28, 28)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct images (B, 1, 28, 28) on the input's scale."""
        return self.decoder(self.encoder(x))


class PCAAutoencoder(nn.Module):
    """mle-sheet06 exercise 3 ``PCA_AE``: one Linear encoder and one Linear decoder (with biases), trained with MSE.

    At the optimum the decoder's columns span the same subspace as the first ``latent_dim``
    principal components (see ``reference.pca.principal_angles``).
    """

    def __init__(self, input_dim: int = 784, latent_dim: int = 10) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(input_dim, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, input_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct flat images (B, input_dim); image-shaped input is flattened first."""
        return self.decoder(self.encoder(x.flatten(1)))  # (B, input_dim)


AUTOENCODER_SPECS: dict[str, ModelSpec] = {
    "Autoencoder": ModelSpec(
        name="Autoencoder",
        model=Autoencoder,
        parameters=202_258,
        loss="BCELoss",
        output="reconstruction",
        input_shape=(784,),
        source="dl2025-a2 task 2.1 / adl2024-a2 task 1 (autoencoders.ipynb), dim3 = 2",
    ),
    "ConvAutoencoder": ModelSpec(
        name="ConvAutoencoder",
        model=ConvAutoencoder,
        parameters=72_461,
        loss="L1Loss",
        output="reconstruction",
        input_shape=(1, 28, 28),
        source="idl-ex2 question 1, base_channels = 16, d = 12",
    ),
    "FashionConvAE": ModelSpec(
        name="FashionConvAE",
        model=FashionConvAE,
        parameters=128_259,
        loss="MSELoss",
        output="reconstruction",
        input_shape=(1, 28, 28),
        feature_widths={"Flatten": 40_000},
        source="mle-sheet06 exercise 3 task 1 (Conv_AE), latent dimension 2",
    ),
    "PCAAutoencoder": ModelSpec(
        name="PCAAutoencoder",
        model=PCAAutoencoder,
        parameters=16_474,
        loss="MSELoss",
        output="reconstruction",
        input_shape=(784,),
        source="mle-sheet06 exercise 3 task 3 (PCA_AE), latent dimension 10",
    ),
}
"""Every reference autoencoder at the assignment's default size, keyed by class name."""


def _takes_flat_input(model: nn.Module, n_features: int) -> bool:
    """Tell whether a model's first weighted layer is a Linear over all pixels (it then wants flat input)."""
    for module in model.modules():
        if next(module.parameters(recurse=False), None) is None:
            continue
        return isinstance(module, nn.Linear) and module.in_features == n_features
    return False


@torch.no_grad()
def reconstruction_error(model: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> float:
    """Mean squared error per pixel between ``model(x)`` and ``x``, in eval mode, without gradients.

    ``images`` is (N, 1, 28, 28), (N, 28, 28) or flat (N, 784), on the scale the model was
    trained on ([0, 1] for every assignment except mle-sheet06's [-1, 1]). Models whose first
    weighted layer is a Linear over all pixels get flat input, others image-shaped input;
    a model returning a tuple (a VAE's ``(recon, mu, logvar)``) is scored on its first element.
    """
    n = images.shape[0]
    n_features = math.prod(images.shape[1:])
    flat = _takes_flat_input(model, n_features)
    side = math.isqrt(n_features)
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        total = 0.0
        for start in range(0, n, batch_size):
            x = images[start : start + batch_size].to(device=device, dtype=torch.float32)
            if flat:
                x_in = x.reshape(x.shape[0], -1)  # (b, 784)
            elif x.dim() == 4:
                x_in = x  # (b, C, H, W) as given
            else:
                x_in = x.reshape(x.shape[0], 1, side, side)  # (b, 1, 28, 28)
            out = model(x_in)
            if isinstance(out, (tuple, list)):
                out = out[0]
            diff = out.reshape(x.shape[0], -1) - x.reshape(x.shape[0], -1)  # (b, n_features)
            total += float(diff.double().pow(2).sum())
        return total / (n * n_features)
    finally:
        model.train(was_training)
