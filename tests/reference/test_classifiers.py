"""The reference classifiers and their mistakes reproduce the assignments' architectures and figures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reference.classifiers import CNN, SPECS, FeedForward, FeedForwardLogits, SignsCNN, count_parameters
from reference.mistakes import CNNWithoutSecondPool, FeedForwardNoActivation, FeedForwardSoftmax

# The module text printed in dl2025-a2, without its first line ("Net(").
FEEDFORWARD_TEXT = """\
  (main): Sequential(
    (0): Linear(in_features=784, out_features=128, bias=True)
    (1): ReLU()
    (2): Linear(in_features=128, out_features=64, bias=True)
    (3): ReLU()
    (4): Linear(in_features=64, out_features=10, bias=True)
    (5): LogSoftmax(dim=1)
  )
)"""

CNN_TEXT = """\
  (main): Sequential(
    (0): Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1))
    (1): ReLU()
    (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    (3): Conv2d(16, 32, kernel_size=(3, 3), stride=(1, 1))
    (4): ReLU()
    (5): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    (6): Flatten(start_dim=1, end_dim=-1)
    (7): Linear(in_features=800, out_features=10, bias=True)
    (8): LogSoftmax(dim=1)
  )
)"""


def _body(model: nn.Module) -> str:
    """The printed module without its class-name line."""
    return repr(model).split("\n", 1)[1]


def _output_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    """Output shape of every layer of ``model.main``, recorded by forward hooks."""
    shapes: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape))) for m in model.main]
    model(x)
    for h in hooks:
        h.remove()
    return shapes


@pytest.mark.parametrize(
    ("factory", "expected"),
    [(FeedForward, 109_386), (FeedForwardLogits, 109_386), (CNN, 12_810), (SignsCNN, 131_958)],
)
def test_parameter_counts_match_the_assignments(factory: type[nn.Module], expected: int) -> None:
    model = factory()
    assert count_parameters(model) == expected
    assert SPECS[factory.__name__].parameters == expected


def test_specs_build_their_model_and_loss() -> None:
    for name, spec in SPECS.items():
        model = spec.build()
        assert type(model).__name__ == name
        assert count_parameters(model) == spec.parameters
        out = model(torch.rand(2, *spec.input_shape))
        assert out.shape == (2, spec.num_classes)
        loss = spec.make_loss()(out, torch.tensor([0, 1]))
        assert torch.isfinite(loss)
    assert SPECS["FeedForwardLogits"].loss == "CrossEntropyLoss" and SPECS["FeedForwardLogits"].output == "logits"
    assert SPECS["CNN"].loss == "NLLLoss" and SPECS["CNN"].output == "log_probabilities"


def test_printed_modules_match_the_assignment_text() -> None:
    assert _body(FeedForward()) == FEEDFORWARD_TEXT
    assert _body(CNN()) == CNN_TEXT
    # Removing line (5) is the only difference of the logits variant.
    expected_logits = FEEDFORWARD_TEXT.replace("    (5): LogSoftmax(dim=1)\n", "")
    assert _body(FeedForwardLogits()) == expected_logits


def test_feedforward_accepts_images_and_flat_input() -> None:
    torch.manual_seed(0)
    model = FeedForward()
    x = torch.rand(3, 1, 28, 28)
    out = model(x)
    assert out.shape == (3, 10)
    torch.testing.assert_close(out, model(x.view(3, 784)))
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(3))  # log-probabilities


def test_logits_variant_gives_the_same_loss_with_cross_entropy() -> None:
    torch.manual_seed(0)
    logsoftmax_net, logits_net = FeedForward(), FeedForwardLogits()
    logits_net.main.load_state_dict(logsoftmax_net.main.state_dict())
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    nll = nn.NLLLoss()(logsoftmax_net(x), y)
    ce = nn.CrossEntropyLoss()(logits_net(x), y)
    torch.testing.assert_close(nll, ce)


def test_cnn_layer_shapes_and_800_feature_flatten() -> None:
    shapes = _output_shapes(CNN(), torch.rand(2, 1, 28, 28))
    assert shapes == [
        (2, 16, 26, 26),
        (2, 16, 26, 26),
        (2, 16, 13, 13),
        (2, 32, 11, 11),
        (2, 32, 11, 11),
        (2, 32, 5, 5),
        (2, 800),
        (2, 10),
        (2, 10),
    ]
    assert SPECS["CNN"].feature_widths == {"Flatten": 800}


def test_signs_cnn_matches_the_sheets_summary_table() -> None:
    model = SignsCNN()
    per_layer = [
        (name, sum(p.numel() for p in module.parameters()))
        for name, module in model.named_children()
        if any(True for _ in module.parameters())
    ]
    assert per_layer == [("conv1", 112), ("bn1", 8), ("conv2", 296), ("bn2", 16), ("fc1", 131_136), ("fc2", 390)]
    shapes: dict[str, tuple[int, ...]] = {}
    for name in ["conv1", "pool1", "conv2", "pool2", "fc1", "fc2"]:
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape))
        )
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 6)  # the sheet's own check
    assert shapes == {
        "conv1": (2, 4, 64, 64),
        "pool1": (2, 4, 32, 32),
        "conv2": (2, 8, 32, 32),
        "pool2": (2, 8, 16, 16),
        "fc1": (2, 64),
        "fc2": (2, 6),
    }


def test_cnn_without_second_pool_flattens_3872_features() -> None:
    model = CNNWithoutSecondPool()
    shapes = _output_shapes(model, torch.rand(2, 1, 28, 28))
    assert (2, 3872) in shapes
    assert count_parameters(model) == 43_530
    broken = nn.Sequential(*list(model.main)[:6], nn.Linear(800, 10))
    with pytest.raises(RuntimeError, match="3872"):
        broken(torch.rand(2, 1, 28, 28))


def test_softmax_mistake_outputs_probabilities_and_a_negative_nll() -> None:
    torch.manual_seed(0)
    model = FeedForwardSoftmax()
    out = model(torch.rand(16, 1, 28, 28))
    torch.testing.assert_close(out.sum(dim=1), torch.ones(16))
    assert (out >= 0).all()
    loss = nn.NLLLoss()(out, torch.randint(0, 10, (16,)))
    assert -1.0 <= loss.item() <= 0.0  # -p(label): the tell-tale negative loss


def test_no_activation_mistake_is_affine_with_the_same_parameter_count() -> None:
    torch.manual_seed(0)
    model = FeedForwardNoActivation()
    assert count_parameters(model) == 109_386
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    f = model.main[:-1]  # everything before the LogSoftmax
    a, b, zero = torch.randn(4, 784), torch.randn(4, 784), torch.zeros(4, 784)
    torch.testing.assert_close(f(a + b) - f(b), f(a) - f(zero), atol=1e-5, rtol=1e-4)
    # The real net is not affine: the same identity fails for it.
    g = FeedForwardLogits().main
    assert not torch.allclose(g(a + b) - g(b), g(a) - g(zero), atol=1e-3)
