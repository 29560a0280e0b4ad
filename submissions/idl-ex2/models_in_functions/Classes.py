"""Networks and helpers for exercise 2 (imported by q1.py ... q5.py)."""
import os

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision import datasets, transforms

D = 10  # size of the bottleneck
SAVE = "checkpoints"
transform = transforms.Compose([transforms.ToTensor()])


def get_data(n_train=None, batch_size=64):
    train = datasets.MNIST("./data", train=True, download=True, transform=transform)
    test = datasets.MNIST("./data", train=False, download=True, transform=transform)
    x_train, y_train = train.data.unsqueeze(1).float() / 255, train.targets
    if n_train is not None:
        x_train, y_train = x_train[:n_train], y_train[:n_train]
    x_test, y_test = test.data.unsqueeze(1).float() / 255, test.targets
    train_dl = DataLoader(TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True)
    test_dl = DataLoader(TensorDataset(x_test, y_test), batch_size=1000)
    return train_dl, test_dl


class Encoder(nn.Module):
    def __init__(self, d=D):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),   # 16 x 14 x 14
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),  # 32 x 7 x 7
            nn.Flatten(),
        )
        self.fc = nn.Linear(32 * 7 * 7, d)

    def forward(self, x):
        return self.fc(self.conv(x))


class Decoder(nn.Module):
    def __init__(self, d=D):
        super().__init__()
        self.fc = nn.Linear(d, 32 * 7 * 7)
        self.deconv = nn.Sequential(
            nn.BatchNorm2d(32), nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),  # 16 x 14 x 14
            nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1), nn.Sigmoid(),  # 1 x 28 x 28
        )

    def forward(self, z):
        return self.deconv(self.fc(z).view(-1, 32, 7, 7))


class ConvAE(nn.Module):
    def __init__(self, encoder=None, decoder=None):
        super().__init__()
        self.encoder = encoder if encoder is not None else Encoder()
        self.decoder = decoder if decoder is not None else Decoder()

    def forward(self, x):
        return self.decoder(self.encoder(x))


class Classifier(nn.Module):
    def __init__(self, encoder=None):
        super().__init__()
        self.encoder = encoder if encoder is not None else Encoder()
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.head(self.encoder(x))


def l1_on(model, loader):
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for x, _ in loader:
            total += nn.functional.l1_loss(model(x), x, reduction="sum").item() / 784
            n += len(x)
    return total / n


def train_classifier(model, train_dl, test_dl, loss_fn, epochs, lr=1e-3):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    hist = {"train_loss": [], "test_loss": [], "train_acc": [], "test_acc": []}
    for epoch in range(epochs):
        model.train()
        loss_sum, correct, n = 0.0, 0, 0
        for x, y in train_dl:
            opt.zero_grad()
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            n += len(y)
        hist["train_loss"].append(loss_sum / n)
        hist["train_acc"].append(correct / n)
        model.eval()
        loss_sum, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for x, y in test_dl:
                out = model(x)
                loss_sum += loss_fn(out, y).item() * len(y)
                correct += (out.argmax(1) == y).sum().item()
                n += len(y)
        hist["test_loss"].append(loss_sum / n)
        hist["test_acc"].append(correct / n)
        print(f"epoch {epoch + 1}: test accuracy {hist['test_acc'][-1]:.3f}")
    return hist


def plot_hist(hist, name):
    fig, axs = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "test"):
        axs[0].plot(hist[split + "_loss"], label=split)
        axs[1].plot(hist[split + "_acc"], label=split)
    axs[0].set_title(name + ": loss")
    axs[1].set_title(name + ": accuracy")
    axs[0].legend()
    axs[1].legend()
    plt.show()


def show_images(rows, title):
    fig, axs = plt.subplots(len(rows), 10, figsize=(10, len(rows)))
    for r, images in enumerate(rows):
        for c in range(10):
            axs[r, c].imshow(images[c, 0].detach().numpy(), cmap="gray")
            axs[r, c].axis("off")
    fig.suptitle(title)
    plt.show()
