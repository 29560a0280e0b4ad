"""Notebook cells of the autoencoder, PCA and VAE part shared by dl2025-a2 (Part 2) and adl2024-a2.

Both assignments hand out the same ``autoencoders.ipynb`` and ``vae.ipynb``; they differ only in
the PCA encoding of equation (1): dl2025-a2 scales by the square root of the eigenvalue,
alpha_i = (x - mu) . sqrt(lambda_i) v_i, adl2024-a2 does not, alpha_i = (x - mu) . v_i. The
sample generators (``make_dl2025_a2_samples.py``, ``make_adl2024_a2_samples.py``) build their
notebooks from the functions here:

- ``autoencoders(formula)`` / ``vae()``: the notebooks as the texts ask for them; any cell can
  be replaced by keyword to plant a mistake (``pca_fit=PCA_FIT_UNSCALED``...).
- ``autoencoders_different(formula)`` / ``vae_different()``: the same work written by another
  hand (other names, the training in a function, PCA from ``np.linalg.eigh``, a grid of
  subplots); they must grade like the reference.

Every notebook reads MNIST with ``ToTensor`` only (pixels in [0, 1]), closes each figure with
``plt.show()`` and leaves what the grader reads as globals: the task 2.1 autoencoder as
``model`` (``autoencoder`` in the other hand's notebook), the VAE as ``vae`` (``net``), the latent
samples as ``z`` (``z_samples``). They are sized to run in seconds on the small grading data (6,000
training images, one thread): a few epochs, a larger learning rate than the usual 1e-3.
"""

from __future__ import annotations

from typing import Literal

import nbformat

Formula = Literal["dl2025", "adl2024"]


class Markdown(str):
    """A cell text to be written as a markdown cell (plain strings are code cells)."""


def notebook(title: str, *cells: str) -> nbformat.NotebookNode:
    """A notebook with a title cell and the given cells, with stable cell ids (regenerating changes nothing)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}")]
    for text in cells:
        maker = nbformat.v4.new_markdown_cell if isinstance(text, Markdown) else nbformat.v4.new_code_cell
        nb.cells.append(maker(str(text)))
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def swap(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced by ``new``; ValueError when ``old`` is not there (a planted mistake went missing)."""
    if old not in text:
        raise ValueError(f"{old!r} is not in the cell it should change")
    return text.replace(old, new)


# ------------------------------------------------------------------------------------------ autoencoders.ipynb

AE_IMPORTS = """\
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torchvision import datasets, transforms
import matplotlib.pyplot as plt
from sklearn.decomposition import PCA

torch.manual_seed(0)
EPOCHS = 1
LEARNING_RATE = 5e-3"""

AE_DATA = """\
# ToTensor only: pixels in [0, 1], the range of the decoder's Sigmoid output
transform = transforms.ToTensor()
train_set = datasets.MNIST('data', train=True, download=True, transform=transform)
test_set = datasets.MNIST('data', train=False, download=True, transform=transform)
train_loader = torch.utils.data.DataLoader(train_set, batch_size=128, shuffle=True)
test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000, shuffle=False)"""

AE_DATA_NORMALIZED = swap(
    AE_DATA,
    "# ToTensor only: pixels in [0, 1], the range of the decoder's Sigmoid output\ntransform = transforms.ToTensor()",
    "transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])",
)
"""The mistake of keeping Part 1's normalisation: inputs from -0.42 to 2.8, which a Sigmoid output cannot reach."""

AE_NET = """\
class FF(nn.Module):
    def __init__(self, dim1, dim2, dim3):
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(in_features=dim1, out_features=dim2),
            nn.ReLU(),
            nn.Linear(in_features=dim2, out_features=dim3)
        )

    def forward(self, input):
        return self.main(input)


class Autoencoder(nn.Module):
    def __init__(self, dim1, dim2, dim3):
        super().__init__()
        self.encoder = FF(dim1, dim2, dim3)
        self.decoder = nn.Sequential(
            FF(dim3, dim2, dim1),
            nn.Sigmoid()
        )

    def forward(self, x):
        x = self.encoder(x)
        x = self.decoder(x)
        return x"""

