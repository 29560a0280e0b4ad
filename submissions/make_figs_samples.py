"""Write the figs samples: `python submissions/make_figs_samples.py`.

Hand-ins written the way students write them, for what Jupyter shows and what the grading
environment holds: figures drawn without ``plt.show()`` (Jupyter shows each cell's figures when
the cell ends), latent samples drawn inside a function, the packages course notebooks import
(tqdm, wandb, seaborn, plotly, pandas) and a package the grading environment does not have.

    figs/dl2025-a2/no_show/autoencoders.ipynb           Part 2 without a single plt.show(); PCA on raw 0..255 pixels
    figs/dl2025-a2/extra_packages/*.ipynb               Part 1 with progress bars, wandb, seaborn, plotly, pandas
    figs/dl2025-a2/missing_package/CNNMNIST.ipynb       Part 1's CNN wrapped in PyTorch Lightning (not installed)
    figs/adl2024-a2/samples_in_function/vae.ipynb       plot_generated_samples(model, n) draws its z itself

They live apart from each assignment's own samples so that each assignment's sample batch keeps
its students. Notebooks are written without outputs and with stable cell ids.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from notebook_samples import write_samples

HERE = Path(__file__).parent / "figs"


def notebook(*cells: str) -> nbformat.NotebookNode:
    """A notebook of code cells (a string starting with '#md ' is a Markdown cell), with stable ids."""
    built = []
    for index, text in enumerate(cells):
        if text.startswith("#md "):
            cell = nbformat.v4.new_markdown_cell(text[4:])
        else:
            cell = nbformat.v4.new_code_cell(text)
        cell["id"] = f"cell-{index}"
        built.append(cell)
    nb = nbformat.v4.new_notebook(cells=built)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


# -- dl2025-a2 Part 2 without plt.show() -------------------------------------------------------------------------

NO_SHOW = notebook(
    "#md # Assignment 2, part 2: autoencoders\nAll plots are shown by Jupyter at the end of their cell.",
    """\
import numpy as np
import torch
import torch.nn as nn
import torchvision
import matplotlib.pyplot as plt
from sklearn.decomposition import PCA

device = 'cpu'
mnist = torchvision.datasets.MNIST('./data', train=True, download=True,
                                   transform=torchvision.transforms.ToTensor())
mnist_test = torchvision.datasets.MNIST('./data', train=False, download=True,
                                        transform=torchvision.transforms.ToTensor())
loader = torch.utils.data.DataLoader(mnist, batch_size=64, shuffle=True)""",
    """\
class FF(nn.Module):
    def __init__(self, dim1, dim2, dim3):
        super().__init__()
        self.main = nn.Sequential(nn.Linear(dim1, dim2), nn.ReLU(), nn.Linear(dim2, dim3))

    def forward(self, input):
        return self.main(input)


class Autoencoder(nn.Module):
    def __init__(self, dim1=784, dim2=128, dim3=2):
        super().__init__()
        self.encoder = FF(dim1, dim2, dim3)
        self.decoder = nn.Sequential(FF(dim3, dim2, dim1), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x.view(x.size(0), -1)))""",
    """\
