"""Write the mle-sheet06 sample submissions as notebooks: `python submissions/make_mle_sheet06_samples.py`.

Each sample is a folder holding what a student hands in: MLE_sheet06.ipynb, the completed
sheet (Exercise 1 answered in Markdown; Exercise 2, the CNN on SIGNS; Exercise 3, the
convolutional and the PCA autoencoder on FashionMNIST with the 3-D scatter of the codes).
The reference follows the sheet; `different` is correct but written another way; the others
carry one typical mistake each, named after it. Notebooks are written without outputs.

Epochs are few, the learning rates and latent dimensions two each, and the convolutional
autoencoders train on 1,000 of the training images (one epoch of the sheet's subset takes
about 20 s per model on one CPU thread), so that a notebook runs in about half a minute on one
CPU thread with the small prepared data (FashionMNIST 6,000 training images, SIGNS 960): the
samples are graded by the test suite.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from notebook_samples import write_samples

HERE = Path(__file__).parent / "mle-sheet06"
NOTEBOOK = "MLE_sheet06.ipynb"

# --------------------------------------------------------------------------- Exercise 1 (written answers)

MATHS = r"""## Exercise 1

**1. Sum of two independent Gaussians.** With $X \sim \mathcal{N}(\mu_1, \sigma_1^2)$ and
$Y \sim \mathcal{N}(\mu_2, \sigma_2^2)$ independent, the density of $Z = X + Y$ is the convolution

$$f_Z(z) = \int_{-\infty}^{\infty} f_X(x)\, f_Y(z - x)\, dx
= \frac{1}{2\pi\sigma_1\sigma_2} \int_{-\infty}^{\infty}
\exp\left(-\frac{(x-\mu_1)^2}{2\sigma_1^2} - \frac{(z-x-\mu_2)^2}{2\sigma_2^2}\right) dx .$$

The exponent is $-Ax^2 + Bx - C$ with $A = \frac{1}{2\sigma_1^2} + \frac{1}{2\sigma_2^2}$,
$B = \frac{\mu_1}{\sigma_1^2} + \frac{z-\mu_2}{\sigma_2^2}$, $C = \frac{\mu_1^2}{2\sigma_1^2} + \frac{(z-\mu_2)^2}{2\sigma_2^2}$.
Completing the square, $-Ax^2 + Bx - C = -A(x - \frac{B}{2A})^2 + \frac{B^2}{4A} - C$, and
$\int e^{-A(x - B/2A)^2} dx = \sqrt{\pi / A}$. With $\frac{1}{2A} = \frac{\sigma_1^2\sigma_2^2}{\sigma_1^2+\sigma_2^2}$
the prefactor becomes $\frac{1}{\sqrt{2\pi(\sigma_1^2+\sigma_2^2)}}$ and
$\frac{B^2}{4A} - C = -\frac{(z - \mu_1 - \mu_2)^2}{2(\sigma_1^2+\sigma_2^2)}$, so

$$Z = X + Y \sim \mathcal{N}(\mu_1 + \mu_2,\ \sigma_1^2 + \sigma_2^2).$$

**2. Output size of a convolution.** Padding $p$ on every side gives an $(H + 2p) \times (W + 2p)$ input;
a $K_H \times K_W$ filter moved in steps of $s$ fits
$\left\lfloor \frac{H + 2p - K_H}{s} \right\rfloor + 1$ times vertically and
$\left\lfloor \frac{W + 2p - K_W}{s} \right\rfloor + 1$ times horizontally: that is the output's height and width."""

# --------------------------------------------------------------------------- Exercise 2: CNN on SIGNS

IMPORTS = """\
import matplotlib.pyplot as plt
import numpy as np
import torch as tc
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import Dataset
from torch.utils.data import DataLoader

np.random.seed(42)
tc.manual_seed(42)

device = tc.device("cuda" if tc.cuda.is_available() else "cpu")"""

SIGNS_LOAD = """\
# Load the dataset
X_train = np.load('sign_data/X_train.npy')
Y_train = np.load('sign_data/Y_train.npy')
X_val = np.load('sign_data/X_val.npy')
Y_val = np.load('sign_data/Y_val.npy')
X_test = np.load('sign_data/X_test.npy')
Y_test = np.load('sign_data/Y_test.npy')

print("X_train shape: " + str(X_train.shape))
print("X_val shape: " + str(X_val.shape))
print("X_test shape: " + str(X_test.shape))
print("classes: " + str(np.unique(Y_train)))
# check if classes are balanced
print("Counts of classes in Y_train: " + str(np.unique(Y_train, return_counts=True)[1]))
print("Counts of classes in Y_test: " + str(np.unique(Y_test, return_counts=True)[1]))"""

SIGNS_SHOW = """\
fig, axs = plt.subplots(1, 6, figsize=(15, 3))
for i in range(6):
    idx = np.where(Y_train == i)[0][0]  # first image of class i
    axs[i].imshow(X_train[idx])
    axs[i].set_title("y = " + str(i))
    axs[i].axis('off')
plt.show()"""

