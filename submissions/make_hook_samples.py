"""Write the samples whose models live only inside functions: `python submissions/make_hook_samples.py`.

Real students often keep their models as function locals (``def main(): model = ConvAE();
train(model)``) or build extra throwaway models next to the trained one (a fresh ``model``
only to count parameters, a ``tmp`` block to check a shape). The grader must find the trained
model wherever it lived and never grade an untrained copy. Three samples:

- ``idl-ex2/models_in_functions``: q1.py ... q5.py, each a ``main()`` run under
  ``if __name__ == "__main__":``, with the networks and helpers in ``Classes.py``; nothing but
  imports is left at module level (the transform lives in ``Classes.py`` and comes in with
  ``from Classes import *``).
- ``dl2025-a2/scratch_models`` (Part 1 only): CNNMNIST.ipynb trains ``cnn`` (class ``ConvNet``)
  and ``fnn`` beside it, checks a shape with a ``tmp`` block and then builds a fresh untrained
  ``model = ConvNet()`` only to print its parameter count; feedForwardMNIST.ipynb trains inside
  ``def train_and_eval(): net = Net(); ...; return acc`` and never returns the model.
- ``dl2025-a2/ae_in_function`` (Part 2's autoencoders.ipynb only): the three autoencoder runs
  are built, trained and plotted inside a function called in a loop; the latent-size sweep's
  autoencoders are locals too; no autoencoder is left at top level.
"""

from __future__ import annotations

from pathlib import Path

from autoencoder_notebooks import (
    AE_DATA,
    AE_IMPORTS,
    AE_NET,
    LATENT_SIZES,
    PCA_ENCODE,
    PCA_FIT,
    PCA_GENERATE,
    PCA_SCATTER,
    Markdown,
    notebook,
)
from notebook_samples import write_samples

HERE = Path(__file__).parent

# ----------------------------------------------------------------------------------------- dl2025-a2, Part 1

IMPORTS = """\
import torch
from torch import nn, optim
from torchvision import datasets, transforms
import matplotlib.pyplot as plt

torch.manual_seed(1)
EPOCHS = 2
device = 'cpu'"""

DATA = """\
tfm = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
trainset = datasets.MNIST('./mnist', train=True, download=True, transform=tfm)
testset = datasets.MNIST('./mnist', train=False, download=True, transform=tfm)
trainloader = torch.utils.data.DataLoader(trainset, batch_size=64, shuffle=True)
testloader = torch.utils.data.DataLoader(testset, batch_size=500)"""

CNN_CLASSES = """\
class ConvNet(nn.Module):
    def __init__(self):
        super(ConvNet, self).__init__()
        self.conv1 = nn.Conv2d(1, 16, 3)
        self.act1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(16, 32, 3)
        self.act2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2, 2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(32 * 5 * 5, 10)
        self.out = nn.LogSoftmax(dim=1)

    def forward(self, x):
        x = self.pool1(self.act1(self.conv1(x)))
        x = self.pool2(self.act2(self.conv2(x)))
        return self.out(self.fc(self.flat(x)))


class FNN(nn.Module):
    \"\"\"the feed forward net from 1.1, to compare\"\"\"
    def __init__(self):
        super(FNN, self).__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)
        self.relu = nn.ReLU()
        self.out = nn.LogSoftmax(dim=1)

    def forward(self, x):
        return self.out(self.fc2(self.relu(self.fc1(x.view(x.shape[0], -1)))))"""

FIT = """\
criterion = nn.NLLLoss()

def fit(net, epochs):
    opt = optim.Adam(net.parameters(), lr=0.001)
    history = []
    for ep in range(epochs):
        net.train()
        for x, y in trainloader:
            opt.zero_grad()
            loss = criterion(net(x), y)
            loss.backward()
            opt.step()
            history.append(loss.item())
        print('epoch', ep + 1, 'loss', round(loss.item(), 4))
    return history

def accuracy(net):
    net.eval()
    correct = 0
    with torch.no_grad():
        for x, y in testloader:
            correct += (net(x).argmax(1) == y).sum().item()
    return correct / len(testset)"""

TRAIN_BOTH = """\
cnn = ConvNet()
cnn_history = fit(cnn, EPOCHS)
fnn = FNN()
fnn_history = fit(fnn, 1)
print('CNN test accuracy', accuracy(cnn))
print('FNN test accuracy', accuracy(fnn))"""

SCRATCH = """\
# why 800? check the shape after the second pooling
tmp = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2, 2))
print(tmp(torch.zeros(1, 1, 28, 28)).shape)  # torch.Size([1, 32, 5, 5]) -> 800"""

COUNT = """\
model = ConvNet()
print('number of parameters:', sum(p.numel() for p in model.parameters() if p.requires_grad))"""

CURVES = """\
plt.plot(cnn_history, label='CNN')
plt.plot(fnn_history, label='FNN')
plt.xlabel('iteration')
plt.ylabel('NLL loss')
plt.legend()
plt.show()"""

