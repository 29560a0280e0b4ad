"""Write the idl-ex2 sample submissions as code packages: `python submissions/make_idl_ex2_samples.py`.

idl-ex2 students hand in code, not notebooks: each sample is a folder holding q1.py ... q5.py
(one script per practical question, run in that order in one working folder, so q3.py and
q5.py load the checkpoints q1.py and q2.py saved under checkpoints/) and the module(s) the
scripts import. Every model a check reads is a module-level name at the end of its script.

- ``reference``: the exercise as the text asks, on a small shared module ``common.py``.
- ``mnistlib_package``: also correct, written differently: a package ``mnistlib/`` (models,
  data, training) with thin scripts, its own architecture (max-pooling encoder, d = 10) and
  names (``ae``, ``clf``, ``clf_ae``...), and a wrapper that freezes the encoder.
- ``bn_not_frozen``: q3 freezes the encoder's parameters but trains with ``model.train()``,
  so the encoder's BatchNorm running statistics keep moving.
- ``keras_trainable``: q3 "freezes" with ``encoder.trainable = False`` (a Keras attribute
  PyTorch ignores), so the classifier's encoder is trained on; and the shared accuracy
  helper divides the number of correct predictions by the number of batches instead of the
  number of examples, so every plotted accuracy curve (q2, q4, q5) is on a wrong scale.
- ``logits_decoder``: q3's decoder reads the classifier's 10 logits, not its 12-d latent code.
- ``broken``: q1.py plots a reconstruction that still requires grad and crashes before it
  saves its checkpoint, so q3.py and q5.py, which load that checkpoint, fail too.

Every edit of the reference must apply exactly once, so a change of the reference that
breaks a mistake's edit fails here instead of silently writing a correct sample.
"""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).parent / "idl-ex2"

# --------------------------------------------------------------------------- reference

