"""The probe's additions for issue 4: figure sidecars, big and dict task values, calls on fixed inputs, callables.

The probe runs here on namespaces built in this process (as tests/probes/test_probe.py does),
with real matplotlib figures drawn on Agg; the host side reads the results back with
harness.artifacts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.artifacts import MAX_SIDECAR_BYTES, ArtifactError, load_artifacts
from harness.engines import Engine, RunSettings
from harness.models import SandboxResult, Submission
from harness.probes import figures, fixed_inputs, probe

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def plt():
    """pyplot on Agg with no figure left over from elsewhere; closes what the test leaves open."""
    import matplotlib.pyplot as pyplot

    pyplot.switch_backend("Agg")
    pyplot.close("all")
    yield pyplot
    pyplot.close("all")


def config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"artifacts": str(tmp_path / "artifacts"), "datasets": ["mnist"], "eval": {}, "step_timeout_s": 20,
            **extra}


def student_namespace(source: str) -> dict[str, Any]:
    """The globals a notebook leaves after running ``source`` (its functions and classes live in ``__main__``)."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, "<student>", "exec"), namespace)
    return namespace


# --------------------------------------------------------------------------- figure sidecars


def draw_the_four_kinds(plt) -> dict[str, Any]:
    """A 2-D scatter, a 3-D scatter, two training curves (plus a legend-only labelling), an image grid."""
    rng = np.random.default_rng(0)
    encoded = rng.normal(size=(3_000, 2)) * [1.0, 3.0] + [5.0, -2.0]  # (3000, 2)
    fig, ax = plt.subplots()
    ax.scatter(encoded[:, 0], encoded[:, 1], label="test images")
    ax.set_title("PCA encoding")
    ax.set_xlabel("component 1")
    plt.show()

    latent = rng.normal(size=(400, 3))  # (400, 3)
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    ax.scatter(latent[:, 0], latent[:, 1], latent[:, 2])
    ax.set_zlabel("z3")
    fig.suptitle("3-D latent space")
    plt.show()

    steps = np.arange(1_000)
    train = 2.0 * np.exp(-steps / 300)
    test = 2.1 * np.exp(-steps / 400) + 0.05
    test[10] = np.nan
    fig, (left, right) = plt.subplots(1, 2)
    left.plot(steps, train, label="train loss")
    left.plot(steps, test, label="test loss")
    left.legend()
    right.plot([1, 2, 3], [3, 2, 1])
    right.plot([1, 2, 3], [1, 2, 3])
    right.legend(["linear AE", "PCA"])  # labels given to the legend only
    plt.show()

    fig, axes = plt.subplots(2, 5)
    for index, ax in enumerate(axes.flat):
        ax.imshow(rng.random((28, 28, 3) if index == 9 else (28, 28)), cmap="gray")
        ax.axis("off")
    # left open: the probe saves it at the end
    return {"encoded": encoded, "latent": latent, "train": train}


def test_figures_get_sidecars_describing_scatters_lines_and_images(tmp_path, plt, monkeypatch):
    monkeypatch.setenv(figures.FIGURES_ENV, str(tmp_path / "artifacts" / "figures"))
    data = draw_the_four_kinds(plt)
    record = probe.run(config(tmp_path), {"__name__": "__main__"})
    assert record["figures"] == [f"figures/{n}.png" for n in range(4)]

    artifacts = load_artifacts(tmp_path / "artifacts")
    infos = artifacts.figure_infos()
    assert [png.name for png, _ in infos] == ["0.png", "1.png", "2.png", "3.png"]
    scatter2d, scatter3d, curves, grid = (info for _, info in infos)
    assert artifacts.figure_info("figures/0.png") == scatter2d

    [axes] = scatter2d["axes"]
    assert (axes["projection"], axes["title"], axes["xlabel"]) == ("2d", "PCA encoding", "component 1")
    [scatter] = axes["scatters"]
    assert (scatter["label"], scatter["n"], scatter["dims"]) == ("test images", 3_000, 2)
    assert scatter["mean"] == pytest.approx(data["encoded"].mean(0), rel=1e-5)
    assert scatter["std"] == pytest.approx(data["encoded"].std(0), rel=1e-5)
    assert len(scatter["points"]) == 2_000
    assert scatter["points"][0] == pytest.approx(data["encoded"][0], rel=1e-6)

    assert scatter3d["suptitle"] == "3-D latent space"
    [axes] = scatter3d["axes"]
    assert (axes["projection"], axes["zlabel"]) == ("3d", "z3")
    [scatter] = axes["scatters"]
    assert (scatter["n"], scatter["dims"], scatter["label"]) == (400, 3, "")  # matplotlib's "_child0" is unnamed
    assert scatter["mean"] == pytest.approx(data["latent"].mean(0), rel=1e-5, abs=1e-6)
    assert len(scatter["points"]) == 400 and len(scatter["points"][0]) == 3

    left, right = curves["axes"]
    train, test = left["lines"]
    assert (train["label"], test["label"], train["n"]) == ("train loss", "test loss", 1_000)
    assert len(train["x"]) == len(train["y"]) == 500  # evenly subsampled, both ends kept
    assert (train["x"][0], train["x"][-1]) == (0.0, 999.0)
    assert train["y"][-1] == pytest.approx(data["train"][-1], rel=1e-6)
    assert (test["x"][5], test["y"][5]) == (10.0, None) and None not in train["y"]  # NaN at step 10 -> null
    assert test["y"][6] == pytest.approx(2.1 * math.exp(-test["x"][6] / 400) + 0.05, rel=1e-6)
    assert left["legend"] == ["train loss", "test loss"]
    assert [line["label"] for line in right["lines"]] == ["linear AE", "PCA"]  # matched back from the legend

    assert grid["n_axes"] == 10
    shapes = [axes["images"] for axes in grid["axes"]]
    assert shapes == [[{"shape": [28, 28]}]] * 9 + [[{"shape": [28, 28, 3]}]]
    assert all(axes["n_images"] == 1 and axes["lines"] == [] for axes in grid["axes"])


