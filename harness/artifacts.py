"""Read what a sandboxed run left in its artifacts folder, treating every byte as hostile (host side).

``load_artifacts(folder)`` validates run.json and probe.json (structure, types, sizes) and lists
the figures; ``Artifacts.load_tensor(relative)`` loads a tensor file only from inside the folder,
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
from typing import Any

import torch

from harness.errors import HarnessError
from harness.probes.tracking import TRAINED_HOW

MAX_JSON_BYTES = 16 * 1024**2
"""run.json or probe.json bigger than this is refused."""

MAX_TENSOR_BYTES = 256 * 1024**2
"""A tensor file bigger than this is refused."""

MAX_FIGURES = 100
"""Figures listed at most."""

MAX_FIGURE_BYTES = 8 * 1024**2
"""A figure bigger than this is not listed."""

MAX_MODELS = 12
"""Model candidates read at most from probe.json."""

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

MAX_CALLS = 64
"""Call records read at most from probe.json."""

MAX_CALLABLES = 200
"""Names in probe.json's ``callables`` at most."""

DRAWS_INDEX = "draws/draws.json"
"""Where the runner describes the random draws fed to a module (harness.probes.draws)."""

MAX_DRAWS = 16
"""Draw entries read at most."""

MAX_DRAWS_BYTES = 64 * 1024
"""Largest ``draws/draws.json`` read."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ArtifactError(HarnessError):
    """An artifacts file is missing, malformed, too big, outside its folder, or not plain tensors."""


@dataclass(frozen=True)
class Artifacts:
    """The validated contents of one artifacts folder."""

    root: Path
    """The artifacts folder (resolved)."""
    run: dict[str, Any] | None
    """run.json, validated; None when the runner wrote none (the run was killed before it started)."""
    probe: dict[str, Any] | None
    """probe.json, validated; None when the probe did not run (``run['probe_error']``/``['probe_skipped']`` say why)."""
    figures: tuple[Path, ...]
    """PNG figures, in number order (only real PNG files inside the folder)."""
    _sidecars: dict[str, dict[str, Any] | None] = field(default_factory=dict, compare=False, repr=False)
    """Figure descriptions already read, by sidecar path (each file is read and validated once)."""

    @property
    def models(self) -> list[dict[str, Any]]:
        """The probe's model candidates (empty without a probe)."""
        return list((self.probe or {}).get("models", []))

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
        cell = ((self.run or {}).get("figure_cells") or {}).get(f"figures/{name}")
        return cell if _is_cell(cell) else None

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
        value = ((self.probe or {}).get("task_values") or {}).get(name)
        if _is_tensor_value(value):
            return self.load_tensor(value["tensor"])
        return value

def _unpickler_reason(error: Exception) -> str:
    """The line of torch's refusal that says what was refused (``Unsupported global: GLOBAL builtins.print``)."""
    text = _ANSI.sub("", str(error))
    found = re.search(r"WeightsUnpickler error: ([^\n]+)", text)
    line = found.group(1) if found else (text.strip().splitlines() or [type(error).__name__])[0]
    return line.strip().split(". ")[0].rstrip(".")[:300]


def load_artifacts(folder: Path) -> Artifacts:
    """Read and validate an artifacts folder; raises ArtifactError when a file is there but malformed."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ArtifactError(f"{folder}: no artifacts folder")
    run = _read_json(root, "run.json")
    probe = _read_json(root, "probe.json")
    if run is not None:
        _validate_run(run)
    if probe is not None:
        _validate_probe(probe)
    return Artifacts(root=root, run=run, probe=probe, figures=_figures(root))


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


def _require(
    record: dict[str, Any], name: str, kinds: type | tuple[type, ...], where: str, optional: bool = False
) -> Any:
    """The field's value, checked against ``kinds`` (bool never passes for int); None allowed when ``optional``."""
    value = record.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
        raise ArtifactError(f"{where}: field {name!r} is {type(value).__name__}, expected {_names(kinds)}")
    return value


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _names(kinds: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kinds))


def _validate_run(run: dict[str, Any]) -> None:
    """Check run.json's fields and types (ARTIFACTS.md)."""
    where = "run.json"
    _require(run, "format", int, where)
    _require(run, "source", str, where)
    if run.get("kind") not in ("notebook", "script"):
        raise ArtifactError(f"{where}: kind is {run.get('kind')!r}, expected 'notebook' or 'script'")
    _require(run, "cells_total", int, where)
    _require(run, "cells_run", int, where)
    for entry in _require(run, "errors", list, where):
        if not isinstance(entry, dict):
            raise ArtifactError(f"{where}: an error entry is not an object")
        _require(entry, "cell", int, f"{where} errors")
        _require(entry, "ename", str, f"{where} errors")
        _require(entry, "evalue", str, f"{where} errors")
    seconds = _require(run, "cell_seconds", list, where, optional=True) or []
    if not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in seconds):
        raise ArtifactError(f"{where}: cell_seconds holds something other than numbers")
    _require(run, "timed_out_cell", int, where, optional=True)
    _require(run, "probe_error", str, where, optional=True)
    _require(run, "probe_skipped", str, where, optional=True)
    _require(run, "setup_error", str, where, optional=True)
    cells = _require(run, "figure_cells", dict, where, optional=True) or {}
    if not all(isinstance(name, str) and _is_cell(cell) for name, cell in cells.items()):
        raise ArtifactError(f"{where}: figure_cells must map figure paths to cell numbers")


