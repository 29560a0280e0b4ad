"""Figures a run produces, saved as numbered PNG files in the artifacts folder (runs in the sandbox).

The matplotlib backend :mod:`harness.probes.mpl_backend` (selected with ``MPLBACKEND``) calls
``save_open_figures`` from ``plt.show()``, so scripts and notebooks that never say
``%matplotlib inline`` still leave their plots behind. Nothing here imports matplotlib.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FIGURES_ENV = "GRADEBENCH_FIGURES_DIR"
"""Environment variable naming the folder figures are saved to."""

MAX_FIGURES_ENV = "GRADEBENCH_MAX_FIGURES"
"""Environment variable capping how many figures are kept (default ``MAX_FIGURES``)."""

MAX_FIGURES = 50
"""Figures kept per run unless the environment says otherwise; later ones are dropped."""

MAX_FIGURE_BYTES = 4 * 1024**2
"""Largest PNG kept; a bigger one is dropped."""

BACKEND = "module://harness.probes.mpl_backend"
"""The value of ``MPLBACKEND`` that selects this backend."""


def _max_figures() -> int:
    try:
        return max(0, int(os.environ.get(MAX_FIGURES_ENV, MAX_FIGURES)))
    except ValueError:
        return MAX_FIGURES


def reserve_figure_path(folder: Path, limit: int | None = None) -> Path | None:
    """Create and return the next free ``<n>.png`` in ``folder``; None when ``limit`` figures are already there."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    limit = _max_figures() if limit is None else limit
    taken = {p.stem for p in folder.glob("*.png")}
    if len(taken) >= limit:
        return None
    number = len(taken)
    while True:
        path = folder / f"{number}.png"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return path
        except FileExistsError:
            number += 1


def write_png(folder: Path, data: bytes) -> Path | None:
    """Save PNG bytes as the next numbered figure; None if the figure is not a PNG, too big, or over the cap."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or len(data) > MAX_FIGURE_BYTES:
        return None
    path = reserve_figure_path(folder)
    if path is not None:
        path.write_bytes(data)
    return path


def save_open_figures(folder: Path | None = None) -> list[Path]:
    """Save every open matplotlib figure as a numbered PNG and close it; nothing if matplotlib is unused."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    target = folder or os.environ.get(FIGURES_ENV)
    if pyplot is None or not target:
        return []
    saved = []
    for number in list(pyplot.get_fignums()):
        figure = pyplot.figure(number)
        path = reserve_figure_path(Path(target))
        if path is not None:
            try:
                figure.savefig(path, format="png", dpi=72)
            except Exception:  # a broken figure must not break the student's run
                path.unlink(missing_ok=True)
            else:
                if path.stat().st_size > MAX_FIGURE_BYTES:
                    path.unlink(missing_ok=True)
                else:
                    saved.append(path)
        pyplot.close(figure)
    return saved
