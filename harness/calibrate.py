"""Training the references: what they reach on the prepared data, on this machine (``gradebench calibrate``).

Each reference task is trained on the prepared training split with the fast trainers of
:mod:`reference.training`, evaluated on the public test split and on the grader-only hidden split, and the
figures are written to ``<data>/calibration/<profile>.json``: what the references reach and how long they
train, tracked over time by :mod:`harness.bench` (``gradebench bench``). This module imports the reference
implementations at load; grading never imports it: calibrating a rubric for grading (the reference
submission graded like a student's, the bars of relative thresholds and budgets) is :mod:`harness.calibration`.

The JSON is rewritten (atomically) after every task, so a run that is killed keeps
what it finished, and a task that fails records ``{"error": ...}`` without stopping
the others. Accuracies are fractions in [0, 1]; reconstruction errors are means per
pixel on the scale the task trains on.

Profiles (:data:`harness.profiles.PROFILES`, the table grading reads too): ``fast`` trains on
at most 6,000 images for a few epochs (tests, quick student checks: well under a minute);
``full`` uses every prepared image and enough epochs for meaningful curves (a few minutes on a
laptop CPU).
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness import __version__
from harness.calibration import write_json
from harness.data import load_split, read_manifest
from harness.errors import HarnessError
from harness.profiles import PROFILES, Profile
from reference import pca as ref_pca
from reference import training
from reference.autoencoders import Autoencoder, ConvAutoencoder, FashionConvAE, PCAAutoencoder
from reference.classifiers import CNN, FeedForward, FeedForwardLogits, SignsCNN
from reference.mistakes import FeedForwardNoActivation, FeedForwardSoftmax
from reference.transfer import EncoderClassifier, classifier_decoder, conv_classifier, first_labelled, freeze
from reference.vae import VAE

Progress = Callable[[str], None]
Trained = tuple[nn.Module, training.History]


FASHION_CONV_LATENT = 3
"""Latent size of mle-sheet06's Conv_AE we calibrate: the sheet's first, the one it plots in 3-D."""
IDL_BASE_CHANNELS = 16
IDL_LATENT = 12
FEW_LABELS = 100


def default_output(data_dir: Path, profile: str) -> Path:
    """Where a profile's calibration is written by default: ``<data>/calibration/<profile>.json``."""
    return Path(data_dir) / "calibration" / f"{profile}.json"


