"""Self-check bundles: what a student needs to check their work without the course's reference code.

Course staff make one per assignment (``gradebench bundle make --rubric rubrics/dl2025-a2.yaml --out
dl2025-a2.gbundle``); a student checks a notebook with it (``gradebench check --bundle dl2025-a2.gbundle
CNNMNIST.ipynb``, or ``gradebench.check("cnn")`` inside the notebook), with no calibration and no ``reference``
package installed. A bundle is a zip file holding:

``manifest.json``
    ``{"kind": "gradebench-bundle", "format": 1, "assignment", "title", "profile", "rubric_sha256", "tasks",
    "made_with", "data"}`` (``data``: the prepared datasets the bars were measured on, ``data_identity``)
``rubric.yaml``
    the rubric, byte for byte (its hash is in the manifest).
``calibration.json``
    per task, the reference's calibrated metrics as ``harness.calibration.calibrate_rubric`` measured them (the
    bars of relative thresholds, the seconds budgets multiply).
``references.json``
    per task with a ``model.spec``: what the checks read of the reference network (``TaskReference``): its
    layers as ``describe_reference`` traces them, its trainable parameter count, and the layers of every other
    network ``architecture_matches`` accepts (``params.also``).

Never reference code, weights or hidden labels: checks that need the reference network itself (recomputing
a student's predictions with their weights) report that they are not available in the self-check.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.pipeline import GradingSetup
    from harness.rubric import Rubric, Task

FORMAT = 1
"""Version of the bundle layout; a bundle of another format is refused with what to do."""

KIND = "gradebench-bundle"
"""The manifest's ``kind``: what tells a bundle from any other zip file."""

SUFFIX = ".gbundle"
"""The usual file suffix of a bundle."""

ENVIRONMENT = "GRADEBENCH_BUNDLE"
"""Environment variable naming the bundle ``gradebench.check`` uses when none is given."""

MEMBERS = ("manifest.json", "rubric.yaml", "calibration.json", "references.json")
"""Everything a bundle holds."""

MAX_MEMBER_BYTES = 16 * 1024**2
"""A member larger than this (uncompressed) is refused: a bundle holds text of a few hundred kilobytes."""


@dataclass(frozen=True)
class TaskReference:
    """What the checks of one task read of the reference network, without its code."""

    layers: list[dict[str, Any]] | None
    """The reference's computation as ``harness.architecture.describe_reference`` gives it (free sizes marked)."""
    parameters: int | None
    """The reference's trainable parameter count (ranks the student's model candidates)."""
    accepted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """The layers of the other networks ``architecture_matches`` accepts (``params.also``), by spec."""


@dataclass(frozen=True)
class Bundle:
    """A self-check bundle, read and validated (``read_bundle``)."""

    path: Path
    """The bundle file."""
    manifest: dict[str, Any]
    """Its manifest.json."""
    rubric: Rubric
    """Its rubric, loaded without importing the reference classes."""
    calibration: dict[str, dict[str, float]]
    """The published calibration, per task id."""
    references: dict[str, TaskReference]
    """The reference descriptions, per task id (tasks with a ``model.spec``)."""


def reference_of(task: Task, shapes: list[list[int]], rubric_name: str) -> TaskReference | None:
    """Describe the reference network of ``task`` from the reference code (course staff's side); None without a
    ``model.spec``. ``shapes``: the dummy-batch shapes of the task's dataset; ``rubric_name``: its file, for
    messages."""
    from harness.architecture import describe_reference
    from harness.checks import options
    from harness.checks.architecture import ArchitectureOptions
    from harness.rubric import _resolve_spec

    if task.model is None or task.model.spec is None:
        return None
    model = task.model.build_reference()
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    layers = task.model.reference_layers(shapes, f"{rubric_name}: tasks ({task.id})")
    accepted = {}
    for spec in task.checks:
        if spec.check == "architecture_matches":
            for one in options(spec, ArchitectureOptions).also:
                accepted[one] = describe_reference(_resolve_spec(one), {}, {}, shapes)
    return TaskReference(layers=layers, parameters=parameters, accepted=accepted)


def make_bundle(setup: GradingSetup, out: Path) -> Path:
    """Write the bundle of ``setup``'s rubric (calibrated already: ``setup.calibration``) to ``out``."""
    from harness import __version__
    from harness.contract import DEFAULT_INPUT_SHAPES

    rubric = setup.rubric
    if rubric.path is None:
        raise HarnessError("a bundle is made from a rubric file")
    text = rubric.path.read_bytes()
    references = {}
    for task in rubric.automatic_tasks:
        shapes = DEFAULT_INPUT_SHAPES.get(task.model.dataset or "", DEFAULT_INPUT_SHAPES["mnist"]) if task.model else []
        described = reference_of(task, shapes, str(rubric.path))
        if described is not None:
            references[task.id] = {"layers": described.layers, "parameters": described.parameters,
                                   "accepted": described.accepted}
    manifest = {
        "kind": KIND,
        "format": FORMAT,
        "assignment": rubric.assignment,
        "title": rubric.title,
        "profile": setup.profile,
        "rubric_sha256": hashlib.sha256(text).hexdigest(),
        "tasks": [t.id for t in rubric.automatic_tasks],
        "made_with": f"gradebench {__version__}",
        # the calibration holds for the data it was measured on: the small synthetic data a self-check prepares
        "data": data_identity(setup.data_dir),
    }
    calibration = {task_id: metrics for task_id, metrics in setup.calibration.items() if task_id in manifest["tasks"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=1))
        archive.writestr("rubric.yaml", text)
        archive.writestr("calibration.json", json.dumps(calibration, indent=1))
        archive.writestr("references.json", json.dumps(references))
    partial.replace(out)
    return out