SIGNS_SCALE = """\
# pixels from [0, 255] to [0, 1]
X_train = X_train / 255
X_val = X_val / 255
X_test = X_test / 255"""

CNN_CLASS = """\
class CNN_Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels=3, out_channels=4, kernel_size=3, stride=1, padding="same")
        self.bn1 = nn.BatchNorm2d(4)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)

        self.conv2 = nn.Conv2d(in_channels=4, out_channels=8, kernel_size=3, stride=1, padding="same")
        self.bn2 = nn.BatchNorm2d(8)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)

        # two 2x2 poolings: 64x64 -> 32x32 -> 16x16 with 8 channels
        self.fc1 = nn.Linear(8 * 16 * 16, 64)
        self.fc2 = nn.Linear(64, 6)
        self.log_softmax = nn.LogSoftmax(dim=1)

    def forward(self, X):
        X = self.pool1(nn.functional.relu(self.bn1(self.conv1(X))))  # (B, 4, 32, 32)
        X = self.pool2(nn.functional.relu(self.bn2(self.conv2(X))))  # (B, 8, 16, 16)
        X = X.view(X.size(0), -1)  # flatten all but the batch dimension: (B, 2048)
        X = nn.functional.relu(self.fc1(X))
        return self.log_softmax(self.fc2(X))  # (B, 6) log-probabilities"""

CNN_TEST = """\
cnn_model = CNN_Classifier()
X_random = tc.randn(2, 3, 64, 64)  # dummy batch of two
print("Output shape: " + str(cnn_model(X_random).shape))  # (2, 6)
n_parameters = sum(p.numel() for p in cnn_model.parameters() if p.requires_grad)
print(f"Trainable parameters: {n_parameters:,}")  # 131,958 as in the sheet's summary"""

DATASET = """\
class Image_Dataset(Dataset):
    def __init__(self, X, Y):
        self.X = X
        self.Y = Y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, idx):
        # (64, 64, 3) array -> (3, 64, 64) float tensor; label as a long tensor
        image = tc.tensor(self.X[idx], dtype=tc.float32).permute(2, 0, 1)
        label = tc.tensor(self.Y[idx], dtype=tc.long)
        return image, label


train_batch_size = 64
train_loader = DataLoader(Image_Dataset(X_train, Y_train), batch_size=train_batch_size, shuffle=True)
val_loader = DataLoader(Image_Dataset(X_val, Y_val), batch_size=len(Y_val), shuffle=False)
test_loader = DataLoader(Image_Dataset(X_test, Y_test), batch_size=len(Y_test), shuffle=False)"""

LOADER_SHOW = """\
sample_X, sample_Y = next(iter(train_loader))
plt.imshow(sample_X[0].permute(1, 2, 0))  # back to (64, 64, 3) for imshow
plt.title("y = " + str(int(sample_Y[0].item())))
plt.show()"""

TRAIN_CNN = """\
def train_cnn(model, train_loader, val_loader, lr, n_epochs, device):
    model = model.to(device)
    loss_function = nn.NLLLoss()  # the network outputs log-probabilities
    optimizer = optim.Adam(model.parameters(), lr=lr)

    train_loss, val_loss = np.zeros(n_epochs), np.zeros(n_epochs)
    train_acc, val_acc = np.zeros(n_epochs), np.zeros(n_epochs)
    for epoch in range(n_epochs):
        model.train()
        correct, total = 0, 0
        for X, Y in train_loader:
            X, Y = X.to(device), Y.to(device)
            optimizer.zero_grad()  # no gradients left over from the previous batch
            output = model(X)
            loss = loss_function(output, Y)
            loss.backward()
            optimizer.step()
            train_loss[epoch] += loss.item() / len(train_loader)
            correct += (output.argmax(dim=1) == Y).sum().item()
            total += len(Y)
        train_acc[epoch] = correct / total

        model.eval()
        correct, total = 0, 0
        with tc.no_grad():
            for X, Y in val_loader:
                X, Y = X.to(device), Y.to(device)
                output = model(X)
                val_loss[epoch] += loss_function(output, Y).item() / len(val_loader)
                correct += (output.argmax(dim=1) == Y).sum().item()
                total += len(Y)
        val_acc[epoch] = correct / total
        print(f"Epoch {epoch + 1}/{n_epochs} - Train Loss: {train_loss[epoch]:.4f}, Val Loss: {val_loss[epoch]:.4f}, "
              f"Train Acc: {train_acc[epoch]:.2%}, Val Acc: {val_acc[epoch]:.2%}")
    return train_loss, val_loss, train_acc, val_acc"""