AE_ENCODE = """\
def encode_test_set(model):
    \"\"\"Latent codes (N, dim3) and labels (N,) of the test set.\"\"\"
    model.eval()
    codes, labels = [], []
    with torch.no_grad():
        for images, targets in test_loader:
            codes.append(model.encoder(images.view(-1, 784)))  # (B, dim3)
            labels.append(targets)
    return torch.cat(codes).numpy(), torch.cat(labels).numpy()"""

AE_RUNS = """\
# Task 2.1 / 2.2: the notebook's training, run three times from different random initialisations
loss_function = nn.BCELoss()
for run in range(1, 4):
    torch.manual_seed(run)
    model = Autoencoder(784, 128, 2)
    optimizer = optim.Adam(model.parameters(), lr=LEARNING_RATE)
    model.train()
    for epoch in range(EPOCHS):
        for images, _ in train_loader:
            images = images.view(-1, 784)  # (B, 784)
            optimizer.zero_grad()
            loss = loss_function(model(images), images)
            loss.backward()
            optimizer.step()
    print(f'run {run}: training loss {loss.item():.4f}')

    codes, labels = encode_test_set(model)
    plt.figure(figsize=(5, 5))
    plt.scatter(codes[:, 0], codes[:, 1], c=labels, cmap='tab10', s=3)
    plt.colorbar(label='digit')
    plt.title(f'Autoencoder latent space, run {run}')
    plt.xlabel('z1')
    plt.ylabel('z2')
    plt.show()"""

AE_RUNS_MSE = swap(AE_RUNS, "loss_function = nn.BCELoss()", "loss_function = nn.MSELoss()")
"""The runs trained with MSE: with normalised inputs BCELoss refuses targets outside [0, 1], MSELoss trains silently."""

AE_GENERATE = """\
# Images decoded from a regular grid over the latent space of the last run
n = 12
low, high = codes.min(axis=0), codes.max(axis=0)
grid_x = np.linspace(low[0], high[0], n)
grid_y = np.linspace(high[1], low[1], n)  # top row: largest z2
z_grid = torch.tensor([[x, y] for y in grid_y for x in grid_x], dtype=torch.float32)  # (n * n, 2)
with torch.no_grad():
    decoded = model.decoder(z_grid).view(n, n, 28, 28)
canvas = decoded.permute(0, 2, 1, 3).reshape(n * 28, n * 28).numpy()
plt.figure(figsize=(6, 6))
plt.imshow(canvas, cmap='gray')
plt.title('Autoencoder: images generated from a latent grid')
plt.axis('off')
plt.show()"""

PCA_FIT = """\
# Task 2.3: PCA on the same pixels, scaled to [0, 1] like the autoencoder's input
x_train = train_set.data.view(-1, 784).numpy() / 255.0  # (N, 784)
x_test = test_set.data.view(-1, 784).numpy() / 255.0
y_test = test_set.targets.numpy()
pca = PCA(n_components=20).fit(x_train)
mu = pca.mean_                 # mean vector
lam = pca.explained_variance_  # eigenvalues lambda_i
V = pca.components_.T          # eigenvectors v_i as columns, (784, 20)"""

PCA_FIT_UNSCALED = """\
# Task 2.3: PCA on the pixels
x_train = train_set.data.view(-1, 784).numpy().astype(float)  # (N, 784)
x_test = test_set.data.view(-1, 784).numpy().astype(float)
y_test = test_set.targets.numpy()
pca = PCA(n_components=20).fit(x_train)
mu = pca.mean_                 # mean vector
lam = pca.explained_variance_  # eigenvalues lambda_i
V = pca.components_.T          # eigenvectors v_i as columns, (784, 20)"""
"""The mistake of fitting PCA on raw pixels 0..255 (the text says to scale the data first)."""

PCA_ENCODE = {
    "dl2025": """\
# Equation (1): alpha_i = (x - mu) . sqrt(lambda_i) v_i
alpha = (x_test - mu) @ (V[:, :2] * np.sqrt(lam[:2]))  # (N, 2)""",
    "adl2024": """\
# Equation (1): alpha_i = (x - mu) . v_i
alpha = (x_test - mu) @ V[:, :2]  # (N, 2)""",
}

