"""The probe on namespaces built in this process: the fixture notebooks' own cells, run with exec (no kernel)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from harness.probes import probe
from harness.probes.namespace import MAX_VALUE_ELEMENTS

NOTEBOOKS = Path(__file__).parents[1] / "fixtures" / "notebooks"


def run_cells(name: str) -> dict[str, Any]:
    """Execute a fixture notebook's code cells in a fresh ``__main__``-like namespace, errors allowed."""
    notebook = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for index, cell in enumerate(c for c in notebook["cells"] if c["cell_type"] == "code"):
        try:
            exec(compile(cell["source"], f"<{name} cell {index}>", "exec"), namespace)
        except Exception:
            pass
    return namespace


@pytest.fixture
def eval_images(tmp_path: Path) -> Path:
    """Twenty uint8 evaluation images (N, 28, 28), as the engine mounts them."""
    images = np.random.default_rng(0).integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    path = tmp_path / "mnist-images.npy"
    np.save(path, images)
    return path


def probe_config(tmp_path: Path, eval_images: Path | None, **extra: Any) -> dict[str, Any]:
    config = {"artifacts": str(tmp_path / "artifacts"), "prefer": ["Net", "model"], "datasets": ["mnist"],
              "eval": {"mnist": str(eval_images)} if eval_images else {}, "step_timeout_s": 20}
    return {**config, **extra}


def test_reference_like_cnn_records_architecture_shapes_weights_and_outputs(tmp_path, eval_images):
    namespace = run_cells("inline_sequential.ipynb")
    record = probe.run(probe_config(tmp_path, eval_images), namespace)
    artifacts = tmp_path / "artifacts"
    assert json.loads((artifacts / "probe.json").read_text()) == record
    [model] = record["models"]
    assert (model["name"], model["origin"], model["class_name"]) == ("model", "instance", "Sequential")
    assert model["trainable_parameters"] == model["total_parameters"] == 12_810
    assert model["input_shape"] == [2, 1, 28, 28] and model["forward_error"] is None
    flatten = next(s for s in model["layer_shapes"] if s["type"] == "Flatten")
    assert flatten["output_shape"] == [2, 800]
    assert model["forward_order"] == [m["path"] for m in model["modules"]]
    assert model["modules"][0] == {"path": "0", "type": "Conv2d", "hyper": {
        "in_channels": 1, "out_channels": 16, "kernel_size": [3, 3], "stride": [1, 1], "padding": [0, 0],
        "dilation": [1, 1], "groups": 1, "bias": True}}
    outputs = torch.load(artifacts / model["outputs"]["mnist"], weights_only=True)
    assert outputs.shape == (20, 10) and outputs.dtype == torch.float32
    state = torch.load(artifacts / model["state_dict"], weights_only=True)
    assert set(state) == set(namespace["model"].state_dict())
    # The exported outputs are what the model computes on the exported inputs.
    inputs = torch.load(artifacts / model["inputs"]["mnist"], weights_only=True)
    with torch.inference_mode():
        assert torch.allclose(namespace["model"].eval()(inputs), outputs, atol=1e-5)
    assert model["preprocessing"]["mnist"].startswith("default: ToTensor(), Normalize((0.1307,), (0.3081,))")
    assert record["losses"] == [{"name": "criterion", "type": "NLLLoss"}]
    assert record["optimizers"] == [{"name": "optimizer", "type": "Adam", "lr": 0.001, "parameters": 12_810}]


def test_cnn_named_cnnnet_with_functional_relus_is_found_by_what_it_is(tmp_path, eval_images):
    record = probe.run(probe_config(tmp_path, eval_images), run_cells("cnn_named_cnnnet.ipynb"))
    [model] = record["models"]
    assert (model["name"], model["class_name"], model["trainable_parameters"]) == ("cnn_model", "CNNNet", 12_810)
    assert [m["type"] for m in model["modules"]] == ["Conv2d", "MaxPool2d", "Conv2d", "Flatten", "Linear"]
    # the shared pool runs twice; F.relu is invisible to hooks
    called = [s["type"] for s in model["layer_shapes"]]
    assert called == ["Conv2d", "MaxPool2d", "Conv2d", "MaxPool2d", "Flatten", "Linear"]
    # the traced computation sees the F.relu calls, and the shared pool each time it runs
    computed = [layer["type"] for layer in model["computation"]["layers"]]
    assert computed == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear",
                        "LogSoftmax"]
    assert model["computation"]["error"] is None and model["computation"]["truncated"] is False
    assert model["outputs"]["mnist"]


