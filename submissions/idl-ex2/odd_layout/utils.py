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
