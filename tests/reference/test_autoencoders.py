"""The reference autoencoders have the assignments' layers, shapes and parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reference.autoencoders import (
    AUTOENCODER_SPECS,
    FF,
    Autoencoder,
    ConvAutoencoder,
    ConvDecoder,
    ConvEncoder,
    FashionConvAE,
    PCAAutoencoder,
    autoencoder_loss,
    reconstruction_error,
)
from reference.classifiers import count_parameters


def _shapes_through(layers: nn.Sequential, x: torch.Tensor) -> list[tuple[int, ...]]:
    """Output shape of every layer of a Sequential."""
    shapes = []
    for layer in layers:
        x = layer(x)
        shapes.append(tuple(x.shape))
    return shapes


def test_fc_autoencoder_is_built_as_in_the_texts() -> None:
    model = Autoencoder()
    assert isinstance(model.encoder, FF)
    assert [type(m) for m in model.encoder.main] == [nn.Linear, nn.ReLU, nn.Linear]
    assert isinstance(model.decoder[0], FF) and isinstance(model.decoder[1], nn.Sigmoid)
    assert (model.encoder.main[0].in_features, model.encoder.main[0].out_features) == (784, 128)
    assert (model.encoder.main[2].in_features, model.encoder.main[2].out_features) == (128, 2)
    # 784*128+128 + 128*2+2 + 2*128+128 + 128*784+784
    assert count_parameters(model) == 202_258 == AUTOENCODER_SPECS["Autoencoder"].parameters
    x = torch.rand(4, 1, 28, 28)
    out = model(x)
    assert out.shape == (4, 784)
    assert ((out >= 0) & (out <= 1)).all()
    torch.testing.assert_close(out, model(x.view(4, 784)))
    assert isinstance(autoencoder_loss(), nn.BCELoss)


def test_fc_autoencoder_latent_size_follows_dim3() -> None:
    model = Autoencoder(784, 128, 7)
    assert model.encoder(torch.rand(3, 784)).shape == (3, 7)


def test_idl_conv_autoencoder_shapes_28_14_7_4_and_back() -> None:
    torch.manual_seed(0)
    model = ConvAutoencoder(base_channels=16, latent_dim=12)
    x = torch.rand(2, 1, 28, 28)
    enc = _shapes_through(model.encoder.main, x)
    assert enc == [
        (2, 16, 14, 14), (2, 16, 14, 14), (2, 16, 14, 14),
        (2, 32, 7, 7), (2, 32, 7, 7), (2, 32, 7, 7),
        (2, 64, 4, 4), (2, 64, 4, 4), (2, 64, 4, 4),
        (2, 1024), (2, 12),
    ]  # fmt: skip
    dec = _shapes_through(model.decoder.main, torch.randn(2, 12))
    assert dec == [
        (2, 1024), (2, 64, 4, 4),
        (2, 32, 7, 7), (2, 32, 7, 7), (2, 32, 7, 7),
        (2, 16, 14, 14), (2, 16, 14, 14), (2, 16, 14, 14),
        (2, 1, 28, 28), (2, 1, 28, 28),
    ]  # fmt: skip
    out = model(x)
    assert ((out >= 0) & (out <= 1)).all()
    # Hand count: encoder 160+32 + 4,640+64 + 18,496+128 + 12,300; decoder 13,312 + 18,464+64 + 4,624+32 + 145.
    assert count_parameters(model.encoder) == 35_820
    assert count_parameters(model.decoder) == 36_641
    assert count_parameters(model) == AUTOENCODER_SPECS["ConvAutoencoder"].parameters == 72_461


@pytest.mark.parametrize(("c", "d"), [(4, 4), (16, 16), (8, 12)])
def test_idl_conv_autoencoder_knobs(c: int, d: int) -> None:
    encoder, decoder = ConvEncoder(c, d), ConvDecoder(c, d)
    z = encoder(torch.rand(3, 1, 28, 28))
    assert z.shape == (3, d)
    assert decoder(z).shape == (3, 1, 28, 28)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in encoder.modules()) == 3


def test_fashion_conv_ae_matches_the_sheets_summary_table() -> None:
    model = FashionConvAE(latent_dim=2)
    weighted = [m for m in model.modules() if next(m.parameters(recurse=False), None) is not None]
    per_layer = [sum(p.numel() for p in m.parameters()) for m in weighted]
    assert per_layer == [160, 4_640, 18_496, 80_002, 1_728, 18_464, 4_624, 145]
    assert count_parameters(model) == 128_259 == AUTOENCODER_SPECS["FashionConvAE"].parameters
    x = torch.randn(2, 1, 28, 28)
    enc = _shapes_through(model.encoder, x)
    assert enc == [
        (2, 16, 28, 28), (2, 16, 28, 28), (2, 16, 27, 27),
        (2, 32, 27, 27), (2, 32, 27, 27), (2, 32, 26, 26),
        (2, 64, 26, 26), (2, 64, 26, 26), (2, 64, 25, 25),
        (2, 40_000), (2, 2),
    ]  # fmt: skip
    dec = _shapes_through(model.decoder, torch.randn(2, 2))
    assert dec == [
        (2, 576), (2, 64, 3, 3), (2, 32, 7, 7), (2, 32, 7, 7),
        (2, 16, 14, 14), (2, 16, 14, 14), (2, 1, 28, 28),
    ]  # fmt: skip
    assert model(x).shape == (2, 1, 28, 28)


def test_pca_autoencoder_is_two_linear_layers() -> None:
    model = PCAAutoencoder(input_dim=784, latent_dim=10)
    assert [type(m) for m in model.encoder] == [nn.Linear] and [type(m) for m in model.decoder] == [nn.Linear]
    assert count_parameters(model) == 7_850 + 8_624
    x = torch.rand(5, 1, 28, 28)
    assert model(x).shape == (5, 784)


def test_reconstruction_error_is_mean_squared_error_per_pixel() -> None:
    torch.manual_seed(0)
    images = torch.rand(10, 1, 28, 28)
    for model in [Autoencoder(), ConvAutoencoder(8, 4), PCAAutoencoder()]:
        model.eval()
        with torch.no_grad():
            expected = ((model(images).reshape(10, -1) - images.reshape(10, -1)) ** 2).mean().item()
        model.train()
        got = reconstruction_error(model, images, batch_size=3)
        assert got == pytest.approx(expected, rel=1e-5)
        assert model.training  # mode restored
    # Flat input works the same for a model over flat vectors.
    model = Autoencoder()
    assert reconstruction_error(model, images.view(10, 784)) == pytest.approx(reconstruction_error(model, images))


class _Identity(nn.Module):
    """A perfect 'autoencoder' for flat inputs, used to pin down the error's value."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(784, 784)
        with torch.no_grad():
            self.lin.weight.copy_(torch.eye(784))
            self.lin.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x (requires flat input: fails on (B, 1, 28, 28))."""
        return self.lin(x)


def test_reconstruction_error_feeds_flat_input_to_linear_models() -> None:
    images = torch.rand(6, 1, 28, 28)
    assert reconstruction_error(_Identity(), images) == pytest.approx(0.0, abs=1e-10)
    shifted = _Identity()
    with torch.no_grad():
        shifted.lin.bias.fill_(0.5)
    assert reconstruction_error(shifted, images) == pytest.approx(0.25, rel=1e-6)