def test_a_nan_point_becomes_null_and_the_sidecar_stays_strict_json(tmp_path, plt):
    plt.plot([0.0, 1.0, 2.0], [1.0, float("nan"), float("inf")])
    [png] = figures.save_open_figures(tmp_path)
    text = png.with_suffix(".json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    [line] = json.loads(text)["axes"][0]["lines"]
    assert line["y"] == [1.0, None, None]


def test_a_figure_that_cannot_be_described_is_still_saved_without_a_sidecar(tmp_path, plt, monkeypatch):
    figure = plt.figure()
    plt.plot([1, 2, 3])

    def broken() -> list[Any]:
        raise RuntimeError("a student's subclass broke get_axes")

    monkeypatch.setattr(figure, "get_axes", broken)
    assert figures.save_open_figures(tmp_path) == [tmp_path / "0.png"]
    assert not (tmp_path / "0.json").exists()


def test_an_oversized_description_is_shrunk_to_the_cap(plt, monkeypatch):
    monkeypatch.setattr(figures, "MAX_SIDECAR_BYTES", 60_000)
    rng = np.random.default_rng(1)
    for _ in range(3):
        plt.scatter(rng.random(5_000), rng.random(5_000))
    info = figures.describe_figure(plt.gcf())
    assert info is not None and len(json.dumps(info)) <= 60_000
    scatters = info["axes"][0]["scatters"]
    assert [s["n"] for s in scatters] == [5_000] * 3 and all(len(s["points"]) <= 200 for s in scatters)


# --------------------------------------------------------------------------- host reading of sidecars


def sidecar_folder(tmp_path: Path, sidecar: str | bytes) -> Path:
    root = tmp_path / "artifacts"
    (root / "figures").mkdir(parents=True)
    (root / "figures" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)
    data = sidecar.encode() if isinstance(sidecar, str) else sidecar
    (root / "figures" / "0.json").write_bytes(data)
    return root


GOOD = {"format": 1, "suptitle": "", "axes": [{"projection": "2d", "title": "t", "xlabel": "", "ylabel": "",
        "lines": [{"label": "a", "n": 2, "x": [0, 1], "y": [1.5, None]}], "scatters": [], "images": [],
        "n_images": 0}]}


def test_a_well_formed_sidecar_is_read(tmp_path):
    artifacts = load_artifacts(sidecar_folder(tmp_path, json.dumps(GOOD)))
    assert artifacts.figure_info(artifacts.figures[0]) == GOOD


@pytest.mark.parametrize(
    "sidecar",
    [
        "not json {",
        json.dumps([GOOD]),
        json.dumps({**GOOD, "axes": "everything"}),
        json.dumps({**GOOD, "axes": [{**GOOD["axes"][0], "projection": "4d"}]}),
        json.dumps({**GOOD, "axes": [{**GOOD["axes"][0], "lines": [{"label": "a", "n": 2, "x": [0, 1], "y": [1]}]}]}),
        json.dumps({**GOOD, "axes": [{**GOOD["axes"][0], "lines": [{"label": "a", "n": 1, "x": ["1"], "y": [1]}]}]}),
        json.dumps({**GOOD, "axes": [{**GOOD["axes"][0], "lines": [{"label": "a", "n": 1, "x": [1],
                                                                   "y": [float("nan")]}]}]}),
        json.dumps({**GOOD, "axes": [{**GOOD["axes"][0], "scatters": [{"label": "", "n": 1, "dims": 2,
                                     "mean": [0, 0], "std": [1, 1], "points": [[0, 0, 0]]}]}]}),
        json.dumps({**GOOD, "axes": [{**GOOD["axes"][0], "lines": [{"label": "a", "n": 501, "x": [0] * 501,
                                                                   "y": [0] * 501}]}]}),
    ],
    ids=["not-json", "not-object", "axes-not-list", "bad-projection", "ragged-line", "text-number", "nan",
         "wrong-point-width", "too-many-points"],
)
def test_a_malformed_sidecar_gives_no_description(tmp_path, sidecar):
    artifacts = load_artifacts(sidecar_folder(tmp_path, sidecar))
    assert len(artifacts.figures) == 1  # the PNG still counts as a figure
    assert artifacts.figure_info(artifacts.figures[0]) is None and artifacts.figure_infos() == []


def test_an_oversized_or_linked_sidecar_is_not_read(tmp_path):
    padded = json.dumps({**GOOD, "suptitle": "x" * MAX_SIDECAR_BYTES})
    artifacts = load_artifacts(sidecar_folder(tmp_path / "big", padded))
    assert artifacts.figure_info("figures/0.png") is None

    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(GOOD))
    root = sidecar_folder(tmp_path / "link", "{}")
    (root / "figures" / "0.json").unlink()
    (root / "figures" / "0.json").symlink_to(outside)
    artifacts = load_artifacts(root)
    assert artifacts.figure_info("figures/0.png") is None
    assert artifacts.figure_info("../outside.png") is None
    assert artifacts.figure_info(tmp_path / "outside.png") is None


