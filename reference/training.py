"""Fast in-memory trainers for the reference models.

The assignments' own loops read MNIST through ``torchvision.datasets`` with a
per-item PIL transform and a ``DataLoader``; most of an epoch goes into turning
single images into tensors. The trainers here convert the uint8 images once into
normalised float32 tensors (:func:`prepare_images`), draw batches by slicing a
seeded permutation (:func:`epoch_batches`), and evaluate under
``torch.inference_mode`` in large batches. The optimisation itself (model, loss,
optimiser, learning rate, batch size) is whatever the caller asks for, so a
reference trained here is trained the way the assignment trains it.

Every trainer takes explicit parameters, seeds its own random numbers (the
caller's global RNG state is left as it was) and returns a :class:`History`.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# The normalisations the assignments apply to uint8 images.
MNIST_MEAN = 0.1307  # transforms.Normalize((0.1307,), (0.3081,)) in the MNIST notebooks
MNIST_STD = 0.3081

Normalisation = Literal["mnist", "unit", "symmetric", "signs"]
ClassifierLoss = Literal["nll", "cross_entropy"]
ReconstructionLoss = Literal["mse", "l1", "bce"]
OptimizerName = Literal["adam", "adamw", "sgd"]

EVAL_BATCH_SIZE = 1024  # inference batch: Python overhead negligible, activations still small


@dataclass(frozen=True)
class ClassifierRecipe:
    """How an assignment's own notebook trains a classifier (its optimiser, batch, epochs and transform).

    A reference trained with the assignment's recipe is what accuracy bars are relative to: a student
    who runs the course's template unmodified reaches what it reaches, not what a stronger optimiser would.
    """

    optimizer: OptimizerName
    lr: float
    momentum: float
    batch_size: int
    epochs: int
    normalisation: Normalisation
    """The transform of the notebook's DataLoaders (see :func:`prepare_images`)."""


DL2025_TEMPLATE = ClassifierRecipe(optimizer="sgd", lr=0.002, momentum=0.9, batch_size=64, epochs=4, normalisation="symmetric")
"""dl2025-a2 Part 1 as the course's feedForwardMNIST.ipynb trains it: ``Normalize((0.5,), (0.5,))``, SGD with
lr 0.002 and momentum 0.9, 4 epochs, batches of 64 (the CNN of CNNMNIST.ipynb is trained the same way)."""


@dataclass
class History:
    """Per-epoch figures of one training run (lists indexed by epoch - 1).

    ``train_accuracy`` is the running accuracy over the epoch's batches (the model
    changes during the epoch, as in the assignments' loops); it is empty for
    models without classes. ``eval_*`` lists are filled only when evaluation data
    was given. ``extra`` holds further series, e.g. the VAE's ``train_bce``.
    """

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    eval_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    """Wall-clock seconds of each epoch's training (evaluation excluded)."""
    extra: dict[str, list[float]] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        """Number of epochs trained."""
        return len(self.train_loss)

    @property
    def train_seconds(self) -> float:
        """Total training time in seconds (evaluation excluded)."""
        return float(sum(self.seconds))

    def as_dict(self) -> dict:
        """Return the history as plain JSON-ready lists."""
        return asdict(self)


# --------------------------------------------------------------------------- setup