TRAIN_CNN_RUN = """\
n_epochs = 6
learning_rates = [1e-3, 3e-3]
cnn_models, cnn_histories = {}, {}
for lr in learning_rates:
    print(f"learning rate {lr}")
    tc.manual_seed(0)
    cnn_models[lr] = CNN_Classifier()
    cnn_histories[lr] = train_cnn(cnn_models[lr], train_loader, val_loader, lr, n_epochs, device)

# keep the model with the best final validation accuracy
best_lr = max(learning_rates, key=lambda lr: cnn_histories[lr][3][-1])
cnn_model = cnn_models[best_lr]
print("best learning rate:", best_lr)"""

CNN_PLOT = """\
epochs = np.arange(1, n_epochs + 1)
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4))
for lr in learning_rates:
    train_loss, val_loss, train_acc, val_acc = cnn_histories[lr]
    ax_loss.plot(epochs, train_loss, label=f"train, lr={lr}")
    ax_loss.plot(epochs, val_loss, "--", label=f"val, lr={lr}")
    ax_acc.plot(epochs, train_acc, label=f"train, lr={lr}")
    ax_acc.plot(epochs, val_acc, "--", label=f"val, lr={lr}")
ax_loss.set_xlabel("Epoch")
ax_loss.set_ylabel("NLL loss")
ax_loss.set_title("Loss over epochs")
ax_loss.legend()
ax_acc.set_xlabel("Epoch")
ax_acc.set_ylabel("Accuracy")
ax_acc.set_title("Accuracy over epochs")
ax_acc.legend()
plt.tight_layout()
plt.show()"""

EVALUATE = """\
def evaluate_model(model, test_loader, device):
    model = model.to(device)
    model.eval()
    correct, total = 0, 0
    with tc.no_grad():
        for X, Y in test_loader:
            X, Y = X.to(device), Y.to(device)
            predictions = model(X).argmax(dim=1)
            correct += (predictions == Y).sum().item()
            total += Y.size(0)
    test_accuracy = correct / total
    print(f"Test Accuracy: {test_accuracy:.2%}")
    return test_accuracy


test_accuracy = evaluate_model(cnn_model, test_loader, device)"""

# --------------------------------------------------------------------------- Exercise 3: autoencoders

FASHION = """\
from torch.utils.data import TensorDataset
from torchvision import datasets, transforms

transform = transforms.Compose([
    transforms.ToTensor(),  # [0, 1]
    transforms.Normalize((0.5,), (0.5,)),  # [-1, 1]
])
train_data = datasets.FashionMNIST(root='./fashion_mnist', train=True, download=True, transform=transform)
test_data = datasets.FashionMNIST(root='./fashion_mnist', train=False, download=True, transform=transform)

# subset: the first 1000 images of each class for training, 10 of each for testing
classes = train_data.targets.unique()
indices_train, indices_test = [], []
for c in classes:
    indices_train += list(np.where(train_data.targets == c)[0][:1000])
    indices_test += list(np.where(test_data.targets == c)[0][:10])
train_data.data = train_data.data[indices_train]
train_data.targets = train_data.targets[indices_train]
test_data.data = test_data.data[indices_test]
test_data.targets = test_data.targets[indices_test]

# apply the transform once here, so that the training loops need not redo it in every epoch
train_images = tc.stack([train_data[i][0] for i in range(len(train_data))])  # (N, 1, 28, 28) in [-1, 1]
test_images = tc.stack([test_data[i][0] for i in range(len(test_data))])  # (100, 1, 28, 28)
train_loader = DataLoader(TensorDataset(train_images, train_data.targets), batch_size=32, shuffle=True)
test_loader = DataLoader(TensorDataset(test_images, test_data.targets), batch_size=len(test_data), shuffle=False)
print("train images shape: " + str(train_images.shape))
print("test images shape: " + str(test_images.shape))
print("Counts of classes in train set: " + str(train_data.targets.unique(return_counts=True)[1]))"""

FASHION_SHOW = """\
fig, axes = plt.subplots(2, 10, figsize=(12, 3))
for j in range(10):
    for i in range(2):
        idx = np.where(train_data.targets == j)[0][i]  # the i-th training image of class j
        axes[i, j].imshow(train_images[idx].squeeze(), cmap='gray')
        axes[i, j].set_title(f"Label: {j}")
        axes[i, j].axis('off')
plt.tight_layout()
plt.show()"""

CONV_AE = """\
class Conv_AE(nn.Module):
    def __init__(self, latent_dim):
        super(Conv_AE, self).__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels=1, out_channels=16, kernel_size=3, stride=1, padding="same"),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=1, padding=0),  # 28 -> 27
            nn.Conv2d(in_channels=16, out_channels=32, kernel_size=3, stride=1, padding="same"),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=1, padding=0),  # 27 -> 26
            nn.Conv2d(in_channels=32, out_channels=64, kernel_size=3, stride=1, padding="same"),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=1, padding=0),  # 26 -> 25
            nn.Flatten(),
            nn.Linear(in_features=64 * 25 * 25, out_features=latent_dim),  # the code
        )
        self.decoder = nn.Sequential(
            nn.Linear(in_features=latent_dim, out_features=64 * 3 * 3),
            nn.Unflatten(1, (64, 3, 3)),
            nn.ConvTranspose2d(64, 32, kernel_size=3, stride=2, padding=0, output_padding=0),  # 3 -> 7
            nn.ReLU(),
            nn.ConvTranspose2d(32, 16, kernel_size=3, stride=2, padding=1, output_padding=1),  # 7 -> 14
            nn.ReLU(),
            nn.ConvTranspose2d(16, 1, kernel_size=3, stride=2, padding=1, output_padding=1),  # 14 -> 28
        )

    def forward(self, X):
        return self.decoder(self.encoder(X))"""