# --------------------------------------------------------------------------- task values


def test_big_arrays_are_saved_as_tensors_and_small_dicts_as_json(tmp_path):
    z = torch.randn(5_000, 2, dtype=torch.float64)
    namespace = {
        "__name__": "__main__",
        "z": z,
        "z-samples": np.arange(300).reshape(100, 3),  # a name no file system would like as it is
        "losses": [1.0 / (i + 1) for i in range(250)],
        "history": {"train": [0.9, 0.5], "lr": 0.01, 3: "three", "mu": torch.tensor([0.5, -0.5]),
                    "big": torch.zeros(1_000)},
        "cube": torch.ones(2, 2, 2),
        "too_many": {i: i for i in range(101)},
    }
    names = ["z", "z-samples", "losses", "history", "cube", "too_many"]
    record = probe.run(config(tmp_path, task_values=names), namespace)
    values = record["task_values"]
    assert values["z"] == {"tensor": "values/z.pt", "shape": [5_000, 2]}
    assert values["z-samples"] == {"tensor": "values/z_samples.pt", "shape": [100, 3]}
    assert values["losses"] == {"tensor": "values/losses.pt", "shape": [250]}
    assert values["cube"] == {"tensor": "values/cube.pt", "shape": [2, 2, 2]}  # 3-D: a file, not nested JSON
    assert values["history"] == {"train": [0.9, 0.5], "lr": 0.01, "3": "three", "mu": [0.5, -0.5],
                                 "big": "<Tensor of shape [1000]: too big for a dict task value>"}
    assert "too_many" not in values
    assert any(e.startswith("too_many: a dict of 101 items") for e in record["namespace_errors"])

    artifacts = load_artifacts(tmp_path / "artifacts")
    loaded = artifacts.load_tensor(values["z"]["tensor"])
    assert loaded.dtype == torch.float32 and torch.equal(loaded, z.float())
    assert torch.equal(artifacts.task_value("z-samples"), torch.arange(300.0).reshape(100, 3))
    assert artifacts.task_value("losses")[-1].item() == pytest.approx(1 / 250)
    assert artifacts.task_value("history")["lr"] == 0.01 and artifacts.task_value("absent") is None


def test_a_tensor_requiring_grad_and_a_list_of_tensors_are_recorded(tmp_path):
    weights = torch.randn(200, requires_grad=True)
    samples = [torch.randn(2) for _ in range(64)]  # (64, 2) once stacked
    record = probe.run(config(tmp_path, task_values=["weights", "samples"]),
                       {"__name__": "__main__", "weights": weights, "samples": samples})
    artifacts = load_artifacts(tmp_path / "artifacts")
    assert torch.equal(artifacts.task_value("weights"), weights.detach())
    assert record["task_values"]["samples"]["shape"] == [64, 2]
    assert torch.equal(artifacts.task_value("samples"), torch.stack(samples))


