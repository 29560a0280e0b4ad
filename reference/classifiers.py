"""Reference classifiers: the MNIST feed-forward and CNN nets (dl2025-a2 part 1) and the SIGNS CNN (mle-sheet06).

Each class reproduces the assignment's printed architecture exactly, so that ``print(model)``
shows the module text of the assignment (apart from the class name) and the parameter counts
match the figures students are asked to report. ``SPECS`` describes every classifier for the
checks and the trainers: expected parameter count, loss, output kind and input shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

OutputKind = Literal["log_probabilities", "logits", "probabilities", "reconstruction"]


@dataclass(frozen=True)
class ModelSpec:
    """What the assignment fixes about one reference model."""

    name: str
    """Class name in this package (``FeedForward``, ``CNN``...)."""
    model: type[nn.Module]
    """The reference class; ``model()`` builds it with the assignment's defaults."""
    parameters: int
    """Trainable parameters the assignment's network has."""
    loss: str
    """Name of the ``torch.nn`` loss the assignment pairs with the output (``NLLLoss``...)."""
    output: OutputKind
    """What the forward pass returns."""
    input_shape: tuple[int, ...]
    """One example's shape, without the batch dimension."""
    num_classes: int | None = None
    """Number of classes for a classifier; ``None`` for autoencoders."""
    feature_widths: dict[str, int] = field(default_factory=dict)
    """Output width of a layer, keyed by its class name: ``{"Flatten": 800}`` for the MNIST CNN."""
    source: str = ""
    """Where the architecture is defined (assignment and task)."""

    def build(self) -> nn.Module:
        """Build a freshly initialised instance of the reference model."""
        return self.model()

    def make_loss(self) -> nn.Module:
        """Build the loss the assignment uses with this model."""
        return getattr(nn, self.loss)()


class FeedForward(nn.Module):
    """The feed-forward MNIST classifier of feedForwardMNIST.ipynb (dl2025-a2 task 1.1): 109,386 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(784, 128),
            nn.ReLU(),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
            nn.LogSoftmax(dim=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return log-probabilities (B, 10) for images (B, 1, 28, 28) or flat inputs (B, 784)."""
        return self.main(x.flatten(1))  # (B, 784) -> (B, 10)


class FeedForwardLogits(nn.Module):
    """The feed-forward net without layer (5), the LogSoftmax (dl2025-a2 task 1.2): train with CrossEntropyLoss."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(784, 128),
            nn.ReLU(),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, 10) for images (B, 1, 28, 28) or flat inputs (B, 784)."""
        return self.main(x.flatten(1))  # (B, 784) -> (B, 10)


class CNN(nn.Module):
    """The convolutional MNIST classifier CNNMNIST.ipynb must use (dl2025-a2 task 1.3): 12,810 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3),  # (B, 16, 26, 26)
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),  # (B, 16, 13, 13)
            nn.Conv2d(16, 32, kernel_size=3),  # (B, 32, 11, 11)
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),  # (B, 32, 5, 5): floor(11 / 2) = 5
            nn.Flatten(),  # (B, 800) = 32 * 5 * 5
            nn.Linear(800, 10),  # (B, 10)
            nn.LogSoftmax(dim=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return log-probabilities (B, 10) for images (B, 1, 28, 28)."""
        if x.dim() == 2:  # flat (B, 784) input, as a feed-forward loop would pass it
            x = x.view(-1, 1, 28, 28)
        return self.main(x)


class SignsCNN(nn.Module):
    """The SIGNS hand-sign classifier of mle-sheet06 exercise 2 (``CNN_Classifier``): 131,958 parameters.

    Layer names follow the sheet so that its torchsummary table (112, 8, 296, 16, 131,136, 390)
    lines up with ``named_modules()``; the ReLUs are functional, as in the sheet.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, kernel_size=3, stride=1, padding="same")
        self.bn1 = nn.BatchNorm2d(4)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
        self.conv2 = nn.Conv2d(4, 8, kernel_size=3, stride=1, padding="same")
        self.bn2 = nn.BatchNorm2d(8)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
        self.fc1 = nn.Linear(8 * 16 * 16, 64)
        self.fc2 = nn.Linear(64, 6)
        self.log_softmax = nn.LogSoftmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return log-probabilities (B, 6) for RGB images (B, 3, 64, 64) scaled to [0, 1]."""
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))  # (B, 4, 32, 32)
        x = self.pool2(F.relu(self.bn2(self.conv2(x))))  # (B, 8, 16, 16)
        x = x.flatten(1)  # (B, 2048)
        x = F.relu(self.fc1(x))  # (B, 64)
        return self.log_softmax(self.fc2(x))  # (B, 6)


SPECS: dict[str, ModelSpec] = {
    "FeedForward": ModelSpec(
        name="FeedForward",
        model=FeedForward,
        parameters=109_386,
        loss="NLLLoss",
        output="log_probabilities",
        input_shape=(1, 28, 28),
        num_classes=10,
        source="dl2025-a2 task 1.1 (feedForwardMNIST.ipynb)",
    ),
    "FeedForwardLogits": ModelSpec(
        name="FeedForwardLogits",
        model=FeedForwardLogits,
        parameters=109_386,
        loss="CrossEntropyLoss",
        output="logits",
        input_shape=(1, 28, 28),
        num_classes=10,
        source="dl2025-a2 task 1.2 (line (5) removed)",
    ),
    "CNN": ModelSpec(
        name="CNN",
        model=CNN,
        parameters=12_810,
        loss="NLLLoss",
        output="log_probabilities",
        input_shape=(1, 28, 28),
        num_classes=10,
        feature_widths={"Flatten": 800},
        source="dl2025-a2 task 1.3 (CNNMNIST.ipynb)",
    ),
    "SignsCNN": ModelSpec(
        name="SignsCNN",
        model=SignsCNN,
        parameters=131_958,
        loss="NLLLoss",
        output="log_probabilities",
        input_shape=(3, 64, 64),
        num_classes=6,
        source="mle-sheet06 exercise 2 task 1 (CNN_Classifier)",
    ),
}
"""Every reference classifier, keyed by class name."""


def count_parameters(model: nn.Module) -> int:
    """Count the trainable parameters of a model, as the assignments ask students to report."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
