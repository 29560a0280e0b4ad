"""A matplotlib backend for sandboxed runs: Agg drawing, and ``plt.show()`` saves each open figure as a PNG.

Selected with ``MPLBACKEND=module://harness.probes.mpl_backend`` (set by the runner and by
``bootstrap.install``); matplotlib imports it only when the student's code uses pyplot.
"""

from __future__ import annotations

from typing import Any

from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

from harness.probes.figures import save_open_figures

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase


def show(*args: Any, **kwargs: Any) -> None:
    """Save the open figures to the artifacts folder (numbered PNGs) and close them."""
    save_open_figures()