def test_wrong_flatten_reports_the_shape_mismatch_and_the_3872_features(tmp_path, eval_images):
    record = probe.run(probe_config(tmp_path, eval_images), run_cells("wrong_flatten.ipynb"))
    [model] = record["models"]
    assert "mat1 and mat2 shapes cannot be multiplied (2x3872 and 800x10)" in model["forward_error"]
    assert model["input_shape"] is None and model["outputs"] == {}
    assert next(s for s in model["layer_shapes"] if s["type"] == "Flatten")["output_shape"] == [2, 3872]
    assert model["state_dict"] is not None  # the weights are still exported
    assert model["computation"]["error"] == model["forward_error"]


def test_the_usual_fix_of_the_wrong_flatten_has_43530_parameters(tmp_path, eval_images):
    record = probe.run(probe_config(tmp_path, eval_images), run_cells("wrong_flatten_3872.ipynb"))
    [model] = record["models"]
    assert model["trainable_parameters"] == 43_530 and model["forward_error"] is None
    assert next(s for s in model["layer_shapes"] if s["type"] == "Flatten")["output_shape"] == [2, 3872]


def test_softmax_with_nll_loss_lists_the_loss_and_outputs_rows_summing_to_one(tmp_path, eval_images):
    record = probe.run(probe_config(tmp_path, eval_images), run_cells("softmax_nll.ipynb"))
    [model] = record["models"]
    assert record["losses"] == [{"name": "criterion", "type": "NLLLoss"}]
    assert model["input_shape"] == [2, 784]  # the image shape failed, the flat one worked
    assert model["modules"][-1] == {"path": "main.5", "type": "Softmax", "hyper": {"dim": 1}}
    outputs = torch.load(tmp_path / "artifacts" / model["outputs"]["mnist"], weights_only=True)
    assert outputs.shape == (20, 10)
    assert torch.allclose(outputs.sum(1), torch.ones(20), atol=1e-5)


def test_a_class_without_instance_is_constructed_for_its_architecture_only(tmp_path, eval_images):
    record = probe.run(probe_config(tmp_path, eval_images), run_cells("class_only.ipynb"))
    [model] = record["models"]
    assert (model["name"], model["origin"], model["construct_error"]) == ("Net", "class", None)
    assert model["trainable_parameters"] == 12_810
    assert model["state_dict"] is None and model["outputs"] == {}
    assert not (tmp_path / "artifacts" / "models").exists()


def test_a_class_needing_arguments_records_the_construct_error(tmp_path):
    namespace = run_cells("class_only.ipynb")
    exec("class FF(nn.Module):\n    def __init__(self, dim):\n        super().__init__()\n"
         "        self.fc = nn.Linear(dim, 2)\n", namespace)
    record = probe.run(probe_config(tmp_path, None), namespace)
    by_name = {m["name"]: m for m in record["models"]}
    assert by_name["Net"]["construct_error"] is None
    assert by_name["FF"]["construct_error"].startswith("TypeError:") and "dim" in by_name["FF"]["construct_error"]


def test_submodules_are_part_of_their_model_and_containers_are_searched(tmp_path):
    exec_source = """
import torch
from torch import nn
class FF(nn.Module):
    def __init__(self, a=784, b=64, c=2):
        super().__init__()
        self.main = nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c))
    def forward(self, x):
        return self.main(x)
class Autoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = FF(784, 64, 2)
        self.decoder = nn.Sequential(FF(2, 64, 784), nn.Sigmoid())
    def forward(self, x):
        return self.decoder(self.encoder(x.flatten(1)))
autoencoder = Autoencoder()
models = {"small": nn.Linear(784, 3), "inner": autoencoder.decoder}
encoder = autoencoder.encoder
relu = nn.ReLU()
loss_fn = nn.MSELoss()
"""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(exec_source, namespace)
    record = probe.run(probe_config(tmp_path, None, prefer=["Autoencoder"]), namespace)
    names = [m["name"] for m in record["models"]]
    # the preferred class's instance first; models['inner'] is part of autoencoder; FF has instances;
    # `encoder` is bound to a name of its own, so it is a candidate; a lone ReLU and the loss are not models
    assert names == ["autoencoder", "models['small']", "encoder"]
    assert record["models"][0]["output_shape"] == [2, 784]
    assert record["losses"] == [{"name": "loss_fn", "type": "MSELoss"}]