CONV_AE_TEST = """\
X_random = tc.randn(2, 1, 28, 28)
print("Reconstructed shape: " + str(Conv_AE(2)(X_random).shape))  # (2, 1, 28, 28)
print(f"Parameters at latent dimension 2: {sum(p.numel() for p in Conv_AE(2).parameters()):,}")  # 128,259"""

TRAIN_AE = """\
def train_ae(model, train_loader, test_loader, lr, n_epochs, device):
    model = model.to(device)
    loss_function = nn.MSELoss()  # reconstruction vs input
    optimizer = tc.optim.Adam(model.parameters(), lr=lr)
    train_loss, test_loss = np.zeros(n_epochs), np.zeros(n_epochs)
    for epoch in range(n_epochs):
        model.train()
        for X, _ in train_loader:
            X = X.to(device)
            optimizer.zero_grad()
            loss = loss_function(model(X), X)
            loss.backward()
            optimizer.step()
            train_loss[epoch] += loss.item() / len(train_loader)

        model.eval()
        with tc.no_grad():
            X, _ = next(iter(test_loader))  # the whole test set is one batch
            X = X.to(device)
            test_loss[epoch] = loss_function(model(X), X).item()
        print(f"Epoch {epoch + 1}/{n_epochs} - Train Loss: {train_loss[epoch]:.4f}, Test Loss: {test_loss[epoch]:.4f}")
    return train_loss, test_loss"""

TRAIN_AE_RUN = """\
# CPU only: an epoch over all training images takes minutes per model, so the convolutional
# autoencoders train on a random 1,000 of them, in small batches (many steps for the time)
ae_part = np.random.permutation(len(train_images))[:1000]
ae_loader = DataLoader(TensorDataset(train_images[ae_part], train_data.targets[ae_part]), batch_size=16, shuffle=True)
n_epochs = 2
lr = 2e-3
latent_dims = [3, 10]
conv_ae_models, ae_histories = {}, {}
for latent_dim in latent_dims:
    print(f"Training Conv_AE with latent dimension: {latent_dim}")
    tc.manual_seed(0)
    conv_ae_models[latent_dim] = Conv_AE(latent_dim)
    ae_histories[latent_dim] = train_ae(conv_ae_models[latent_dim], ae_loader, test_loader, lr, n_epochs, device)"""

AE_PLOT = """\
plt.figure(figsize=(8, 4))
for latent_dim in latent_dims:
    train_loss, test_loss = ae_histories[latent_dim]
    plt.plot(np.arange(1, n_epochs + 1), train_loss, "o-", label=f"train, latent dim {latent_dim}")
    plt.plot(np.arange(1, n_epochs + 1), test_loss, "o--", label=f"test, latent dim {latent_dim}")
plt.title("Conv_AE: training and test loss")
plt.xlabel("Epoch")
plt.ylabel("MSE")
plt.legend()
plt.show()"""

VISUALIZE = """\
def visualize_reconstruction(models, data_loader, device, title=""):
    # first row: test images (one of every class); then one row of reconstructions per model
    X, _ = next(iter(data_loader))
    rows = [("original", X)]
    with tc.no_grad():
        for name, model in models.items():
            model.eval()
            rows.append((name, model(X.to(device)).cpu().view(-1, 1, 28, 28)))
    fig, axs = plt.subplots(len(rows), 10, figsize=(12, 1.4 * len(rows)))
    for r, (name, images) in enumerate(rows):
        for i in range(10):
            axs[r, i].imshow(images[10 * i].squeeze(), cmap='gray')  # the test set is ordered by class
            axs[r, i].axis('off')
        axs[r, 0].set_title(name, loc='left', fontsize=9)
    fig.suptitle(title)
    plt.show()


visualize_reconstruction({f"latent dim {d}": conv_ae_models[d] for d in latent_dims}, test_loader, device,
                         "Conv_AE reconstructions")"""

PCA_AE = """\
class PCA_AE(nn.Module):
    def __init__(self, input_dim, latent_dim):
        super(PCA_AE, self).__init__()
        # one linear layer each way; the biases take care of the mean
        self.encoder = nn.Sequential(nn.Linear(input_dim, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, input_dim))

    def forward(self, X):
        code = self.encoder(X.flatten(1))  # (B, 784) -> (B, latent_dim)
        return self.decoder(code).view(-1, 1, 28, 28)  # back to image shape"""

