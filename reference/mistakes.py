"""Typical student mistakes in the dl2025-a2 classifiers, as runnable models.

They show that the synthetic data separates right from wrong (a linear model must score
visibly below the feed-forward net) and serve as sample broken submissions: each docstring
says what the bug is and what a student would see.
"""

from __future__ import annotations

import torch
from torch import nn


class FeedForwardNoActivation(nn.Module):
    """The feed-forward net with both ReLUs removed: three stacked Linear layers, i.e. one linear model.

    The parameter count is unchanged (109,386), so a parameter check cannot catch it. Training
    runs normally and the loss goes down, but accuracy plateaus where multinomial logistic
    regression does (about 92% on real MNIST against about 97-98% for the real net).
    """

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(784, 128),
            nn.Linear(128, 64),
            nn.Linear(64, 10),
            nn.LogSoftmax(dim=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return log-probabilities (B, 10) of an affine map of the flattened image."""
        return self.main(x.flatten(1))  # (B, 784) -> (B, 10)


class FeedForwardSoftmax(nn.Module):
    """The feed-forward net ending in Softmax(dim=1) instead of LogSoftmax, still trained with NLLLoss.

    NLLLoss expects log-probabilities and returns minus the entry at the label; fed
    probabilities it returns -p(label), so the printed loss is negative (between -1 and 0)
    and "decreases" towards -1. The gradient of -p vanishes where p saturates, so training is
    slow and erratic and accuracy lags well behind the LogSoftmax net, without any error.
    """

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(784, 128),
            nn.ReLU(),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
            nn.Softmax(dim=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return probabilities (B, 10), each row summing to 1."""
        return self.main(x.flatten(1))  # (B, 784) -> (B, 10)


class CNNWithoutSecondPool(nn.Module):
    """The MNIST CNN with the second MaxPool2d dropped: Flatten yields 32 x 11 x 11 = 3,872 features.

    With the assignment's Linear(800, 10) a student gets "mat1 and mat2 shapes cannot be
    multiplied (64x3872 and 800x10)"; the usual "fix" is Linear(3872, 10), as here. The network
    then trains and classifies well, but has 43,530 parameters instead of 12,810 and does not
    match the architecture the assignment prescribes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3),  # (B, 16, 26, 26)
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),  # (B, 16, 13, 13)
            nn.Conv2d(16, 32, kernel_size=3),  # (B, 32, 11, 11)
            nn.ReLU(),
            nn.Flatten(),  # (B, 3872) = 32 * 11 * 11
            nn.Linear(3872, 10),  # (B, 10)
            nn.LogSoftmax(dim=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return log-probabilities (B, 10) for images (B, 1, 28, 28)."""
        return self.main(x)
