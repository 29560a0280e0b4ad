"""The synthetic SIGNS: hands showing 0-5 fingers, balanced, deterministic, learnable but not trivially."""

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

from harness.data import signs


def _digest(images: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()


def _pooled(images: np.ndarray) -> np.ndarray:
    """2x2 average-pooled pixels scaled to [0, 1]: (n, 32 * 32 * 3) features for a linear model."""
    n = len(images)
    return images.reshape(n, 32, 2, 32, 2, 3).mean(axis=(2, 4)).reshape(n, -1) / 255.0


@pytest.fixture(scope="module")
def train() -> tuple[np.ndarray, np.ndarray]:
    return signs.synthesize("train", 960, 0)


def test_shapes_dtypes_and_ranges(train: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = train
    assert images.shape == (960, 64, 64, 3) and images.dtype == np.uint8
    assert labels.shape == (960,) and labels.dtype == np.int64
    assert labels.min() == 0 and labels.max() == 5
    assert images.std() > 30  # a picture, not a flat colour


@pytest.mark.parametrize(("split", "n"), [("train", 960), ("val", 120), ("test", 120), ("hidden", 120)])
def test_real_split_sizes_are_exactly_balanced(split: str, n: int) -> None:
    _, labels = signs.synthesize(split, n, 0)
    assert np.bincount(labels, minlength=6).tolist() == [n // 6] * 6


@pytest.mark.parametrize("n", [0, 1, 11])
def test_other_sizes_spread_the_remainder(n: int) -> None:
    _, labels = signs.synthesize("train", n, 3)
    assert np.bincount(labels, minlength=6).tolist() == [n // 6 + (1 if c < n % 6 else 0) for c in range(6)]


def test_the_label_is_the_number_of_raised_fingers_thumb_included() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 500)
    raised = signs._choose_fingers(labels, rng)  # (3000, 5): thumb, index, middle, ring, pinky
    assert (raised.sum(axis=1) == labels).all()
    assert raised[labels == 5].all()
    assert (raised[labels == 1] == [0, 1, 0, 0, 0]).all()  # one is the index finger
    two = {tuple(row) for row in raised[labels == 2].astype(int).tolist()}
    assert two == {(0, 1, 1, 0, 0), (1, 1, 0, 0, 0)}  # two: index and middle, or thumb and index


def test_hand_in_skin_tones_on_varying_backgrounds(train: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = train
    rgb = images.astype(np.float64)
    bottom_centre = rgb[:, -6:, 26:38].mean(axis=(1, 2))  # (960, 3): the forearm enters from the bottom
    assert (bottom_centre[:, 0] >= bottom_centre[:, 2]).mean() > 0.9  # skin is redder than it is blue
    brightness = bottom_centre.mean(axis=1)
    assert brightness.max() - brightness.min() > 80  # light and dark skin tones
    corners = rgb[:, :4, :4].mean(axis=(1, 2))  # (960, 3): background
    assert corners.std(axis=0).min() > 15  # backgrounds vary in colour and brightness


def test_same_arguments_same_bytes_other_seed_or_split_other_bytes() -> None:
    first = _digest(*signs.synthesize("train", 120, 7))
    assert _digest(*signs.synthesize("train", 120, 7)) == first
    assert _digest(*signs.synthesize("train", 120, 8)) != first
    for split in ("val", "test", "hidden"):
        assert _digest(*signs.synthesize(split, 120, 7)) != first


def test_same_bytes_in_another_process_with_other_thread_settings() -> None:
    here = _digest(*signs.synthesize("hidden", 300, 5))
    code = ("import hashlib; from harness.data import signs; x, y = signs.synthesize('hidden', 300, 5); "
            "print(hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest())")
    env = {**os.environ, "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "PYTHONHASHSEED": "12345"}
    there = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert there.stdout.strip() == here


def test_no_image_is_shared_between_splits(train: tuple[np.ndarray, np.ndarray]) -> None:
    seen = {image.tobytes() for image in train[0]}
    for split in ("val", "test", "hidden"):
        images, _ = signs.synthesize(split, 120, 0)
        assert not seen & {image.tobytes() for image in images}


def test_learnable_but_not_trivial(train: tuple[np.ndarray, np.ndarray]) -> None:
    """A linear model on pooled pixels is well above chance (1/6) and far from perfect.

    The sheet's small CNN does better (about 0.88 after 50 epochs on these 960 images, 100% on
    train, like on the real SIGNS data); a linear model overfits and generalises poorly.
    """
    images, labels = train
    test_images, test_labels = signs.synthesize("test", 240, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(max_iter=150, C=0.05).fit(_pooled(images), labels)
    accuracy = model.score(_pooled(test_images), test_labels)
    assert 0.35 < accuracy < 0.85
    assert model.score(_pooled(images), labels) > accuracy + 0.1  # it overfits the 960 images


def test_fast_enough_for_every_split() -> None:
    start = time.perf_counter()
    signs.synthesize("train", 1320, 0)
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0, f"1,320 images took {elapsed:.2f} s (about 0.3 s expected)"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        signs.synthesize("validation", 10, 0)
    with pytest.raises(ValueError, match="negative number of images"):
        signs.synthesize("train", -1, 0)
    with pytest.raises(ValueError, match="non-negative"):
        signs.synthesize("train", 5, -3)


@pytest.mark.slow
def test_the_sheets_cnn_learns_it_like_the_real_signs(train: tuple[np.ndarray, np.ndarray]) -> None:
    """The sheet's CNN, 50 epochs of Adam at batch 64: fits the training set, about 0.9 on test (about 30 s)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    images, labels = train
    test_images, test_labels = signs.synthesize("test", 240, 0)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0  # (960, 3, 64, 64)
    y = torch.from_numpy(labels)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding="same"), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding="same"), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 16 * 16, 64), nn.ReLU(), nn.Linear(64, 6),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(50):
        for batch in torch.randperm(len(x)).split(64):
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        train_accuracy = (net(x).argmax(1) == y).float().mean().item()
        test_x = torch.from_numpy(test_images).permute(0, 3, 1, 2).float() / 255.0  # (240, 3, 64, 64)
        test_accuracy = (net(test_x).argmax(1).numpy() == test_labels).mean()
    assert train_accuracy > 0.97  # it overfits, like on the real data
    assert 0.75 < test_accuracy < 0.99  # learnable, not trivial: the real data gives about 0.9