def available_cores() -> int:
    """Return the number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Return the thread count to train with: ``OMP_NUM_THREADS`` if set, else every available core."""
    from_env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if from_env.isdigit() and int(from_env) > 0:
        return int(from_env)
    return available_cores()


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(threads)`` (None: :func:`default_threads`).

    On a machine shared with other busy processes one thread per free core is
    much faster than more threads than that: OpenMP threads that wait for a
    core spin, and a CNN epoch can take ten times as long.
    """
    wanted = default_threads() if threads is None else int(threads)
    if wanted < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    before = torch.get_num_threads()
    if wanted != before:
        torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def prepare_images(
    images: np.ndarray | torch.Tensor,
    normalisation: Normalisation,
    *,
    flatten: bool = False,
) -> torch.Tensor:
    """Turn uint8 images into the float32 tensor an assignment's transform would give.

    - ``"mnist"``: ``ToTensor()`` then ``Normalize((0.1307,), (0.3081,))`` (the classifiers).
    - ``"unit"``: ``ToTensor()`` alone, values in [0, 1] (the autoencoders, the VAE).
    - ``"symmetric"``: ``ToTensor()`` then ``Normalize((0.5,), (0.5,))``, values in [-1, 1]
      (the FashionMNIST autoencoders of the MLE sheet).
    - ``"signs"``: SIGNS images divided by 255 and moved to channels-first.

    Greyscale (N, 28, 28) input becomes (N, 1, 28, 28), or (N, 784) with
    ``flatten=True``; SIGNS (N, 64, 64, 3) input becomes (N, 3, 64, 64).
    """
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dtype != torch.uint8:
        raise ValueError(f"prepare_images expects uint8 images, got {x.dtype}")
    x = x.to(torch.float32).div_(255.0)  # what ToTensor does to uint8 input
    if normalisation == "signs":
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"SIGNS images must have shape (N, 64, 64, 3), got {tuple(x.shape)}")
        x = x.permute(0, 3, 1, 2).contiguous()  # (N, 3, 64, 64)
    else:
        if x.ndim != 3:
            raise ValueError(f"greyscale images must have shape (N, H, W), got {tuple(x.shape)}")
        x = x.unsqueeze(1)  # (N, 1, 28, 28)
        if normalisation == "mnist":
            x.sub_(MNIST_MEAN).div_(MNIST_STD)
        elif normalisation == "symmetric":
            x.sub_(0.5).div_(0.5)
        elif normalisation != "unit":
            raise ValueError(f"unknown normalisation {normalisation!r}; known: mnist, unit, symmetric, signs")
    if flatten:
        x = x.reshape(x.shape[0], -1)  # (N, C*H*W)
    return x


def as_labels(labels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Return class labels as an int64 tensor."""
    return torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).long()


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Return the number of (trainable) parameters of a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def epoch_batches(
    n: int,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
) -> Iterator[torch.Tensor]:
    """Yield index tensors that together cover ``range(n)`` exactly once.

    A seeded permutation (or ``arange`` without shuffling) sliced into batches of
    ``batch_size``; the last batch is smaller when ``n`` is not a multiple, as a
    ``DataLoader`` with ``drop_last=False`` does.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def make_optimizer(
    name: OptimizerName,
    parameters: Sequence[nn.Parameter],
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
) -> torch.optim.Optimizer:
    """Build the named optimiser over the given parameters."""
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; known: adam, adamw, sgd")


def _first_output(output: torch.Tensor | tuple | list) -> torch.Tensor:
    """Return the main output of a model that may return a tuple (reconstruction, latent)."""
    if isinstance(output, (tuple, list)):
        return output[0]
    return output


def _classifier_loss(name: ClassifierLoss) -> Callable[..., torch.Tensor]:
    """Return the loss function of a classifier: NLL on log-probabilities or CE on logits."""
    if name == "nll":
        return F.nll_loss
    if name == "cross_entropy":
        return F.cross_entropy
    raise ValueError(f"unknown classifier loss {name!r}; known: nll, cross_entropy")


def _reconstruction_loss(name: ReconstructionLoss) -> Callable[..., torch.Tensor]:
    """Return the reconstruction loss by name (mean over every element)."""
    if name == "mse":
        return F.mse_loss
    if name == "l1":
        return F.l1_loss
    if name == "bce":
        return F.binary_cross_entropy
    raise ValueError(f"unknown reconstruction loss {name!r}; known: mse, l1, bce")


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put the model in eval mode under inference_mode, then restore its mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield model
    finally:
        model.train(was_training)


def _to_device(model: nn.Module, device: str | torch.device, channels_last: bool) -> torch.device:
    """Move a model to the device (and memory format); return the device."""
    device = torch.device(device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return device


def _check_same_length(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Fail with a clear message when two tensors that pair up differ in length."""
    if len(a) != len(b):
        raise ValueError(f"{name_a} has {len(a)} examples but {name_b} has {len(b)}")