def _validate_probe(probe: dict[str, Any]) -> None:
    """Check probe.json's fields and types (ARTIFACTS.md); model entries are checked one by one."""
    where = "probe.json"
    _require(probe, "format", int, where)
    models = _require(probe, "models", list, where)
    if len(models) > MAX_MODELS:
        raise ArtifactError(f"{where}: {len(models)} model candidates, over the cap of {MAX_MODELS}")
    for index, model in enumerate(models):
        if not isinstance(model, dict):
            raise ArtifactError(f"{where}: models[{index}] is not an object")
        at = f"{where} models[{index}]"
        _require(model, "id", str, at)
        _require(model, "name", str, at)
        if model.get("origin") not in ("instance", "class"):
            raise ArtifactError(f"{at}: origin is {model.get('origin')!r}, expected 'instance' or 'class'")
        if "probe_error" in model:  # inspecting it failed: only the error is recorded
            _require(model, "probe_error", str, at)
            continue
        _require(model, "class_name", str, at)
        _require(model, "construct_error", str, at, optional=True)
        _require(model, "forward_error", str, at, optional=True)
        _require(model, "trainable_parameters", int, at, optional=True)
        _require(model, "bound", bool, at, optional=True)
        _require(model, "trained", bool, at, optional=True)
        if model.get("trained_how") is not None and model["trained_how"] not in TRAINED_HOW:
            raise ArtifactError(f"{at}: trained_how is {str(model['trained_how'])[:100]!r}, expected one of "
                                f"{', '.join(TRAINED_HOW)}")
        built = _require(model, "built_at", dict, at, optional=True)
        if built is not None:
            for name, kind in (("file", str), ("line", int), ("function", str), ("label", str)):
                _require(built, name, kind, f"{at} built_at")
        _require(model, "total_parameters", int, at, optional=True)
        for layer in _require(model, "modules", list, at):
            if not (_named_entry(layer, "path", "type") and isinstance(layer.get("hyper"), dict)):
                raise ArtifactError(f"{at}: a module entry is malformed")
        for call in _require(model, "layer_shapes", list, at):
            if not _named_entry(call, "path", "type"):
                raise ArtifactError(f"{at}: a layer_shapes entry is malformed")
            shape = call.get("output_shape")
            if shape is not None and not _is_shape(shape):
                raise ArtifactError(f"{at}: an output_shape is not a list of whole numbers")
        _check_computation(model.get("computation"), at)
        for name in ("input_shape", "output_shape"):
            if model.get(name) is not None and not _is_shape(model[name]):
                raise ArtifactError(f"{at}: {name} is not a list of whole numbers")
        _require(model, "state_dict", str, at, optional=True)
        for name in ("outputs", "inputs"):
            files = _require(model, name, dict, at, optional=True) or {}
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
                raise ArtifactError(f"{at}: {name} must map dataset names to file paths")
    for name in ("losses", "optimizers"):
        for entry in _require(probe, name, list, where):
            if not _named_entry(entry, "name", "type"):
                raise ArtifactError(f"{where}: a {name} entry is malformed")
    figures = _require(probe, "figures", list, where)
    if not all(isinstance(f, str) for f in figures):
        raise ArtifactError(f"{where}: figures must be file paths")
    _require(probe, "namespace_errors", list, where)
    _require(probe, "task_values", dict, where, optional=True)  # entries are the student's values: read as given
    calls = _require(probe, "calls", dict, where, optional=True) or {}
    if len(calls) > MAX_CALLS:
        raise ArtifactError(f"{where}: {len(calls)} call records, over the cap of {MAX_CALLS}")
    for call_id, call in calls.items():
        _validate_call(call, f"{where} calls[{call_id!r}]")
    callables = _require(probe, "callables", list, where, optional=True) or []
    if len(callables) > MAX_CALLABLES or not all(isinstance(name, str) for name in callables):
        raise ArtifactError(f"{where}: callables must be at most {MAX_CALLABLES} names")


def _validate_call(call: Any, at: str) -> None:
    """A call record: the function used (or None), its number(s), and the error (or None)."""
    if not isinstance(call, dict):
        raise ArtifactError(f"{at}: not an object")
    _require(call, "function", str, at, optional=True)
    _require(call, "error", str, at, optional=True)
    value = call.get("value")
    if value is not None and not _is_number(value):
        raise ArtifactError(f"{at}: value is {type(value).__name__}, expected a number or null")
    numbers = _require(call, "values", list, at, optional=True) or []
    if len(numbers) > 10 or not all(n is None or _is_number(n) for n in numbers):
        raise ArtifactError(f"{at}: values must be at most 10 numbers")


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


def _is_cell(value: Any) -> bool:
    """A cell number of run.json: 0 or more, or -1 for a whole script."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= -1


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _optional_count(record: dict[str, Any], name: str) -> bool:
    return name not in record or _is_count(record[name])


def _check_computation(trace: Any, at: str) -> None:
    """A candidate's traced forward pass (``harness.probes.trace``): absent/null, or an object whose layers each
    name a type, carry a hyper object, a path and function that are strings or null, and a shape or null."""
    if trace is None:
        return
    where = f"{at} computation"
    if not isinstance(trace, dict):
        raise ArtifactError(f"{where}: is {type(trace).__name__}, expected an object")
    _require(trace, "error", str, where, optional=True)
    _require(trace, "truncated", bool, where)
    if not all(isinstance(problem, str) for problem in _require(trace, "problems", list, where)):
        raise ArtifactError(f"{where}: problems must be strings")
    for layer in _require(trace, "layers", list, where):
        if not (_named_entry(layer, "type") and isinstance(layer.get("hyper"), dict)):
            raise ArtifactError(f"{where}: a layer entry is malformed")
        if not all(isinstance(layer.get(name), (str, type(None))) for name in ("path", "function")):
            raise ArtifactError(f"{where}: a layer's path and function must be strings or null")
        if layer.get("output_shape") is not None and not _is_shape(layer["output_shape"]):
            raise ArtifactError(f"{where}: an output_shape is not a list of whole numbers")


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
