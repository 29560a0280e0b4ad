"""Accuracy, per-class accuracy and prediction on hand-made examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from reference.metrics import accuracy, per_class_accuracy, predict


def test_accuracy_on_a_hand_made_example() -> None:
    predictions = torch.tensor([0, 1, 2, 2, 1])
    labels = torch.tensor([0, 1, 1, 2, 0])
    assert accuracy(predictions, labels) == pytest.approx(3 / 5)
    assert accuracy(np.array([1, 1]), [1, 1]) == 1.0
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        accuracy(torch.tensor([0, 1, 2]), torch.tensor([0, 1]))


def test_per_class_accuracy_is_recall_per_true_class() -> None:
    predictions = torch.tensor([0, 1, 2, 2, 1, 0])
    labels = torch.tensor([0, 1, 1, 2, 0, 0])
    result = per_class_accuracy(predictions, labels, num_classes=4)
    assert result[:3] == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert math.isnan(result[3])  # no example of class 3


class _Fixed(nn.Module):
    """Scores each image by its first pixel values, to give predictable argmaxes; records its mode."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the first three values of each flattened image as scores."""
        self.modes.append(self.training)
        return x.flatten(1)[:, :3] + self.dummy


def test_predict_takes_argmax_in_eval_mode_and_restores_mode() -> None:
    images = torch.zeros(5, 1, 2, 2)
    images[0, 0, 0, 0] = 1.0  # class 0
    images[1, 0, 0, 1] = 1.0  # class 1
    images[2, 0, 1, 0] = 1.0  # class 2
    images[3, 0, 1, 0] = 2.0  # class 2
    images[4, 0, 0, 1] = 5.0  # class 1
    model = _Fixed()
    model.train()
    got = predict(model, images, batch_size=2)
    assert got.dtype == torch.int64
    assert torch.equal(got, torch.tensor([0, 1, 2, 2, 1]))
    assert model.modes == [False, False, False]  # three batches, all in eval mode
    assert model.training
    assert accuracy(got, torch.tensor([0, 1, 2, 0, 1])) == pytest.approx(0.8)
