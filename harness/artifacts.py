"""Read what a sandboxed run left in its artifacts folder, treating every byte as hostile (host side).

``load_artifacts(folder)`` reads run.json and probe.json as the typed records of
``harness.contract`` (every field checked once: types, caps, shapes) and lists the figures; ``Artifacts.load_tensor(relative)`` loads a tensor file only from inside the folder,
only below a size cap, and only with ``torch.load(weights_only=True)``: a file that holds
anything but tensors (a pickle of arbitrary objects) is refused with ``ArtifactError``.
``Artifacts.figure_info(png)`` reads a figure's JSON description (size-capped, shape-checked;
None when there is no usable one) and ``Artifacts.task_value(name)`` a recorded task value.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from harness.contract import (
    MAX_JSON_BYTES,
    PROBE_FILE,
    RUN_FILE,
    ContractError,
    ModelRecord,
    ProbeRecord,
    Record,
    RunRecord,
)
from harness.errors import HarnessError

MAX_TENSOR_BYTES = 256 * 1024**2
"""A tensor file bigger than this is refused."""

MAX_FIGURES = 100
"""Figures listed at most."""

MAX_FIGURE_BYTES = 8 * 1024**2
"""A figure bigger than this is not listed."""

MAX_SIDECAR_BYTES = 2 * 1024**2
"""A figure description (``figures/<n>.json``) bigger than this is not read."""

MAX_SIDECAR_AXES = 200
"""Axes a figure description may list."""

MAX_SIDECAR_ARTISTS = 50
"""Lines, scatters and images a figure description may list per axes."""

MAX_LINE_POINTS = 500
"""Points a described line may carry."""

MAX_SCATTER_POINTS = 2_000
"""Points a described scatter may carry."""

DRAWS_INDEX = "draws/draws.json"
"""Where the runner describes the random draws fed to a module (harness.probes.draws)."""

MAX_DRAWS = 16
"""Draw entries read at most."""

MAX_DRAWS_BYTES = 64 * 1024
"""Largest ``draws/draws.json`` read."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

R = TypeVar("R", bound=Record)


class ArtifactError(HarnessError):
    """An artifacts file is missing, malformed, too big, outside its folder, or not plain tensors."""


