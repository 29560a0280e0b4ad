"""Fixtures shared across the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """Small synthetic MNIST (6,000 train / 1,000 test / 1,000 hidden), prepared once per session: the data folder.

    Tests may add calibration files to it (they are keyed by rubric, reference and profile) but
    must not change the prepared data.
    """
    from harness.data import prepare

    data = tmp_path_factory.getbasetemp() / "gradebench-small-data"
    if not (data / "manifest.json").is_file():
        prepare(data, source="synthetic", small=True, datasets=("mnist",), hidden_seed=1234)
    return data


@pytest.fixture(scope="session")
def small_mnist(small_data) -> Path:
    """The small data's public folder: what torchvision reads."""
    return small_data / "public"