COMMON = '''\
"""Exercise 2 building blocks shared by q1.py ... q5.py: data, networks, training loops, plots.

Images stay in [0, 1] (ToTensor only): the decoders end in a Sigmoid, so inputs and
reconstructions are on the same scale, and the classifiers read the same inputs as the
autoencoder whose encoder q5 starts from.
"""

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision import datasets, transforms

LATENT_DIM = 12  # d, the width of the FC bottleneck
BATCH_SIZE = 64
CHECKPOINTS = "checkpoints"


def mnist(train):
    """The MNIST training or test set, images as (1, 28, 28) tensors in [0, 1]."""
    return datasets.MNIST("data", train=train, download=True, transform=transforms.ToTensor())


def in_memory(dataset):
    """A whole MNIST set decoded once into tensors: the values ToTensor gives, without its per-image cost each epoch."""
    images = dataset.data.unsqueeze(1).float() / 255  # (N, 1, 28, 28) in [0, 1]
    return TensorDataset(images, dataset.targets)


def loader(dataset, shuffle, batch_size=BATCH_SIZE):
    """Batches of a dataset."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=0)


class ConvEncoder(nn.Module):
    """(B, 1, 28, 28) -> (B, d): three stride-2 3x3 convolutions (16, 32, 64 filters) with BatchNorm and ReLU,
    halving the resolution each time (28 -> 14 -> 7 -> 4), then an FC layer from the 64 x 4 x 4 features to d."""

    def __init__(self, latent_dim=LATENT_DIM):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, stride=2, padding=1),  # (B, 16, 14, 14)
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1),  # (B, 32, 7, 7)
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1),  # (B, 64, 4, 4)
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Flatten(),  # (B, 1024)
        )
        self.fc = nn.Linear(64 * 4 * 4, latent_dim)  # (B, d)

    def forward(self, x):
        return self.fc(self.features(x))


class ConvDecoder(nn.Module):
    """(B, d) -> (B, 1, 28, 28): the encoder mirrored, an FC layer to 64 x 4 x 4, three stride-2 transposed
    convolutions (4 -> 7 -> 14 -> 28) and a Sigmoid, so reconstructions are intensities in [0, 1]."""

    def __init__(self, latent_dim=LATENT_DIM):
        super().__init__()
        self.fc = nn.Linear(latent_dim, 64 * 4 * 4)  # (B, 1024)
        self.deconv = nn.Sequential(
            nn.Unflatten(1, (64, 4, 4)),  # (B, 64, 4, 4)
            nn.ConvTranspose2d(64, 32, kernel_size=3, stride=2, padding=1),  # (B, 32, 7, 7)
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 16, kernel_size=3, stride=2, padding=1, output_padding=1),  # (B, 16, 14, 14)
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.ConvTranspose2d(16, 1, kernel_size=3, stride=2, padding=1, output_padding=1),  # (B, 1, 28, 28)
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.deconv(self.fc(z))


class AutoEncoder(nn.Module):
    """An encoder followed by a decoder: forward(x) is the reconstruction of x."""

    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x):
        return self.decoder(self.encoder(x))


class Classifier(nn.Module):
    """An encoder followed by a small two-layer MLP: latent (B, d) -> 64 hidden units -> 10 logits."""

    def __init__(self, encoder, latent_dim=LATENT_DIM, hidden=64):
        super().__init__()
        self.encoder = encoder
        self.mlp = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.mlp(self.encoder(x))


def train_autoencoder_epoch(model, batches, loss_fn, optimizer):
    """One epoch of reconstruction training; returns the mean loss per image."""
    model.train()
    total, count = 0.0, 0
    for images, _ in batches:
        loss = loss_fn(model(images), images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(images)
        count += len(images)
    return total / count


@torch.no_grad()
def reconstruction_loss(model, batches, loss_fn):
    """Mean reconstruction loss per image, in eval mode."""
    model.eval()
    total, count = 0.0, 0
    for images, _ in batches:
        total += loss_fn(model(images), images).item() * len(images)
        count += len(images)
    return total / count


def train_classifier_epoch(model, batches, loss_fn, optimizer):
    """One epoch of classifier training; returns the running mean loss and accuracy."""
    model.train()
    total, correct, count = 0.0, 0, 0
    for images, labels in batches:
        logits = model(images)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum().item()
        count += len(labels)
    return total / count, correct / count


@torch.no_grad()
def evaluate_classifier(model, batches, loss_fn):
    """Mean loss and accuracy in eval mode."""
    model.eval()
    total, correct, count = 0.0, 0, 0
    for images, labels in batches:
        logits = model(images)
        total += loss_fn(logits, labels).item() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum().item()
        count += len(labels)
    return total / count, correct / count


def fit_classifier(model, train_batches, test_batches, loss_fn, optimizer, epochs):
    """Train for some epochs; returns the per-epoch train and test loss and accuracy."""
    history = {"train_loss": [], "train_acc": [], "test_loss": [], "test_acc": []}
    for epoch in range(1, epochs + 1):
        train_loss, train_acc = train_classifier_epoch(model, train_batches, loss_fn, optimizer)
        test_loss, test_acc = evaluate_classifier(model, test_batches, loss_fn)
        for key, value in zip(history, (train_loss, train_acc, test_loss, test_acc)):
            history[key].append(value)
        print(f"epoch {epoch}: train loss {train_loss:.3f} acc {train_acc:.3f} | test loss {test_loss:.3f} acc {test_acc:.3f}")
    return history


def plot_history(history, title):
    """Loss and accuracy per epoch, train and test, side by side."""
    epochs = range(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history["train_loss"], marker="o", label="train")
    ax_loss.plot(epochs, history["test_loss"], marker="o", label="test")
    ax_loss.set(title="cross-entropy loss", xlabel="epoch", ylabel="loss")
    ax_acc.plot(epochs, history["train_acc"], marker="o", label="train")
    ax_acc.plot(epochs, history["test_acc"], marker="o", label="test")
    ax_acc.set(title="accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
    fig.suptitle(title)
    plt.show()


def digit_grid(images, cols):
    """Tile (N, 1, 28, 28) images into one (rows * 28, cols * 28) array."""
    rows = len(images) // cols
    grid = images[: rows * cols].reshape(rows, cols, 28, 28).permute(0, 2, 1, 3)
    return grid.reshape(rows * 28, cols * 28).numpy()


def show_digits(panels, cols, title):
    """One panel per entry of ``panels`` (name -> images), each a grid of digits."""
    rows = len(next(iter(panels.values()))) // cols
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 0.45 * rows + 1))
    for ax, (name, images) in zip(axes, panels.items()):
        ax.imshow(digit_grid(images, cols), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(title)
    plt.show()
'''

