"""Fabricated artifacts folders for check tests: probe.json, run.json, tensors and figure descriptions.

Everything is written the way the probe writes it (harness/probes/ARTIFACTS.md) and read back
through ``harness.artifacts.load_artifacts``, so the checks see what they see in a real grading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from harness.artifacts import PNG_SIGNATURE, load_artifacts
from harness.checks.context import CheckContext
from harness.contract import RunRecord

RUN = {"format": 1, "source": "task.ipynb", "kind": "notebook", "cells_total": 3, "cells_run": 3, "errors": []}


def run_record(**fields: Any) -> RunRecord:
    """A run.json record (through the contract, as the host reads it): ``RUN`` updated with ``fields``, every
    cell run unless ``cells_run`` says otherwise."""
    record = {**RUN, **fields}
    if "cells_run" not in fields:
        record["cells_run"] = record["cells_total"]
    return RunRecord.from_json(record)


def probe_record(**fields: Any) -> dict[str, Any]:
    """A probe.json with no models, losses, optimizers or figures, updated with ``fields``."""
    record: dict[str, Any] = {
        "format": 1, "torch_version": torch.__version__, "models": [], "losses": [], "optimizers": [],
        "figures": [], "namespace_errors": [], "task_values": {},
    }
    record.update(fields)
    return record


def candidate(
    root: Path,
    name: str,
    state: dict[str, torch.Tensor] | None = None,
    *,
    layer_shapes: Sequence[tuple[str, str, list[int]]] = (),
    output_shape: list[int] | None = None,
    inputs: torch.Tensor | None = None,
    outputs: torch.Tensor | None = None,
    dataset: str = "mnist",
) -> dict[str, Any]:
    """A model candidate entry; its state_dict, inputs and outputs are saved under ``models/<name>/``."""
    folder = root / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    entry: dict[str, Any] = {
        "id": name, "name": name, "origin": "instance", "class_name": name.capitalize(), "construct_error": None,
        "modules": [], "forward_order": [p for p, _, _ in layer_shapes],
        "layer_shapes": [{"path": p, "type": t, "output_shape": s} for p, t, s in layer_shapes],
        "input_shape": [2, 1, 28, 28], "forward_error": None, "output_shape": output_shape,
        "trainable_parameters": 0, "total_parameters": 0, "buffers": {}, "state_dict": None, "outputs": {}, "inputs": {},
    }
    if state is not None:
        torch.save({k: v.detach().clone() for k, v in state.items()}, folder / "state_dict.pt")
        entry["state_dict"] = f"models/{name}/state_dict.pt"
    if outputs is not None:
        torch.save(outputs.float().reshape(len(outputs), -1).clone(), folder / f"outputs-{dataset}.pt")
        entry["outputs"][dataset] = f"models/{name}/outputs-{dataset}.pt"
    if inputs is not None:
        torch.save(inputs.float().clone(), folder / f"inputs-{dataset}.pt")
        entry["inputs"][dataset] = f"models/{name}/inputs-{dataset}.pt"
    return entry


def line(label: str, y: Sequence[float], x: Sequence[float] | None = None) -> dict[str, Any]:
    """A line as the figure description lists it."""
    xs = list(range(len(y))) if x is None else list(x)
    return {"label": label, "n": len(y), "x": [float(v) for v in xs], "y": [float(v) for v in y]}


def scatter(label: str, points: np.ndarray) -> dict[str, Any]:
    """A scatter collection as the figure description lists it: statistics over all points, the first 2,000 listed."""
    points = np.asarray(points, dtype=float)
    return {
        "label": label, "n": len(points), "dims": points.shape[1],
        "mean": points.mean(0).tolist(), "std": points.std(0).tolist(), "points": points[:2000].tolist(),
    }


def axes(
    *, title: str = "", xlabel: str = "", ylabel: str = "", lines: Sequence[dict] = (), scatters: Sequence[dict] = (),
    images: int = 0, projection: str = "2d",
) -> dict[str, Any]:
    """One axes of a figure description."""
    return {
        "projection": projection, "title": title, "xlabel": xlabel, "ylabel": ylabel,
        "lines": list(lines), "scatters": list(scatters), "images": [{"shape": [28, 28]}] * images, "n_images": images,
    }


def figure(root: Path, number: int, *parts: dict[str, Any], suptitle: str = "") -> str:
    """Write ``figures/<number>.png`` (a PNG header) and its description; returns the PNG's relative path."""
    folder = root / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{number}.png").write_bytes(PNG_SIGNATURE + b"\x00" * 16)
    (folder / f"{number}.json").write_text(json.dumps({"format": 1, "suptitle": suptitle, "axes": list(parts)}))
    return f"figures/{number}.png"


def context(root: Path, probe: dict[str, Any] | None, task_id: str = "task", **fields: Any) -> CheckContext:
    """Write run.json and probe.json into ``root``, read the folder back as the pipeline does, build a CheckContext.

    ``model`` in ``fields`` may be a candidate's id: the candidate of that id is the chosen model.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "run.json").write_text(json.dumps(RUN))
    if probe is not None:
        (root / "probe.json").write_text(json.dumps(probe))
    records = load_artifacts(root)
    model = fields.pop("model", None)
    if isinstance(model, str):
        model = records.probe.model(model).to_json()  # the pipeline hands checks the chosen candidate as JSON
    return CheckContext(
        task_id=task_id, run=records.run, probe=records.probe, artifacts_dir=root, records=records,
        model=model, model_note=f"graded `{model['name']}`" if model else "no PyTorch model (nn.Module) was found",
        dataset=fields.pop("dataset", "mnist"), **fields,
    )
