"""The synthetic MNIST: MNIST's shapes and geometry, balanced, deterministic, disjoint splits."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from harness.data import mnist


def _digest(images: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def train() -> tuple[np.ndarray, np.ndarray]:
    return mnist.synthesize("train", 2000, 0)


def test_shapes_dtypes_and_ranges(train: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = train
    assert images.shape == (2000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (2000,) and labels.dtype == np.int64
    assert set(np.unique(labels).tolist()) == set(range(10))


def test_looks_like_mnist_bright_ink_on_black(train: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = train
    ink = images > 0
    assert 0.12 < ink.mean() < 0.28  # real MNIST: about 19% of the pixels are non-zero
    assert images.max(axis=(1, 2)).min() >= 200  # every digit has a bright core
    border = np.concatenate(
        [images[:, :2].ravel(), images[:, -2:].ravel(), images[:, :, :2].ravel(), images[:, :, -2:].ravel()]
    )
    assert (border == 0).mean() > 0.97  # the background, borders included, is black


def test_digits_are_centred_by_mass(train: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = train
    weights = images.astype(np.float64)
    mass = weights.sum(axis=(1, 2))
    centres = np.arange(28) + 0.5
    com_x = (weights.sum(axis=1) * centres).sum(axis=1) / mass
    com_y = (weights.sum(axis=2) * centres).sum(axis=1) / mass
    assert abs(com_x.mean() - 14) < 0.5 and abs(com_y.mean() - 14) < 0.5
    assert np.abs(com_x - 14).max() < 4 and np.abs(com_y - 14).max() < 4


@pytest.mark.parametrize("n", [0, 7, 1003])
def test_classes_are_balanced_with_the_remainder_spread(n: int) -> None:
    _, labels = mnist.synthesize("test", n, 1)
    counts = np.bincount(labels, minlength=10)
    assert counts.sum() == n
    assert counts.tolist() == [n // 10 + (1 if digit < n % 10 else 0) for digit in range(10)]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first = _digest(*mnist.synthesize("train", 500, 7))
    again = _digest(*mnist.synthesize("train", 500, 7))
    other = _digest(*mnist.synthesize("train", 500, 8))
    assert first == again
    assert first != other


def test_thread_count_does_not_change_the_bytes() -> None:
    before = torch.get_num_threads()
    one = _digest(*mnist.synthesize("hidden", 5000, 5, threads=1))
    two = _digest(*mnist.synthesize("hidden", 5000, 5, threads=2))
    assert one == two
    assert torch.get_num_threads() == before  # the caller's setting is restored


def test_same_bytes_in_another_process_with_one_thread() -> None:
    code = (
        "import hashlib; from harness.data import mnist; x, y = mnist.synthesize('test', 1500, 9); "
        "print(hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest())"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120
    )
    assert done.stdout.strip() == _digest(*mnist.synthesize("test", 1500, 9))


def test_base_pools_are_disjoint_and_cover_every_digit() -> None:
    pools = mnist.base_pools()
    train, test, hidden = (set(pools[split].tolist()) for split in ("train", "test", "hidden"))
    assert not train & test and not train & hidden and not test & hidden
    assert len(train | test | hidden) == 1797
    assert 0.55 < len(train) / 1797 < 0.65


def test_no_image_is_shared_between_splits(train: tuple[np.ndarray, np.ndarray]) -> None:
    seen = {image.tobytes() for image in train[0]}
    for split in ("test", "hidden"):
        images, _ = mnist.synthesize(split, 2000, 0)
        assert not seen & {image.tobytes() for image in images}


def test_images_within_a_split_vary() -> None:
    images, labels = mnist.synthesize("train", 200, 3)
    assert len({image.tobytes() for image in images}) == 200
    ones = images[labels == 1].astype(np.float64)
    assert ones.std(axis=0).mean() > 20  # augmentation makes every drawing of a digit different


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown split 'val'"):
        mnist.synthesize("val", 10, 0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        mnist.synthesize("train", -1, 0)