PCA_AE_RUN = """\
# same training function as for the convolutional autoencoder
tc.manual_seed(0)
pca_ae = PCA_AE(input_dim=28 * 28, latent_dim=10)
pca_epochs = 10
pca_train_loss, pca_test_loss = train_ae(pca_ae, train_loader, test_loader, 3e-3, pca_epochs, device)

plt.figure(figsize=(8, 4))
plt.plot(np.arange(1, pca_epochs + 1), pca_train_loss, label="train")
plt.plot(np.arange(1, pca_epochs + 1), pca_test_loss, "--", label="test")
plt.title("PCA autoencoder: training and test loss")
plt.xlabel("Epoch")
plt.ylabel("MSE")
plt.legend()
plt.show()

visualize_reconstruction({"PCA_AE": pca_ae, "Conv_AE, 10": conv_ae_models[10]}, test_loader, device,
                         "PCA autoencoder vs. Conv_AE, latent dimension 10")"""

ENCODE = """\
def encode_samples(model, data_loader, device, num_samples=800):
    model.eval()
    codes, labels = [], []
    with tc.no_grad():
        for X, Y in data_loader:
            codes.append(model.encoder(X.to(device)).cpu())
            labels.append(Y)
            if sum(len(c) for c in codes) >= num_samples:
                break
    return tc.cat(codes)[:num_samples].numpy(), tc.cat(labels)[:num_samples].numpy()


conv_ae = conv_ae_models[3]  # the model with a 3-dimensional code
codes, code_labels = encode_samples(conv_ae, train_loader, device, num_samples=800)

fig = plt.figure(figsize=(8, 7))
ax = fig.add_subplot(111, projection='3d')
points = ax.scatter(codes[:, 0], codes[:, 1], codes[:, 2], c=code_labels, cmap='tab10', s=8)
fig.colorbar(points, ax=ax, label='class')
ax.set_xlabel('z1')
ax.set_ylabel('z2')
ax.set_zlabel('z3')
ax.set_title('Conv_AE codes (latent dimension 3) by class')
plt.show()"""

OBSERVATION = """\
### Observation

Classes form separate clouds for the very different items (trousers, bags, sneakers vs. shirts),
while tops, pullovers, coats and shirts overlap in the 3-D code: three numbers cannot tell them
apart, and their reconstructions are blurred. More latent dimensions (10) reconstruct better.
The PCA autoencoder is linear: its decoder spans the first 10 principal components, so its
reconstructions are the PCA ones, smoother than the convolutional autoencoder's."""


def notebook(**replace: str) -> nbformat.NotebookNode:
    """The completed sheet, with any code cell replaced by keyword (cnn_class, train_cnn...)."""
    code = {
        "imports": IMPORTS, "signs_load": SIGNS_LOAD, "signs_show": SIGNS_SHOW, "signs_scale": SIGNS_SCALE,
        "cnn_class": CNN_CLASS, "cnn_test": CNN_TEST, "dataset": DATASET, "loader_show": LOADER_SHOW,
        "train_cnn": TRAIN_CNN, "train_cnn_run": TRAIN_CNN_RUN, "cnn_plot": CNN_PLOT, "evaluate": EVALUATE,
        "fashion": FASHION, "fashion_show": FASHION_SHOW, "conv_ae": CONV_AE, "conv_ae_test": CONV_AE_TEST,
        "train_ae": TRAIN_AE, "train_ae_run": TRAIN_AE_RUN, "ae_plot": AE_PLOT, "visualize": VISUALIZE,
        "pca_ae": PCA_AE, "pca_ae_run": PCA_AE_RUN, "encode": ENCODE,
    }
    unknown = set(replace) - set(code)
    if unknown:
        raise KeyError(f"no cells {sorted(unknown)}; cells: {', '.join(code)}")
    code.update(replace)
    md, py = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    headings = {
        "imports": "# Machine Learning Essentials SS25 - Exercise Sheet 6",
        "signs_load": "## Exercise 2 - CNN Classifier\n\nThe SIGNS dataset: six hand signs for the numbers 0 to 5.",
        "cnn_class": "### Task 1: the architecture",
        "dataset": "### Task 2: Dataset and DataLoader",
        "train_cnn": "### Task 3: training with NLLLoss and Adam, several learning rates",
        "evaluate": "### Task 4: the best model on the test set",
        "fashion": "## Exercise 3 - CNN Autoencoder\n\nFashionMNIST, normalised to [-1, 1].",
        "conv_ae": "### Task 1: Conv_AE",
        "train_ae": "### Task 2: training with the mean squared error",
        "pca_ae": "### Task 3: the PCA autoencoder",
        "encode": "### Task 4: the 3-D code",
    }
    cells = [md(MATHS)]
    for name, source in code.items():
        if name in headings:
            cells.append(md(headings[name]))
        cells.append(py(source))
    cells.append(md(OBSERVATION))
    for number, cell in enumerate(cells):
        cell.id = f"cell-{number:02d}"  # fixed ids: regenerating gives the same bytes (and content hash)
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


