"""Write the dl2025-a2 sample submissions as notebooks: `python submissions/make_dl2025_a2_samples.py`.

Each sample is a folder holding what a student hands in: feedForwardMNIST.ipynb and
CNNMNIST.ipynb (Part 1), autoencoders.ipynb and vae.ipynb (Part 2). The reference follows the
assignment text; the others carry typical mistakes, the folder named after the Part 1 one (the
Part 2 mistake of each is noted at its entry). ``inline_model`` and ``fails_midway`` hand in
Part 1 only. The Part 2 notebooks come from ``autoencoder_notebooks.py``, shared with
adl2024-a2. Notebooks are written without outputs and with stable cell ids.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from notebook_samples import write_samples

from autoencoder_notebooks import (
    AE_DATA_NORMALIZED,
    AE_RUNS_MSE,
    LATENT_SIZES,
    PCA_FIT_UNSCALED,
    VAE_LOSS_NO_KL,
    autoencoders,
    autoencoders_different,
    notebook,
    swap,
    vae,
    vae_different,
)

HERE = Path(__file__).parent / "dl2025-a2"

IMPORTS = """\
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torchvision import datasets, transforms
import matplotlib.pyplot as plt

torch.manual_seed(0)
EPOCHS = 2"""

DATA = """\
transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train_set = datasets.MNIST('data', train=True, download=True, transform=transform)
test_set = datasets.MNIST('data', train=False, download=True, transform=transform)
train_loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)
test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000, shuffle=False)"""

FF_NET = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(in_features=784, out_features=128),
            nn.ReLU(),
            nn.Linear(in_features=128, out_features=64),
            nn.ReLU(),
            nn.Linear(in_features=64, out_features=10),
            nn.LogSoftmax(dim=1),
        )

    def forward(self, input):
        return self.main(input.view(-1, 784))"""

CNN_NET = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(16, 32, kernel_size=3),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.Linear(800, 10),
            nn.LogSoftmax(dim=1),
        )

    def forward(self, input):
        return self.main(input)"""

MAKE_MODEL = """\
model = Net()
print(model)
print('parameters:', sum(p.numel() for p in model.parameters() if p.requires_grad))"""

TRAIN = """\
loss_function = nn.NLLLoss()
optimizer = optim.Adam(model.parameters(), lr=1e-3)
losses = []
for epoch in range(EPOCHS):
    model.train()
    for images, labels in train_loader:
        optimizer.zero_grad()
        loss = loss_function(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    print(f'epoch {epoch + 1}: loss {loss.item():.4f}')"""

EVALUATE = """\
model.eval()
correct = torch.zeros(10)
total = torch.zeros(10)
with torch.no_grad():
    for images, labels in test_loader:
        predicted = model(images).argmax(dim=1)
        for c in range(10):
            mask = labels == c
            correct[c] += (predicted[mask] == c).sum()
            total[c] += mask.sum()
print(f'test accuracy: {correct.sum() / total.sum():.2%}')
for c in range(10):
    print(f'digit {c}: {correct[c] / total[c]:.2%}')"""

PLOT = """\
plt.plot(losses)
plt.xlabel('batch')
plt.ylabel('training loss')
plt.show()"""


REFERENCE_DATA = DATA.replace("transforms.Normalize((0.1307,), (0.3081,))", "transforms.Normalize((0.5,), (0.5,))")
REFERENCE_TRAIN = TRAIN.replace("optimizer = optim.Adam(model.parameters(), lr=1e-3)",
                                "optimizer = optim.SGD(model.parameters(), lr=0.002, momentum=0.9)").replace(
    "for epoch in range(EPOCHS):", "for epoch in range(4):")
"""The reference trains Part 1 with the course template's recipe (its transform; SGD, lr 0.002, momentum 0.9,
4 epochs, batch 64): the accuracy bars are relative to what the assignment's own recipe reaches, not a stronger
optimiser's (an unmodified template must pass them)."""
assert REFERENCE_DATA != DATA and "optim.SGD" in REFERENCE_TRAIN and "range(4)" in REFERENCE_TRAIN


def ff(**replace: str) -> nbformat.NotebookNode:
    """The feed-forward notebook, with any cell replaced by keyword (net, train...)."""
    cells = {"imports": IMPORTS, "data": DATA, "net": FF_NET, "make": MAKE_MODEL, "train": TRAIN, "evaluate": EVALUATE, "plot": PLOT}
    cells.update(replace)
    return notebook("Feed-forward network on MNIST", *cells.values())


def cnn(**replace: str) -> nbformat.NotebookNode:
    """The CNN notebook, with any cell replaced by keyword."""
    cells = {"imports": IMPORTS, "data": DATA, "net": CNN_NET, "make": MAKE_MODEL, "train": TRAIN, "evaluate": EVALUATE, "plot": PLOT}
    cells.update(replace)
    return notebook("CNN on MNIST", *cells.values())