PCA_SCATTER = """\
plt.figure(figsize=(5, 5))
plt.scatter(alpha[:, 0], alpha[:, 1], c=y_test, cmap='tab10', s=3)
plt.colorbar(label='digit')
plt.title('PCA latent space (equation 1)')
plt.xlabel('alpha_1')
plt.ylabel('alpha_2')
plt.show()"""

PCA_GENERATE = """\
# Equation (2): x = mu + sum_i alpha_i sqrt(lambda_i) v_i, on a grid of alpha_1, alpha_2 in [-2, 2]
n = 12
grid = np.linspace(-2, 2, n)
generated = np.array([
    mu + a1 * np.sqrt(lam[0]) * V[:, 0] + a2 * np.sqrt(lam[1]) * V[:, 1]
    for a2 in grid[::-1] for a1 in grid
])  # (n * n, 784)
canvas = generated.reshape(n, n, 28, 28).transpose(0, 2, 1, 3).reshape(n * 28, n * 28)
plt.figure(figsize=(6, 6))
plt.imshow(canvas, cmap='gray')
plt.title('PCA: images generated by equation (2)')
plt.axis('off')
plt.show()"""

LATENT_SIZES = """\
# Task 2.4: reconstruction error (mean squared error per pixel, test set) against dim3
sizes = [2, 4, 8, 12, 16, 20]
images_train = train_set.data.view(-1, 784).float() / 255  # the autoencoder's input, (N, 784) in [0, 1]
images_test = test_set.data.view(-1, 784).float() / 255


def pca_error(k):
    \"\"\"Test MSE per pixel of the projection on the first k eigenvectors.\"\"\"
    Vk = V[:, :k]
    reconstruction = mu + (x_test - mu) @ Vk @ Vk.T
    return np.mean((reconstruction - x_test) ** 2)


def autoencoder_error(dim3, epochs=2):
    \"\"\"Test MSE per pixel of an autoencoder with dim3 latent variables, trained for the given epochs.\"\"\"
    torch.manual_seed(dim3)
    ae = Autoencoder(784, 128, dim3)
    optimizer = optim.Adam(ae.parameters(), lr=LEARNING_RATE)
    for epoch in range(epochs):
        for batch in torch.randperm(len(images_train)).split(64):
            images = images_train[batch]  # (B, 784)
            optimizer.zero_grad()
            loss = loss_function(ae(images), images)
            loss.backward()
            optimizer.step()
    ae.eval()
    with torch.no_grad():
        return torch.mean((ae(images_test) - images_test) ** 2).item()


pca_errors = [pca_error(k) for k in sizes]
ae_errors = [autoencoder_error(k) for k in sizes]
for k, p, a in zip(sizes, pca_errors, ae_errors):
    print(f'dim3 = {k:2d}: PCA {p:.4f}, autoencoder {a:.4f}')

plt.figure(figsize=(6, 4))
plt.plot(sizes, pca_errors, 'o-', label='PCA')
plt.plot(sizes, ae_errors, 's-', label='Autoencoder')
plt.xlabel('dim3 (eigenvectors / latent variables)')
plt.ylabel('reconstruction error (MSE per pixel)')
plt.title('Reconstruction error against dim3')
plt.legend()
plt.show()"""


def autoencoders(formula: Formula, **replace: str) -> nbformat.NotebookNode:
    """autoencoders.ipynb as the text asks for it, PCA encoded by ``formula``; any cell replaced by keyword."""
    cells = {
        "imports": AE_IMPORTS,
        "data": AE_DATA,
        "net": AE_NET,
        "encode": AE_ENCODE,
        "runs_heading": Markdown("## The autoencoder, trained three times"),
        "runs": AE_RUNS,
        "generate": AE_GENERATE,
        "pca_heading": Markdown("## PCA baseline"),
        "pca_fit": PCA_FIT,
        "pca_encode": PCA_ENCODE[formula],
        "pca_scatter": PCA_SCATTER,
        "pca_generate": PCA_GENERATE,
        "sizes_heading": Markdown("## Reconstruction error against the latent dimension"),
        "sizes": LATENT_SIZES,
    }
    unknown = set(replace) - set(cells)
    if unknown:
        raise KeyError(f"no cells {sorted(unknown)}; cells: {', '.join(cells)}")
    cells.update(replace)
    return notebook("Autoencoders and PCA on MNIST", *cells.values())


