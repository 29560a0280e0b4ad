"""Prepare the student's process before their first line runs (inside the sandbox).

``install(config)`` makes the run offline and headless and points torchvision's MNIST and
FashionMNIST at the prepared public files, whatever root the student passes, so that
``datasets.MNIST("weird/root", download=True)`` reads the mounted data and never downloads
or writes. It also imports :mod:`harness.probes.probe`, which captures the torch functions
the probe uses now, before the student's code can monkeypatch them, and starts
:mod:`harness.probes.tracking`, which records every model the student's code builds (function
locals included) with where it was built and whether it was trained. With the rubric's ``seed``, the
run starts from seeded ``random``, NumPy and torch generators, so the same notebook trains the same way
each time it is graded.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from harness.contract import OFFLINE_ENV, TORCHVISION_FOLDERS
from harness.probes.figures import BACKEND, FIGURES_ENV, MAX_FIGURES_ENV

_PATCHED = "__gradebench_patched__"


def install(config: dict[str, Any]) -> None:
    """Set up environment, plotting, threads, seeds and dataset redirection for one sandboxed run."""
    os.environ.update(OFFLINE_ENV)
    figures = os.path.join(config["artifacts"], "figures")
    os.environ[FIGURES_ENV] = figures
    os.environ[MAX_FIGURES_ENV] = str(int(config.get("max_figures", 50)))
    _select_backend()

    import torch

    import harness.probes.probe  # noqa: F401  (captures torch references before student code runs)
    from harness.probes import tracking

    tracking.install(config.get("workspace"))

    threads = int(config.get("threads", 1))
    if threads > 0:
        torch.set_num_threads(threads)
    seed = config.get("seed")
    if seed is not None:
        _seed(int(seed), torch)
    data_root = config.get("data_root")
    if data_root and any(d in TORCHVISION_FOLDERS for d in config.get("datasets", ())):
        redirect_torchvision(data_root)


def _seed(seed: int, torch: Any) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (every device), as the rubric asks."""
    import random

    import numpy

    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)


def _select_backend() -> None:
    """Use the saving Agg backend unless the notebook asks for another one itself (``%matplotlib inline``)."""
    os.environ["MPLBACKEND"] = BACKEND
    matplotlib = sys.modules.get("matplotlib")
    if matplotlib is not None:  # already imported (by the kernel): switch explicitly
        matplotlib.use(BACKEND, force=True)


def redirect_torchvision(data_root: str) -> bool:
    """Make torchvision's MNIST family read ``data_root`` whatever root is given, never downloading.

    Returns False when torchvision cannot be imported (the student's own import will say so).
    """
    try:
        from torchvision.datasets import mnist
    except Exception:  # torchvision missing or broken: the student's import will say so
        return False
    base = mnist.MNIST
    if getattr(base.__init__, _PATCHED, False):
        return True
    original = base.__init__

    def __init__(self: Any, root: Any = None, *args: Any, **kwargs: Any) -> None:
        folder = type(self).__name__
        if os.path.isdir(os.path.join(data_root, folder, "raw")):
            root = data_root
            if len(args) >= 4:  # (train, transform, target_transform, download) given positionally
                args = (*args[:3], False, *args[4:])
            else:
                kwargs["download"] = False
        original(self, root, *args, **kwargs)

    __init__.__doc__ = original.__doc__
    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(__init__, _PATCHED, True)
    base.__init__ = __init__  # FashionMNIST, KMNIST... inherit it
    return True