FF_NET = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(784, 128), nn.ReLU(),
            nn.Linear(128, 64), nn.ReLU(),
            nn.Linear(64, 10), nn.LogSoftmax(dim=1))

    def forward(self, x):
        return self.main(x.reshape(-1, 28 * 28))"""

FF_TRAIN = """\
def train_and_eval(epochs=EPOCHS):
    torch.manual_seed(0)
    net = Net()
    print(net)
    loss_fn = nn.NLLLoss()
    opt = optim.Adam(net.parameters(), lr=1e-3)
    for epoch in range(epochs):
        for images, labels in trainloader:
            opt.zero_grad()
            loss_fn(net(images), labels).backward()
            opt.step()
    net.eval()
    per_class = torch.zeros(10)
    counts = torch.zeros(10)
    with torch.no_grad():
        for images, labels in testloader:
            hits = net(images).argmax(1) == labels
            per_class += torch.bincount(labels[hits], minlength=10)
            counts += torch.bincount(labels, minlength=10)
    for digit in range(10):
        print(f'accuracy of {digit}: {per_class[digit] / counts[digit]:.3f}')
    acc = (per_class.sum() / counts.sum()).item()
    return acc"""

FF_RUN = """\
acc = train_and_eval()
print('test accuracy:', acc)"""

# ----------------------------------------------------------------------------------------- dl2025-a2, Part 2

AE_RUN_FUNCTION = """\
loss_function = nn.BCELoss()


def latent_codes(net):
    net.eval()
    zs, ys = [], []
    with torch.no_grad():
        for x, y in test_loader:
            zs.append(net.encoder(x.view(-1, 784)))
            ys.append(y)
    return torch.cat(zs).numpy(), torch.cat(ys).numpy()


def run(seed, show_grid=False):
    \"\"\"Train one autoencoder with dim3 = 2 and plot its latent space (and a grid of generated digits).\"\"\"
    torch.manual_seed(seed)
    autoencoder = Autoencoder(784, 128, 2)
    opt = optim.Adam(autoencoder.parameters(), lr=LEARNING_RATE)
    for epoch in range(EPOCHS):
        autoencoder.train()
        for x, _ in train_loader:
            x = x.view(-1, 784)
            opt.zero_grad()
            loss = loss_function(autoencoder(x), x)
            loss.backward()
            opt.step()
    print('seed', seed, 'loss', loss.item())
    z, y = latent_codes(autoencoder)
    plt.figure(figsize=(5, 5))
    plt.scatter(z[:, 0], z[:, 1], c=y, cmap='tab10', s=3)
    plt.colorbar()
    plt.title(f'latent space of the autoencoder (seed {seed})')
    plt.show()
    if show_grid:
        n = 10
        zz = torch.tensor([[a, b] for b in np.linspace(z[:, 1].max(), z[:, 1].min(), n)
                           for a in np.linspace(z[:, 0].min(), z[:, 0].max(), n)], dtype=torch.float32)
        with torch.no_grad():
            digits = autoencoder.decoder(zz).view(n, n, 28, 28).permute(0, 2, 1, 3).reshape(n * 28, n * 28)
        plt.figure(figsize=(6, 6))
        plt.imshow(digits.numpy(), cmap='gray')
        plt.axis('off')
        plt.title('autoencoder: generated digits')
        plt.show()


