"""Figures a run produces, saved as numbered PNG files in the artifacts folder (runs in the sandbox).

The matplotlib backend :mod:`harness.probes.mpl_backend` (selected with ``MPLBACKEND``) calls
``save_open_figures`` from ``plt.show()``, so scripts and notebooks that never say
``%matplotlib inline`` still leave their plots behind. Each saved figure also gets a JSON
sidecar ``<n>.json`` describing what it shows (titles, lines, scatters, images; ARTIFACTS.md),
so host checks can judge a plot without reading pixels.

Importing this module does not import matplotlib: the description imports parts of it only
when ``matplotlib.pyplot`` is already in use.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

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

SIDECAR_FORMAT = 1
"""Version of the ``<n>.json`` figure description."""

MAX_SIDECAR_BYTES = 2 * 1024**2
"""Largest figure description written (the host refuses bigger ones)."""

MAX_AXES = 200
"""Axes described per figure (``n_axes`` counts them all)."""

MAX_ARTISTS = 50
"""Lines, and scatters, described per axes (``n_lines``/``n_scatters`` count them all)."""

MAX_IMAGES = 50
"""Images listed per axes (``n_images`` counts them all)."""

MAX_LEGEND = 50
"""Legend texts listed per axes."""

MAX_LINE_POINTS = 500
"""Points kept per line: a longer line is evenly subsampled, first and last point included."""

MAX_SCATTER_POINTS = 2_000
"""Points listed per scatter (the first ones; mean and spread use them all)."""

MAX_TEXT_CHARS = 500
"""Titles, labels and legend texts are cut here."""


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
    """Save every open matplotlib figure as a numbered PNG (and its ``.json`` sidecar) and close it.

    Nothing happens if matplotlib is unused. The sidecar (``describe_figure``) is written only
    for a figure whose PNG was kept, and left out when describing the figure failed.
    """
    pyplot = sys.modules.get("matplotlib.pyplot")
    target = folder or os.environ.get(FIGURES_ENV)
    if pyplot is None or not target:
        return []
    saved = []
    for number in list(pyplot.get_fignums()):
        figure = pyplot.figure(number)
        path = reserve_figure_path(Path(target))
        if path is not None:
            info = describe_figure(figure)
            try:
                figure.savefig(path, format="png", dpi=72)
            except Exception:  # a broken figure must not break the student's run
                path.unlink(missing_ok=True)
            else:
                if path.stat().st_size > MAX_FIGURE_BYTES:
                    path.unlink(missing_ok=True)
                else:
                    saved.append(path)
                    if info is not None:
                        write_sidecar(path, info)
        pyplot.close(figure)
    return saved


# --------------------------------------------------------------------------- figure sidecars


def describe_figure(figure: Any) -> dict[str, Any] | None:
    """What a figure shows, as ARTIFACTS.md's sidecar describes it; None when the figure defeats the description.

    Titles and labels, per axes its lines (data, evenly subsampled to ``MAX_LINE_POINTS``),
    scatters (point count, per-dimension mean and spread, the first ``MAX_SCATTER_POINTS``
    points) and images (array shapes). A description over ``MAX_SIDECAR_BYTES`` is shrunk
    (fewer scatter points, shorter lines) and dropped if it still does not fit.
    """
    try:
        info = _describe(figure)
        for level in range(len(_SHRINK_LEVELS) + 1):
            if level:
                _shrink(info, *_SHRINK_LEVELS[level - 1])
            if len(json.dumps(info, allow_nan=False, separators=(",", ":"))) <= MAX_SIDECAR_BYTES:
                return info
    except Exception:  # a weird figure must never break the student's run: it just gets no sidecar
        pass
    return None


def write_sidecar(png: Path, info: dict[str, Any]) -> Path | None:
    """Write ``info`` next to ``png`` as ``<n>.json``; None (and no file) if that fails."""
    path = Path(png).with_suffix(".json")
    try:
        path.write_text(json.dumps(info, allow_nan=False, separators=(",", ":")), encoding="utf-8")
    except Exception:
        path.unlink(missing_ok=True)
        return None
    return path


def _describe(figure: Any) -> dict[str, Any]:
    every = list(figure.get_axes())
    return {
        "format": SIDECAR_FORMAT,
        "suptitle": _text(getattr(figure, "_suptitle", None)),
        "n_axes": len(every),
        "axes": [_describe_axes(axes, figure) for axes in every[:MAX_AXES]],
    }


def _describe_axes(axes: Any, figure: Any) -> dict[str, Any]:
    from matplotlib.collections import PathCollection

    three_d = getattr(axes, "name", "") == "3d"
    titles = [axes.get_title(loc) for loc in ("center", "left", "right")]
    entry: dict[str, Any] = {
        "projection": "3d" if three_d else "2d",
        "title": _cap(" ".join(t for t in titles if t)),
        "xlabel": _cap(str(axes.get_xlabel())),
        "ylabel": _cap(str(axes.get_ylabel())),
    }
    if three_d:
        entry["zlabel"] = _cap(str(axes.get_zlabel()))
    legend = _legend_entries(axes, figure)
    entry["legend"] = [text for _, text in legend[:MAX_LEGEND]]
    taken: set[int] = set()
    lines = list(axes.lines)
    entry["n_lines"] = len(lines)
    entry["lines"] = [_describe_line(line, _label(line, legend, taken)) for line in lines[:MAX_ARTISTS]]
    scatters = [c for c in axes.collections if isinstance(c, PathCollection)]
    entry["n_scatters"] = len(scatters)
    entry["scatters"] = [
        _describe_scatter(scatter, _label(scatter, legend, taken), three_d) for scatter in scatters[:MAX_ARTISTS]
    ]
    images = list(axes.images)
    entry["n_images"] = len(images)
    entry["images"] = [{"shape": [int(d) for d in np.shape(image.get_array())]} for image in images[:MAX_IMAGES]]
    return entry


def _describe_line(line: Any, label: str) -> dict[str, Any]:
    x = _as_floats(line.get_xdata(orig=False))
    y = _as_floats(line.get_ydata(orig=False))
    n = min(len(x), len(y))
    if n > MAX_LINE_POINTS:  # evenly spaced, first and last included: a curve's start and end both survive
        keep = np.unique(np.linspace(0, n - 1, MAX_LINE_POINTS).round().astype(np.int64))
        x, y = x[keep], y[keep]
    else:
        x, y = x[:n], y[:n]
    return {"label": label, "n": int(n), "x": _json_floats(x), "y": _json_floats(y)}


def _describe_scatter(scatter: Any, label: str, three_d: bool) -> dict[str, Any]:
    offsets3d = getattr(scatter, "_offsets3d", None) if three_d else None
    if offsets3d is not None:
        columns = np.broadcast_arrays(*(np.atleast_1d(_as_floats(c)) for c in offsets3d))
        points = np.stack(columns, axis=1)  # (n, 3)
    else:
        points = _as_floats(scatter.get_offsets()).reshape(-1, 2)  # (n, 2)
    dims = int(points.shape[1])
    finite = points[np.isfinite(points).all(axis=1)]
    if len(finite):
        mean, std = _json_floats(finite.mean(axis=0)), _json_floats(finite.std(axis=0))
    else:
        mean, std = [None] * dims, [None] * dims
    head = points[:MAX_SCATTER_POINTS]
    return {
        "label": label,
        "n": int(len(points)),
        "dims": dims,
        "mean": mean,
        "std": std,
        "points": [_json_floats(row) for row in head],
    }


def _legend_entries(axes: Any, figure: Any) -> list[tuple[Any, str]]:
    """(legend handle, text) of the axes' legend and the figure's legends."""
    legends = [axes.get_legend(), *getattr(figure, "legends", [])]
    entries = []
    for legend in legends:
        if legend is None:
            continue
        handles = getattr(legend, "legend_handles", None) or getattr(legend, "legendHandles", None) or []
        entries += [(handle, _cap(str(text.get_text()))) for handle, text in zip(handles, legend.texts)]
    return entries


def _label(artist: Any, legend: list[tuple[Any, str]], taken: set[int]) -> str:
    """The artist's own label; for an unnamed one (``_child0``) the text of the legend entry drawn like it.

    ``plt.legend(['train', 'test'])`` names the lines in the legend only; its entries are
    new artists, matched back to the lines by colour, line style and marker (each entry once).
    """
    own = str(artist.get_label() or "")
    if own and not own.startswith("_"):
        return _cap(own)
    key = _look(artist)
    for index, (handle, text) in enumerate(legend):
        if index not in taken and key is not None and _look(handle) == key:
            taken.add(index)
            return text
    return ""


def _look(artist: Any) -> tuple[Any, ...] | None:
    """What a legend entry copies from its artist: colour, line style and marker (lines), face colour (scatters)."""
    from matplotlib.colors import to_rgba

    try:
        if hasattr(artist, "get_linestyle") and hasattr(artist, "get_marker"):
            return ("line", to_rgba(artist.get_color()), artist.get_linestyle(), str(artist.get_marker()))
        faces = artist.get_facecolor()
        return ("scatter", tuple(np.round(np.asarray(faces, dtype=float)[0], 4)) if len(faces) else None)
    except Exception:
        return None


def _as_floats(values: Any) -> np.ndarray:
    """Float64 values with masked entries as NaN."""
    return np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan)


def _json_floats(values: Any) -> list[float | None]:
    """Numbers at float32 precision for JSON; NaN and infinities become None."""
    numbers = np.asarray(values, dtype=np.float64).ravel().tolist()
    return [float(f"{v:.7g}") if math.isfinite(v) else None for v in numbers]


def _text(artist: Any) -> str:
    try:
        return _cap(str(artist.get_text())) if artist is not None else ""
    except Exception:
        return ""


def _cap(text: str) -> str:
    return text[:MAX_TEXT_CHARS]


_SHRINK_LEVELS = ((200, MAX_LINE_POINTS), (0, 100), (0, 20))
"""(scatter points, line points) kept per artist at each step of shrinking an oversized sidecar."""


def _shrink(info: dict[str, Any], scatter_points: int, line_points: int) -> None:
    for axes in info["axes"]:
        for scatter in axes["scatters"]:
            scatter["points"] = scatter["points"][:scatter_points]
        for line in axes["lines"]:
            if len(line["x"]) > line_points:
                keep = np.unique(np.linspace(0, len(line["x"]) - 1, line_points).round().astype(np.int64)).tolist()
                line["x"] = [line["x"][i] for i in keep]
                line["y"] = [line["y"][i] for i in keep]
