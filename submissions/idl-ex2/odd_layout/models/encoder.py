import torch
from torch import nn

LATENT_DIM = 12


class ConvEncoder(nn.Module):
    """(B, 1, 28, 28) -> (B, d): three stride-2 3x3 convolutions (16, 32, 64 filters) with BatchNorm and ReLU,
    halving the resolution each time (28 -> 14 -> 7 -> 4), then an FC layer from the 64 x 4 x 4 features to d."""

    def __init__(self, latent_dim=LATENT_DIM):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, stride=2, padding=1),  # (B, 16, 14, 14)
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1),  # (B, 32, 7, 7)
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1),  # (B, 64, 4, 4)
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Flatten(),  # (B, 1024)
        )
        self.fc = nn.Linear(64 * 4 * 4, latent_dim)  # (B, d)

    def forward(self, x):
        return self.fc(self.features(x))


class ConvDecoder(nn.Module):
    """(B, d) -> (B, 1, 28, 28): the encoder mirrored, an FC layer to 64 x 4 x 4, three stride-2 transposed
    convolutions (4 -> 7 -> 14 -> 28) and a Sigmoid, so reconstructions are intensities in [0, 1]."""

    def __init__(self, latent_dim=LATENT_DIM):
        super().__init__()
        self.fc = nn.Linear(latent_dim, 64 * 4 * 4)  # (B, 1024)
        self.deconv = nn.Sequential(
            nn.Unflatten(1, (64, 4, 4)),  # (B, 64, 4, 4)
            nn.ConvTranspose2d(64, 32, kernel_size=3, stride=2, padding=1),  # (B, 32, 7, 7)
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 16, kernel_size=3, stride=2, padding=1, output_padding=1),  # (B, 16, 14, 14)
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.ConvTranspose2d(16, 1, kernel_size=3, stride=2, padding=1, output_padding=1),  # (B, 1, 28, 28)
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.deconv(self.fc(z))


class AutoEncoder(nn.Module):
    """An encoder followed by a decoder: forward(x) is the reconstruction of x."""

    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x):
        return self.decoder(self.encoder(x))


class Classifier(nn.Module):
    """An encoder followed by a small two-layer MLP: latent (B, d) -> 64 hidden units -> 10 logits."""

    def __init__(self, encoder, latent_dim=LATENT_DIM, hidden=64):
        super().__init__()
        self.encoder = encoder
        self.mlp = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.mlp(self.encoder(x))
