"""Tests of the fast in-memory trainers on tiny random data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from reference import training
from reference.training import (
    History,
    epoch_batches,
    evaluate_autoencoder,
    evaluate_classifier,
    prepare_images,
    torch_threads,
    train_autoencoder,
    train_classifier,
    train_vae,
)
from reference.transfer import freeze
from reference.vae import VAE


def _separable(n: int = 256, d: int = 20, k: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return points (n, d) whose class is the argmax of a fixed linear map: learnable by a small MLP."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)  # (n, d)
    w = torch.randn(d, k, generator=g)  # (d, k)
    return x, (x @ w).argmax(dim=1)


def _mlp(d: int = 20, k: int = 3, seed: int = 0, log_softmax: bool = True) -> nn.Module:
    """Return a freshly seeded two-layer classifier."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, k)]
    if log_softmax:
        layers.append(nn.LogSoftmax(dim=1))
    return nn.Sequential(*layers)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    """Return copies of every parameter and buffer of a model."""
    return [t.detach().clone() for t in model.state_dict().values()]


def test_classifier_loss_decreases_and_history_is_complete():
    x, y = _separable()
    model = _mlp()
    seen = []
    history = train_classifier(
        model, x, y, epochs=5, batch_size=32, lr=1e-2, seed=0, threads=1,
        eval_images=x, eval_labels=y, on_epoch=lambda epoch, h: seen.append(epoch),
    )
    assert seen == [1, 2, 3, 4, 5]
    assert history.epochs == 5
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.train_accuracy[-1] > 0.9
    assert len(history.eval_loss) == len(history.eval_accuracy) == len(history.seconds) == 5
    assert history.eval_accuracy[-1] > 0.9
    assert history.train_seconds == pytest.approx(sum(history.seconds))
    json.dumps(history.as_dict())  # JSON-ready


def test_cross_entropy_on_logits_trains():
    x, y = _separable(seed=1)
    model = _mlp(log_softmax=False)
    history = train_classifier(model, x, y, epochs=4, batch_size=32, lr=1e-2, loss="cross_entropy", seed=0, threads=1)
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]


def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    x, y = _separable()
    a, b, c = _mlp(seed=3), _mlp(seed=3), _mlp(seed=3)
    for model, seed in ((a, 7), (b, 7), (c, 8)):
        train_classifier(model, x, y, epochs=2, batch_size=16, lr=1e-2, seed=seed, threads=1)
    assert all(torch.equal(p, q) for p, q in zip(_weights(a), _weights(b)))
    assert not all(torch.equal(p, q) for p, q in zip(_weights(a), _weights(c)))


def test_training_leaves_the_callers_random_state_alone():
    x, y = _separable()
    model = _mlp()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_classifier(model, x, y, epochs=1, batch_size=64, seed=0, threads=1)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("n, batch_size", [(100, 32), (96, 32), (5, 64), (1, 1)])
def test_batches_cover_every_example_once_per_epoch(n, batch_size):
    gen = torch.Generator().manual_seed(0)
    epochs = [list(epoch_batches(n, batch_size, generator=gen)) for _ in range(3)]
    for batches in epochs:
        sizes = [len(b) for b in batches]
        assert sizes == [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
        assert sorted(torch.cat(batches).tolist()) == list(range(n))
    if n > 10:  # a fresh order each epoch, from the same generator
        assert not torch.equal(torch.cat(epochs[0]), torch.cat(epochs[1]))


def test_unshuffled_batches_are_in_order():
    assert [b.tolist() for b in epoch_batches(5, 2, shuffle=False)] == [[0, 1], [2, 3], [4]]


def test_evaluate_classifier_per_class_on_a_hand_made_case():
    # The "model" is the identity: each row of the inputs is its own output, so predictions are chosen by hand.
    predicted = [0, 0, 1, 1, 1, 2, 0, 2]
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    outputs = torch.log(torch.full((8, 4), 0.1))
    outputs[torch.arange(8), torch.tensor(predicted)] = math.log(0.7)  # log-probabilities
    result = evaluate_classifier(nn.Identity(), outputs, labels, num_classes=4)
    assert result["accuracy"] == pytest.approx(6 / 8)
    assert result["per_class_accuracy"][:3] == pytest.approx([2 / 3, 1.0, 2 / 3])
    assert math.isnan(result["per_class_accuracy"][3])  # class 3 has no examples
    # NLL: 6 right examples at -log 0.7, 2 wrong ones at -log 0.1.
    assert result["loss"] == pytest.approx((6 * -math.log(0.7) + 2 * -math.log(0.1)) / 8, rel=1e-5)
    assert result["examples"] == 8


def test_evaluate_classifier_restores_training_mode_and_needs_matching_lengths():
    model = _mlp()
    model.train()
    x, y = _separable(n=10)
    evaluate_classifier(model, x, y)
    assert model.training
    with pytest.raises(ValueError, match="10 examples but labels has 9"):
        evaluate_classifier(model, x, y[:9])


def test_frozen_encoder_stays_frozen_while_the_head_trains():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(20, 8), nn.BatchNorm1d(8), nn.ReLU())
    frozen = freeze(encoder)
    model = nn.Sequential(frozen, nn.Linear(8, 3), nn.LogSoftmax(dim=1))
    before = _weights(encoder)
    head_before = model[1].weight.detach().clone()
    x, y = _separable()
    train_classifier(model, x, y, epochs=2, batch_size=32, lr=1e-2, seed=0, threads=1)
    assert all(torch.equal(p, q) for p, q in zip(before, _weights(encoder)))  # BN buffers included
    assert not torch.equal(head_before, model[1].weight)