# The same work by another hand: class AE with encode/decode Sequentials, the training in a function, PCA from
# the covariance matrix with np.linalg.eigh, PCA images as a grid of subplots under a suptitle.

DIFFERENT_IMPORTS = """\
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
import torchvision
import matplotlib.pyplot as plt

torch.manual_seed(42)"""

DIFFERENT_DATA = """\
to_tensor = torchvision.transforms.ToTensor()
mnist_train = torchvision.datasets.MNIST(root='./mnist', train=True, download=True, transform=to_tensor)
mnist_test = torchvision.datasets.MNIST(root='./mnist', train=False, download=True, transform=to_tensor)
loader = DataLoader(mnist_train, batch_size=100, shuffle=True)

X_train = mnist_train.data.reshape(-1, 784).numpy() / 255  # (N, 784) in [0, 1]
X_test = mnist_test.data.reshape(-1, 784).numpy() / 255
labels_test = mnist_test.targets.numpy()"""

DIFFERENT_NET = """\
class AE(nn.Module):
    \"\"\"784 -> 128 -> dim3 -> 128 -> 784, the assignment's autoencoder.\"\"\"

    def __init__(self, dim3=2):
        super().__init__()
        self.encode = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, dim3))
        self.decode = nn.Sequential(nn.Linear(dim3, 128), nn.ReLU(), nn.Linear(128, 784), nn.Sigmoid())

    def forward(self, x):
        return self.decode(self.encode(x))


def fit(net, batches, epochs=2, lr=5e-3):
    \"\"\"Train net to reconstruct its input with binary cross-entropy; batches yield images first.\"\"\"
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    bce = nn.BCELoss()
    net.train()
    for _ in range(epochs):
        for batch in batches:
            x = batch[0].flatten(start_dim=1)  # (B, 784)
            opt.zero_grad()
            loss = bce(net(x), x)
            loss.backward()
            opt.step()
    net.eval()
    return net


def mse(net, X):
    \"\"\"Mean squared error per pixel of net's reconstruction of the rows of X.\"\"\"
    x = torch.tensor(X, dtype=torch.float32)
    with torch.no_grad():
        return float(((net(x) - x) ** 2).mean())"""

DIFFERENT_RUNS = """\
x_test_tensor = torch.tensor(X_test, dtype=torch.float32)
for run in range(3):
    autoencoder = fit(AE(dim3=2), loader, epochs=1)
    with torch.no_grad():
        latent = autoencoder.encode(x_test_tensor).numpy()  # (N, 2)
    fig, ax = plt.subplots(figsize=(5, 5))
    points = ax.scatter(latent[:, 0], latent[:, 1], c=labels_test, cmap='tab10', s=4)
    fig.colorbar(points, ax=ax)
    ax.set_title(f'Autoencoder latent space, run {run + 1} (test MSE {mse(autoencoder, X_test):.4f})')
    plt.show()"""

DIFFERENT_GENERATE = """\
steps = np.linspace(-1, 1, 10)
lo, hi = latent.min(axis=0), latent.max(axis=0)
centre, half = (lo + hi) / 2, (hi - lo) / 2
z_points = torch.tensor(np.array([centre + half * np.array([a, b]) for b in steps[::-1] for a in steps]), dtype=torch.float32)
with torch.no_grad():
    digits = autoencoder.decode(z_points).reshape(10, 10, 28, 28)
fig, ax = plt.subplots(figsize=(6, 6))
ax.imshow(digits.permute(0, 2, 1, 3).reshape(280, 280), cmap='binary')
ax.set_title('Digits decoded by the autoencoder from a 10 x 10 latent grid')
ax.set_xticks([])
ax.set_yticks([])
plt.show()"""