Q1 = '''\
"""Question 1: a convolutional autoencoder with an FC layer at the bottleneck (d = 12), mean L1 loss.

Architecture (common.py): three stride-2 3x3 convolutions with 16, 32 and 64 filters, BatchNorm
and ReLU take 28x28 to 4x4; an FC layer maps the 1,024 features to d = 12. The decoder mirrors
it with transposed convolutions and ends in a Sigmoid (pixels are in [0, 1]).
"""

import os

import matplotlib.pyplot as plt
import torch
from torch import nn, optim

from common import (CHECKPOINTS, LATENT_DIM, AutoEncoder, ConvDecoder, ConvEncoder, in_memory, loader, mnist,
                    reconstruction_loss, show_digits, train_autoencoder_epoch)

torch.manual_seed(0)
EPOCHS = 2

train_set = mnist(train=True)
test_set = mnist(train=False)
train_loader = loader(in_memory(train_set), shuffle=True)
test_loader = loader(in_memory(test_set), shuffle=False, batch_size=1000)

autoencoder = AutoEncoder(ConvEncoder(LATENT_DIM), ConvDecoder(LATENT_DIM))
print(autoencoder)
loss_fn = nn.L1Loss()  # mean absolute error per pixel
optimizer = optim.Adam(autoencoder.parameters(), lr=3e-3)

train_losses, test_losses = [], []
for epoch in range(1, EPOCHS + 1):
    train_losses.append(train_autoencoder_epoch(autoencoder, train_loader, loss_fn, optimizer))
    test_losses.append(reconstruction_loss(autoencoder, test_loader, loss_fn))
    print(f"epoch {epoch}: train L1 {train_losses[-1]:.4f}, test L1 {test_losses[-1]:.4f}")

os.makedirs(CHECKPOINTS, exist_ok=True)
torch.save(autoencoder.state_dict(), os.path.join(CHECKPOINTS, "autoencoder.pt"))

images, _ = next(iter(test_loader))
images = images[:20]
autoencoder.eval()
with torch.no_grad():
    reconstructions = autoencoder(images)
show_digits({"input": images, "reconstruction": reconstructions}, cols=10,
            title=f"Q1 autoencoder (d = {LATENT_DIM}): test L1 {test_losses[-1]:.4f}")

plt.plot(range(1, EPOCHS + 1), train_losses, marker="o", label="train")
plt.plot(range(1, EPOCHS + 1), test_losses, marker="o", label="test")
plt.xlabel("epoch")
plt.ylabel("mean L1 error")
plt.title("Q1 autoencoder: reconstruction loss")
plt.legend()
plt.show()
'''

Q2 = '''\
"""Question 2: the encoder of question 1 (same architecture, fresh weights) with a two-layer MLP, cross-entropy."""

import os

import torch
from torch import nn, optim

from common import (CHECKPOINTS, LATENT_DIM, Classifier, ConvEncoder, fit_classifier, in_memory, loader, mnist,
                    plot_history)

torch.manual_seed(0)
EPOCHS = 2

train_set = mnist(train=True)
test_set = mnist(train=False)
train_loader = loader(in_memory(train_set), shuffle=True)
test_loader = loader(in_memory(test_set), shuffle=False, batch_size=1000)

classifier = Classifier(ConvEncoder(LATENT_DIM))
loss_fn = nn.CrossEntropyLoss()  # on logits
optimizer = optim.Adam(classifier.parameters(), lr=1e-3)
history = fit_classifier(classifier, train_loader, test_loader, loss_fn, optimizer, EPOCHS)

os.makedirs(CHECKPOINTS, exist_ok=True)
torch.save(classifier.state_dict(), os.path.join(CHECKPOINTS, "classifier.pt"))
plot_history(history, "Q2 classifier on the whole training set")
'''