def data_identity(data_dir: Path) -> dict[str, Any]:
    """What identifies the prepared datasets in ``data_dir`` (source, size, seed, file hashes; not when they were
    prepared): a bundle's bars hold for a student's data when these are the same."""
    try:
        manifest = json.loads((Path(data_dir) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    datasets = manifest.get("datasets") if isinstance(manifest, dict) else None
    return {
        name: {key: entry.get(key) for key in ("source", "small", "seed", "counts", "files")}
        for name, entry in (datasets or {}).items() if isinstance(entry, dict)
    }


def data_differs(bundle: Bundle, data_dir: Path) -> list[str]:
    """The rubric's datasets prepared in ``data_dir`` otherwise than those the bundle's bars were measured on."""
    published = bundle.manifest.get("data") or {}
    mine = data_identity(data_dir)
    return [name for name in bundle.rubric.datasets if name in published and published[name] != mine.get(name)]


def read_bundle(path: Path) -> Bundle:
    """Read and validate a bundle; HarnessError saying what is wrong and what to do."""
    from harness.checks import known_checks
    from harness.rubric import parse_rubric

    path = Path(path)
    again = "ask your course staff for the bundle of this assignment again"
    if not path.is_file():
        raise HarnessError(f"{path}: no such self-check bundle")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            if "manifest.json" not in members:
                raise HarnessError(f"{path} is not a gradebench self-check bundle (it has no manifest.json)")
            texts = {}
            for name in MEMBERS:
                info = members.get(name)
                if info is None:
                    raise HarnessError(f"{path}: the bundle has no {name}: {again}")
                if info.file_size > MAX_MEMBER_BYTES:
                    raise HarnessError(f"{path}: {name} is {info.file_size:,} bytes, more than a bundle holds: {again}")
                texts[name] = archive.read(info)
    except zipfile.BadZipFile:
        raise HarnessError(f"{path} is not a gradebench self-check bundle (not a zip file)") from None
    manifest = _json(path, "manifest.json", texts["manifest.json"])
    if manifest.get("kind") != KIND:
        raise HarnessError(f"{path} is not a gradebench self-check bundle (its manifest is of kind {manifest.get('kind')!r})")
    if manifest.get("format") != FORMAT:
        raise HarnessError(
            f"{path} is a bundle of format {manifest.get('format')!r} ({manifest.get('made_with', 'unknown maker')}); "
            f"this gradebench reads format {FORMAT}: install the gradebench version your course names, or {again}"
        )
    if hashlib.sha256(texts["rubric.yaml"]).hexdigest() != manifest.get("rubric_sha256"):
        raise HarnessError(f"{path}: its rubric.yaml is not the rubric the bundle was made with (it was changed): {again}")
    rubric = parse_rubric(texts["rubric.yaml"], f"{path.name}:rubric.yaml", known_checks(), resolve_specs=False)
    if rubric.assignment != manifest.get("assignment"):
        raise HarnessError(f"{path}: its rubric is for {rubric.assignment}, its manifest for {manifest.get('assignment')}: {again}")
    calibration = _json(path, "calibration.json", texts["calibration.json"])
    described = _json(path, "references.json", texts["references.json"])
    references = {}
    for task in rubric.automatic_tasks:
        if task.model is None or task.model.spec is None:
            continue
        entry = described.get(task.id)
        if not isinstance(entry, dict):
            raise HarnessError(f"{path}: the bundle does not describe task {task.id}'s network: {again}")
        references[task.id] = TaskReference(
            layers=entry.get("layers"), parameters=entry.get("parameters"), accepted=dict(entry.get("accepted") or {})
        )
    return Bundle(path=path, manifest=manifest, rubric=rubric, calibration=calibration, references=references)


def _json(path: Path, name: str, raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise HarnessError(f"{path}: {name} is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise HarnessError(f"{path}: {name} is not a JSON object")
    return value


def find_bundle(folder: Path) -> Path | None:
    """The bundle ``gradebench.check`` uses when none is named: ``$GRADEBENCH_BUNDLE``, else the one ``*.gbundle``
    file in ``folder`` (the notebook's folder); None when there is none. Several there are an error."""
    import os

    named = os.environ.get(ENVIRONMENT)
    if named:
        return Path(named)
    found = sorted(Path(folder).glob(f"*{SUFFIX}"))
    if len(found) > 1:
        listed = ", ".join(p.name for p in found)
        raise HarnessError(f"several bundles next to the notebook ({listed}): name one, e.g. bundle={found[0].name!r}")
    return found[0] if found else None