def read_calibration(path: Path) -> dict:
    """Load a calibration JSON written by :func:`calibrate`."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: no calibration here; run `gradebench calibrate` first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise HarnessError(f"{path}: not valid JSON ({error}); run `gradebench calibrate` again") from None


# --------------------------------------------------------------------------- context


class Context:
    """What the tasks share in one calibration run: data (loaded once) and models later tasks build on."""

    def __init__(self, data_dir: Path, profile: Profile, seed: int, threads: int) -> None:
        self.data_dir = Path(data_dir)
        self.profile = profile
        self.seed = seed
        self.threads = threads
        self._raw: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._tensors: dict[tuple[str, str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._models: dict[str, Trained | BaseException] = {}
        self.records: dict[str, dict] = {}

    def raw(self, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Return a split's uint8 images and labels, capped by the profile (loaded once)."""
        key = (dataset, split)
        if key not in self._raw:
            images, labels = load_split(self.data_dir, dataset, split)
            cap = self.profile.max_train if split == "train" else self.profile.max_eval
            if dataset == "signs":
                cap = None  # SIGNS is small: always whole
            if cap is not None:
                images, labels = images[:cap], labels[:cap]
            self._raw[key] = (images, labels)
        return self._raw[key]

    def images(
        self, dataset: str, split: str, normalisation: training.Normalisation, *, flatten: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return a split as normalised float32 images and int64 labels (converted once, then shared)."""
        key = (dataset, split, normalisation)
        if key not in self._tensors:
            images, labels = self.raw(dataset, split)
            self._tensors[key] = (training.prepare_images(images, normalisation), training.as_labels(labels))
        x, y = self._tensors[key]
        return (x.flatten(1) if flatten else x), y  # (N, C, H, W) or a flat view (N, C*H*W)

    def seeded(self, build: Callable[[], nn.Module]) -> nn.Module:
        """Build a model with its initial weights drawn from the run's seed."""
        torch.manual_seed(self.seed)
        return build()

    def shared_model(self, task_id: str, build: Callable[[], Trained]) -> Trained:
        """Return the model a task trained (and its history), training it now if that task has not run.

        A failure is kept: every later task that needs the model fails with it, without training again.
        """
        if task_id not in self._models:
            try:
                self._models[task_id] = build()
            except Exception as error:  # noqa: BLE001 - remembered and re-raised to every task that needs it
                self._models[task_id] = error
        trained = self._models[task_id]
        if isinstance(trained, BaseException):
            raise HarnessError(f"needs the model of {task_id}, which could not be trained: {_describe(trained)}")
        return trained


def _describe(error: BaseException) -> str:
    """Return 'Type: message' for an error."""
    return f"{type(error).__name__}: {error}"


def _record(model: nn.Module | None, history: training.History, metrics: dict, **extra) -> dict:
    """Build a task's record: metrics, training time, epochs, seconds per epoch, parameters."""
    epochs = history.epochs
    record = {
        "metrics": metrics,
        "train_seconds": round(history.train_seconds, 3),
        "epochs": epochs,
        "seconds_per_epoch": round(history.train_seconds / epochs, 3) if epochs else 0.0,
        "parameters": training.count_parameters(model) if model is not None else 0,
    }
    record.update(extra)
    return record


def _curves(history: training.History) -> dict:
    """Return a history's per-epoch series, rounded for the JSON."""
    def r(values: list[float]) -> list[float]:
        return [round(float(v), 5) for v in values]

    curves = {
        "train_loss": r(history.train_loss),
        "train_accuracy": r(history.train_accuracy),
        "eval_loss": r(history.eval_loss),
        "eval_accuracy": r(history.eval_accuracy),
        "seconds": r(history.seconds),
    }
    curves.update({k: r(v) for k, v in history.extra.items()})
    return {k: v for k, v in curves.items() if v}


# --------------------------------------------------------------------------- MNIST classifiers


def _mnist_classifier(ctx: Context, build: Callable[[], nn.Module], loss: training.ClassifierLoss, **kw) -> dict:
    """Train an MNIST classifier the way dl2025-a2's template does and score it on test and hidden.

    The recipe is the course template's (``training.DL2025_TEMPLATE``: its transform, SGD with lr 0.002 and
    momentum 0.9, batch 64), for the profile's number of epochs: the accuracy a student reaches by running the
    template unmodified, which bars relative to the reference are measured against (not a stronger optimiser's).
    """
    recipe = training.DL2025_TEMPLATE
    x, y = ctx.images("mnist", "train", recipe.normalisation)
    xt, yt = ctx.images("mnist", "test", recipe.normalisation)
    xh, yh = ctx.images("mnist", "hidden", recipe.normalisation)
    model = ctx.seeded(build)
    history = training.train_classifier(
        model, x, y, epochs=ctx.profile.classifier_epochs, batch_size=recipe.batch_size, lr=recipe.lr,
        optimizer=recipe.optimizer, momentum=recipe.momentum, loss=loss,
        seed=ctx.seed, threads=ctx.threads, eval_images=xt, eval_labels=yt, **kw,
    )
    test = training.evaluate_classifier(model, xt, yt, loss=loss)
    hidden = training.evaluate_classifier(model, xh, yh, loss=loss)
    metrics = {
        "test_accuracy": test["accuracy"],
        "hidden_accuracy": hidden["accuracy"],
        "test_loss": test["loss"],
        "hidden_loss": hidden["loss"],
        "hidden_per_class_accuracy": hidden["per_class_accuracy"],
        "min_hidden_class_accuracy": min(
            (a for a in hidden["per_class_accuracy"] if not math.isnan(a)), default=math.nan
        ),
        "parameters": training.count_parameters(model),
    }
    settings = {
        "batch_size": recipe.batch_size, "lr": recipe.lr, "optimizer": recipe.optimizer, "momentum": recipe.momentum,
        "normalisation": recipe.normalisation, "loss": loss, "train_images": len(y),
    }
    return _record(model, history, metrics, settings=settings, curves=_curves(history))


def task_mnist_ff(ctx: Context) -> dict:
    """dl2025-a2 1.1: the feed-forward net with LogSoftmax and NLLLoss."""
    return _mnist_classifier(ctx, FeedForward, "nll")


def task_mnist_ff_logits(ctx: Context) -> dict:
    """dl2025-a2 1.2: the feed-forward net with logits and CrossEntropyLoss."""
    return _mnist_classifier(ctx, FeedForwardLogits, "cross_entropy")


def task_mnist_cnn(ctx: Context) -> dict:
    """dl2025-a2 1.3: the 12,810-parameter CNN."""
    return _mnist_classifier(ctx, CNN, "nll", channels_last=True)


def task_mnist_linear_mistake(ctx: Context) -> dict:
    """Baseline of a typical bug: the feed-forward net without its ReLUs (a linear model)."""
    return _mnist_classifier(ctx, FeedForwardNoActivation, "nll")


def task_mnist_softmax_nll_mistake(ctx: Context) -> dict:
    """Baseline of a typical bug: Softmax output fed to NLLLoss."""
    return _mnist_classifier(ctx, FeedForwardSoftmax, "nll")


# --------------------------------------------------------------------------- autoencoders, PCA, VAE


def task_mnist_autoencoder(ctx: Context) -> dict:
    """dl2025-a2 2.4: the fully connected autoencoder for each latent size; MSE per pixel on the hidden split."""
    x, _ = ctx.images("mnist", "train", "unit", flatten=True)
    x = x[: ctx.profile.autoencoder_train_images]  # (N, 784); slicing with None keeps all
    xh, _ = ctx.images("mnist", "hidden", "unit", flatten=True)
    latents = ctx.profile.autoencoder_latents
    errors: dict[str, float] = {}
    seconds = 0.0
    curves: dict[str, list[float]] = {}
    headline: nn.Module | None = None
    for k in latents:
        model = ctx.seeded(lambda: Autoencoder(784, 128, k))
        history = training.train_autoencoder(
            model, x, loss="bce", epochs=ctx.profile.autoencoder_epochs, batch_size=128, lr=1e-3,
            seed=ctx.seed, threads=ctx.threads,
        )
        seconds += history.train_seconds
        errors[str(k)] = training.evaluate_autoencoder(model, xh)["mse"]
        curves[str(k)] = [round(v, 5) for v in history.train_loss]
        if headline is None:
            headline = model
    epochs = ctx.profile.autoencoder_epochs
    metrics = {
        "hidden_mse": errors,
        "latent_sizes": list(latents),
        "hidden_mse_at_2": errors.get("2"),
        "parameters": training.count_parameters(headline) if headline is not None else 0,
    }
    return {
        "metrics": metrics,
        "train_seconds": round(seconds, 3),
        "epochs": epochs,
        "seconds_per_epoch": round(seconds / (epochs * len(latents)), 3),
        "parameters": metrics["parameters"],
        "settings": {
            "loss": "bce", "batch_size": 128, "lr": 1e-3, "train_images": len(x),
            "latent_sizes_note": "every size 2..20" if list(latents) == list(range(2, 21))
            else f"a subset of 2..20 ({ctx.profile.name} profile)",
            "parameters_note": "parameters of the latent-size-2 model",
        },
        "curves": {"train_loss_by_latent": curves},
    }


def task_mnist_pca(ctx: Context) -> dict:
    """dl2025-a2 2.4: PCA reconstruction error per number of components, on the autoencoder's data."""
    images, _ = ctx.raw("mnist", "train")
    images = images[: ctx.profile.autoencoder_train_images]  # the autoencoder sweep's training images
    hidden, _ = ctx.raw("mnist", "hidden")
    latents = ctx.profile.autoencoder_latents
    start = time.perf_counter()
    errors = ref_pca.reconstruction_errors(
        ref_pca.scale_pixels(images), ref_pca.scale_pixels(hidden), latent_sizes=latents, seed=ctx.seed
    )
    seconds = time.perf_counter() - start
    metrics = {"hidden_mse": {str(k): v for k, v in errors.items()}, "latent_sizes": list(latents)}
    return {
        "metrics": metrics, "train_seconds": round(seconds, 3), "epochs": 0, "seconds_per_epoch": 0.0,
        "parameters": 0, "settings": {"train_images": len(images), "fit": "sklearn PCA, largest k, sliced"},
    }


def task_mnist_vae(ctx: Context) -> dict:
    """dl2025-a2 2.5-2.6: the VAE (latent 2), loss per example (total, BCE, KL) on test and hidden."""
    x, _ = ctx.images("mnist", "train", "unit", flatten=True)
    xt, _ = ctx.images("mnist", "test", "unit", flatten=True)
    xh, _ = ctx.images("mnist", "hidden", "unit", flatten=True)
    model = ctx.seeded(VAE)
    history = training.train_vae(
        model, x, epochs=ctx.profile.vae_epochs, batch_size=128, lr=1e-3, seed=ctx.seed, threads=ctx.threads,
        eval_images=xt,
    )
    test = training.evaluate_vae(model, xt, seed=ctx.seed)
    hidden = training.evaluate_vae(model, xh, seed=ctx.seed)
    metrics = {
        "test_loss": test["loss"], "test_bce": test["bce"], "test_kl": test["kl"],
        "hidden_loss": hidden["loss"], "hidden_bce": hidden["bce"], "hidden_kl": hidden["kl"],
    }
    settings = {"batch_size": 128, "lr": 1e-3, "loss": "summed BCE + KL, reported per example", "train_images": len(x)}
    return _record(model, history, metrics, settings=settings, curves=_curves(history))


# --------------------------------------------------------------------------- idl-ex2


def _train_conv_autoencoder(ctx: Context) -> Trained:
    """Train idl-ex2 Q1's autoencoder (c = 16, d = 12) with mean L1, as the worked solution (Adam 2e-3, batch 256)."""
    x, _ = ctx.images("mnist", "train", "unit")
    model = ctx.seeded(lambda: ConvAutoencoder(IDL_BASE_CHANNELS, IDL_LATENT))
    history = training.train_autoencoder(
        model, x, loss="l1", epochs=ctx.profile.conv_autoencoder_epochs, batch_size=256, lr=2e-3,
        seed=ctx.seed, threads=ctx.threads,
    )
    return model, history


def _conv_autoencoder(ctx: Context) -> Trained:
    """Return idl-ex2 Q1's trained autoencoder and its history (trained once per run)."""
    return ctx.shared_model("idl-conv-autoencoder", lambda: _train_conv_autoencoder(ctx))


def _train_conv_classifier(ctx: Context) -> Trained:
    """Train idl-ex2 Q2's classifier (the Q1 encoder architecture plus a two-layer MLP), CE, Adam 1e-3, batch 64."""
    x, y = ctx.images("mnist", "train", "unit")
    model = ctx.seeded(lambda: conv_classifier(IDL_BASE_CHANNELS, IDL_LATENT))
    history = training.train_classifier(
        model, x, y, epochs=ctx.profile.conv_classifier_epochs, batch_size=64, lr=1e-3, loss="cross_entropy",
        seed=ctx.seed, threads=ctx.threads, channels_last=True,
    )
    return model, history


def _conv_classifier(ctx: Context) -> Trained:
    """Return idl-ex2 Q2's trained classifier and its history (trained once per run)."""
    return ctx.shared_model("idl-classifier", lambda: _train_conv_classifier(ctx))


def _reconstruction_metrics(ctx: Context, model: nn.Module) -> dict:
    """Return mean L1 and MSE per pixel of a [0, 1] reconstruction on the test and hidden splits."""
    xt, _ = ctx.images("mnist", "test", "unit")
    xh, _ = ctx.images("mnist", "hidden", "unit")
    test = training.evaluate_autoencoder(model, xt)
    hidden = training.evaluate_autoencoder(model, xh)
    return {"test_l1": test["l1"], "hidden_l1": hidden["l1"], "test_mse": test["mse"], "hidden_mse": hidden["mse"]}


def task_idl_conv_autoencoder(ctx: Context) -> dict:
    """idl-ex2 Q1: the convolutional autoencoder, d = 12, mean L1 on the hidden split."""
    model, history = _conv_autoencoder(ctx)
    metrics = _reconstruction_metrics(ctx, model)
    settings = {
        "base_channels": IDL_BASE_CHANNELS, "latent_dim": IDL_LATENT, "loss": "l1", "batch_size": 256, "lr": 2e-3,
    }
    return _record(model, history, metrics, settings=settings, curves=_curves(history))


def _classifier_metrics(ctx: Context, model: nn.Module) -> dict:
    """Return test and hidden accuracy (and hidden per-class accuracy) of an idl-ex2 classifier."""
    xt, yt = ctx.images("mnist", "test", "unit")
    xh, yh = ctx.images("mnist", "hidden", "unit")
    test = training.evaluate_classifier(model, xt, yt, loss="cross_entropy")
    hidden = training.evaluate_classifier(model, xh, yh, loss="cross_entropy")
    return {
        "test_accuracy": test["accuracy"], "hidden_accuracy": hidden["accuracy"],
        "test_loss": test["loss"], "hidden_loss": hidden["loss"],
        "hidden_per_class_accuracy": hidden["per_class_accuracy"],
    }


def task_idl_classifier(ctx: Context) -> dict:
    """idl-ex2 Q2: the encoder-plus-MLP classifier trained on every training image."""
    model, history = _conv_classifier(ctx)
    settings = {"loss": "cross_entropy", "batch_size": 64, "lr": 1e-3}
    return _record(model, history, _classifier_metrics(ctx, model), settings=settings, curves=_curves(history))


def _few_labels(ctx: Context, model: nn.Module) -> tuple[training.History, dict]:
    """Train a classifier on the first 100 training images (batch 10, Adam 1e-3), test curves every epoch."""
    x, y = ctx.images("mnist", "train", "unit")
    x100, y100 = first_labelled(x, y, FEW_LABELS)
    xt, yt = ctx.images("mnist", "test", "unit")
    n_curve = ctx.profile.curve_eval_images
    history = training.train_classifier(
        model, x100, y100, epochs=ctx.profile.few_labels_epochs, batch_size=10, lr=1e-3, loss="cross_entropy",
        seed=ctx.seed, threads=ctx.threads, eval_images=xt[:n_curve], eval_labels=yt[:n_curve],
    )
    train = training.evaluate_classifier(model, x100, y100, loss="cross_entropy")
    metrics = {"final_train_accuracy": train["accuracy"], **_classifier_metrics(ctx, model)}
    metrics["overfitting_gap"] = metrics["final_train_accuracy"] - metrics["test_accuracy"]
    return history, metrics


def _few_labels_settings(ctx: Context) -> dict:
    """Return the settings every 100-label task shares."""
    return {
        "train_images": FEW_LABELS, "which": "the first 100 training images", "batch_size": 10, "lr": 1e-3,
        "loss": "cross_entropy", "curve_eval_images": ctx.profile.curve_eval_images,
    }


def task_idl_100_labels(ctx: Context) -> dict:
    """idl-ex2 Q4: the whole classifier trained from scratch on 100 labelled images (it over-fits)."""
    model = ctx.seeded(lambda: conv_classifier(IDL_BASE_CHANNELS, IDL_LATENT))
    history, metrics = _few_labels(ctx, model)
    return _record(model, history, metrics, settings=_few_labels_settings(ctx), curves=_curves(history))


def _state_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    """Return a detached copy of a module's parameters and buffers."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _unchanged(before: dict[str, torch.Tensor], module: nn.Module) -> bool:
    """Tell whether every parameter and buffer (BatchNorm statistics included) is as before."""
    after = module.state_dict()
    return before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def task_idl_frozen_transfer(ctx: Context) -> dict:
    """idl-ex2 (pre-trained representation): the Q1 encoder frozen, a fresh MLP head trained on 100 images."""
    encoder = copy.deepcopy(_conv_autoencoder(ctx)[0].encoder)
    before = _state_copy(encoder)
    torch.manual_seed(ctx.seed)
    model = EncoderClassifier(freeze(encoder), IDL_LATENT)
    history, metrics = _few_labels(ctx, model)
    metrics["encoder_unchanged"] = _unchanged(before, encoder)
    if not metrics["encoder_unchanged"]:
        raise HarnessError("the frozen encoder changed during training: parameters or BatchNorm statistics moved")
    return _record(model, history, metrics, settings=_few_labels_settings(ctx), curves=_curves(history))


def task_idl_classifier_decoder(ctx: Context) -> dict:
    """idl-ex2 Q3: a fresh decoder on the frozen encoder of the Q2 classifier, mean L1 (worse than Q1's)."""
    classifier, _ = _conv_classifier(ctx)
    x, _ = ctx.images("mnist", "train", "unit")
    model = ctx.seeded(lambda: classifier_decoder(classifier, IDL_BASE_CHANNELS, IDL_LATENT))
    before = _state_copy(model.encoder)
    history = training.train_autoencoder(
        model, x, loss="l1", epochs=ctx.profile.conv_autoencoder_epochs, batch_size=256, lr=2e-3,
        seed=ctx.seed, threads=ctx.threads,
    )
    metrics = _reconstruction_metrics(ctx, model)
    metrics["encoder_unchanged"] = _unchanged(before, model.encoder)
    autoencoder_record = ctx.records.get("idl-conv-autoencoder", {}).get("metrics", {})
    if "hidden_l1" in autoencoder_record:
        metrics["autoencoder_hidden_l1"] = autoencoder_record["hidden_l1"]
        metrics["worse_than_autoencoder"] = metrics["hidden_l1"] > autoencoder_record["hidden_l1"]
    settings = {"loss": "l1", "batch_size": 256, "lr": 2e-3, "trainable": "the decoder only"}
    return _record(model, history, metrics, settings=settings, curves=_curves(history))


def task_idl_finetune(ctx: Context) -> dict:
    """idl-ex2 Q5: the Q1 encoder as the initial guess, a fresh head, everything fine-tuned on 100 images."""
    autoencoder, _ = _conv_autoencoder(ctx)
    torch.manual_seed(ctx.seed)
    model = EncoderClassifier(copy.deepcopy(autoencoder.encoder), IDL_LATENT)
    history, metrics = _few_labels(ctx, model)
    scratch = ctx.records.get("idl-100-labels", {}).get("metrics", {})
    if "test_accuracy" in scratch:
        metrics["scratch_test_accuracy"] = scratch["test_accuracy"]
    return _record(model, history, metrics, settings=_few_labels_settings(ctx), curves=_curves(history))


# --------------------------------------------------------------------------- mle-sheet06


def task_mle_signs_cnn(ctx: Context) -> dict:
    """mle-sheet06 ex. 2: the SIGNS CNN, Adam 1e-3 with NLLLoss, batch 64; accuracy on val, test and hidden."""
    x, y = ctx.images("signs", "train", "signs")
    xv, yv = ctx.images("signs", "val", "signs")
    xt, yt = ctx.images("signs", "test", "signs")
    xh, yh = ctx.images("signs", "hidden", "signs")
    model = ctx.seeded(SignsCNN)
    history = training.train_classifier(
        model, x, y, epochs=ctx.profile.signs_epochs, batch_size=64, lr=1e-3, loss="nll",
        seed=ctx.seed, threads=ctx.threads, eval_images=xv, eval_labels=yv,
    )
    val = training.evaluate_classifier(model, xv, yv)
    test = training.evaluate_classifier(model, xt, yt)
    hidden = training.evaluate_classifier(model, xh, yh)
    metrics = {
        "val_accuracy": val["accuracy"], "test_accuracy": test["accuracy"], "hidden_accuracy": hidden["accuracy"],
        "hidden_per_class_accuracy": hidden["per_class_accuracy"], "parameters": training.count_parameters(model),
    }
    settings = {"batch_size": 64, "lr": 1e-3, "loss": "nll", "train_images": len(y)}
    return _record(model, history, metrics, settings=settings, curves=_curves(history))


def _fashion_subset(ctx: Context, split: str, per_class: int) -> torch.Tensor:
    """Return the first ``per_class`` images of each class, normalised to [-1, 1] as the sheet does."""
    images, labels = ctx.raw("fashionmnist", split)
    chosen = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    return training.prepare_images(images[np.sort(chosen)], "symmetric")


def task_mle_fashion_conv_ae(ctx: Context) -> dict:
    """mle-sheet06 ex. 3: the sheet's Conv_AE on FashionMNIST in [-1, 1], MSE, Adam 1e-3, batch 64."""
    x = _fashion_subset(ctx, "train", ctx.profile.fashion_per_class)
    xh, _ = ctx.images("fashionmnist", "hidden", "symmetric")
    model = ctx.seeded(lambda: FashionConvAE(FASHION_CONV_LATENT))
    history = training.train_autoencoder(
        model, x, loss="mse", epochs=ctx.profile.fashion_conv_epochs, batch_size=64, lr=1e-3,
        seed=ctx.seed, threads=ctx.threads, channels_last=True,
    )
    metrics = {  # the hidden split only: this network's inference is as slow as its training
        "hidden_mse": training.evaluate_autoencoder(model, xh)["mse"],
        "latent_dim": FASHION_CONV_LATENT,
    }
    settings = {
        "latent_dim": FASHION_CONV_LATENT, "scale": "[-1, 1]", "loss": "mse", "batch_size": 64, "lr": 1e-3,
        "train_images": len(x), "which": f"the first {ctx.profile.fashion_per_class} training images of each class",
    }
    return _record(model, history, metrics, settings=settings, curves=_curves(history))


def task_mle_pca_ae(ctx: Context) -> dict:
    """mle-sheet06 ex. 3: the linear "PCA" autoencoder (latent 10); MSE and principal angles to PCA's subspace."""
    latent = 10
    x = _fashion_subset(ctx, "train", ctx.profile.fashion_per_class).flatten(1)  # (N, 784) in [-1, 1]
    xh = ctx.images("fashionmnist", "hidden", "symmetric", flatten=True)[0]
    model = ctx.seeded(lambda: PCAAutoencoder(784, latent))
    history = training.train_autoencoder(
        model, x, loss="mse", epochs=ctx.profile.pca_ae_epochs, batch_size=64, lr=1e-3,
        seed=ctx.seed, threads=ctx.threads,
    )
    pca = ref_pca.fit_pca(x.double().numpy(), latent, seed=ctx.seed)
    xh64 = xh.double().numpy()
    pca_mse = float(np.mean((ref_pca.reconstruct(pca, xh64, latent) - xh64) ** 2))
    angles = ref_pca.principal_angles(model.decoder[0].weight, pca, latent)  # radians, ascending
    metrics = {
        "hidden_mse": training.evaluate_autoencoder(model, xh)["mse"],
        "pca_hidden_mse": pca_mse,
        "principal_angles_deg": [round(math.degrees(a), 3) for a in angles],
        "max_principal_angle_deg": math.degrees(float(np.max(angles))),
        "mean_principal_angle_deg": math.degrees(float(np.mean(angles))),
        "latent_dim": latent,
    }
    settings = {
        "latent_dim": latent, "scale": "[-1, 1]", "loss": "mse", "batch_size": 64, "lr": 1e-3, "train_images": len(x),
    }
    return _record(model, history, metrics, settings=settings, curves=_curves(history))


# --------------------------------------------------------------------------- the run

TASKS: dict[str, Callable[[Context], dict]] = {
    "mnist-ff": task_mnist_ff,
    "mnist-ff-logits": task_mnist_ff_logits,
    "mnist-cnn": task_mnist_cnn,
    "mnist-linear-mistake": task_mnist_linear_mistake,
    "mnist-softmax-nll-mistake": task_mnist_softmax_nll_mistake,
    "mnist-autoencoder": task_mnist_autoencoder,
    "mnist-pca": task_mnist_pca,
    "mnist-vae": task_mnist_vae,
    "idl-conv-autoencoder": task_idl_conv_autoencoder,
    "idl-classifier": task_idl_classifier,
    "idl-100-labels": task_idl_100_labels,
    "idl-frozen-transfer": task_idl_frozen_transfer,
    "idl-classifier-decoder": task_idl_classifier_decoder,
    "idl-finetune": task_idl_finetune,
    "mle-signs-cnn": task_mle_signs_cnn,
    "mle-fashion-conv-ae": task_mle_fashion_conv_ae,
    "mle-pca-ae": task_mle_pca_ae,
}
"""Every calibrated reference task, in the order they run (later tasks reuse earlier models)."""


def summary_line(task_id: str, record: dict) -> str:
    """Return the one line a TA reads about a finished task, e.g. 'mnist-cnn: 97.8% test accuracy in 12.3 s'."""
    if "error" in record:
        return f"{task_id}: failed: {record['error']}"
    m = record.get("metrics", {})
    seconds = record.get("train_seconds", 0.0)
    if "test_accuracy" in m:
        what = f"{100 * m['test_accuracy']:.1f}% test accuracy"
    elif "hidden_l1" in m:
        what = f"L1 {m['hidden_l1']:.4f} per pixel (hidden)"
    elif "hidden_loss" in m:
        what = f"loss {m['hidden_loss']:.1f} per image (hidden)"
    elif isinstance(m.get("hidden_mse"), dict):
        errors = m["hidden_mse"]
        first, last = next(iter(errors)), list(errors)[-1]
        what = f"MSE {errors[first]:.4f} (latent {first}) to {errors[last]:.4f} (latent {last}) (hidden)"
    elif "hidden_mse" in m:
        what = f"MSE {m['hidden_mse']:.4f} per pixel (hidden)"
    else:
        what = "done"
    return f"{task_id}: {what} in {seconds:.1f} s"


def _machine(threads: int) -> dict:
    """Describe the machine the figures were measured on."""
    return {
        "cpu_count": os.cpu_count(),
        "available_cores": training.available_cores(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def _data_summary(manifest: dict) -> dict:
    """Return each dataset's source, seed and counts from the manifest (never the hidden seed)."""
    keep = ("source", "origin", "seed", "small", "counts")
    return {name: {k: entry.get(k) for k in keep} for name, entry in manifest.get("datasets", {}).items()}


def calibrate(
    data_dir: Path,
    *,
    profile: str = "full",
    out: Path | None = None,
    seed: int = 0,
    threads: int | None = None,
    tasks: list[str] | None = None,
    on_progress: Progress | None = None,
) -> dict:
    """Train and score every reference task on the prepared data; write and return the calibration.

    ``tasks`` restricts the run to some task ids (default: all of :data:`TASKS`); a task
    whose models depend on another's (e.g. idl-finetune on idl-conv-autoencoder) trains
    what it needs. ``threads`` defaults to every available core (or ``OMP_NUM_THREADS``).
    """
    if profile not in PROFILES:
        raise HarnessError(f"unknown calibration profile {profile!r}; known: {', '.join(PROFILES)}")
    chosen = list(TASKS) if tasks is None else list(tasks)
    unknown = [t for t in chosen if t not in TASKS]
    if unknown:
        raise HarnessError(f"unknown calibration task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
    report = on_progress or (lambda line: None)
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)  # fails early, with what to do, when nothing is prepared
    path = Path(out) if out is not None else default_output(data_dir, profile)
    n_threads = training.default_threads() if threads is None else int(threads)
    result = {
        "gradebench_version": __version__,
        "profile": profile,
        "profile_settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(PROFILES[profile]).items()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(n_threads),
        "data": _data_summary(manifest),
        "seed": seed,
        "tasks": {},
    }
    ctx = Context(data_dir, PROFILES[profile], seed, n_threads)
    run_start = time.perf_counter()
    with training.torch_threads(n_threads), torch.random.fork_rng(devices=[]):
        for task_id in chosen:
            start = time.perf_counter()
            try:
                record = TASKS[task_id](ctx)
            except Exception as error:  # noqa: BLE001 - one failed task must not stop the others
                record = {"error": _describe(error)}
            record["wall_seconds"] = round(time.perf_counter() - start, 3)
            ctx.records[task_id] = record
            result["tasks"][task_id] = record
            result["total_seconds"] = round(time.perf_counter() - run_start, 3)
            write_json(path, result)
            report(summary_line(task_id, record))
    return result