Q3 = '''\
"""Question 3: decode from the classifier's encoder (question 2), kept fixed; only a new decoder is trained."""

import os

import torch
from torch import nn, optim

from common import (CHECKPOINTS, LATENT_DIM, AutoEncoder, Classifier, ConvDecoder, ConvEncoder, in_memory, loader,
                    mnist, reconstruction_loss, show_digits)

torch.manual_seed(0)
EPOCHS = 2

train_set = mnist(train=True)
test_set = mnist(train=False)
train_loader = loader(in_memory(train_set), shuffle=True)
test_loader = loader(in_memory(test_set), shuffle=False, batch_size=1000)

classifier = Classifier(ConvEncoder(LATENT_DIM))
classifier.load_state_dict(torch.load(os.path.join(CHECKPOINTS, "classifier.pt")))
encoder = classifier.encoder
encoder.requires_grad_(False)  # no gradient steps on the encoder ...
encoder.eval()  # ... and its BatchNorm layers keep the running statistics learned in question 2

decoder = ConvDecoder(LATENT_DIM)  # the architecture of question 1's decoder, fresh weights
clf_autoencoder = AutoEncoder(encoder, decoder)
loss_fn = nn.L1Loss()
optimizer = optim.Adam(decoder.parameters(), lr=3e-3)

for epoch in range(1, EPOCHS + 1):
    decoder.train()
    for images, _ in train_loader:
        with torch.no_grad():
            latent = encoder(images)  # (B, d) from the fixed classifier encoder
        loss = loss_fn(decoder(latent), images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: test L1 {reconstruction_loss(clf_autoencoder, test_loader, loss_fn):.4f}")

autoencoder = AutoEncoder(ConvEncoder(LATENT_DIM), ConvDecoder(LATENT_DIM))
autoencoder.load_state_dict(torch.load(os.path.join(CHECKPOINTS, "autoencoder.pt")))
clf_loss = reconstruction_loss(clf_autoencoder, test_loader, loss_fn)
ae_loss = reconstruction_loss(autoencoder, test_loader, loss_fn)
print(f"test L1: autoencoder (Q1) {ae_loss:.4f}, classifier encoder + decoder (Q3) {clf_loss:.4f}")

images, _ = next(iter(test_loader))
images = images[:60]
with torch.no_grad():
    panels = {"input": images, "autoencoder (Q1)": autoencoder(images), "classifier encoder (Q3)": clf_autoencoder(images)}
show_digits(panels, cols=10, title=f"60 test digits: L1 {ae_loss:.4f} (Q1) vs {clf_loss:.4f} (Q3)")
'''

Q4 = '''\
"""Question 4: the classifier of question 2 trained from scratch on only the first 100 training examples."""

import torch
import torch.utils.data as data_utils
from torch import nn, optim

from common import LATENT_DIM, Classifier, ConvEncoder, fit_classifier, in_memory, loader, mnist, plot_history

torch.manual_seed(0)
EPOCHS = 20

train_set = mnist(train=True)
test_set = mnist(train=False)
indices = torch.arange(100)
train_loader_CLS = loader(data_utils.Subset(train_set, indices), shuffle=True, batch_size=10)
test_loader = loader(in_memory(test_set), shuffle=False, batch_size=1000)

few_shot_classifier = Classifier(ConvEncoder(LATENT_DIM))
loss_fn = nn.CrossEntropyLoss()
optimizer = optim.Adam(few_shot_classifier.parameters(), lr=1e-3)
history = fit_classifier(few_shot_classifier, train_loader_CLS, test_loader, loss_fn, optimizer, EPOCHS)
plot_history(history, "Q4 classifier trained on 100 examples")

gap = history["train_acc"][-1] - history["test_acc"][-1]
print(f"train accuracy exceeds test accuracy by {gap:.1%} at the end: over-fitting")
'''

Q5 = '''\
"""Question 5: fine-tune a classifier whose encoder starts from question 1's autoencoder, on the same 100 examples."""

import copy
import os

import torch
import torch.utils.data as data_utils
from torch import nn, optim

from common import (CHECKPOINTS, LATENT_DIM, AutoEncoder, Classifier, ConvDecoder, ConvEncoder, fit_classifier,
                    in_memory, loader, mnist, plot_history)

torch.manual_seed(0)
EPOCHS = 20

train_set = mnist(train=True)
test_set = mnist(train=False)
indices = torch.arange(100)
train_loader_CLS = loader(data_utils.Subset(train_set, indices), shuffle=True, batch_size=10)
test_loader = loader(in_memory(test_set), shuffle=False, batch_size=1000)

weights = torch.load(os.path.join(CHECKPOINTS, "autoencoder.pt"))  # saved by q1.py
pretrained = AutoEncoder(ConvEncoder(LATENT_DIM), ConvDecoder(LATENT_DIM))
pretrained.load_state_dict(weights)
finetuned_classifier = Classifier(copy.deepcopy(pretrained.encoder))  # Q1's encoder as the initial guess, a new MLP
loss_fn = nn.CrossEntropyLoss()
optimizer = optim.Adam([
    {"params": finetuned_classifier.encoder.parameters(), "lr": 3e-4},  # pre-trained: small steps
    {"params": finetuned_classifier.mlp.parameters(), "lr": 1e-3},
])
history = fit_classifier(finetuned_classifier, train_loader_CLS, test_loader, loss_fn, optimizer, EPOCHS)
plot_history(history, "Q5 pre-trained encoder fine-tuned on 100 examples")
'''

