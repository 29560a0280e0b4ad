"""The forward-pass tracer: functional calls count like the modules they stand for, and nothing breaks it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.architecture import compare_computation, layer_token
from harness.probes import trace
from harness.probes.trace import trace_forward, trace_layers
from reference.classifiers import CNN

MNIST = [[1, 28, 28], [784]]


class FunctionalCNN(nn.Module):
    """The assignment's CNN as many students write it: only conv/linear modules, the rest functional."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3)
        self.conv2 = nn.Conv2d(16, 32, 3)
        self.fc = nn.Linear(800, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(self.conv2(x).relu(), kernel_size=2, stride=2)
        x = x.view(x.size(0), -1)
        return F.log_softmax(self.fc(x), dim=1)


def tokens(model: nn.Module) -> list[str]:
    return [layer_token(layer) for layer in trace_layers(model, MNIST)]


def test_a_functional_cnn_computes_the_assignments_layers() -> None:
    assert tokens(FunctionalCNN()) == tokens(CNN()) == [
        "Conv2d(1->16, kernel 3, stride 1, padding 0)", "ReLU()", "MaxPool2d(kernel 2, stride 2)",
        "Conv2d(16->32, kernel 3, stride 1, padding 0)", "ReLU()", "MaxPool2d(kernel 2, stride 2)",
        "Flatten()", "Linear(800->10)", "LogSoftmax(dim=1)",
    ]
    layers = trace_layers(FunctionalCNN(), MNIST)
    assert layers[1]["function"] == "torch.nn.functional.relu" and layers[0]["path"] == "conv1"
    assert layers[6] == {"path": None, "type": "Flatten", "hyper": {"start_dim": 1, "end_dim": -1},
                         "function": "Tensor.view", "output_shape": [2, 800]}
    assert compare_computation(layers, trace_layers(CNN(), MNIST)) == []


def test_each_way_of_writing_a_layer_is_that_layer() -> None:
    class Spellings(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(10, 784))

        def forward(self, x):
            x = torch.flatten(x, 1)  # Flatten
            x = x.reshape(-1, 784)  # the same shape: not a layer
            x = torch.relu(x)
            x = F.dropout(x, 0.25, training=self.training)
            x = torch.tanh(torch.sigmoid(x))
            x = F.leaky_relu(x, 0.2)
            x = F.linear(x, self.w)
            return torch.softmax(x, dim=-1)

    assert tokens(Spellings()) == [
        "Flatten()", "ReLU()", "Dropout(p=0.25)", "Sigmoid()", "Tanh()", "LeakyReLU(negative_slope=0.2)",
        "Linear(784->10, no bias)", "Softmax(dim=1)",
    ]


def test_a_module_counts_once_and_the_calls_inside_it_are_not_listed() -> None:
    class Block(nn.Module):  # a leaf: no children, its own functional forward
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(4, 784))

        def forward(self, x):
            return F.relu(F.linear(x.flatten(1), self.weight))

    relu = nn.ReLU()
    model = nn.Sequential(Block(), relu, relu)  # one ReLU module called twice is two layers
    assert [layer["type"] for layer in trace_layers(model, MNIST)] == ["Block", "ReLU", "ReLU"]


def test_a_network_without_submodules_is_traced_through_its_own_forward() -> None:
    class Bare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = nn.Parameter(torch.zeros(4, 1, 5, 5))

        def forward(self, x):
            return F.avg_pool2d(F.conv2d(x, self.kernel, stride=2, padding=2), 2)

    assert tokens(Bare()) == ["Conv2d(1->4, kernel 5, stride 2, padding 2, no bias)", "AvgPool2d(kernel 2, stride 2)"]


def test_a_failing_forward_is_recorded_with_the_layers_before_it() -> None:
    class WrongFlatten(FunctionalCNN):
        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            return self.fc(torch.flatten(F.relu(self.conv2(x)), 1))  # 3,872 features, not 800

    traced = trace_forward(WrongFlatten().eval(), torch.zeros(2, 1, 28, 28))
    assert traced["error"].startswith("RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x3872 and 800x10)")
    assert [layer["type"] for layer in traced["layers"]] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "Flatten", "Linear"]
    assert traced["layers"][5]["output_shape"] == [2, 3872]


def test_the_trace_is_bounded(monkeypatch) -> None:
    class Loop(nn.Module):
        def forward(self, x):
            for _ in range(500):
                x = torch.relu(x)
            return x

    monkeypatch.setattr(trace, "MAX_TRACE_LAYERS", 100)
    traced = trace_forward(Loop(), torch.zeros(2, 4))
    assert traced["error"] is None and traced["truncated"] is True and len(traced["layers"]) == 100


def test_hostile_forward_code_cannot_break_the_trace() -> None:
    class Hostile(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            torch.relu = lambda t: t  # replacing torch functions afterwards changes nothing the tracer knows
            F.log_softmax = None
            return torch.Tensor.log_softmax(self.fc(x.flatten(1)), 1)

    saved = torch.relu, F.log_softmax
    try:
        traced = trace_forward(Hostile(), torch.zeros(2, 1, 28, 28))
    finally:
        torch.relu, F.log_softmax = saved
    assert traced["error"] is None
    assert [layer["type"] for layer in traced["layers"]] == ["Flatten", "Linear", "LogSoftmax"]

    class Raising(nn.Module):
        def forward(self, x):
            raise KeyError("no")

    assert trace_forward(Raising(), torch.zeros(2, 4))["error"] == "KeyError: 'no'"
