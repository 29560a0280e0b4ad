"""The synthetic FashionMNIST: the ten classes' silhouettes, balanced, deterministic, learnable but not trivially."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from harness.data import fashion

SHIRT, TROUSER, PULLOVER, DRESS, COAT, SANDAL, SNEAKER, BAG, ANKLE_BOOT = 6, 1, 2, 3, 4, 5, 7, 8, 9
T_SHIRT = 0


def _digest(images: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def train() -> tuple[np.ndarray, np.ndarray]:
    return fashion.synthesize("train", 2000, 0)


def test_classes_are_torchvisions_in_order() -> None:
    assert fashion.CLASSES == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def test_shapes_dtypes_and_ranges(train: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = train
    assert images.shape == (2000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (2000,) and labels.dtype == np.int64
    assert labels.min() == 0 and labels.max() == 9


def test_light_object_on_black_background(train: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = train
    corners = np.concatenate([images[:, :2, :2].ravel(), images[:, :2, -2:].ravel(),
                              images[:, -2:, :2].ravel(), images[:, -2:, -2:].ravel()])
    assert (corners == 0).mean() > 0.97  # the background is exactly 0, as in FashionMNIST
    assert images.max(axis=(1, 2)).min() >= 60  # every image shows a visible object
    ink = (images > 0).mean()
    assert 0.3 < ink < 0.65  # real FashionMNIST: about half the pixels are non-zero
    soft = ((images > 0) & (images < 40)).sum() / (images > 0).sum()
    assert soft > 0.02  # edges are anti-aliased, not a hard 0/255 cut


def test_silhouettes_have_their_class_proportions(train: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = train
    on = images > 30
    width, height = on.any(axis=1).sum(axis=1), on.any(axis=2).sum(axis=1)
    aspect = {c: float(np.median(width[labels == c] / np.maximum(height[labels == c], 1))) for c in range(10)}
    assert aspect[TROUSER] < 0.7 and aspect[DRESS] < 0.85  # tall and narrow
    assert aspect[SANDAL] > 1.7 and aspect[SNEAKER] > 1.7  # low shoes, wide and flat
    assert 1.05 < aspect[ANKLE_BOOT] < 1.6  # a shoe with a shaft: taller than a sneaker
    for top in (T_SHIRT, PULLOVER, COAT, SHIRT):
        assert 0.8 < aspect[top] < 1.3, f"{fashion.CLASSES[top]}: width/height {aspect[top]:.2f}"


@pytest.mark.parametrize("n", [0, 7, 1003])
def test_classes_are_balanced_with_the_remainder_spread(n: int) -> None:
    _, labels = fashion.synthesize("test", n, 1)
    counts = np.bincount(labels, minlength=10)
    assert counts.tolist() == [n // 10 + (1 if c < n % 10 else 0) for c in range(10)]


def test_same_arguments_same_bytes_other_seed_or_split_other_bytes() -> None:
    first = _digest(*fashion.synthesize("train", 500, 7))
    assert _digest(*fashion.synthesize("train", 500, 7)) == first
    assert _digest(*fashion.synthesize("train", 500, 8)) != first
    assert _digest(*fashion.synthesize("test", 500, 7)) != first
    assert _digest(*fashion.synthesize("hidden", 500, 7)) != first


def test_same_bytes_in_another_process_with_other_thread_settings() -> None:
    here = _digest(*fashion.synthesize("hidden", 3000, 5))
    code = ("import hashlib; from harness.data import fashion; x, y = fashion.synthesize('hidden', 3000, 5); "
            "print(hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest())")
    env = {**os.environ, "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "PYTHONHASHSEED": "12345"}
    there = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert there.stdout.strip() == here


def test_no_image_is_shared_between_splits(train: tuple[np.ndarray, np.ndarray]) -> None:
    seen = {image.tobytes() for image in train[0]}
    for split in ("test", "hidden"):
        images, _ = fashion.synthesize(split, 2000, 0)
        assert not seen & {image.tobytes() for image in images}


def test_drawings_of_a_class_vary(train: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = train
    assert len({image.tobytes() for image in images}) == len(images)
    for c in range(10):
        spread = images[labels == c].astype(np.float64).std(axis=0).mean()
        assert spread > 15, f"{fashion.CLASSES[c]}: pixel std {spread:.1f}; the drawings hardly vary"


def test_learnable_but_not_trivial(train: tuple[np.ndarray, np.ndarray]) -> None:
    """A linear model learns it well but not perfectly, and the upper-body classes are where it fails."""
    images, labels = train
    test_images, test_labels = fashion.synthesize("test", 500, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(max_iter=150, C=0.05).fit(images.reshape(len(images), -1) / 255.0, labels)
    predicted = model.predict(test_images.reshape(len(test_images), -1) / 255.0)
    accuracy = (predicted == test_labels).mean()
    assert 0.7 < accuracy < 0.95  # real FashionMNIST, linear model on all 60,000: about 0.84
    per_class = np.array([(predicted[test_labels == c] == c).mean() for c in range(10)])
    assert per_class[SHIRT] < 0.7  # shirts are confused with t-shirts, pullovers and coats
    assert per_class[[TROUSER, DRESS, SANDAL, BAG, ANKLE_BOOT]].min() > 0.85


def test_classes_differ_more_between_than_within(train: tuple[np.ndarray, np.ndarray]) -> None:
    """Nearest class mean: far above chance (10%), far below perfect, because the clothes vary so much."""
    images, labels = train
    flat = images.reshape(len(images), -1) / 255.0
    means = np.stack([flat[labels == c].mean(axis=0) for c in range(10)])  # (10, 784)
    test_images, test_labels = fashion.synthesize("test", 500, 0)
    test_flat = test_images.reshape(len(test_images), -1) / 255.0
    distances = ((test_flat[:, None, :] - means[None]) ** 2).sum(axis=2)  # (500, 10)
    accuracy = (distances.argmin(axis=1) == test_labels).mean()
    assert 0.5 < accuracy < 0.9


def test_fast_enough_for_the_full_dataset() -> None:
    start = time.perf_counter()
    fashion.synthesize("train", 10_000, 0)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.5, f"10,000 images took {elapsed:.2f} s (about 0.15 s expected); 80,000 must take a few seconds"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown split 'val'"):
        fashion.synthesize("val", 10, 0)
    with pytest.raises(ValueError, match="negative number of images"):
        fashion.synthesize("train", -1, 0)
    with pytest.raises(ValueError, match="non-negative"):
        fashion.synthesize("train", 5, -3)


@pytest.mark.slow
def test_a_small_cnn_beats_a_linear_model() -> None:
    """A two-layer CNN, 1,500 steps on 5,000 images, beats logistic regression but is not perfect (about 30 s)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    images, labels = fashion.synthesize("train", 5000, 0)
    test_images, test_labels = fashion.synthesize("test", 1000, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        linear = LogisticRegression(max_iter=300, C=0.05).fit(images.reshape(5000, -1) / 255.0, labels)
    linear_accuracy = linear.score(test_images.reshape(1000, -1) / 255.0, test_labels)
    x = torch.from_numpy(images).float().unsqueeze(1) / 255.0  # (5000, 1, 28, 28)
    y = torch.from_numpy(labels)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(1500):
        batch = torch.randint(0, len(x), (64,))
        loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        test_x = torch.from_numpy(test_images).float().unsqueeze(1) / 255.0  # (1000, 1, 28, 28)
        cnn_accuracy = (net(test_x).argmax(1).numpy() == test_labels).mean()
    assert 0.75 < linear_accuracy < 0.92  # real FashionMNIST: about 0.84
    assert linear_accuracy + 0.02 < cnn_accuracy < 0.98  # real FashionMNIST: about 0.90 for small CNNs