DIFFERENT_PCA = {
    "dl2025": """\
mean = X_train.mean(axis=0)
cov = np.cov(X_train - mean, rowvar=False)  # (784, 784)
eigvals, eigvecs = np.linalg.eigh(cov)      # ascending order
order = np.argsort(eigvals)[::-1]
eigvals, eigvecs = eigvals[order], eigvecs[:, order]

codes_pca = ((X_test - mean) @ eigvecs[:, :2]) * np.sqrt(eigvals[:2])  # alpha_i = (x - mu) . sqrt(lambda_i) v_i
fig, ax = plt.subplots(figsize=(5, 5))
ax.scatter(codes_pca[:, 0], codes_pca[:, 1], c=labels_test, cmap='tab10', s=4)
ax.set_title('2-D PCA codes of the test set')
plt.show()""",
    "adl2024": """\
mean = X_train.mean(axis=0)
cov = np.cov(X_train - mean, rowvar=False)  # (784, 784)
eigvals, eigvecs = np.linalg.eigh(cov)      # ascending order
order = np.argsort(eigvals)[::-1]
eigvals, eigvecs = eigvals[order], eigvecs[:, order]

codes_pca = (X_test - mean) @ eigvecs[:, :2]  # alpha_i = (x - mu) . v_i
fig, ax = plt.subplots(figsize=(5, 5))
ax.scatter(codes_pca[:, 0], codes_pca[:, 1], c=labels_test, cmap='tab10', s=4)
ax.set_title('2-D PCA codes of the test set')
plt.show()""",
}

DIFFERENT_PCA_GENERATE = """\
fig, axes = plt.subplots(6, 6, figsize=(6, 6))
for i, a2 in enumerate(np.linspace(2, -2, 6)):
    for j, a1 in enumerate(np.linspace(-2, 2, 6)):
        x = mean + a1 * np.sqrt(eigvals[0]) * eigvecs[:, 0] + a2 * np.sqrt(eigvals[1]) * eigvecs[:, 1]
        axes[i, j].imshow(x.reshape(28, 28), cmap='binary')
        axes[i, j].axis('off')
fig.suptitle('Digits generated with PCA, alpha_1 and alpha_2 from -2 to 2')
plt.show()"""

DIFFERENT_SIZES = """\
dims = [2, 3, 5, 8, 13, 20]
fast_loader = DataLoader(TensorDataset(torch.tensor(X_train, dtype=torch.float32)), batch_size=64, shuffle=True)
pca_mse, ae_mse = [], []
for d in dims:
    W = eigvecs[:, :d]
    pca_mse.append(np.mean(((X_test - mean) @ W @ W.T + mean - X_test) ** 2))
    torch.manual_seed(d)
    ae_mse.append(mse(fit(AE(dim3=d), fast_loader), X_test))

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(dims, pca_mse, marker='o', label='PCA (eigh)')
ax.plot(dims, ae_mse, marker='s', label='autoencoder')
ax.set_xlabel('dim3')
ax.set_ylabel('test MSE per pixel')
ax.legend()
plt.show()"""


def autoencoders_different(formula: Formula) -> nbformat.NotebookNode:
    """autoencoders.ipynb written differently (names, structure, PCA by eigendecomposition); grades like the reference."""
    return notebook(
        "Assignment 2: autoencoders",
        DIFFERENT_IMPORTS,
        DIFFERENT_DATA,
        DIFFERENT_NET,
        Markdown("### Three runs"),
        DIFFERENT_RUNS,
        DIFFERENT_GENERATE,
        Markdown("### PCA (eigendecomposition of the covariance matrix)"),
        DIFFERENT_PCA[formula],
        DIFFERENT_PCA_GENERATE,
        Markdown("### Reconstruction error against dim3"),
        DIFFERENT_SIZES,
    )


# ------------------------------------------------------------------------------------------------- vae.ipynb

VAE_IMPORTS = """\
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torchvision import datasets, transforms
from torchvision.utils import make_grid
import matplotlib.pyplot as plt

torch.manual_seed(0)
EPOCHS = 2"""

VAE_DATA = """\
transform = transforms.ToTensor()
train_set = datasets.MNIST('data', train=True, download=True, transform=transform)
test_set = datasets.MNIST('data', train=False, download=True, transform=transform)
train_loader = torch.utils.data.DataLoader(train_set, batch_size=128, shuffle=True)
test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000, shuffle=False)"""

VAE_NET = """\
class VAE(nn.Module):
    def __init__(self, latent_dim=2):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, latent_dim)  # mean
        self.fc22 = nn.Linear(400, latent_dim)  # log variance
        self.fc3 = nn.Linear(latent_dim, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar"""

