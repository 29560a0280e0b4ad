"""The host's reader of artifacts folders (harness.artifacts): validates JSON, never unpickles, stays inside."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from harness.artifacts import ArtifactError, load_artifacts

RUN = {"format": 1, "source": "CNNMNIST.ipynb", "kind": "notebook", "cells_total": 2, "cells_run": 2,
       "errors": [{"cell": 1, "ename": "NameError", "evalue": "name 'x' is not defined", "source_excerpt": "x"}],
       "cell_seconds": [0.1, 0.2], "timed_out_cell": None, "probe_error": None}
MODEL = {"id": "m0", "name": "model", "origin": "instance", "class_name": "Net", "construct_error": None,
         "modules": [{"path": "0", "type": "Linear", "hyper": {"in_features": 784}}],
         "layer_shapes": [{"path": "0", "type": "Linear", "output_shape": [2, 10]}], "input_shape": [2, 784],
         "forward_error": None, "trainable_parameters": 7850, "total_parameters": 7850,
         "state_dict": "models/m0/state_dict.pt", "outputs": {"mnist": "models/m0/outputs-mnist.pt"}}
PROBE = {"format": 1, "models": [MODEL], "losses": [], "optimizers": [], "figures": [], "namespace_errors": []}


class Payload:
    """Stands for arbitrary code a pickle would run on load."""

    def __reduce__(self):
        return (print, ("this must never run on the host",))


TRACE = {"layers": [{"path": None, "type": "ReLU", "hyper": {}, "function": "torch.relu", "output_shape": [2, 4]}],
         "error": None, "truncated": False, "problems": []}
"""A traced forward pass as the probe records it (ARTIFACTS.md ``computation``)."""


def write_folder(root: Path, run: dict = RUN, probe: dict = PROBE) -> Path:
    (root / "models" / "m0").mkdir(parents=True)
    (root / "run.json").write_text(json.dumps(run))
    (root / "probe.json").write_text(json.dumps(probe))
    torch.save({"weight": torch.zeros(10, 784)}, root / "models" / "m0" / "state_dict.pt")
    torch.save(torch.ones(5, 10), root / "models" / "m0" / "outputs-mnist.pt")
    return root


def test_a_well_formed_folder_loads_with_its_tensors(tmp_path):
    artifacts = load_artifacts(write_folder(tmp_path))
    assert artifacts.run.cells_run == 2 and artifacts.models[0].name == "model"
    assert artifacts.load_tensor(MODEL["state_dict"])["weight"].shape == (10, 784)
    assert artifacts.load_tensor(MODEL["outputs"]["mnist"]).shape == (5, 10)


def test_a_pickle_bearing_tensor_file_is_refused_and_never_runs(tmp_path, capsys):
    write_folder(tmp_path)
    hostile = tmp_path / "models" / "m0" / "state_dict.pt"
    torch.save({"weight": torch.zeros(2), "payload": Payload()}, hostile)  # a torch zip with a code-running pickle
    with zipfile.ZipFile(hostile) as archive:
        assert any(name.endswith("data.pkl") for name in archive.namelist())
    artifacts = load_artifacts(tmp_path)
    refusal = "refused to load models/m0/state_dict.pt: it holds something other than plain tensors"
    with pytest.raises(ArtifactError, match=refusal):
        artifacts.load_tensor("models/m0/state_dict.pt")
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Payload()))  # a bare pickle, not even a torch file
    with pytest.raises(ArtifactError, match="raw.pt"):
        artifacts.load_tensor("raw.pt")
    assert "must never run" not in capsys.readouterr().out


def test_paths_outside_the_folder_are_refused(tmp_path):
    artifacts = load_artifacts(write_folder(tmp_path / "artifacts"))
    torch.save(torch.zeros(1), tmp_path / "secret.pt")
    (tmp_path / "artifacts" / "link.pt").symlink_to(tmp_path / "secret.pt")
    for relative in ("../secret.pt", "/etc/passwd", "link.pt"):
        with pytest.raises(ArtifactError, match="outside the artifacts folder"):
            artifacts.load_tensor(relative)


def test_a_traced_computation_loads(tmp_path):
    folder = write_folder(tmp_path, RUN, {**PROBE, "models": [{**MODEL, "computation": TRACE}]})
    assert load_artifacts(folder).probe.models[0].computation.to_json() == TRACE


@pytest.mark.parametrize(
    ("run", "probe", "message"),
    [
        ({**RUN, "cells_run": "2"}, PROBE, "run.json: cells_run is str, expected int"),
        ({**RUN, "kind": "shell"}, PROBE, "run.json: kind is 'shell', expected one of 'notebook', 'script'"),
        (RUN, {**PROBE, "models": [{**MODEL, "origin": "pickle"}]}, r"models\[0\]\.origin is 'pickle'"),
        (RUN, {**PROBE, "models": [{**MODEL, "input_shape": ["2"]}]},
         r"probe.json: models\[0\]\.input_shape\[0\] is str, expected int"),
        (RUN, {**PROBE, "models": [{**MODEL, "input_shape": [2, -1]}]},
         r"models\[0\]\.input_shape has a negative size"),
        (RUN, {**PROBE, "models": [MODEL] * 13}, "probe.json: models has 13 entries, over the cap of 12"),
        (RUN, {**PROBE, "models": [{**MODEL, "computation": [{"type": "ReLU"}]}]},
         r"models\[0\]\.computation is a list, expected an object"),
        (RUN, {**PROBE, "models": [{**MODEL, "computation": {**TRACE, "layers": [{"type": "ReLU", "hyper": {},
                                                                                  "path": 3}]}}]},
         r"models\[0\]\.computation\.layers\[0\]\.path is int, expected str or null"),
        (RUN, {**PROBE, "models": [{**MODEL, "computation": {**TRACE, "truncated": "no"}}]},
         r"models\[0\]\.computation\.truncated is str, expected bool"),
    ],
)
def test_malformed_json_is_refused_with_the_field_named(tmp_path, run, probe, message):
    with pytest.raises(ArtifactError, match=message):
        load_artifacts(write_folder(tmp_path, run, probe))


def test_figures_are_listed_only_when_they_are_png_files(tmp_path):
    write_folder(tmp_path)
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n...")
    (figures / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n...")
    (figures / "2.png").write_bytes(b"<html>not a png</html>")
    (figures / "3.png").symlink_to("/etc/hostname")
    assert [p.name for p in load_artifacts(tmp_path).figures] == ["0.png", "1.png"]