def fit(seed, epochs=1):
    torch.manual_seed(seed)
    net = Autoencoder()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    bce = nn.BCELoss()
    history = []
    for epoch in range(epochs):
        for x, _ in loader:
            out = net(x)
            loss = bce(out, x.view(x.size(0), -1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(loss.item())
    return net, history

runs = [fit(seed) for seed in (1, 2, 3)]
model = runs[0][0]""",
    """\
# training loss of every run
for i, (_, history) in enumerate(runs):
    plt.plot(history, label=f'run {i + 1}')
plt.legend()
plt.xlabel('batch')
plt.ylabel('BCE')
plt.title('Training loss')""",
    """\
test_x = mnist_test.data.float().view(-1, 784) / 255
test_y = mnist_test.targets.numpy()
with torch.no_grad():
    codes = [net.encoder(test_x).numpy() for net, _ in runs]
plt.scatter(codes[0][:, 0], codes[0][:, 1], c=test_y, s=2, cmap='tab10')
plt.title('Latent space, run 1')""",
    """\
plt.scatter(codes[1][:, 0], codes[1][:, 1], c=test_y, s=2, cmap='tab10')
plt.title('Latent space, run 2')""",
    """\
plt.scatter(codes[2][:, 0], codes[2][:, 1], c=test_y, s=2, cmap='tab10')
plt.title('Latent space, run 3')""",
    """\
with torch.no_grad():
    recon = model(test_x[:8]).view(-1, 28, 28)
fig, ax = plt.subplots(2, 8, figsize=(10, 3))
for k in range(8):
    ax[0, k].imshow(test_x[k].view(28, 28), cmap='gray')
    ax[1, k].imshow(recon[k], cmap='gray')
    ax[0, k].axis('off')
    ax[1, k].axis('off')
fig.suptitle('Originals (top) and reconstructions (bottom)')""",
    "#md ## PCA\nEquation (1): alpha_i = (x - mu) . sqrt(lambda_i) v_i",
    """\
pixels = mnist.data.view(-1, 784).numpy().astype(np.float64)   # the raw images
pca = PCA(n_components=2).fit(pixels)
centred = mnist_test.data.view(-1, 784).numpy().astype(np.float64) - pca.mean_
alpha = centred @ pca.components_.T * np.sqrt(pca.explained_variance_)
plt.figure(figsize=(5, 5))
plt.scatter(alpha[:, 0], alpha[:, 1], c=test_y, s=2, cmap='tab10')
plt.title('PCA encoding')""",
    """\
grid = np.linspace(-2, 2, 6)
fig, ax = plt.subplots(6, 6, figsize=(6, 6))
for i, a in enumerate(grid):
    for j, b in enumerate(grid):
        image = pca.mean_ + a * np.sqrt(pca.explained_variance_[0]) * pca.components_[0] \\
            + b * np.sqrt(pca.explained_variance_[1]) * pca.components_[1]
        ax[i, j].imshow(image.reshape(28, 28), cmap='gray')
        ax[i, j].axis('off')
fig.suptitle('Images generated by PCA')""",
)
"""dl2025-a2 Part 2 with every figure left for Jupyter to show; PCA fitted on pixels 0..255 (not divided by 255)."""


# -- dl2025-a2 Part 1 with the packages course notebooks use ------------------------------------------------------

PART1_SETUP = """\
import torch
from torch import nn, optim
from torchvision import datasets, transforms
from tqdm.notebook import tqdm
import wandb
import pandas as pd
import seaborn as sns
import plotly.express as px
import matplotlib.pyplot as plt

torch.manual_seed(42)
tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train_data = datasets.MNIST(root='~/datasets', train=True, download=True, transform=tf)
test_data = datasets.MNIST(root='~/datasets', train=False, download=True, transform=tf)
train_loader = torch.utils.data.DataLoader(train_data, batch_size=64, shuffle=True)
test_loader = torch.utils.data.DataLoader(test_data, batch_size=500)"""

PART1_TRAIN = """\
wandb.init(project='dl-a2', name='{name}', config={{'lr': 1e-3, 'epochs': 2, 'batch_size': 64}})
criterion = nn.NLLLoss()
optimizer = optim.Adam(net.parameters(), lr=wandb.config.lr)
log = []
for epoch in tqdm(range(wandb.config.epochs), desc='epochs'):
    net.train()
    running = 0.0
    for images, labels in tqdm(train_loader, leave=False):
        optimizer.zero_grad()
        loss = criterion(net(images), labels)
        loss.backward()
        optimizer.step()
        running += loss.item() * len(images)
    log.append({{'epoch': epoch + 1, 'train_loss': running / len(train_data)}})
    wandb.log(log[-1])
wandb.finish()
pd.DataFrame(log)"""

PART1_EVALUATE = """\
net.eval()
predictions, truth = [], []
with torch.no_grad():
    for images, labels in test_loader:
        predictions.append(net(images).argmax(1))
        truth.append(labels)
predictions, truth = torch.cat(predictions), torch.cat(truth)
table = pd.crosstab(pd.Series(truth.numpy(), name='digit'), pd.Series(predictions.numpy(), name='predicted'))
per_digit = pd.DataFrame({'digit': range(10),
                          'accuracy': [(predictions[truth == d] == d).float().mean().item() for d in range(10)]})
print('test accuracy', (predictions == truth).float().mean().item())
per_digit"""

PART1_PLOTS = """\
plt.figure(figsize=(7, 6))
sns.heatmap(table, annot=True, fmt='d', cmap='Blues')
plt.title('Confusion matrix')
plt.show()
fig = px.line(pd.DataFrame(log), x='epoch', y='train_loss', title='Training loss')
fig.show()"""

FF_NET = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)
        self.act = nn.ReLU()
        self.out = nn.LogSoftmax(dim=1)

    def forward(self, x):
        x = x.view(-1, 28 * 28)
        x = self.act(self.fc1(x))
        x = self.act(self.fc2(x))
        return self.out(self.fc3(x))

net = Net()
print(net, sum(p.numel() for p in net.parameters()))"""

CNN_NET = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3)
        self.relu = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(16, 32, 3)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(800, 10)
        self.log_softmax = nn.LogSoftmax(dim=1)

    def forward(self, x):
        x = self.pool1(self.relu(self.conv1(x)))
        x = self.pool2(self.relu(self.conv2(x)))
        return self.log_softmax(self.fc(self.flatten(x)))

net = Net()
print(net, sum(p.numel() for p in net.parameters()))"""


def part1(net: str, name: str) -> nbformat.NotebookNode:
    """A Part 1 notebook with tqdm bars, a wandb run, pandas tables, a seaborn heatmap and a plotly curve."""
    return notebook(PART1_SETUP, net, PART1_TRAIN.format(name=name), PART1_EVALUATE, PART1_PLOTS)


# -- a package the grading environment lacks ----------------------------------------------------------------------

LIGHTNING = notebook(
    """\
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import datasets, transforms

torch.manual_seed(1)
transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train_set = datasets.MNIST('data', train=True, download=True, transform=transform)
test_set = datasets.MNIST('data', train=False, download=True, transform=transform)""",
    "import lightning as L",
    """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(800, 10), nn.LogSoftmax(dim=1))

    def forward(self, x):
        return self.classifier(self.features(x))

