"""idl-ex2 questions 2-5: a classifier on the autoencoder's encoder, freezing, decoding from it, fine-tuning.

- Q2: ``EncoderClassifier(ConvEncoder(c, d), d)`` (``conv_classifier``), cross-entropy on logits.
- Q3: ``classifier_decoder``: a fresh ``ConvDecoder`` trained on the frozen classifier encoder.
- Q4: ``first_labelled``: the first 100 training examples (the text's ``torch.arange(100)``).
- Q5: ``finetune_classifier``: a classifier whose encoder starts as a copy of the Q1 encoder.

Freezing is the ``Frozen`` wrapper: no gradients, and eval mode that a parent's ``.train()``
cannot undo, so BatchNorm running statistics stay put. Its state-dict keys gain an
``inner.`` prefix (``encoder.inner.main.0.weight``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from reference.autoencoders import ConvAutoencoder, ConvDecoder, ConvEncoder


class EncoderClassifier(nn.Module):
    """An encoder followed by a two-layer MLP head, Linear(d, hidden) - ReLU - Linear(hidden, classes): logits."""

    def __init__(self, encoder: nn.Module, latent_dim: int = 12, hidden: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, num_classes) for images (B, 1, 28, 28); train with ``nn.CrossEntropyLoss()``."""
        return self.head(self.encoder(x))  # (B, d) -> (B, num_classes)


def conv_classifier(
    base_channels: int = 16, latent_dim: int = 12, hidden: int = 64, num_classes: int = 10
) -> EncoderClassifier:
    """Build the Q2 classifier: a fresh idl-ex2 ``ConvEncoder`` with the MLP head."""
    return EncoderClassifier(ConvEncoder(base_channels, latent_dim), latent_dim, hidden, num_classes)


class Frozen(nn.Module):
    """Wrap a module so that it is never trained: parameters need no gradient and it stays in eval mode."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        for p in self.inner.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> Frozen:
        """Ignore ``mode``: keep the wrapped module in eval mode whatever its parent asks."""
        super().train(False)
        return self

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        """Run the wrapped module."""
        return self.inner(*args, **kwargs)


def freeze(module: nn.Module) -> Frozen:
    """Freeze a module in place and return it wrapped: no gradients, BatchNorm statistics fixed."""
    return Frozen(module)


class FrozenEncoderDecoder(nn.Module):
    """A frozen encoder feeding a trainable decoder: forward(x) = decoder(encoder(x))."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder if isinstance(encoder, Frozen) else freeze(encoder)
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct images (B, 1, 28, 28) from the frozen encoder's latent vectors."""
        return self.decoder(self.encoder(x))


def classifier_decoder(
    classifier: EncoderClassifier, base_channels: int = 16, latent_dim: int = 12
) -> FrozenEncoderDecoder:
    """Q3: a fresh ``ConvDecoder`` on a frozen copy of a trained classifier's encoder; train it with ``nn.L1Loss()``.

    The encoder is copied, so freezing it leaves ``classifier`` itself untouched.
    """
    encoder = classifier.encoder.inner if isinstance(classifier.encoder, Frozen) else classifier.encoder
    return FrozenEncoderDecoder(copy.deepcopy(encoder), ConvDecoder(base_channels, latent_dim))


def finetune_classifier(
    autoencoder: ConvAutoencoder,
    latent_dim: int | None = None,
    hidden: int = 64,
    num_classes: int = 10,
    freeze_encoder: bool = False,
) -> EncoderClassifier:
    """Q5: a classifier whose encoder is a copy of a trained autoencoder's encoder, with a fresh random head.

    By default the whole network is fine-tuned (the encoder is only the initial guess, as the
    text says); ``freeze_encoder=True`` trains the head alone (linear probing), as some
    solutions do. ``latent_dim`` defaults to the encoder's ``latent_dim`` attribute.
    """
    encoder = copy.deepcopy(autoencoder.encoder)
    if latent_dim is None:
        latent_dim = int(encoder.latent_dim)
    if freeze_encoder:
        encoder = freeze(encoder)
    return EncoderClassifier(encoder, latent_dim, hidden, num_classes)


def first_labelled(images: torch.Tensor, labels: torch.Tensor, n: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4: the first ``n`` training examples and labels, as ``Subset(train, torch.arange(100))`` takes them."""
    if n > len(images) or len(images) != len(labels):
        raise ValueError(f"asked for the first {n} examples of {len(images)} images and {len(labels)} labels")
    indices = torch.arange(n)
    return images[indices], labels[indices]
