"""Layer descriptions: what counts as the same layer."""

from __future__ import annotations

from torch import nn

from harness.architecture import compare_layers, describe_layers, layer_hyper, layer_token


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
