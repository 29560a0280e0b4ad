"""Classification metrics the host computes from predictions and hidden labels."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def _as_tensor(values: torch.Tensor | np.ndarray | list[int]) -> torch.Tensor:
    """Turn predictions or labels into a flat int64 CPU tensor."""
    tensor = values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    return tensor.detach().reshape(-1).long().cpu()


def accuracy(predictions: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    """Fraction of predictions equal to their labels, in [0, 1]."""
    pred, true = _as_tensor(predictions), _as_tensor(labels)
    if pred.shape != true.shape:
        raise ValueError(f"{pred.numel()} predictions for {true.numel()} labels")
    if true.numel() == 0:
        raise ValueError("no labels to score")
    return float((pred == true).double().mean())


def per_class_accuracy(
    predictions: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, num_classes: int
) -> list[float]:
    """Accuracy within each true class 0..num_classes-1 (recall per class); NaN for a class with no examples."""
    pred, true = _as_tensor(predictions), _as_tensor(labels)
    if pred.shape != true.shape:
        raise ValueError(f"{pred.numel()} predictions for {true.numel()} labels")
    result = []
    for c in range(num_classes):
        mask = true == c
        count = int(mask.sum())
        result.append(float((pred[mask] == c).double().mean()) if count else math.nan)
    return result


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Predicted class (N,) int64 on the CPU: argmax of the model's outputs, in eval mode, without gradients.

    Works for log-probabilities, probabilities and logits alike (argmax is the same).
    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        out = [
            model(images[start : start + batch_size].to(device=device, dtype=torch.float32)).argmax(dim=1).cpu()
            for start in range(0, images.shape[0], batch_size)
        ]
        return torch.cat(out) if out else torch.empty(0, dtype=torch.long)
    finally:
        model.train(was_training)