SYNTAX_ERROR_SIZES = swap(
    LATENT_SIZES, "for k, p, a in zip(sizes, pca_errors, ae_errors):", "for k, p, a in zip(sizes, pca_errors, ae_errors)"
)
"""The latent-size cell with a missing colon: the cell does not parse, so task 2.4 has no figure."""

SAMPLES: dict[str, dict[str, nbformat.NotebookNode]] = {
    # The assignment's networks, trained and evaluated as the text asks; Part 2 likewise.
    "reference": {
        "feedForwardMNIST.ipynb": ff(data=REFERENCE_DATA, train=REFERENCE_TRAIN),
        "CNNMNIST.ipynb": cnn(data=REFERENCE_DATA, train=REFERENCE_TRAIN),
        "autoencoders.ipynb": autoencoders("dl2025"),
        "vae.ipynb": vae(),
    },
    # The second MaxPool2d dropped and the Linear layer widened to fit: 3,872 features instead of 800.
    # Part 2: the autoencoder fed Part 1's normalised pixels (trained with MSE, as BCELoss refuses them), and
    # the VAE loss without its KL term.
    "wrong_flatten": {
        "feedForwardMNIST.ipynb": ff(),
        "CNNMNIST.ipynb": cnn(net=CNN_NET.replace(
            "            nn.ReLU(),\n            nn.MaxPool2d(kernel_size=2, stride=2),\n            nn.Flatten(),",
            "            nn.ReLU(),\n            nn.Flatten(),",
        ).replace("nn.Linear(800, 10)", "nn.Linear(32 * 11 * 11, 10)")),
        "autoencoders.ipynb": autoencoders("dl2025", data=AE_DATA_NORMALIZED, runs=AE_RUNS_MSE),
        "vae.ipynb": vae(loss=VAE_LOSS_NO_KL),
    },
    # Softmax output fed to NLLLoss in the feed-forward net. Part 2: PCA fitted on raw pixels 0..255.
    "softmax_nll": {
        "feedForwardMNIST.ipynb": ff(net=FF_NET.replace("nn.LogSoftmax(dim=1)", "nn.Softmax(dim=1)")),
        "CNNMNIST.ipynb": cnn(),
        "autoencoders.ipynb": autoencoders("dl2025", pca_fit=PCA_FIT_UNSCALED),
        "vae.ipynb": vae(),
    },
    # The CNN class named CNNNet and its instance cnn_model. Part 2 correct but written by another hand:
    # other names, training in a function, PCA from np.linalg.eigh, the VAE loss returning its terms.
    "cnnnet": {
        "feedForwardMNIST.ipynb": ff(),
        "CNNMNIST.ipynb": cnn(
            net=CNN_NET.replace("class Net(", "class CNNNet("),
            make=MAKE_MODEL.replace("model = Net()", "cnn_model = CNNNet()").replace("print(model)", "print(cnn_model)")
            .replace("model.parameters()", "cnn_model.parameters()"),
            train=TRAIN.replace("model", "cnn_model").replace("cnn_model.train()", "cnn_model.train()"),
            evaluate=EVALUATE.replace("model", "cnn_model"),
        ),
        "autoencoders.ipynb": autoencoders_different("dl2025"),
        "vae.ipynb": vae_different(),
    },
    # No class at all: the CNN built inline with nn.Sequential.
    "inline_model": {
        "feedForwardMNIST.ipynb": ff(),
        "CNNMNIST.ipynb": cnn(
            net="# the network is built inline below",
            make="""\
model = nn.Sequential(
    nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(800, 10), nn.LogSoftmax(dim=1),
)
print(model)""",
        ),
    },
    # A cell fails midway (a typo), the rest of the notebook still runs.
    "fails_midway": {
        "feedForwardMNIST.ipynb": ff(),
        "CNNMNIST.ipynb": cnn(make=MAKE_MODEL + "\nprint('first layer:', modle.main[0])"),
    },
    # One cell does not even parse: the per-class evaluation. Part 2: the latent-size cell does not parse
    # either, and vae.ipynb is missing.
    "syntax_error": {
        "feedForwardMNIST.ipynb": ff(),
        "CNNMNIST.ipynb": cnn(evaluate=EVALUATE.replace("for c in range(10):\n            mask", "for c in range(10)\n            mask")),
        "autoencoders.ipynb": autoencoders("dl2025", sizes=SYNTAX_ERROR_SIZES),
    },
}


def main() -> None:
    """Write every sample folder next to this script."""
    write_samples(HERE, SAMPLES)


if __name__ == "__main__":
    main()