# --------------------------------------------------------------------------- calls on fixed inputs


def test_fixed_inputs_are_deterministic_and_shaped_as_documented():
    recon, x, mu, logvar = fixed_inputs.build("vae_loss")
    again = fixed_inputs.build("vae_loss")
    assert all(torch.equal(a, b) for a, b in zip((recon, x, mu, logvar), again))
    assert [tuple(t.shape) for t in (recon, x, mu, logvar)] == [(16, 784), (16, 784), (16, 2), (16, 2)]
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in (recon, x, mu, logvar))
    assert 0 < recon.min() and recon.max() < 1 and 0 <= x.min() and x.max() <= 1
    assert recon.data_ptr() != again[0].data_ptr()  # fresh tensors: a call that edits them in place harms nothing
    with pytest.raises(ValueError, match=r"no fixed inputs 'gan_loss'; known: \['vae_loss'\]"):
        fixed_inputs.build("gan_loss")


STUDENT_LOSSES = """
import time
import torch
import torch.nn.functional as F

def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD

def parts(recon_x, x, mu, logvar):
    total = loss_function(recon_x, x, mu, logvar)
    return total, "a note", torch.zeros(3), total / 16

def broken(recon_x, x, mu, logvar):
    return F.mse_loss(recon_x, x) / undefined_scale

def per_example(recon_x, x, mu, logvar):
    return F.binary_cross_entropy(recon_x, x, reduction='none').sum(1)

def endless(recon_x, x, mu, logvar):
    time.sleep(30)

def huge(recon_x, x, mu, logvar):
    return [object()] * 1_000_000

def logs_zero(recon_x, x, mu, logvar):
    return torch.log(torch.zeros(())) * 1

loss_fn = 3.0
"""


def expected_vae_loss() -> float:
    recon, x, mu, logvar = fixed_inputs.build("vae_loss")
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    return float(bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()))


def test_calls_record_the_value_the_error_or_the_missing_function(tmp_path):
    calls = [
        {"id": "works", "names": ["vae_loss", "loss_function"], "inputs": "vae_loss"},
        {"id": "tuple", "names": ["parts"], "inputs": "vae_loss"},
        {"id": "raises", "names": ["broken"], "inputs": "vae_loss"},
        {"id": "falls_back", "names": ["broken", "loss_function"], "inputs": "vae_loss"},
        {"id": "missing", "names": ["vae_loss", "elbo"], "inputs": "vae_loss"},
        {"id": "not_a_function", "names": ["loss_fn"], "inputs": "vae_loss"},
        {"id": "vector", "names": ["per_example"], "inputs": "vae_loss"},
        {"id": "huge", "names": ["huge"], "inputs": "vae_loss"},
        {"id": "infinite", "names": ["logs_zero"], "inputs": "vae_loss"},
        {"id": "unknown_inputs", "names": ["loss_function"], "inputs": "gan_loss"},
    ]
    record = probe.run(config(tmp_path, calls=calls), student_namespace(STUDENT_LOSSES))
    results = record["calls"]
    expected = expected_vae_loss()

    works = results["works"]
    assert (works["function"], works["error"], works["result_type"]) == ("loss_function", None, "Tensor")
    assert works["value"] == pytest.approx(expected, rel=1e-5) and works["values"] == [works["value"]]
    assert results["tuple"]["values"] == pytest.approx([expected, expected / 16], rel=1e-5)
    assert results["tuple"]["value"] == pytest.approx(expected, rel=1e-5)
    assert results["raises"] == {"function": "broken", "value": None, "values": [],
                                 "error": "NameError: name 'undefined_scale' is not defined"}
    assert results["falls_back"]["function"] == "loss_function" and results["falls_back"]["error"] is None
    assert results["missing"] == {"function": None, "value": None, "values": [],
                                  "error": "none of vae_loss, elbo is defined"}
    assert results["not_a_function"]["error"] == "none of loss_fn is a function (loss_fn is a float)"
    assert results["vector"]["error"] == "TypeError: the result is a tensor of shape [16], not a single number"
    assert results["huge"]["error"] == "TypeError: the result is a list with no single number in it"
    assert results["infinite"]["value"] is None and results["infinite"]["error"].startswith("ValueError: the result "
                                                                                           "is -inf")
    assert results["unknown_inputs"]["error"].startswith("ValueError: no fixed inputs 'gan_loss'")
    # the recorded JSON is what the host reads back
    calls = load_artifacts(tmp_path / "artifacts").probe.calls
    assert {k: v.to_json() for k, v in calls.items()} == {
        k: {"result_type": None, **v} for k, v in json.loads(json.dumps(results)).items()
    }