@dataclass(frozen=True)
class Artifacts:
    """The validated contents of one artifacts folder."""

    root: Path
    """The artifacts folder (resolved)."""
    run: RunRecord | None
    """run.json, validated; None when the runner wrote none (the run was killed before it started)."""
    probe: ProbeRecord | None
    """probe.json, validated; None when the probe did not run (``run.probe_error``/``run.probe_skipped`` say why)."""
    figures: tuple[Path, ...]
    """PNG figures, in number order (only real PNG files inside the folder)."""
    _sidecars: dict[str, dict[str, Any] | None] = field(default_factory=dict, compare=False, repr=False)
    """Figure descriptions already read, by sidecar path (each file is read and validated once)."""

    @property
    def models(self) -> tuple[ModelRecord, ...]:
        """The probe's model candidates (empty without a probe)."""
        return self.probe.models if self.probe else ()

    def path(self, relative: str) -> Path:
        """The file ``relative`` names, refusing anything that resolves outside the folder."""
        if not isinstance(relative, str) or not relative or "\x00" in relative:
            raise ArtifactError(f"invalid artifact path {relative!r}")
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise ArtifactError(f"artifact path {relative!r} points outside the artifacts folder")
        return path

    def load_tensor(self, relative: str) -> torch.Tensor | dict[str, torch.Tensor]:
        """Load a tensor (or a dict of tensors) the probe saved; never unpickles anything else."""
        path = self.path(relative)
        if not path.is_file():
            raise ArtifactError(f"artifact {relative} does not exist")
        size = path.stat().st_size
        if size > MAX_TENSOR_BYTES:
            raise ArtifactError(f"artifact {relative} is {size:,} bytes, over the {MAX_TENSOR_BYTES:,} cap")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch warns about pickle protocols it then refuses anyway
                value = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise ArtifactError(
                f"refused to load {relative}: it holds something other than plain tensors ({_unpickler_reason(error)})"
            ) from None
        except Exception as error:
            raise ArtifactError(f"could not load {relative}: {type(error).__name__}: {str(error)[:300]}") from None
        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, dict) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in value.items()):
            return value
        raise ArtifactError(f"artifact {relative} holds a {type(value).__name__}, not a tensor or a dict of tensors")


    def figure_info(self, png: Path | str) -> dict[str, Any] | None:
        """The description the probe wrote next to a figure (``figures/<n>.json``), validated; None without one.

        ``png`` is one of ``figures`` or a relative path such as ``figures/0.png``. None also
        when the sidecar is over ``MAX_SIDECAR_BYTES``, not valid JSON, not shaped as
        ARTIFACTS.md says, or outside the folder: a figure without a usable description is
        treated like one shown only as an image (never an ArtifactError).
        """
        try:
            path = Path(png) if Path(png).is_absolute() else self.path(str(png))
            path = path.resolve()
        except (ArtifactError, OSError, ValueError):
            return None
        if not path.is_relative_to(self.root) or path.suffix != ".png":
            return None
        sidecar = path.with_suffix(".json")
        key = str(sidecar)
        if key not in self._sidecars:
            self._sidecars[key] = _read_sidecar(sidecar)
        return self._sidecars[key]

    def figure_cell(self, png: Path | str) -> int | None:
        """The code cell (0-based; -1 for a script) whose run showed the figure; None when run.json does not say."""
        name = Path(png).name
        return self.run.figure_cells.get(f"figures/{name}") if self.run else None

    def figure_infos(self) -> list[tuple[Path, dict[str, Any]]]:
        """Every listed figure that has a valid description, with it, in figure order."""
        found = []
        for png in self.figures:
            info = self.figure_info(png)
            if info is not None:
                found.append((png, info))
        return found

    def latent_draws(self) -> list[dict[str, Any]]:
        """The random draws the run fed to a module (``draws/draws.json``, ARTIFACTS.md "Latent draws"), validated.

        Each entry has ``tensor`` (a path for ``load_tensor``), ``shape``, ``function`` (where it was
        drawn), ``drawn_with`` and ``module``. Empty when there is none or the file is malformed.
        """
        try:
            path = self.path(DRAWS_INDEX)
            if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_DRAWS_BYTES:
                return []
            record = json.loads(path.read_text(encoding="utf-8"))
        except (ArtifactError, OSError, ValueError, UnicodeDecodeError, RecursionError):
            return []
        draws = record.get("draws") if isinstance(record, dict) and record.get("format") == 1 else None
        if not isinstance(draws, list) or len(draws) > MAX_DRAWS:
            return []
        fields = ("tensor", "function", "drawn_with", "module")
        return [d for d in draws if _named_entry(d, *fields) and _is_shape(d.get("shape"))]

    def task_value(self, name: str) -> Any:
        """A recorded task value: a tensor for one saved as a file (``load_tensor``), else its JSON; None if absent."""
        value = ((self.probe.task_values if self.probe else None) or {}).get(name)
        if _is_tensor_value(value):
            return self.load_tensor(value["tensor"])
        return value

def _unpickler_reason(error: Exception) -> str:
    """The line of torch's refusal that says what was refused (``Unsupported global: GLOBAL builtins.print``)."""
    text = _ANSI.sub("", str(error))
    found = re.search(r"WeightsUnpickler error: ([^\n]+)", text)
    line = found.group(1) if found else (text.strip().splitlines() or [type(error).__name__])[0]
    return line.strip().split(". ")[0].rstrip(".")[:300]


def load_artifacts(folder: Path, run: RunRecord | None = None) -> Artifacts:
    """Read and validate an artifacts folder; raises ArtifactError when a file is there but malformed.

    run.json and probe.json are checked once, against ``harness.contract``, and come back as typed records.
    ``run``: the run.json the engine already read (``ExecutionResult.run``), taken as it is instead of read again.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ArtifactError(f"{folder}: no artifacts folder")
    if run is None:
        run = _read_record(root, RUN_FILE, RunRecord)
    probe = _read_record(root, PROBE_FILE, ProbeRecord)
    return Artifacts(root=root, run=run, probe=probe, figures=_figures(root))


def _read_record(root: Path, name: str, kind: type[R]) -> R | None:
    """The record in file ``name`` read as ``kind``; None without the file; ArtifactError naming the field."""
    value = _read_json(root, name)
    if value is None:
        return None
    try:
        return kind.from_json(value)
    except ContractError as error:
        raise ArtifactError(f"{name}: {error}") from None


def _read_json(root: Path, name: str) -> dict[str, Any] | None:
    path = root / name
    if not path.exists():
        return None
    if path.is_symlink() or not path.is_file():
        raise ArtifactError(f"{name} is not a regular file")
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ArtifactError(f"{name} is {size:,} bytes, over the {MAX_JSON_BYTES:,} cap")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{name} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ArtifactError(f"{name} is not a JSON object")
    return value


def _is_tensor_value(value: Any) -> bool:
    """A task value saved as a tensor file: ``{"tensor": "values/<name>.pt", "shape": [...]}``."""
    return (
        isinstance(value, dict)
        and set(value) == {"tensor", "shape"}
        and isinstance(value["tensor"], str)
        and value["tensor"].startswith("values/")
        and _is_shape(value["shape"])
    )


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------- figure descriptions


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    """A figure description, or None when it is missing, a link, too big, not JSON or not shaped right."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_SIDECAR_BYTES:
            return None
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if _valid_sidecar(value) else None