VAE_LOSS = """\
# Reconstruction + KL divergence losses summed over all elements and the batch
def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')
    # KL(N(mu, sigma^2) || N(0, I)) in closed form: -0.5 * sum(1 + log(sigma^2) - mu^2 - sigma^2)
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD"""

VAE_LOSS_NO_KL = """\
# Reconstruction loss summed over all elements and the batch
def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')
    return BCE"""
"""The mistake of dropping the KL term: the VAE is then an autoencoder with noise."""

VAE_TRAIN = """\
vae = VAE()
optimizer = optim.Adam(vae.parameters(), lr=1e-3)
for epoch in range(1, EPOCHS + 1):
    vae.train()
    train_loss = 0.0
    for images, _ in train_loader:
        optimizer.zero_grad()
        recon_batch, mu, logvar = vae(images)
        loss = loss_function(recon_batch, images, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
    print(f'epoch {epoch}: average loss {train_loss / len(train_loader.dataset):.2f}')"""

VAE_SAMPLE = """\
# Task 2.6: sample the latent space from the prior N(0, I) and decode
vae.eval()
z = torch.randn(64, 2)
with torch.no_grad():
    samples = vae.decode(z).view(64, 1, 28, 28)
plt.figure(figsize=(6, 6))
plt.imshow(make_grid(samples, nrow=8).permute(1, 2, 0))
plt.title('VAE: 64 images decoded from z ~ N(0, I)')
plt.axis('off')
plt.show()"""

VAE_SAMPLE_UNIFORM = swap(VAE_SAMPLE, "z = torch.randn(64, 2)", "z = torch.rand(64, 2)")
"""The mistake of sampling the latent space uniformly in [0, 1) instead of from N(0, I)."""

VAE_LATENT = """\
# Latent representations of the test set: the means of q(z | x)
means, digits = [], []
with torch.no_grad():
    for images, targets in test_loader:
        mu, logvar = vae.encode(images.view(-1, 784))
        means.append(mu)
        digits.append(targets)
means, digits = torch.cat(means).numpy(), torch.cat(digits).numpy()
plt.figure(figsize=(5, 5))
plt.scatter(means[:, 0], means[:, 1], c=digits, cmap='tab10', s=3)
plt.colorbar(label='digit')
plt.title('VAE latent space (test set)')
plt.xlabel('z1')
plt.ylabel('z2')
plt.show()"""

VAE_PLOT_GENERATED = """\
def plot_generated_samples(model, n=8):
    \"\"\"Decode n * n latent vectors drawn from N(0, I) and show them as an n x n grid.\"\"\"
    model.eval()
    with torch.no_grad():
        samples = model.decode(torch.randn(n * n, 2)).view(n * n, 1, 28, 28)
    plt.figure(figsize=(6, 6))
    plt.imshow(make_grid(samples, nrow=n).permute(1, 2, 0))
    plt.title('Generated samples')
    plt.axis('off')
    plt.show()


plot_generated_samples(vae)
plot_generated_samples(vae)"""

VAE_PLOT_GENERATED_UNIFORM = swap(
    swap(VAE_PLOT_GENERATED, "torch.randn(n * n, 2)", "torch.rand(n * n, 2)"), "drawn from N(0, I)", "drawn at random"
)
"""``plot_generated_samples`` drawing its latent vectors uniformly too."""


def vae(**replace: str) -> nbformat.NotebookNode:
    """vae.ipynb as the text asks for it; any cell replaced by keyword (loss, sample...)."""
    cells = {
        "imports": VAE_IMPORTS,
        "data": VAE_DATA,
        "net": VAE_NET,
        "loss": VAE_LOSS,
        "train": VAE_TRAIN,
        "sample_heading": Markdown("## Sampling from the prior"),
        "sample": VAE_SAMPLE,
        "latent": VAE_LATENT,
        "plot_generated": VAE_PLOT_GENERATED,
    }
    unknown = set(replace) - set(cells)
    if unknown:
        raise KeyError(f"no cells {sorted(unknown)}; cells: {', '.join(cells)}")
    cells.update(replace)
    return notebook("Variational autoencoder on MNIST", *cells.values())