REFERENCE: dict[str, str] = {"common.py": COMMON, "q1.py": Q1, "q2.py": Q2, "q3.py": Q3, "q4.py": Q4, "q5.py": Q5}


def edit(text: str, *pairs: tuple[str, str]) -> str:
    """Replace each ``old`` by ``new`` in ``text``; every ``old`` must occur exactly once."""
    for old, new in pairs:
        count = text.count(old)
        if count != 1:
            raise ValueError(f"an edit expects exactly one occurrence, found {count}: {old[:80]!r}")
        text = text.replace(old, new)
    return text


def variant(**files: str) -> dict[str, str]:
    """The reference with some files replaced (``q3_py=...`` for q3.py, ``common_py=...`` for common.py)."""
    chosen = dict(REFERENCE)
    for key, text in files.items():
        chosen[key.replace("_py", ".py")] = text
    return chosen


# --------------------------------------------------------------------------- the mistakes

# q3 freezes the parameters only and trains through the whole model: model.train() puts the
# encoder's BatchNorm layers back in training mode, so their running statistics move.
BN_NOT_FROZEN_Q3 = edit(
    Q3,
    ("                    mnist, reconstruction_loss, show_digits)",
     "                    mnist, reconstruction_loss, show_digits, train_autoencoder_epoch)"),
    ("encoder.requires_grad_(False)  # no gradient steps on the encoder ...\n"
     "encoder.eval()  # ... and its BatchNorm layers keep the running statistics learned in question 2\n",
     "encoder.requires_grad_(False)  # the encoder is frozen\n"),
    ("    decoder.train()\n"
     "    for images, _ in train_loader:\n"
     "        with torch.no_grad():\n"
     "            latent = encoder(images)  # (B, d) from the fixed classifier encoder\n"
     "        loss = loss_fn(decoder(latent), images)\n"
     "        optimizer.zero_grad()\n"
     "        loss.backward()\n"
     "        optimizer.step()\n",
     "    train_autoencoder_epoch(clf_autoencoder, train_loader, loss_fn, optimizer)\n"),
)

# q3 sets the Keras attribute `trainable`, which PyTorch ignores, and optimises every parameter.
KERAS_Q3 = edit(
    BN_NOT_FROZEN_Q3,
    ("encoder.requires_grad_(False)  # the encoder is frozen\n",
     "encoder.trainable = False  # freeze the encoder\n"),
    ("optimizer = optim.Adam(decoder.parameters(), lr=3e-3)",
     "optimizer = optim.Adam(clf_autoencoder.parameters(), lr=3e-3)"),
)

# The shared accuracy helper divides by the number of batches instead of the number of examples.
KERAS_COMMON = edit(
    COMMON,
    ("        optimizer.step()\n        total += loss.item() * len(labels)\n"
     "        correct += (logits.argmax(dim=1) == labels).sum().item()\n"
     "        count += len(labels)\n    return total / count, correct / count\n",
     "        optimizer.step()\n        total += loss.item() * len(labels)\n"
     "        correct += (logits.argmax(dim=1) == labels).sum().item()\n"
     "        count += len(labels)\n    return total / count, correct / len(batches)\n"),
    ("        total += loss_fn(logits, labels).item() * len(labels)\n"
     "        correct += (logits.argmax(dim=1) == labels).sum().item()\n"
     "        count += len(labels)\n    return total / count, correct / count\n",
     "        total += loss_fn(logits, labels).item() * len(labels)\n"
     "        correct += (logits.argmax(dim=1) == labels).sum().item()\n"
     "        count += len(labels)\n    return total / count, correct / len(batches)\n"),
)

# q3's decoder reads the classifier's output (10 logits) instead of the encoder's 12-d latent code.
LOGITS_Q3 = edit(
    Q3,
    ("encoder = classifier.encoder\n"
     "encoder.requires_grad_(False)  # no gradient steps on the encoder ...\n"
     "encoder.eval()  # ... and its BatchNorm layers keep the running statistics learned in question 2\n",
     "classifier.requires_grad_(False)  # the pre-trained classifier stays fixed\n"
     "classifier.eval()\n"),
    ("decoder = ConvDecoder(LATENT_DIM)  # the architecture of question 1's decoder, fresh weights\n"
     "clf_autoencoder = AutoEncoder(encoder, decoder)\n",
     "decoder = ConvDecoder(10)  # decodes the classifier's 10 outputs\n"
     "clf_autoencoder = AutoEncoder(classifier, decoder)\n"),
    ("            latent = encoder(images)  # (B, d) from the fixed classifier encoder\n",
     "            latent = classifier(images)  # (B, 10) class scores\n"),
)