model = Net()""",
    """\
class LitNet(L.LightningModule):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.nll_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)""",
    "trainer = L.Trainer(max_epochs=2, accelerator='cpu')",
    "trainer.fit(LitNet(model), torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True))",
)
"""Part 1's CNN trained through PyTorch Lightning, which the grading environment does not have."""


# -- adl2024-a2 VAE: z drawn inside plot_generated_samples ----------------------------------------------------------

SAMPLES_IN_FUNCTION = notebook(
    """\
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import datasets, transforms
import matplotlib.pyplot as plt

torch.manual_seed(3)
LATENT = 2
train = datasets.MNIST('../mnist', train=True, download=True, transform=transforms.ToTensor())
test = datasets.MNIST('../mnist', train=False, download=True, transform=transforms.ToTensor())
train_loader = torch.utils.data.DataLoader(train, batch_size=128, shuffle=True)""",
    """\
class VAE(nn.Module):
    def __init__(self, latent=LATENT):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, latent)
        self.fc22 = nn.Linear(400, latent)
        self.fc3 = nn.Linear(latent, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        return mu + std * torch.randn_like(std)

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld""",
    """\
vae = VAE()
optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
for epoch in range(3):
    vae.train()
    total = 0
    for data, _ in train_loader:
        optimizer.zero_grad()
        recon, mu, logvar = vae(data)
        loss = loss_function(recon, data, mu, logvar)
        loss.backward()
        total += loss.item()
        optimizer.step()
    print('epoch', epoch, 'loss per image', total / len(train))""",
    """\
def plot_generated_samples(model, n):
    model.eval()
    with torch.no_grad():
        z = torch.randn(n, LATENT)
        samples = model.decode(z).view(n, 28, 28)
    cols = 8
    fig, axes = plt.subplots(n // cols, cols, figsize=(cols, n // cols))
    for img, ax in zip(samples, axes.ravel()):
        ax.imshow(img, cmap='gray')
        ax.axis('off')
    plt.show()

plot_generated_samples(vae, 64)""",
    """\
with torch.no_grad():
    mu, _ = vae.encode(test.data.view(-1, 784).float() / 255)
plt.figure(figsize=(6, 6))
plt.scatter(mu[:, 0], mu[:, 1], c=test.targets, cmap='tab10', s=3)
plt.colorbar()
plt.title('VAE latent space (test means)')
plt.show()""",
)
"""The adl2024-a2 VAE whose latent samples exist only inside plot_generated_samples."""


SAMPLES = {
    "dl2025-a2": {
        "no_show": {"autoencoders.ipynb": NO_SHOW},
        "extra_packages": {
            "feedForwardMNIST.ipynb": part1(FF_NET, "feed-forward"),
            "CNNMNIST.ipynb": part1(CNN_NET, "cnn"),
        },
        "missing_package": {"CNNMNIST.ipynb": LIGHTNING},
    },
    "adl2024-a2": {
        "samples_in_function": {"vae.ipynb": SAMPLES_IN_FUNCTION},
    },
}
"""Assignment -> sample folder -> notebook name -> notebook."""


def main() -> None:
    """Write every sample folder under ``figs/<assignment>/``."""
    for assignment, samples in SAMPLES.items():
        write_samples(HERE / assignment, samples)


if __name__ == "__main__":
    main()