def _valid_sidecar(info: Any) -> bool:
    """True when ``info`` is shaped as ARTIFACTS.md's figure description (every field typed, every list capped)."""
    if not (isinstance(info, dict) and info.get("format") == 1 and isinstance(info.get("suptitle"), str)):
        return False
    axes = info.get("axes")
    if not isinstance(axes, list) or len(axes) > MAX_SIDECAR_AXES:
        return False
    if not _optional_count(info, "n_axes"):
        return False
    return all(_valid_axes(entry) for entry in axes)


def _valid_axes(entry: Any) -> bool:
    if not isinstance(entry, dict) or entry.get("projection") not in ("2d", "3d"):
        return False
    if not all(isinstance(entry.get(name), str) for name in ("title", "xlabel", "ylabel")):
        return False
    if "zlabel" in entry and not isinstance(entry["zlabel"], str):
        return False
    legend = entry.get("legend", [])
    if not isinstance(legend, list) or len(legend) > MAX_SIDECAR_ARTISTS:
        return False
    if not all(isinstance(text, str) for text in legend):
        return False
    if not all(_optional_count(entry, name) for name in ("n_lines", "n_scatters", "n_images")):
        return False
    lines, scatters, images = entry.get("lines"), entry.get("scatters"), entry.get("images")
    if not all(isinstance(part, list) and len(part) <= MAX_SIDECAR_ARTISTS for part in (lines, scatters, images)):
        return False
    return (
        all(_valid_line(line) for line in lines)
        and all(_valid_scatter(scatter) for scatter in scatters)
        and all(isinstance(image, dict) and _is_shape(image.get("shape")) for image in images)
    )


def _valid_line(line: Any) -> bool:
    if not (isinstance(line, dict) and isinstance(line.get("label"), str) and _is_count(line.get("n"))):
        return False
    x, y = line.get("x"), line.get("y")
    return _numbers_or_null(x, MAX_LINE_POINTS) and _numbers_or_null(y, MAX_LINE_POINTS) and len(x) == len(y)


def _valid_scatter(scatter: Any) -> bool:
    if not (isinstance(scatter, dict) and isinstance(scatter.get("label"), str) and _is_count(scatter.get("n"))):
        return False
    dims = scatter.get("dims")
    if dims not in (2, 3) or isinstance(dims, bool):
        return False
    mean, std, points = scatter.get("mean"), scatter.get("std"), scatter.get("points")
    if not (_numbers_or_null(mean, dims) and _numbers_or_null(std, dims) and len(mean) == len(std) == dims):
        return False
    if not isinstance(points, list) or len(points) > MAX_SCATTER_POINTS:
        return False
    return all(_numbers_or_null(point, dims) and len(point) == dims for point in points)


def _numbers_or_null(values: Any, cap: int) -> bool:
    """A list of at most ``cap`` finite numbers or nulls."""
    return isinstance(values, list) and len(values) <= cap and all(v is None or _is_number(v) for v in values)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _optional_count(record: dict[str, Any], name: str) -> bool:
    return name not in record or _is_count(record[name])


def _named_entry(entry: Any, *fields: str) -> bool:
    """True for a JSON object whose given fields are all strings."""
    return isinstance(entry, dict) and all(isinstance(entry.get(name), str) for name in fields)


def _is_shape(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value)


def _figures(root: Path) -> tuple[Path, ...]:
    """Real PNG files directly in figures/, numbered, inside the folder, under the size cap."""
    folder = root / "figures"
    if not folder.is_dir() or folder.is_symlink():
        return ()
    found = []
    for path in folder.iterdir():
        if path.is_symlink() or not path.is_file() or not path.stem.isdigit() or path.suffix != ".png":
            continue
        if path.stat().st_size > MAX_FIGURE_BYTES:
            continue
        with path.open("rb") as stream:
            if stream.read(8) != PNG_SIGNATURE:
                continue
        found.append((int(path.stem), path))
    return tuple(path for _, path in sorted(found)[:MAX_FIGURES])
