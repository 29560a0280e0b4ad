"""Datasets on disk in the formats the assignments read: MNIST, FashionMNIST (torchvision raw IDX) and SIGNS (.npy).

Real files when given (or downloadable), deterministic synthetic stand-ins otherwise,
plus grader-only hidden evaluation splits. See :mod:`harness.data.preparation`.
"""

from harness.data.preparation import (
    DATASETS,
    SPLITS,
    hidden_dir,
    load_split,
    prepare,
    public_dir,
    read_manifest,
)

__all__ = ["DATASETS", "SPLITS", "hidden_dir", "load_split", "prepare", "public_dir", "read_manifest"]