VAE_DIFFERENT = """\
import torch
from torch import nn
from torch.nn import functional as F
import torchvision
import matplotlib.pyplot as plt

torch.manual_seed(7)
to_tensor = torchvision.transforms.ToTensor()
mnist_train = torchvision.datasets.MNIST(root='./mnist', train=True, download=True, transform=to_tensor)
mnist_test = torchvision.datasets.MNIST(root='./mnist', train=False, download=True, transform=to_tensor)
train_batches = torch.utils.data.DataLoader(mnist_train, batch_size=100, shuffle=True)"""

VAE_DIFFERENT_NET = """\
class VariationalAutoencoder(nn.Module):
    def __init__(self, latent_dim=2):
        super().__init__()
        self.latent_dim = latent_dim
        self.hidden = nn.Linear(784, 400)
        self.mean = nn.Linear(400, latent_dim)
        self.log_var = nn.Linear(400, latent_dim)
        self.dec_hidden = nn.Linear(latent_dim, 400)
        self.out = nn.Linear(400, 784)

    def encode(self, x):
        h = torch.relu(self.hidden(x.flatten(start_dim=1)))
        return self.mean(h), self.log_var(h)

    def reparameterize(self, mu, logvar):
        return mu + torch.randn_like(mu) * torch.exp(logvar / 2)

    def decode(self, z):
        return torch.sigmoid(self.out(torch.relu(self.dec_hidden(z))))

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def vae_loss(recon_x, x, mu, logvar):
    \"\"\"Negative ELBO of the batch: (total, reconstruction term, KL term).\"\"\"
    reconstruction = F.binary_cross_entropy(recon_x, x.flatten(start_dim=1), reduction='sum')
    kl = 0.5 * torch.sum(mu ** 2 + logvar.exp() - 1 - logvar)
    return reconstruction + kl, reconstruction, kl"""

VAE_DIFFERENT_TRAIN = """\
def train_vae(net, epochs=2, lr=1e-3):
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for epoch in range(epochs):
        total = 0.0
        for x, _ in train_batches:
            opt.zero_grad()
            recon, mu, logvar = net(x)
            loss, reconstruction, kl = vae_loss(recon, x, mu, logvar)
            loss.backward()
            opt.step()
            total += loss.item()
        print(f'epoch {epoch + 1}: {total / len(mnist_train):.1f} per image')
    return net.eval()


net = train_vae(VariationalAutoencoder())"""

VAE_DIFFERENT_SAMPLES = """\
z_samples = torch.randn(100, net.latent_dim)  # from the prior N(0, I)
with torch.no_grad():
    generated = net.decode(z_samples).reshape(10, 10, 28, 28)
fig, ax = plt.subplots(figsize=(6, 6))
ax.imshow(generated.permute(0, 2, 1, 3).reshape(280, 280), cmap='gray')
ax.set_title('VAE samples from the prior')
ax.axis('off')
plt.show()

with torch.no_grad():
    mu_test = net.encode(mnist_test.data.float() / 255)[0].numpy()  # (N, 2)
fig, ax = plt.subplots(figsize=(5, 5))
dots = ax.scatter(mu_test[:, 0], mu_test[:, 1], c=mnist_test.targets.numpy(), cmap='tab10', s=4)
fig.colorbar(dots, ax=ax)
ax.set_title('Latent means of the test digits (VAE)')
plt.show()


def plot_generated_samples(model, rows=5, cols=5):
    z = torch.randn(rows * cols, model.latent_dim)
    with torch.no_grad():
        images = model.decode(z).reshape(-1, 28, 28)
    fig, axes = plt.subplots(rows, cols, figsize=(5, 5))
    for image, ax in zip(images, axes.flat):
        ax.imshow(image, cmap='gray')
        ax.axis('off')
    fig.suptitle('plot_generated_samples: new digits')
    plt.show()


for _ in range(2):
    plot_generated_samples(net)"""


def vae_different() -> nbformat.NotebookNode:
    """vae.ipynb written differently (other names, loss returning its terms, subplots); grades like the reference."""
    return notebook(
        "Assignment 2: variational autoencoder",
        VAE_DIFFERENT,
        VAE_DIFFERENT_NET,
        VAE_DIFFERENT_TRAIN,
        Markdown("### Samples, latent space and plot_generated_samples"),
        VAE_DIFFERENT_SAMPLES,
    )