# q1 plots reconstructions that still require grad (RuntimeError) and saves its checkpoint only after the plot.
BROKEN_Q1 = edit(
    Q1,
    ('os.makedirs(CHECKPOINTS, exist_ok=True)\ntorch.save(autoencoder.state_dict(), os.path.join(CHECKPOINTS, "autoencoder.pt"))\n\n', ""),
    ("autoencoder.eval()\nwith torch.no_grad():\n    reconstructions = autoencoder(images)\n",
     "reconstructions = autoencoder(images)\n"),
    ('plt.legend()\nplt.show()\n',
     'plt.legend()\nplt.show()\n\nos.makedirs(CHECKPOINTS, exist_ok=True)\n'
     'torch.save(autoencoder.state_dict(), os.path.join(CHECKPOINTS, "autoencoder.pt"))\n'),
)

# --------------------------------------------------------------------------- mnistlib_package

MNISTLIB_INIT = '''\
"""mnistlib: the models, data and training loops of exercise 2; the scripts q1.py ... q5.py use them."""
'''

MNISTLIB_DATA = '''\
"""MNIST loaders. Images are scaled to [0, 1] and nothing else, for the autoencoders' Sigmoid outputs."""

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

TRANSFORM = transforms.Compose([transforms.ToTensor()])


def mnist_loaders(batch_size=64, first=None, root="data"):
    """(train, test) loaders; ``first``: keep only the first examples of the training set."""
    train = datasets.MNIST(root, train=True, download=True, transform=TRANSFORM)
    test = datasets.MNIST(root, train=False, download=True, transform=TRANSFORM)
    if first is not None:
        train = Subset(train, torch.arange(first))
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(test, batch_size=500)
'''

MNISTLIB_MODELS = '''\
"""Networks: an encoder with max-pooling and an FC bottleneck, its mirror decoder, a classifier, a freezer."""

from torch import nn

LATENT = 10


def conv_block(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1)]


class Encoder(nn.Module):
    """28x28 -> 14x14 -> 7x7 by 2x2 max-pooling between 3x3 convolutions (8, 16, 32 filters), then FC to LATENT."""

    def __init__(self, latent=LATENT):
        super().__init__()
        self.net = nn.Sequential(
            *conv_block(1, 8), nn.MaxPool2d(2),  # (B, 8, 14, 14)
            *conv_block(8, 16), nn.MaxPool2d(2),  # (B, 16, 7, 7)
            *conv_block(16, 32),  # (B, 32, 7, 7)
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, latent),  # (B, latent)
        )

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    """LATENT -> (32, 7, 7) by an FC layer, then 2x2 stride-2 transposed convolutions up to 28x28, Sigmoid."""

    def __init__(self, latent=LATENT):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent, 32 * 7 * 7),
            nn.Unflatten(1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 16, kernel_size=2, stride=2), nn.BatchNorm2d(16), nn.LeakyReLU(0.1),  # (B, 16, 14, 14)
            nn.ConvTranspose2d(16, 8, kernel_size=2, stride=2), nn.BatchNorm2d(8), nn.LeakyReLU(0.1),  # (B, 8, 28, 28)
            nn.Conv2d(8, 1, kernel_size=3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.net(z)


class AE(nn.Module):
    """enc then dec; give parts to build it from existing ones."""

    def __init__(self, enc=None, dec=None, latent=LATENT):
        super().__init__()
        self.enc = enc if enc is not None else Encoder(latent)
        self.dec = dec if dec is not None else Decoder(latent)

    def forward(self, x):
        return self.dec(self.enc(x))


class DigitClassifier(nn.Module):
    """An encoder and an MLP head (LATENT -> 32 -> 10 logits)."""

    def __init__(self, enc=None, latent=LATENT, hidden=32):
        super().__init__()
        self.enc = enc if enc is not None else Encoder(latent)
        self.head = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.head(self.enc(x))


class Frozen(nn.Module):
    """A module that is never trained: no gradients, and eval mode whatever .train() its parent calls."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        inner.requires_grad_(False)
        super().train(False)

    def train(self, mode=True):
        return super().train(False)

    def forward(self, x):
        return self.inner(x)
'''