# --------------------------------------------------------------------------- `different`: correct, written another way

D_IMPORTS = """\
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets, transforms
import matplotlib.pyplot as plt

torch.manual_seed(7)
dev = 'cpu'"""

D_SIGNS_LOAD = """\
data = {split: (np.load(f'sign_data/X_{split}.npy'), np.load(f'sign_data/Y_{split}.npy'))
        for split in ('train', 'val', 'test')}
for split, (x, y) in data.items():
    print(split, x.shape, y.shape, np.bincount(y))"""

D_SIGNS_SHOW = """\
x, y = data['train']
fig, axes = plt.subplots(1, 6, figsize=(15, 3))
for digit, ax in enumerate(axes):
    ax.imshow(x[y == digit][0])
    ax.set_title(f'{digit} fingers')
    ax.axis('off')
plt.show()"""

D_SIGNS_SCALE = "# scaling to [0, 1] happens in the Dataset below"

D_CNN_CLASS = """\
class SignNet(nn.Module):
    # conv(4) and conv(8) feature blocks, then two fully connected layers; log-probabilities out

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),  # 64 -> 32
            nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),  # 32 -> 16
        )
        self.hidden = nn.Linear(8 * 16 * 16, 64)
        self.out = nn.Linear(64, 6)

    def forward(self, x):
        x = torch.flatten(self.features(x), start_dim=1)
        return F.log_softmax(self.out(F.relu(self.hidden(x))), dim=1)"""

D_CNN_TEST = """\
print(SignNet()(torch.zeros(2, 3, 64, 64)).shape)
print('parameters:', sum(p.numel() for p in SignNet().parameters()))"""

D_DATASET = """\
class SignsDataset(Dataset):
    # all images converted once: uint8 (N, 64, 64, 3) -> float (N, 3, 64, 64) in [0, 1]

    def __init__(self, images, labels):
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        self.labels = torch.from_numpy(labels).long()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


loaders = {split: DataLoader(SignsDataset(*data[split]), batch_size=64 if split == 'train' else 256,
                             shuffle=split == 'train')
           for split in data}"""

D_LOADER_SHOW = """\
images, labels = next(iter(loaders['train']))
plt.imshow(images[0].permute(1, 2, 0).numpy())
plt.title(f'label {labels[0].item()}')
plt.show()"""

D_TRAIN_CNN = """\
def run_epoch(net, loader, optimizer=None):
    # one pass over the loader, training when an optimizer is given; returns (mean loss, accuracy)
    net.train(optimizer is not None)
    total_loss, hits, seen = 0.0, 0, 0
    with torch.set_grad_enabled(optimizer is not None):
        for x, y in loader:
            log_probs = net(x.to(dev))
            loss = F.nll_loss(log_probs, y.to(dev))
            if optimizer is not None:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            total_loss += loss.item() * len(y)
            hits += (log_probs.argmax(1).cpu() == y).sum().item()
            seen += len(y)
    return total_loss / seen, hits / seen


def fit(net, lr, epochs):
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    history = {'train_loss': [], 'train_acc': [], 'val_loss': [], 'val_acc': []}
    for epoch in range(epochs):
        for name, value in zip(('train_loss', 'train_acc'), run_epoch(net, loaders['train'], optimizer)):
            history[name].append(value)
        for name, value in zip(('val_loss', 'val_acc'), run_epoch(net, loaders['val'])):
            history[name].append(value)
        print(epoch, {k: round(v[-1], 3) for k, v in history.items()})
    return history"""

D_TRAIN_CNN_RUN = """\
nets, histories = {}, {}
for lr in (3e-3, 1e-3):
    torch.manual_seed(1)
    nets[lr] = SignNet().to(dev)
    histories[lr] = fit(nets[lr], lr, epochs=6)
best = max(histories, key=lambda lr: histories[lr]['val_acc'][-1])
net = nets[best]"""

D_CNN_PLOT = """\
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for lr, history in histories.items():
    for ax, metric in zip(axes, ('loss', 'acc')):
        ax.plot(history['train_' + metric], label=f'train lr={lr:g}')
        ax.plot(history['val_' + metric], ':', label=f'val lr={lr:g}')
for ax, name in zip(axes, ('loss', 'accuracy')):
    ax.set_title(name)
    ax.set_xlabel('epoch')
    ax.legend()
plt.show()"""

D_EVALUATE = """\
def evaluate_model(net, loader):
    return run_epoch(net, loader)[1]


print(f"test accuracy of lr={best:g}: {evaluate_model(net, loaders['test']):.3f}")"""

