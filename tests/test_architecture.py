"""Layer descriptions: what counts as the same layer."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from harness.architecture import (
    compare_computation,
    compare_layers,
    describe_layers,
    describe_reference,
    layer_hyper,
    layer_token,
    similarity,
)
from harness.probes.trace import trace_layers
from reference.autoencoders import Autoencoder
from reference.classifiers import CNN, FeedForward
from tests.checks.test_architecture_checks import FunctionalCNN as Functional


def test_padding_same_is_the_explicit_padding_it_amounts_to() -> None:
    assert layer_hyper(nn.Conv2d(3, 4, 3, padding="same"))["padding"] == [1, 1]
    assert layer_hyper(nn.Conv2d(3, 4, 5, padding="same", dilation=2))["padding"] == [4, 4]
    assert layer_hyper(nn.Conv2d(3, 4, 3, padding="valid"))["padding"] == [0, 0]
    # an even kernel pads asymmetrically: no explicit equivalent, it stays "same"
    assert layer_hyper(nn.Conv2d(3, 4, 4, padding="same"))["padding"] == "same"


def test_a_network_written_with_padding_1_matches_one_written_with_same() -> None:
    same = nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"), nn.BatchNorm2d(4), nn.ReLU())
    explicit = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    assert layer_token(describe_layers(same)[0]) == "Conv2d(3->4, kernel 3, stride 1, padding 1)"
    assert compare_layers(describe_layers(explicit), describe_layers(same)) == []


def test_reshaping_with_view_matches_reshaping_with_a_layer() -> None:
    class Viewing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 576)
            self.deconv = nn.ConvTranspose2d(64, 32, 3)

        def forward(self, z):
            return self.deconv(self.fc(z).view(-1, 64, 3, 3))

    layered = nn.Sequential(nn.Linear(3, 576), nn.Unflatten(1, (64, 3, 3)), nn.ConvTranspose2d(64, 32, 3))
    assert compare_layers(describe_layers(Viewing()), describe_layers(layered)) == []


# --------------------------------------------------------------------------- computations (traced forward passes)

MNIST = [[1, 28, 28], [784]]


class SoftmaxCNN(CNN):
    """The assignment's CNN ending in F.softmax instead of its LogSoftmax."""

    def forward(self, x):
        return F.softmax(self.main[:-1](x), dim=1)


class LatentReLU(Autoencoder):
    """The autoencoder with its 2-D code put through a ReLU."""

    def forward(self, x):
        return self.decoder(F.relu(self.encoder(x.flatten(1))))


def test_softmax_where_the_assignment_has_log_softmax_is_named() -> None:
    diff = compare_computation(trace_layers(SoftmaxCNN(), MNIST), trace_layers(CNN(), MNIST))
    assert diff == ["your network applies Softmax where the assignment has LogSoftmax"]


def test_logits_without_the_output_normalisation_are_left_to_the_output_checks() -> None:
    class Logits(CNN):
        def forward(self, x):
            return self.main[:-1](x)

    assert compare_computation(trace_layers(Logits(), MNIST), trace_layers(CNN(), MNIST)) == []


def test_a_relu_on_the_latent_code_is_named() -> None:
    diff = compare_computation(trace_layers(LatentReLU(), MNIST), trace_layers(Autoencoder(), MNIST))
    assert diff == [
        "a ReLU is applied to the latent code (the output of Linear(128->2)); "
        "the assignment's encoder ends without an activation"
    ]


def test_a_missing_functional_relu_is_named_after_its_layer() -> None:
    class OneReLU(FeedForward):
        def forward(self, x):
            main = self.main
            return main[5](main[4](main[2](main[1](main[0](x.flatten(1))))))  # the second ReLU left out

    diff = compare_computation(trace_layers(OneReLU(), MNIST), trace_layers(FeedForward(), MNIST))
    assert diff == ["missing: ReLU() (after Linear(128->64))"]


def test_a_free_size_takes_any_value_and_a_fixed_one_does_not() -> None:
    reference = describe_reference(Autoencoder, {}, {"dim2": 128}, MNIST)
    assert [layer.get("free") for layer in reference if layer["type"] == "Linear"] == [
        {"out_features": "dim2"}, {"in_features": "dim2"}, {"out_features": "dim2"}, {"in_features": "dim2"}]
    assert compare_computation(trace_layers(Autoencoder(dim2=512), MNIST), reference) == []
    assert similarity(trace_layers(Autoencoder(dim2=512), MNIST), reference) == 1.0
    assert compare_computation(trace_layers(Autoencoder(dim2=512, dim3=3), MNIST), reference) == [
        "expected Linear(dim2->2), found Linear(512->3)", "expected Linear(2->dim2), found Linear(3->512)"]
    fixed = describe_reference(Autoencoder, {}, {}, MNIST)
    assert "expected Linear(784->128), found Linear(784->512)" in compare_computation(
        trace_layers(Autoencoder(dim2=512), MNIST), fixed)


def test_similarity_reads_a_candidates_traced_computation() -> None:
    reference = trace_layers(CNN(), MNIST)
    candidate = {"modules": describe_layers(Functional()),
                 "computation": {"layers": trace_layers(Functional(), MNIST), "error": None, "truncated": False}}
    assert similarity(candidate["modules"], reference) < 1.0  # the module list has no pools
    assert similarity(candidate, reference) == 1.0