def test_a_call_that_never_returns_is_cut_by_the_step_timeout(tmp_path):
    calls = [{"id": "slow", "names": ["endless"], "inputs": "vae_loss"}]
    record = probe.run(config(tmp_path, calls=calls, step_timeout_s=0.3), student_namespace(STUDENT_LOSSES))
    assert record["calls"]["slow"]["error"] == "ProbeTimeout: took longer than 0.3 s"


def test_an_nn_module_loss_instance_is_called_like_a_function(tmp_path):
    source = """
import torch
from torch import nn
class VAELoss(nn.Module):
    def forward(self, recon_x, x, mu, logvar):
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return nn.functional.binary_cross_entropy(recon_x, x, reduction='sum') + kld
criterion = VAELoss()
"""
    calls = [{"id": "vae_loss", "names": ["VAELoss", "criterion"], "inputs": "vae_loss"}]
    record = probe.run(config(tmp_path, calls=calls), student_namespace(source))
    result = record["calls"]["vae_loss"]
    assert result["function"] == "criterion"  # the class itself is skipped: calling it would build an object
    assert result["value"] == pytest.approx(expected_vae_loss(), rel=1e-5)


# --------------------------------------------------------------------------- callables


def test_callables_are_the_students_own_functions_and_classes(tmp_path):
    source = """
import math
from os.path import join
from torch import nn
from torch.nn import Linear

def plot_generated_samples(decoder, n=16):
    return n

class VAE(nn.Module):
    pass

square = lambda value: value * value
result = plot_generated_samples(None)
"""
    record = probe.run(config(tmp_path), student_namespace(source))
    assert record["callables"] == ["VAE", "plot_generated_samples", "square"]
    assert list(load_artifacts(tmp_path / "artifacts").probe.callables) == record["callables"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("calls", [], "probe.json: calls is a list, expected an object"),
        ("calls", {"x": {"function": 3}}, r"calls\['x'\]\.function is int, expected str or null"),
        ("calls", {"x": {"function": "f", "value": "1.5"}}, r"calls\['x'\]\.value is str, expected a number or null"),
        ("calls", {"x": {"function": "f", "values": [1.0] * 11}}, r"calls\['x'\]\.values has 11 entries, over the cap of 10"),
        ("callables", "plot_generated_samples", "callables is str, expected a list or null"),
        ("callables", [1, 2], r"callables\[0\] is int, expected str"),
        ("callables", ["f"] * 201, "callables has 201 entries, over the cap of 200"),
    ],
)
def test_malformed_calls_or_callables_are_refused(tmp_path, field, value, message):
    probe_json = {"format": 1, "models": [], "losses": [], "optimizers": [], "figures": [], "namespace_errors": [],
                  field: value}
    (tmp_path / "probe.json").write_text(json.dumps(probe_json))
    with pytest.raises(ArtifactError, match=message):
        load_artifacts(tmp_path)


# --------------------------------------------------------------------------- the engine passes calls on


class ConfigRecordingSandbox:
    """Stands in for a sandbox: keeps the runner config the engine wrote, runs nothing."""

    isolated = False
    warning = ""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}

    def run(self, command, *, workspace, limits, mounts=(), env=None, cwd=None, stdin=None) -> SandboxResult:
        self.config = json.loads(Path(command[command.index("--config") + 1]).read_text())
        return SandboxResult("ok", "exit code 0", 0, 0.1, 0.1, 0, "", "", True)


def test_run_settings_pass_calls_and_task_values_to_the_runner(tmp_path):
    root = tmp_path / "submission"
    root.mkdir()
    notebook = FIXTURES / "notebooks" / "class_only.ipynb"
    (root / notebook.name).write_bytes(notebook.read_bytes())
    submission = Submission(student="s", source=notebook, root=root, files=(notebook.name,), kind="notebook",
                            content_hash="0" * 64)
    calls = ({"id": "vae_loss", "names": ["loss_function", "vae_loss"], "inputs": "vae_loss"},)
    sandbox = ConfigRecordingSandbox()
    Engine(sandbox, "notebook").run(submission, notebook.name, tmp_path / "out",
                                RunSettings(task_values=("z",), calls=calls))
    assert sandbox.config["calls"] == [dict(calls[0])]
    assert sandbox.config["task_values"] == ["z"]
    assert RunSettings().calls == ()