D_FASHION = """\
to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
fashion_train = datasets.FashionMNIST('data', train=True, download=True, transform=to_tensor)
fashion_test = datasets.FashionMNIST('data', train=False, download=True, transform=to_tensor)


def per_class(targets, n):
    # indices of the first n examples of every class
    return torch.cat([torch.nonzero(targets == c).flatten()[:n] for c in range(10)])


train_subset = Subset(fashion_train, per_class(fashion_train.targets, 1000).tolist())
test_subset = Subset(fashion_test, per_class(fashion_test.targets, 10).tolist())
# the images in memory once, so that the transform is not repeated every epoch
train_x = torch.stack([image for image, _ in train_subset])
train_y = torch.tensor([label for _, label in train_subset])
test_x = torch.stack([image for image, _ in test_subset])
print(train_x.shape, test_x.shape)"""

D_FASHION_SHOW = """\
plt.figure(figsize=(10, 1.5))
for c in range(10):
    plt.subplot(1, 10, c + 1)
    plt.imshow(test_x[10 * c, 0], cmap='gray')
    plt.axis('off')
plt.show()"""

D_CONV_AE = """\
def encoder_block(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, stride=1)]


class ConvAutoencoder(nn.Module):
    def __init__(self, code_size):
        super().__init__()
        self.encoder = nn.Sequential(*encoder_block(1, 16), *encoder_block(16, 32), *encoder_block(32, 64),
                                     nn.Flatten(), nn.Linear(64 * 25 * 25, code_size))
        self.expand = nn.Linear(code_size, 576)
        self.up1 = nn.ConvTranspose2d(64, 32, 3, stride=2)  # 3 -> 7
        self.up2 = nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1)  # 7 -> 14
        self.up3 = nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1)  # 14 -> 28

    def decode(self, code):
        h = self.expand(code).view(-1, 64, 3, 3)
        return self.up3(F.relu(self.up2(F.relu(self.up1(h)))))

    def forward(self, x):
        return self.decode(self.encoder(x))"""

D_CONV_AE_TEST = "print(ConvAutoencoder(2)(torch.zeros(2, 1, 28, 28)).shape)"

D_TRAIN_AE = """\
def train_autoencoder(ae, images, lr, steps, batch_size):
    # Adam on the mean squared error for a fixed number of steps; returns the loss every 10 steps
    optimizer = torch.optim.Adam(ae.parameters(), lr=lr)
    losses = []
    ae.train()
    for step in range(steps):
        batch = images[torch.randint(len(images), (batch_size,))]
        loss = F.mse_loss(ae(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            losses.append(loss.item())
    return losses


def test_error(ae):
    ae.eval()
    with torch.no_grad():
        return F.mse_loss(ae(test_x).view_as(test_x), test_x).item()"""

D_TRAIN_AE_RUN = """\
# CPU only: 125 steps of 16 images per code size
autoencoders, curves = {}, {}
for code_size in (3, 10):
    torch.manual_seed(3)
    autoencoders[code_size] = ConvAutoencoder(code_size)
    curves[code_size] = train_autoencoder(autoencoders[code_size], train_x, 2e-3, steps=125, batch_size=16)
    print(code_size, 'test MSE', round(test_error(autoencoders[code_size]), 4))"""

D_AE_PLOT = """\
for code_size, curve in curves.items():
    plt.plot(np.arange(len(curve)) * 10, curve, label=f'code size {code_size}')
plt.xlabel('step')
plt.ylabel('training MSE')
plt.legend()
plt.show()"""

D_VISUALIZE = """\
def visualize_reconstruction(ae, n=8):
    ae.eval()
    with torch.no_grad():
        out = ae(test_x[::10][:n]).view(-1, 28, 28)
    fig, axes = plt.subplots(2, n, figsize=(n, 2.2))
    for i in range(n):
        axes[0, i].imshow(test_x[10 * i, 0], cmap='gray')
        axes[1, i].imshow(out[i], cmap='gray')
        axes[0, i].axis('off')
        axes[1, i].axis('off')
    fig.suptitle('test images (top) and their reconstructions (bottom)')
    plt.show()


visualize_reconstruction(autoencoders[10])"""

D_PCA_AE = """\
class LinearAE(nn.Module):
    def __init__(self, d=10):
        super().__init__()
        self.enc = nn.Linear(784, d)
        self.dec = nn.Linear(d, 784)

    def forward(self, x):
        return self.dec(self.enc(x.reshape(len(x), -1))).reshape(-1, 1, 28, 28)"""

D_PCA_AE_RUN = """\
torch.manual_seed(5)
linear_ae = LinearAE(10)
pca_curve = train_autoencoder(linear_ae, train_x, 3e-3, steps=1900, batch_size=32)
print('test MSE', round(test_error(linear_ae), 4))
plt.plot(np.arange(len(pca_curve)) * 10, pca_curve)
plt.title('linear autoencoder: training MSE')
plt.xlabel('step')
plt.show()
visualize_reconstruction(linear_ae)"""