MNISTLIB_TRAINING = '''\
"""Training loops and plots."""

import matplotlib.pyplot as plt
import torch
import torchvision


def _trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


def fit_reconstruction(model, train_dl, test_dl, criterion, epochs, lr=3e-3):
    """Train ``model`` to reconstruct its input; returns the test loss per epoch."""
    opt = torch.optim.Adam(_trainable(model), lr=lr)
    test_losses = []
    for epoch in range(epochs):
        model.train()
        for x, _ in train_dl:
            loss = criterion(model(x), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        test_losses.append(reconstruction_error(model, test_dl, criterion))
        print(f"[{epoch + 1}/{epochs}] test reconstruction loss {test_losses[-1]:.4f}")
    return test_losses


@torch.no_grad()
def reconstruction_error(model, dl, criterion):
    model.eval()
    losses = [criterion(model(x), x).item() * len(x) for x, _ in dl]
    return sum(losses) / len(dl.dataset)


def _pass(model, dl, criterion, opt=None):
    """One pass over ``dl``; trains when an optimizer is given. Returns (mean loss, accuracy)."""
    model.train(opt is not None)
    loss_sum, hits, n = 0.0, 0, 0
    with torch.set_grad_enabled(opt is not None):
        for x, y in dl:
            out = model(x)
            loss = criterion(out, y)
            if opt is not None:
                opt.zero_grad()
                loss.backward()
                opt.step()
            loss_sum += loss.item() * len(y)
            hits += (out.argmax(1) == y).sum().item()
            n += len(y)
    return loss_sum / n, hits / n


def fit_classifier(model, train_dl, test_dl, criterion, epochs, opt):
    """Train and evaluate once per epoch; returns {"loss": {"train": [...], "test": [...]}, "accuracy": {...}}."""
    log = {"loss": {"train": [], "test": []}, "accuracy": {"train": [], "test": []}}
    for epoch in range(epochs):
        for split, dl, o in (("train", train_dl, opt), ("test", test_dl, None)):
            loss, acc = _pass(model, dl, criterion, o)
            log["loss"][split].append(loss)
            log["accuracy"][split].append(acc)
        print(f"[{epoch + 1}/{epochs}] train acc {log['accuracy']['train'][-1]:.2%}, "
              f"test acc {log['accuracy']['test'][-1]:.2%}")
    return log


def plot_log(log, title):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (metric, curves) in zip(axes, log.items()):
        for split, values in curves.items():
            ax.plot(range(1, len(values) + 1), values, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} per epoch")
        ax.legend()
    fig.suptitle(title)
    plt.show()


def show_grid(images, title, nrow=10):
    grid = torchvision.utils.make_grid(images, nrow=nrow, padding=1)  # (3, H, W)
    plt.figure(figsize=(8, 8 * grid.shape[1] / grid.shape[2] + 0.5))
    plt.imshow(grid[0].numpy(), cmap="gray")
    plt.axis("off")
    plt.title(title)
    plt.show()
'''

MNISTLIB_Q1 = '''\
import os

import torch
from torch import nn

from mnistlib.data import mnist_loaders
from mnistlib.models import AE
from mnistlib.training import fit_reconstruction, show_grid

torch.manual_seed(1)
os.makedirs("checkpoints", exist_ok=True)

train_dl, test_dl = mnist_loaders(batch_size=64)
ae = AE()
criterion = nn.L1Loss()
fit_reconstruction(ae, train_dl, test_dl, criterion, epochs=2)
torch.save(ae.state_dict(), "checkpoints/autoencoder.pt")

x, _ = next(iter(test_dl))
with torch.no_grad():
    ae.eval()
    show_grid(torch.cat([x[:30], ae(x[:30])]), "top: test digits, bottom: their reconstructions")
'''

MNISTLIB_Q2 = '''\
import torch
from torch import nn

from mnistlib.data import mnist_loaders
from mnistlib.models import DigitClassifier
from mnistlib.training import fit_classifier, plot_log

torch.manual_seed(1)
train_dl, test_dl = mnist_loaders(batch_size=64)
clf = DigitClassifier()
criterion = nn.CrossEntropyLoss()
log = fit_classifier(clf, train_dl, test_dl, criterion, 2, torch.optim.Adam(clf.parameters(), lr=1e-3))
torch.save(clf.state_dict(), "checkpoints/classifier.pt")
plot_log(log, "classifier, all training examples")
'''