def test_probe_restores_training_mode_and_batchnorm_statistics(tmp_path, eval_images):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 26 * 26, 10))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    record = probe.run(probe_config(tmp_path, eval_images), {"__name__": "__main__", "model": model})
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    entry = record["models"][0]
    assert entry["training_mode"] is True
    assert entry["buffers"] == {"1.running_mean": [2], "1.running_var": [2], "1.num_batches_tracked": []}


def test_the_students_test_transform_preprocesses_the_evaluation_images(tmp_path, eval_images, small_mnist):
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    namespace = {
        "__name__": "__main__",
        "trainset": datasets.MNIST(small_mnist, train=True, transform=transforms.ToTensor()),
        "testloader": torch.utils.data.DataLoader(datasets.MNIST(small_mnist, train=False, transform=transform)),
        "model": nn.Sequential(nn.Flatten(), nn.Linear(784, 10)),
    }
    record = probe.run(probe_config(tmp_path, eval_images), namespace)
    [model] = record["models"]
    assert model["preprocessing"]["mnist"].startswith("student transform (`testloader`)")
    inputs = torch.load(tmp_path / "artifacts" / model["inputs"]["mnist"], weights_only=True)
    raw = np.load(eval_images)
    expected = (torch.from_numpy(raw).float() / 255 - 0.5) / 0.5
    assert torch.allclose(inputs.reshape(20, 28, 28), expected, atol=1e-5)


def test_task_values_and_hostile_objects(tmp_path):
    class Hostile:
        @property
        def __class__(self):  # noqa: D401  (isinstance consults it)
            raise RuntimeError("no peeking")

    huge = np.broadcast_to(np.zeros(1), (MAX_VALUE_ELEMENTS + 1,))  # no memory behind it
    namespace = {"__name__": "__main__", "accuracy": 0.9731, "per_class": torch.tensor([0.5, 1.0]),
                 "huge": huge, "weird": Hostile(), "model": nn.Linear(784, 10)}
    record = probe.run(probe_config(tmp_path, None, task_values=["accuracy", "per_class", "huge", "absent"]),
                       namespace)
    assert record["task_values"] == {"accuracy": 0.9731, "per_class": [0.5, 1.0]}
    assert any("huge" in e for e in record["namespace_errors"])
    assert [m["name"] for m in record["models"]] == ["model"]


def test_a_forward_that_never_returns_is_cut_by_the_step_timeout(tmp_path):
    exec_source = """
import time
from torch import nn
class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)
    def forward(self, x):
        time.sleep(30)
slow = Slow()
"""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(exec_source, namespace)
    record = probe.run(probe_config(tmp_path, None, step_timeout_s=0.3, input_shapes=[[1, 28, 28]]), namespace)
    assert record["models"][0]["forward_error"] == "ProbeTimeout: took longer than 0.3 s"
    assert record["models"][0]["probe_seconds"] < 5


def test_candidates_past_the_time_budget_are_listed_not_inspected(tmp_path):
    namespace = {"__name__": "__main__", "first": nn.Linear(3, 3), "second": nn.Linear(3, 3)}
    record = probe.run(probe_config(tmp_path, None, probe_budget_s=0), namespace)
    assert record["models"] == []
    assert record["namespace_errors"] == ["the probe ran out of time; not inspected: first, second"]
    assert (tmp_path / "artifacts" / "probe.json").is_file()


def test_at_most_the_configured_number_of_candidates(tmp_path):
    namespace = {"__name__": "__main__", **{f"m{i}": nn.Linear(3, 3) for i in range(5)}}
    record = probe.run(probe_config(tmp_path, None, max_candidates=3), namespace)
    assert [m["name"] for m in record["models"]] == ["m0", "m1", "m2"]
    assert any("not inspected: m3, m4" in e for e in record["namespace_errors"])