D_ENCODE = """\
def encode_samples(ae, images, labels, n=800):
    ae.eval()
    with torch.no_grad():
        return ae.encoder(images[:n]).numpy(), labels[:n].numpy()


order = torch.randperm(len(train_x))
z, z_labels = encode_samples(autoencoders[3], train_x[order], train_y[order])
ax = plt.figure(figsize=(7, 6)).add_subplot(projection='3d')
ax.scatter(*z.T, c=z_labels, cmap='tab10', s=6)
ax.set_title('3-D codes, coloured by class')
plt.show()"""

DIFFERENT = {
    "imports": D_IMPORTS, "signs_load": D_SIGNS_LOAD, "signs_show": D_SIGNS_SHOW, "signs_scale": D_SIGNS_SCALE,
    "cnn_class": D_CNN_CLASS, "cnn_test": D_CNN_TEST, "dataset": D_DATASET, "loader_show": D_LOADER_SHOW,
    "train_cnn": D_TRAIN_CNN, "train_cnn_run": D_TRAIN_CNN_RUN, "cnn_plot": D_CNN_PLOT, "evaluate": D_EVALUATE,
    "fashion": D_FASHION, "fashion_show": D_FASHION_SHOW, "conv_ae": D_CONV_AE, "conv_ae_test": D_CONV_AE_TEST,
    "train_ae": D_TRAIN_AE, "train_ae_run": D_TRAIN_AE_RUN, "ae_plot": D_AE_PLOT, "visualize": D_VISUALIZE,
    "pca_ae": D_PCA_AE, "pca_ae_run": D_PCA_AE_RUN, "encode": D_ENCODE,
}

# --------------------------------------------------------------------------- typical mistakes


def _replaced(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced by ``new``; fails loudly when ``old`` is not there (a stale edit)."""
    if old not in text:
        raise ValueError(f"{old!r} not found")
    return text.replace(old, new)


# BatchNorm follows each convolution, so the student drops the convolutions' biases (bias=False):
# 12 parameters fewer than the sheet's 131,958.
NO_BIAS_CNN = _replaced(
    _replaced(
        _replaced(CNN_CLASS, 'kernel_size=3, stride=1, padding="same")\n        self.bn1',
                  'kernel_size=3, stride=1, padding="same", bias=False)\n        self.bn1'),
        'kernel_size=3, stride=1, padding="same")\n        self.bn2',
        'kernel_size=3, stride=1, padding="same", bias=False)\n        self.bn2',
    ),
    "        super().__init__()\n",
    "        super().__init__()\n"
    "        # no biases in the convolutions: the BatchNorm after each one has its own shift\n",
)
NO_BIAS_TEST = _replaced(CNN_TEST, "# 131,958 as in the sheet's summary", "# 131,946")

# A ReLU after the code layer of both autoencoders: codes are never negative, and the linear
# autoencoder is no longer linear (it cannot find the principal subspace).
RELU_CONV_AE = _replaced(
    CONV_AE,
    "nn.Linear(in_features=64 * 25 * 25, out_features=latent_dim),  # the code\n",
    "nn.Linear(in_features=64 * 25 * 25, out_features=latent_dim),  # the code\n            nn.ReLU(),\n",
)
RELU_PCA_AE = _replaced(
    PCA_AE,
    "self.encoder = nn.Sequential(nn.Linear(input_dim, latent_dim))",
    "self.encoder = nn.Sequential(nn.Linear(input_dim, latent_dim), nn.ReLU())",
)

# A typo in the first data cell: X_train never exists, so nothing of Exercise 2 trains
# (NameErrors follow); Exercise 3 still runs.
BROKEN_LOAD = _replaced(
    SIGNS_LOAD, "X_train = np.load('sign_data/X_train.npy')", "X_train = np.laod('sign_data/X_train.npy')"
)

SAMPLES: dict[str, dict[str, nbformat.NotebookNode]] = {
    # The sheet completed as it asks.
    "reference": {NOTEBOOK: notebook()},
    # Correct, written another way: other names and file name, Sequential blocks, padding=1,
    # functional ReLU, log_softmax and losses, step-based training, a Subset of FashionMNIST.
    "different": {"MLE_Sheet06_solution.ipynb": notebook(**DIFFERENT)},
    # Convolutions without biases: 131,946 parameters.
    "no_bias_count": {NOTEBOOK: notebook(cnn_class=NO_BIAS_CNN, cnn_test=NO_BIAS_TEST)},
    # A ReLU on the code of Conv_AE and PCA_AE.
    "relu_latent": {NOTEBOOK: notebook(conv_ae=RELU_CONV_AE, pca_ae=RELU_PCA_AE)},
    # np.laod: a NameError, then a cascade of them through Exercise 2.
    "broken": {NOTEBOOK: notebook(signs_load=BROKEN_LOAD)},
}


def main() -> None:
    """Write every sample folder next to this script."""
    write_samples(HERE, SAMPLES)


if __name__ == "__main__":
    main()