# --------------------------------------------------------------------------- classifiers


def model_device(model: nn.Module) -> torch.device:
    """Return the device of a model's first parameter or buffer (the CPU for a model without any)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def predict_outputs(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Return the model's outputs (on the CPU) for every image, in eval mode, in large batches.

    ``device`` defaults to the model's own device.
    """
    device = model_device(model) if device is None else torch.device(device)
    outs = []
    with _evaluating(model):
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device, non_blocking=True)
            outs.append(_first_output(model(batch)).float().cpu())
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    loss: ClassifierLoss | None = "nll",
    num_classes: int | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str | torch.device | None = None,
) -> dict:
    """Return accuracy, per-class accuracy and mean loss of a classifier on labelled images.

    ``per_class_accuracy[c]`` is the fraction of images of true class ``c`` predicted
    as ``c`` (NaN for a class with no images); ``loss`` is None when no loss is named.
    """
    labels = as_labels(labels)
    _check_same_length("images", images, "labels", labels)
    outputs = predict_outputs(model, images, batch_size=batch_size, device=device)  # (N, K)
    k = num_classes if num_classes is not None else outputs.shape[1]
    predicted = outputs.argmax(dim=1)  # (N,)
    correct = predicted == labels
    per_class = []
    for c in range(k):
        of_class = labels == c
        n_c = int(of_class.sum())
        per_class.append(float(correct[of_class].float().mean()) if n_c else math.nan)
    loss_value = float(_classifier_loss(loss)(outputs, labels)) if loss is not None else None
    return {
        "accuracy": float(correct.float().mean()) if len(labels) else math.nan,
        "per_class_accuracy": per_class,
        "loss": loss_value,
        "examples": len(labels),
    }


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    loss: ClassifierLoss = "nll",
    optimizer: OptimizerName = "adam",
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    channels_last: bool = False,
    eval_images: torch.Tensor | None = None,
    eval_labels: torch.Tensor | None = None,
    on_epoch: Callable[[int, History], None] | None = None,
) -> History:
    """Train a classifier in place on in-memory tensors; return its per-epoch history.

    ``images`` are already normalised (see :func:`prepare_images`); ``loss`` is
    ``"nll"`` for a model ending in LogSoftmax, ``"cross_entropy"`` for one that
    outputs logits. Only parameters with ``requires_grad`` are optimised, so a
    frozen encoder stays frozen; its BatchNorm statistics stay put only if it
    stays in eval mode (``reference.transfer.freeze`` sees to that).
    ``seed`` fixes the batch order and any randomness inside the model (the
    initial weights are the caller's). ``channels_last`` trains a CNN in the
    channels-last memory layout, about 1.5x faster on a CPU with oneDNN.
    ``on_epoch(epoch, history)`` is called after each epoch.
    """
    labels = as_labels(labels)
    _check_same_length("images", images, "labels", labels)
    loss_fn = _classifier_loss(loss)
    history = History()
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        dev = _to_device(model, device, channels_last)
        x_all = images.to(dev)
        y_all = labels.to(dev)
        if channels_last and x_all.ndim == 4:
            x_all = x_all.contiguous(memory_format=torch.channels_last)
        opt = make_optimizer(optimizer, list(model.parameters()), lr=lr, weight_decay=weight_decay, momentum=momentum)
        n = len(y_all)
        for epoch in range(1, epochs + 1):
            model.train()
            start = time.perf_counter()
            loss_sum = torch.zeros((), device=dev)
            correct = torch.zeros((), dtype=torch.long, device=dev)
            for idx in epoch_batches(n, batch_size, generator=generator):
                idx = idx.to(dev, non_blocking=True)
                x, y = x_all[idx], y_all[idx]  # (B, ...), (B,)
                out = model(x)  # (B, K)
                batch_loss = loss_fn(out, y)
                opt.zero_grad(set_to_none=True)
                batch_loss.backward()
                opt.step()
                loss_sum += batch_loss.detach() * len(y)
                correct += (out.detach().argmax(dim=1) == y).sum()
            history.train_loss.append(float(loss_sum) / n)
            history.train_accuracy.append(float(correct) / n)
            history.seconds.append(time.perf_counter() - start)
            if eval_images is not None and eval_labels is not None:
                ev = evaluate_classifier(model, eval_images, eval_labels, loss=loss, device=dev)
                history.eval_loss.append(ev["loss"])
                history.eval_accuracy.append(ev["accuracy"])
            if on_epoch is not None:
                on_epoch(epoch, history)
    return history


