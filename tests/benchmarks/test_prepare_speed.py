"""How long dataset preparation takes: all three synthetic datasets at full size, and each generator alone.

Run with ``pytest tests/benchmarks/test_prepare_speed.py --benchmark-only -p no:cacheprovider``.
Target on a 2-core machine: the whole preparation in at most 10 s (median).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from harness.data import mnist, prepare
from harness.data.preparation import DATASETS, FULL_SIZES

TARGET_S = 10.0
"""What a full synthetic preparation should take on a 2-core machine."""

_GENERATORS = {"mnist": "harness.data.mnist", "fashionmnist": "harness.data.fashion", "signs": "harness.data.signs"}


def _cold(*args, **kwargs):
    """Forget the cached MNIST base digits so every round pays for them, as a fresh process does."""
    mnist._base_digits.cache_clear()
    return args, kwargs


@pytest.mark.benchmark(group="prepare")
def test_prepare_everything_full_size(benchmark, tmp_path: Path) -> None:
    manifest = benchmark.pedantic(
        prepare,
        setup=lambda: _cold(tmp_path, source="synthetic", seed=0, hidden_seed=1),
        rounds=3,
        iterations=1,
    )
    assert {name: entry["counts"] for name, entry in manifest["datasets"].items()} == FULL_SIZES
    if not benchmark.disabled:  # timed runs only (make bench); a loose ceiling, 3x the target, on a shared machine
        assert benchmark.stats.stats.median < 3 * TARGET_S


@pytest.mark.benchmark(group="prepare")
@pytest.mark.parametrize("dataset", DATASETS)
def test_synthesize_every_split(benchmark, dataset: str) -> None:
    generator = importlib.import_module(_GENERATORS[dataset])
    sizes = FULL_SIZES[dataset]

    def every_split() -> int:
        return sum(len(generator.synthesize(split, n, 0)[1]) for split, n in sizes.items())

    setup = _cold if dataset == "mnist" else None
    total = benchmark.pedantic(every_split, setup=setup, rounds=3, iterations=1)
    assert total == sum(sizes.values())
