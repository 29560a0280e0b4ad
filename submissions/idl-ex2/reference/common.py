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