# --------------------------------------------------------------------------- autoencoders


def evaluate_autoencoder(
    model: nn.Module,
    images: torch.Tensor,
    *,
    targets: torch.Tensor | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str | torch.device | None = None,
) -> dict:
    """Return the mean squared and mean absolute reconstruction error per element.

    ``targets`` default to the inputs. A model returning ``(reconstruction, latent)``
    is handled; a reconstruction with the right number of elements but another shape
    (e.g. (B, 784) for (B, 1, 28, 28) input) is reshaped to the target's shape.
    """
    targets = images if targets is None else targets
    _check_same_length("images", images, "targets", targets)
    recon = predict_outputs(model, images, batch_size=batch_size, device=device)
    recon = recon.reshape(targets.shape)
    t = targets.float().cpu()
    return {
        "mse": float(F.mse_loss(recon, t)),
        "l1": float(F.l1_loss(recon, t)),
        "examples": len(t),
    }


def train_autoencoder(
    model: nn.Module,
    images: torch.Tensor,
    *,
    targets: torch.Tensor | None = None,
    epochs: int,
    loss: ReconstructionLoss = "mse",
    batch_size: int = 64,
    lr: float = 1e-3,
    optimizer: OptimizerName = "adam",
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    channels_last: bool = False,
    eval_images: torch.Tensor | None = None,
    eval_targets: torch.Tensor | None = None,
    on_epoch: Callable[[int, History], None] | None = None,
) -> History:
    """Train a model to reconstruct ``targets`` (default: its inputs); return its history.

    ``loss`` is the mean over every element (``"bce"`` needs outputs in (0, 1)).
    The history's ``eval_loss`` is the same loss on the evaluation images.
    """
    targets = images if targets is None else targets
    _check_same_length("images", images, "targets", targets)
    loss_fn = _reconstruction_loss(loss)
    history = History()
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        dev = _to_device(model, device, channels_last)
        x_all = images.to(dev)
        t_all = x_all if targets is images else targets.to(dev)
        opt = make_optimizer(optimizer, list(model.parameters()), lr=lr, weight_decay=weight_decay, momentum=momentum)
        n = len(x_all)
        for epoch in range(1, epochs + 1):
            model.train()
            start = time.perf_counter()
            loss_sum = torch.zeros((), device=dev)
            for idx in epoch_batches(n, batch_size, generator=generator):
                idx = idx.to(dev, non_blocking=True)
                x, t = x_all[idx], t_all[idx]
                recon = _first_output(model(x)).reshape(t.shape)
                batch_loss = loss_fn(recon, t)
                opt.zero_grad(set_to_none=True)
                batch_loss.backward()
                opt.step()
                loss_sum += batch_loss.detach() * len(idx)
            history.train_loss.append(float(loss_sum) / n)
            history.seconds.append(time.perf_counter() - start)
            if eval_images is not None:
                et = eval_images if eval_targets is None else eval_targets
                recon = predict_outputs(model, eval_images, device=dev).reshape(et.shape)
                history.eval_loss.append(float(loss_fn(recon, et.float().cpu())))
            if on_epoch is not None:
                on_epoch(epoch, history)
    return history


