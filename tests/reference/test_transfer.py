"""idl-ex2 transfer: classifier head, freezing that survives .train(), decoding from a classifier, fine-tuning."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reference.autoencoders import ConvAutoencoder, ConvDecoder, ConvEncoder
from reference.transfer import (
    EncoderClassifier,
    Frozen,
    classifier_decoder,
    conv_classifier,
    finetune_classifier,
    first_labelled,
    freeze,
)


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of parameters and buffers (BatchNorm running statistics included)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _warm_up(encoder: nn.Module) -> None:
    """Move BatchNorm running statistics away from their initial values."""
    encoder.train()
    with torch.no_grad():
        encoder(torch.rand(16, 1, 28, 28))


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """One Adam step on cross-entropy with the parent in train mode."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    optimizer.zero_grad()
    nn.CrossEntropyLoss()(model(x), y).backward()
    optimizer.step()


def test_encoder_classifier_returns_logits_with_a_two_layer_head() -> None:
    model = conv_classifier(base_channels=8, latent_dim=12)
    assert [type(m) for m in model.head] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (model.head[0].in_features, model.head[0].out_features, model.head[2].out_features) == (12, 64, 10)
    out = model(torch.rand(4, 1, 28, 28))
    assert out.shape == (4, 10)
    assert not torch.allclose(out.exp().sum(dim=1), torch.ones(4))  # logits, not probabilities


def test_freeze_keeps_parameters_and_batchnorm_buffers_bit_identical() -> None:
    torch.manual_seed(0)
    encoder = ConvEncoder(8, 12)
    _warm_up(encoder)
    model = EncoderClassifier(freeze(encoder), latent_dim=12)
    encoder_before, head_before = _state(model.encoder), _state(model.head)
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    _train_step(model, x, y)
    assert model.training and model.head.training
    assert not model.encoder.training and not any(m.training for m in encoder.modules())
    encoder_after = _state(model.encoder)
    assert encoder_after.keys() == encoder_before.keys()
    for key, value in encoder_before.items():
        assert torch.equal(encoder_after[key], value), f"frozen {key} changed"
    assert any(not torch.equal(v, head_before[k]) for k, v in _state(model.head).items())
    assert all(not p.requires_grad for p in model.encoder.parameters())


def test_without_freeze_the_same_step_moves_the_encoder() -> None:
    torch.manual_seed(0)
    encoder = ConvEncoder(8, 12)
    _warm_up(encoder)
    model = EncoderClassifier(encoder, latent_dim=12)
    before = _state(model.encoder)
    _train_step(model, torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,)))
    after = _state(model.encoder)
    assert not torch.equal(after["main.1.running_mean"], before["main.1.running_mean"])
    assert not torch.equal(after["main.0.weight"], before["main.0.weight"])


def test_classifier_decoder_trains_only_the_decoder_on_a_copy() -> None:
    torch.manual_seed(0)
    classifier = conv_classifier(base_channels=8, latent_dim=6)
    _warm_up(classifier.encoder)
    model = classifier_decoder(classifier, base_channels=8, latent_dim=6)
    assert isinstance(model.encoder, Frozen) and isinstance(model.decoder, ConvDecoder)
    assert model.encoder.inner is not classifier.encoder
    assert all(p.requires_grad for p in classifier.parameters())  # the classifier is untouched
    before = _state(model.encoder)
    decoder_before = _state(model.decoder)
    x = torch.rand(8, 1, 28, 28)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = nn.L1Loss()(model(x), x)
    loss.backward()
    optimizer.step()
    assert all(torch.equal(v, before[k]) for k, v in _state(model.encoder).items())
    assert any(not torch.equal(v, decoder_before[k]) for k, v in _state(model.decoder).items())
    assert model(x).shape == (8, 1, 28, 28)


def test_finetune_classifier_starts_from_a_copy_of_the_autoencoder_encoder() -> None:
    torch.manual_seed(0)
    autoencoder = ConvAutoencoder(base_channels=8, latent_dim=12)
    model = finetune_classifier(autoencoder)
    assert model.encoder is not autoencoder.encoder
    for key, value in autoencoder.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value)
    assert all(p.requires_grad for p in model.parameters())  # fine-tuned end to end
    _train_step(model, torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,)))
    assert not torch.equal(model.encoder.main[0].weight, autoencoder.encoder.main[0].weight)  # original untouched
    probe = finetune_classifier(autoencoder, freeze_encoder=True)
    assert isinstance(probe.encoder, Frozen)
    assert all(p.requires_grad for p in autoencoder.parameters())


def test_first_labelled_takes_the_first_examples_in_order() -> None:
    images = torch.arange(300.0).view(300, 1, 1, 1)
    labels = torch.arange(300) % 10
    x, y = first_labelled(images, labels)
    assert x.shape == (100, 1, 1, 1)
    assert torch.equal(x.flatten(), torch.arange(100.0))
    assert torch.equal(y, torch.arange(100) % 10)
    with pytest.raises(ValueError, match="first 400"):
        first_labelled(images, labels, n=400)