def test_mnist_normalisation_matches_torchvision_transforms():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    expected = torch.stack([tf(Image.fromarray(im, mode="L")) for im in images])  # (3, 1, 28, 28)
    got = prepare_images(images, "mnist")
    assert got.shape == (3, 1, 28, 28) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected)
    symmetric = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    torch.testing.assert_close(
        prepare_images(images, "symmetric"), torch.stack([symmetric(Image.fromarray(im, mode="L")) for im in images])
    )
    unit = prepare_images(images, "unit", flatten=True)
    assert unit.shape == (3, 784) and float(unit.min()) >= 0.0 and float(unit.max()) <= 1.0


def test_signs_images_become_channels_first_in_unit_range():
    images = np.zeros((2, 64, 64, 3), dtype=np.uint8)
    images[1, 5, 6, 2] = 255
    x = prepare_images(images, "signs")
    assert x.shape == (2, 3, 64, 64)
    assert float(x[1, 2, 5, 6]) == 1.0 and float(x.sum()) == 1.0


def test_prepare_images_rejects_what_it_cannot_convert():
    with pytest.raises(ValueError, match="uint8"):
        prepare_images(np.zeros((2, 28, 28), dtype=np.float32), "unit")
    with pytest.raises(ValueError, match="unknown normalisation"):
        prepare_images(np.zeros((2, 28, 28), dtype=np.uint8), "imagenet")  # type: ignore[arg-type]


class _TupleAutoencoder(nn.Module):
    """A tiny autoencoder that returns (reconstruction, code) and flat output for image input."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(16, 4)
        self.decoder = nn.Sequential(nn.Linear(4, 16), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(x.flatten(1))  # (B, 4)
        return self.decoder(code), code  # (B, 16), (B, 4)


@pytest.mark.parametrize("loss", ["mse", "l1", "bce"])
def test_autoencoder_loss_decreases(loss):
    g = torch.Generator().manual_seed(0)
    basis = torch.rand(4, 16, generator=g)
    images = (torch.rand(200, 4, generator=g) @ basis / 4).clamp(0, 1).reshape(200, 1, 4, 4)  # rank-4 data
    torch.manual_seed(0)
    model = _TupleAutoencoder()
    before = evaluate_autoencoder(model, images)
    history = train_autoencoder(
        model, images, loss=loss, epochs=15, batch_size=20, lr=1e-2, seed=0, threads=1, eval_images=images
    )
    after = evaluate_autoencoder(model, images)
    assert history.train_loss[-1] < history.train_loss[0]
    assert len(history.eval_loss) == 15 and not history.train_accuracy
    assert after["mse"] < 0.5 * before["mse"]
    assert after["examples"] == 200


def test_vae_trains_and_reports_per_example_losses():
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(128, 64, generator=g) > 0.7).float()  # binary "images" (128, 64)
    torch.manual_seed(0)
    model = VAE(input_dim=64, hidden_dim=32, latent_dim=2)
    history = train_vae(model, images, epochs=4, batch_size=32, lr=1e-2, seed=0, threads=1, eval_images=images)
    assert history.train_loss[-1] < history.train_loss[0]
    for key in ("train_bce", "train_kl", "eval_bce", "eval_kl"):
        assert len(history.extra[key]) == 4
    # Total = BCE + KL, per example; the BCE of 64 pixels per example cannot exceed 64 * ln 2 by much once trained.
    assert history.train_loss[-1] == pytest.approx(history.extra["train_bce"][-1] + history.extra["train_kl"][-1])
    assert history.extra["train_bce"][-1] < 64 * math.log(2)


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="at least 1"):
        with torch_threads(0):
            pass


def test_default_threads_follows_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert training.default_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert training.default_threads() == training.available_cores() >= 1


def test_unknown_names_are_refused_with_the_known_ones():
    x, y = _separable(n=8)
    with pytest.raises(ValueError, match="known: nll, cross_entropy"):
        train_classifier(_mlp(), x, y, epochs=1, loss="mse", threads=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="known: adam, adamw, sgd"):
        train_classifier(_mlp(), x, y, epochs=1, optimizer="rmsprop", threads=1)  # type: ignore[arg-type]


def test_history_defaults_are_independent():
    a, b = History(), History()
    a.train_loss.append(1.0)
    assert b.train_loss == []