# --------------------------------------------------------------------------- VAE

Tensor3 = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
VaeLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], Tensor3]
"""``loss_fn(recon, x, mu, logvar) -> (total, bce, kl)``, each summed over the batch."""


def _default_vae_loss() -> VaeLoss:
    """Return the reference VAE loss (summed BCE + KL), imported when first needed."""
    from reference.vae import vae_loss

    return vae_loss


def evaluate_vae(
    model: nn.Module,
    images: torch.Tensor,
    *,
    loss_fn: VaeLoss | None = None,
    seed: int = 0,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str | torch.device | None = None,
) -> dict:
    """Return the VAE's loss per example on the images: ``{"loss", "bce", "kl"}``.

    ``loss_fn(recon, x, mu, logvar) -> (total, bce, kl)`` sums over the batch; a
    model that samples in eval mode does so from a generator seeded with ``seed``.
    """
    loss_fn = loss_fn or _default_vae_loss()
    device = model_device(model) if device is None else torch.device(device)
    totals = torch.zeros(3, dtype=torch.float64)
    with torch.random.fork_rng(devices=[]), _evaluating(model):
        torch.manual_seed(seed)
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device)
            recon, mu, logvar = model(x)
            total, bce, kl = loss_fn(recon, x, mu, logvar)
            totals += torch.tensor([float(total), float(bce), float(kl)], dtype=torch.float64)
    n = max(len(images), 1)
    total, bce, kl = (float(v) / n for v in totals)
    return {"loss": total, "bce": bce, "kl": kl, "examples": len(images)}


def train_vae(
    model: nn.Module,
    images: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    optimizer: OptimizerName = "adam",
    loss_fn: VaeLoss | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    eval_images: torch.Tensor | None = None,
    on_epoch: Callable[[int, History], None] | None = None,
) -> History:
    """Train a VAE (``model(x) -> (recon, mu, logvar)``) on [0, 1] images; return its history.

    Losses in the history are per example: ``train_loss`` (total) plus
    ``extra["train_bce"]`` and ``extra["train_kl"]``, and the same for evaluation.
    """
    loss_fn = loss_fn or _default_vae_loss()
    history = History(extra={"train_bce": [], "train_kl": []})
    if eval_images is not None:
        history.extra.update(eval_bce=[], eval_kl=[])
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        dev = _to_device(model, device, channels_last=False)
        x_all = images.to(dev)
        opt = make_optimizer(optimizer, list(model.parameters()), lr=lr)
        n = len(x_all)
        for epoch in range(1, epochs + 1):
            model.train()
            start = time.perf_counter()
            sums = torch.zeros(3, device=dev)
            for idx in epoch_batches(n, batch_size, generator=generator):
                x = x_all[idx.to(dev, non_blocking=True)]  # (B, 784)
                recon, mu, logvar = model(x)
                total, bce, kl = loss_fn(recon, x, mu, logvar)
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                sums += torch.stack([total.detach(), bce.detach(), kl.detach()])
            per_example = (sums / n).tolist()
            history.train_loss.append(per_example[0])
            history.extra["train_bce"].append(per_example[1])
            history.extra["train_kl"].append(per_example[2])
            history.seconds.append(time.perf_counter() - start)
            if eval_images is not None:
                ev = evaluate_vae(model, eval_images, loss_fn=loss_fn, seed=seed, device=dev)
                history.eval_loss.append(ev["loss"])
                history.extra["eval_bce"].append(ev["bce"])
                history.extra["eval_kl"].append(ev["kl"])
            if on_epoch is not None:
                on_epoch(epoch, history)
    return history
