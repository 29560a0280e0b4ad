"""Networks: an encoder with max-pooling and an FC bottleneck, its mirror decoder, a classifier, a freezer."""

from torch import nn

LATENT = 10


def conv_block(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1)]


class Encoder(nn.Module):
    """28x28 -> 14x14 -> 7x7 by 2x2 max-pooling between 3x3 convolutions (8, 16, 32 filters), then FC to LATENT."""

    def __init__(self, latent=LATENT):
        super().__init__()
        self.net = nn.Sequential(
            *conv_block(1, 8), nn.MaxPool2d(2),  # (B, 8, 14, 14)
            *conv_block(8, 16), nn.MaxPool2d(2),  # (B, 16, 7, 7)
            *conv_block(16, 32),  # (B, 32, 7, 7)
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, latent),  # (B, latent)
        )

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    """LATENT -> (32, 7, 7) by an FC layer, then 2x2 stride-2 transposed convolutions up to 28x28, Sigmoid."""

    def __init__(self, latent=LATENT):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent, 32 * 7 * 7),
            nn.Unflatten(1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 16, kernel_size=2, stride=2), nn.BatchNorm2d(16), nn.LeakyReLU(0.1),  # (B, 16, 14, 14)
            nn.ConvTranspose2d(16, 8, kernel_size=2, stride=2), nn.BatchNorm2d(8), nn.LeakyReLU(0.1),  # (B, 8, 28, 28)
            nn.Conv2d(8, 1, kernel_size=3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.net(z)


class AE(nn.Module):
    """enc then dec; give parts to build it from existing ones."""

    def __init__(self, enc=None, dec=None, latent=LATENT):
        super().__init__()
        self.enc = enc if enc is not None else Encoder(latent)
        self.dec = dec if dec is not None else Decoder(latent)

    def forward(self, x):
        return self.dec(self.enc(x))


class DigitClassifier(nn.Module):
    """An encoder and an MLP head (LATENT -> 32 -> 10 logits)."""

    def __init__(self, enc=None, latent=LATENT, hidden=32):
        super().__init__()
        self.enc = enc if enc is not None else Encoder(latent)
        self.head = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.head(self.enc(x))


class Frozen(nn.Module):
    """A module that is never trained: no gradients, and eval mode whatever .train() its parent calls."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        inner.requires_grad_(False)
        super().train(False)

    def train(self, mode=True):
        return super().train(False)

    def forward(self, x):
        return self.inner(x)