MNISTLIB_Q3 = '''\
import torch
from torch import nn

from mnistlib.data import mnist_loaders
from mnistlib.models import AE, Decoder, DigitClassifier, Frozen
from mnistlib.training import fit_reconstruction, reconstruction_error, show_grid

torch.manual_seed(1)
train_dl, test_dl = mnist_loaders(batch_size=64)
clf = DigitClassifier()
clf.load_state_dict(torch.load("checkpoints/classifier.pt"))
clf_ae = AE(enc=Frozen(clf.enc), dec=Decoder())  # only the decoder learns
criterion = nn.L1Loss()
fit_reconstruction(clf_ae, train_dl, test_dl, criterion, epochs=2)

ae = AE()
ae.load_state_dict(torch.load("checkpoints/autoencoder.pt"))
print("L1 autoencoder:", reconstruction_error(ae, test_dl, criterion))
print("L1 classifier encoder + decoder:", reconstruction_error(clf_ae, test_dl, criterion))

x, _ = next(iter(test_dl))
with torch.no_grad():
    show_grid(torch.cat([x[:60], ae(x[:60]), clf_ae(x[:60])]), "originals / autoencoder / classifier encoder")
'''

MNISTLIB_Q4 = '''\
import torch
from torch import nn

from mnistlib.data import mnist_loaders
from mnistlib.models import DigitClassifier
from mnistlib.training import fit_classifier, plot_log

torch.manual_seed(1)
train_dl, test_dl = mnist_loaders(batch_size=10, first=100)  # the first 100 examples: torch.arange(100)
clf_100 = DigitClassifier()
criterion = nn.CrossEntropyLoss()
log = fit_classifier(clf_100, train_dl, test_dl, criterion, 20, torch.optim.Adam(clf_100.parameters(), lr=1e-3))
plot_log(log, "classifier from scratch, 100 examples")
'''

MNISTLIB_Q5 = '''\
import copy

import torch
from torch import nn

from mnistlib.data import mnist_loaders
from mnistlib.models import AE, DigitClassifier
from mnistlib.training import fit_classifier, plot_log

torch.manual_seed(1)
train_dl, test_dl = mnist_loaders(batch_size=10, first=100)
ae = AE()
ae.load_state_dict(torch.load("checkpoints/autoencoder.pt"))
clf_pretrained = DigitClassifier(enc=copy.deepcopy(ae.enc))
criterion = nn.CrossEntropyLoss()
opt = torch.optim.Adam([{"params": clf_pretrained.enc.parameters(), "lr": 3e-4},
                        {"params": clf_pretrained.head.parameters()}], lr=1e-3)
log = fit_classifier(clf_pretrained, train_dl, test_dl, criterion, 20, opt)
plot_log(log, "autoencoder encoder fine-tuned, 100 examples")
'''

MNISTLIB: dict[str, str] = {
    "mnistlib/__init__.py": MNISTLIB_INIT,
    "mnistlib/data.py": MNISTLIB_DATA,
    "mnistlib/models.py": MNISTLIB_MODELS,
    "mnistlib/training.py": MNISTLIB_TRAINING,
    "q1.py": MNISTLIB_Q1,
    "q2.py": MNISTLIB_Q2,
    "q3.py": MNISTLIB_Q3,
    "q4.py": MNISTLIB_Q4,
    "q5.py": MNISTLIB_Q5,
}

SAMPLES: dict[str, dict[str, str]] = {
    "reference": REFERENCE,
    "mnistlib_package": MNISTLIB,
    "bn_not_frozen": variant(q3_py=BN_NOT_FROZEN_Q3),
    "keras_trainable": variant(q3_py=KERAS_Q3, common_py=KERAS_COMMON),
    "logits_decoder": variant(q3_py=LOGITS_Q3),
    "broken": variant(q1_py=BROKEN_Q1),
}


def main() -> None:
    """Write every sample folder next to this script (each folder is rewritten from scratch)."""
    for sample, files in SAMPLES.items():
        folder = HERE / sample
        if folder.exists():
            shutil.rmtree(folder)
        for name, text in files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            compile(text, str(path), "exec")  # every sample parses; its mistakes show when it runs
            path.write_text(text, encoding="utf-8")
    print(f"wrote {len(SAMPLES)} samples under {HERE}")


if __name__ == "__main__":
    main()