for seed in [1, 2, 3]:
    run(seed, show_grid=(seed == 3))"""


def dl2025_part1() -> dict[str, object]:
    """scratch_models: CNNMNIST.ipynb and feedForwardMNIST.ipynb."""
    return {
        "CNNMNIST.ipynb": notebook("CNN on MNIST", IMPORTS, DATA, CNN_CLASSES, FIT, TRAIN_BOTH, SCRATCH, COUNT, CURVES),
        "feedForwardMNIST.ipynb": notebook("Feed-forward network on MNIST", IMPORTS, DATA, FF_NET, FF_TRAIN, FF_RUN),
    }


def dl2025_part2() -> dict[str, object]:
    """ae_in_function: autoencoders.ipynb, the runs inside a function, PCA and the sweep as usual."""
    return {
        "autoencoders.ipynb": notebook(
            "Autoencoders and PCA on MNIST", AE_IMPORTS, AE_DATA, AE_NET,
            Markdown("## Three runs"), AE_RUN_FUNCTION,
            Markdown("## PCA"), PCA_FIT, PCA_ENCODE["dl2025"], PCA_SCATTER, PCA_GENERATE,
            Markdown("## dim3"), LATENT_SIZES,
        ),
    }


# ----------------------------------------------------------------------------------------- idl-ex2

CLASSES_PY = '''\
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
'''

Q1 = '''\
"""Q1: convolutional autoencoder, d = 10, L1 loss."""
import os

import torch
from torch import nn

from Classes import *


def train_autoencoder(model, train_dl, epochs=2):
    loss_fn = nn.L1Loss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(epochs):
        model.train()
        for x, _ in train_dl:
            opt.zero_grad()
            loss = loss_fn(model(x), x)
            loss.backward()
            opt.step()
        print("epoch", epoch + 1, "train L1", loss.item())


def main():
    torch.manual_seed(0)
    train_dl, test_dl = get_data()
    model = ConvAE()
    train_autoencoder(model, train_dl)
    print("test L1:", l1_on(model, test_dl))
    os.makedirs(SAVE, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(SAVE, "q1_ae.pt"))
    x, _ = next(iter(test_dl))
    show_images([x[:10], model(x[:10])], "Q1: test digits and their reconstructions")


if __name__ == "__main__":
    main()
'''

Q2 = '''\
"""Q2: classifier = the encoder architecture of q1 (new weights) + MLP, cross entropy."""
import os

import torch
from torch import nn

from Classes import *


def main():
    torch.manual_seed(0)
    train_dl, test_dl = get_data()
    clf = Classifier()
    loss_fn = nn.CrossEntropyLoss()
    hist = train_classifier(clf, train_dl, test_dl, loss_fn, epochs=3, lr=2e-3)
    os.makedirs(SAVE, exist_ok=True)
    torch.save(clf.state_dict(), os.path.join(SAVE, "q2_clf.pt"))
    plot_hist(hist, "Q2 classifier")


if __name__ == "__main__":
    main()
'''

Q3 = '''\
"""Q3: keep the q2 classifier's encoder fixed, train a new decoder on it."""
import os

import torch
from torch import nn

from Classes import *


def main():
    torch.manual_seed(0)
    train_dl, test_dl = get_data()
    classifier = Classifier()
    classifier.load_state_dict(torch.load(os.path.join(SAVE, "q2_clf.pt")))
    for p in classifier.encoder.parameters():
        p.requires_grad = False
    classifier.encoder.eval()

    clf_ae = ConvAE(classifier.encoder, Decoder())
    loss_fn = nn.L1Loss()
    opt = torch.optim.Adam(clf_ae.decoder.parameters(), lr=3e-3)
    for epoch in range(2):
        clf_ae.decoder.train()
        for x, _ in train_dl:
            opt.zero_grad()
            loss_fn(clf_ae(x), x).backward()
            opt.step()

    ae = ConvAE()
    ae.load_state_dict(torch.load(os.path.join(SAVE, "q1_ae.pt")))
    print("L1 of the q1 autoencoder:", l1_on(ae, test_dl))
    print("L1 with the classifier's encoder:", l1_on(clf_ae, test_dl))
    x, _ = next(iter(test_dl))
    with torch.no_grad():
        show_images([x[:10], ae(x[:10]), clf_ae(x[:10])], "Q3: input / q1 autoencoder / classifier encoder")


if __name__ == "__main__":
    main()
'''

Q4 = '''\
"""Q4: the q2 classifier trained from scratch on the first 100 training images."""
import torch
from torch import nn

from Classes import *


def main():
    torch.manual_seed(0)
    train_dl, test_dl = get_data(n_train=100, batch_size=10)
    clf = Classifier()
    hist = train_classifier(clf, train_dl, test_dl, nn.CrossEntropyLoss(), epochs=15)
    plot_hist(hist, "Q4 (100 labels)")


if __name__ == "__main__":
    main()
'''

Q5 = '''\
"""Q5: start from the q1 autoencoder's encoder and fine-tune on the same 100 images."""
import os

import torch
from torch import nn

from Classes import *


def main():
    torch.manual_seed(0)
    train_dl, test_dl = get_data(n_train=100, batch_size=10)
    ae = ConvAE()
    ae.load_state_dict(torch.load(os.path.join(SAVE, "q1_ae.pt")))
    clf = Classifier()
    clf.encoder.load_state_dict(ae.encoder.state_dict())
    hist = train_classifier(clf, train_dl, test_dl, nn.CrossEntropyLoss(), epochs=15)
    plot_hist(hist, "Q5 (pretrained encoder, 100 labels)")


if __name__ == "__main__":
    main()
'''

IDL_EX2 = {"Classes.py": CLASSES_PY, "q1.py": Q1, "q2.py": Q2, "q3.py": Q3, "q4.py": Q4, "q5.py": Q5}

SAMPLES = ("dl2025-a2/scratch_models", "dl2025-a2/ae_in_function", "idl-ex2/models_in_functions")
"""The sample folders this generator writes (the tests grade them in batches of their own)."""


def main() -> None:
    """Write every sample folder under this script's folder."""
    write_samples(HERE / "dl2025-a2", {"scratch_models": dl2025_part1(), "ae_in_function": dl2025_part2()})
    folder = HERE / "idl-ex2" / "models_in_functions"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in IDL_EX2.items():
        (folder / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(IDL_EX2)} files under {folder}")


if __name__ == "__main__":
    main()
