"""The synthetic datasets must behave like the real ones where grading depends on it.

On the small synthetic data and a few epochs of the assignments' own settings
(batch 64, Adam 1e-3): on MNIST the CNN beats the feed-forward net, neither is
perfect, and the two typical bugs (no ReLUs; Softmax fed to NLLLoss) score clearly
lower than the correct net, so thresholds calibrated on this data separate right
from wrong. FashionMNIST and SIGNS are learnable by their reference models, and
not perfectly.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from harness.data import load_split, prepare
from reference.autoencoders import PCAAutoencoder
from reference.classifiers import CNN, FeedForward, SignsCNN
from reference.mistakes import FeedForwardNoActivation, FeedForwardSoftmax
from reference.pca import fit_pca, reconstruct
from reference.training import evaluate_autoencoder, prepare_images, train_autoencoder, train_classifier

EPOCHS = 6
MARGIN = 0.05  # a typical bug must cost at least 5 points of test accuracy


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small synthetic MNIST, FashionMNIST and SIGNS (6,000 / 1,000 / 1,000 images; SIGNS whole)."""
    folder = tmp_path_factory.mktemp("synthetic-small")
    prepare(folder, source="synthetic", small=True, seed=0, hidden_seed=1)
    return folder


def _split(data_dir: Path, dataset: str, split: str, normalisation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a split as normalised tensors."""
    images, labels = load_split(data_dir, dataset, split)
    return prepare_images(images, normalisation), torch.as_tensor(labels)  # type: ignore[arg-type]


def _test_accuracy(data_dir: Path, dataset: str, build, normalisation: str, epochs: int, eval_split: str = "test",
                   **kw) -> float:
    """Train a freshly seeded model on the training split and return its accuracy on ``eval_split``."""
    x, y = _split(data_dir, dataset, "train", normalisation)
    xt, yt = _split(data_dir, dataset, eval_split, normalisation)
    torch.manual_seed(0)
    model: nn.Module = build()
    history = train_classifier(
        model, x, y, epochs=epochs, batch_size=64, lr=1e-3, loss="nll", seed=0, threads=1,
        eval_images=xt, eval_labels=yt, **kw,
    )
    return history.eval_accuracy[-1]


@pytest.fixture(scope="module")
def mnist_accuracies(data_dir: Path) -> dict[str, float]:
    """Test accuracy of the reference nets and the two buggy ones after the same training."""
    return {
        "ff": _test_accuracy(data_dir, "mnist", FeedForward, "mnist", EPOCHS),
        "cnn": _test_accuracy(data_dir, "mnist", CNN, "mnist", EPOCHS, channels_last=True),
        "no_activation": _test_accuracy(data_dir, "mnist", FeedForwardNoActivation, "mnist", EPOCHS),
        "softmax_nll": _test_accuracy(data_dir, "mnist", FeedForwardSoftmax, "mnist", EPOCHS),
    }


def test_mnist_cnn_beats_the_feed_forward_net(mnist_accuracies):
    assert mnist_accuracies["cnn"] > mnist_accuracies["ff"], mnist_accuracies


def test_mnist_is_not_solved_perfectly(mnist_accuracies):
    assert mnist_accuracies["ff"] < 1.0 and mnist_accuracies["cnn"] < 1.0, mnist_accuracies
    assert mnist_accuracies["ff"] > 0.7, f"the feed-forward net barely learns: {mnist_accuracies}"


@pytest.mark.parametrize("bug", ["no_activation", "softmax_nll"])
def test_typical_bugs_score_clearly_lower(mnist_accuracies, bug):
    assert mnist_accuracies[bug] <= mnist_accuracies["ff"] - MARGIN, mnist_accuracies


def test_fashionmnist_is_learnable_but_not_perfectly(data_dir):
    accuracy = _test_accuracy(data_dir, "fashionmnist", FeedForward, "mnist", 3)
    assert 0.5 < accuracy < 1.0, f"FashionMNIST test accuracy {accuracy:.3f}"


def test_fashionmnist_linear_autoencoder_beats_the_mean_image(data_dir):
    images, _ = load_split(data_dir, "fashionmnist", "train")
    x = prepare_images(images, "symmetric", flatten=True)  # (6000, 784) in [-1, 1]
    xh = prepare_images(load_split(data_dir, "fashionmnist", "hidden")[0], "symmetric", flatten=True)
    torch.manual_seed(0)
    model = PCAAutoencoder(784, 10)
    train_autoencoder(model, x, loss="mse", epochs=5, batch_size=64, lr=1e-3, seed=0, threads=1)
    mean_image_mse = float(((xh - x.mean(dim=0)) ** 2).mean())
    pca = fit_pca(x.double().numpy(), 10)
    pca_mse = float(((torch.from_numpy(reconstruct(pca, xh.double().numpy(), 10)) - xh.double()) ** 2).mean())
    ae_mse = evaluate_autoencoder(model, xh)["mse"]
    assert pca_mse < 0.7 * mean_image_mse, "10 principal components should explain most of the variance"
    assert ae_mse < 0.75 * mean_image_mse, f"linear autoencoder MSE {ae_mse:.4f}, mean image {mean_image_mse:.4f}"
    assert ae_mse > 0.95 * pca_mse, "a 10-dimensional linear autoencoder cannot beat PCA by much"


def test_signs_is_learnable_but_not_perfectly(data_dir):
    accuracy = _test_accuracy(data_dir, "signs", SignsCNN, "signs", 10)
    assert 0.5 < accuracy < 1.0, f"SIGNS test accuracy {accuracy:.3f} (chance is 1/6)"
