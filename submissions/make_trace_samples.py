"""Write the samples of networks written with functional ops: `python submissions/make_trace_samples.py`.

They live under ``submissions/trace/dl2025-a2/`` (graded against the dl2025-a2 rubric's ``cnn`` and
``ae`` tasks, calibrated on ``submissions/dl2025-a2/reference``), each folder what one student hands
in, written the way students write when they skip ``nn.Sequential``:

- ``functional_cnn``: CNNMNIST.ipynb whose ``Net`` holds only its conv and linear layers and does
  ``F.relu``, ``F.max_pool2d``, ``torch.flatten`` and ``F.log_softmax`` in ``forward``: the assignment's
  network, so it passes every architecture check;
- ``softmax_head``: the same network ending in ``F.softmax``, still trained with NLLLoss;
- ``ae_dim512``: autoencoders.ipynb with the hidden size ``dim2`` = 512 (as course templates have it; the
  text leaves it open) and its ReLUs called functionally;
- ``ae_latent_relu``: the same autoencoder with its 2-D code put through ``F.relu``.

Notebooks are written without outputs and with stable cell ids.
"""

from __future__ import annotations

from pathlib import Path

from autoencoder_notebooks import notebook, swap
from notebook_samples import write_samples

HERE = Path(__file__).parent / "trace" / "dl2025-a2"

CNN_SETUP = """\
import torch
from torch import nn, optim
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T
import matplotlib.pyplot as plt

torch.manual_seed(1)
n_epochs = 2
batch_size_train, batch_size_test = 64, 1000"""

CNN_DATA = """\
tf = T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])
trainloader = torch.utils.data.DataLoader(
    torchvision.datasets.MNIST('./data', train=True, download=True, transform=tf),
    batch_size=batch_size_train, shuffle=True)
testloader = torch.utils.data.DataLoader(
    torchvision.datasets.MNIST('./data', train=False, download=True, transform=tf),
    batch_size=batch_size_test, shuffle=False)"""

FUNCTIONAL_CNN = """\
class Net(nn.Module):
    # only the layers with weights are modules; relu, pooling and flatten are calls in forward
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3)
        self.fc = nn.Linear(32 * 5 * 5, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)   # 16 x 13 x 13
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)   # 32 x 5 x 5
        x = torch.flatten(x, 1)                      # 800 features
        x = self.fc(x)
        return F.log_softmax(x, dim=1)

network = Net()
print(network)
n_params = sum(p.numel() for p in network.parameters() if p.requires_grad)
print('number of parameters:', n_params)"""

SOFTMAX_CNN = swap(FUNCTIONAL_CNN, "return F.log_softmax(x, dim=1)", "return F.softmax(x, dim=1)")

CNN_TRAIN = """\
optimizer = optim.Adam(network.parameters(), lr=0.001)
criterion = nn.NLLLoss()
train_losses = []

def train(epoch):
    network.train()
    for batch_idx, (data, target) in enumerate(trainloader):
        optimizer.zero_grad()
        output = network(data)
        loss = criterion(output, target)
        loss.backward()
        optimizer.step()
        train_losses.append(loss.item())
    print('Train Epoch: {} \\tLoss: {:.6f}'.format(epoch, loss.item()))

for epoch in range(1, n_epochs + 1):
    train(epoch)"""

CNN_TEST = """\
network.eval()
correct = 0
class_correct, class_total = [0] * 10, [0] * 10
with torch.no_grad():
    for data, target in testloader:
        pred = network(data).argmax(dim=1)
        correct += (pred == target).sum().item()
        for t, p in zip(target, pred):
            class_total[t] += 1
            class_correct[t] += int(t == p)
print('Test accuracy: {:.2f}%'.format(100. * correct / len(testloader.dataset)))
for i in range(10):
    print('digit', i, ':', round(100 * class_correct[i] / max(class_total[i], 1), 1), '%')

plt.plot(train_losses)
plt.title('training loss')
plt.show()"""

AE_SETUP = """\
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import datasets, transforms
import matplotlib.pyplot as plt

torch.manual_seed(3)
dim1, dim2, dim3 = 784, 512, 2   # dim2 as in the course template
epochs = 1"""

AE_DATA = """\
mnist_train = datasets.MNIST('data', train=True, download=True, transform=transforms.ToTensor())
mnist_test = datasets.MNIST('data', train=False, download=True, transform=transforms.ToTensor())
train_dl = torch.utils.data.DataLoader(mnist_train, batch_size=128, shuffle=True)
test_dl = torch.utils.data.DataLoader(mnist_test, batch_size=500)"""

AE_NET = """\
class Encoder(nn.Module):
    def __init__(self, d_in, d_hidden, d_code):
        super().__init__()
        self.hidden = nn.Linear(d_in, d_hidden)
        self.code = nn.Linear(d_hidden, d_code)

    def forward(self, x):
        return self.code(F.relu(self.hidden(x)))


class Decoder(nn.Module):
    def __init__(self, d_code, d_hidden, d_out):
        super().__init__()
        self.hidden = nn.Linear(d_code, d_hidden)
        self.out = nn.Linear(d_hidden, d_out)

    def forward(self, z):
        return torch.sigmoid(self.out(F.relu(self.hidden(z))))


class Autoencoder(nn.Module):
    def __init__(self, dim1, dim2, dim3):
        super().__init__()
        self.encoder = Encoder(dim1, dim2, dim3)
        self.decoder = Decoder(dim3, dim2, dim1)

    def forward(self, x):
        z = self.encoder(x.view(x.size(0), -1))
        return self.decoder(z)"""

LATENT_RELU_NET = swap(AE_NET, "        z = self.encoder(x.view(x.size(0), -1))",
                       "        z = F.relu(self.encoder(x.view(x.size(0), -1)))  # keep the code positive")

AE_TRAIN = """\
model = Autoencoder(dim1, dim2, dim3)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for ep in range(epochs):
    for xb, _ in train_dl:
        xb = xb.view(-1, dim1)
        loss = F.binary_cross_entropy(model(xb), xb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print('epoch', ep, 'loss', loss.item())"""

AE_PLOTS = """\
model.eval()
with torch.no_grad():
    xb, yb = next(iter(test_dl))
    z = model.encoder(xb.view(-1, dim1)).numpy()
plt.scatter(z[:, 0], z[:, 1], c=yb.numpy(), cmap='tab10', s=4)
plt.title('latent space')
plt.show()

grid = np.linspace(z.min(), z.max(), 10)
with torch.no_grad():
    pics = model.decoder(torch.tensor([[a, b] for b in grid for a in grid], dtype=torch.float32))
fig, axs = plt.subplots(10, 10, figsize=(6, 6))
for ax, pic in zip(axs.flat, pics):
    ax.imshow(pic.view(28, 28).numpy(), cmap='gray')
    ax.axis('off')
fig.suptitle('decoded latent grid')
plt.show()"""


def cnn_notebook(net: str) -> object:
    """CNNMNIST.ipynb with the given network cell."""
    return notebook("CNN for MNIST", CNN_SETUP, CNN_DATA, net, CNN_TRAIN, CNN_TEST)


def ae_notebook(net: str) -> object:
    """autoencoders.ipynb (the autoencoder part only) with the given network cell."""
    return notebook("Autoencoder", AE_SETUP, AE_DATA, net, AE_TRAIN, AE_PLOTS)


def main() -> None:
    write_samples(HERE, {
        "functional_cnn": {"CNNMNIST.ipynb": cnn_notebook(FUNCTIONAL_CNN)},
        "softmax_head": {"CNNMNIST.ipynb": cnn_notebook(SOFTMAX_CNN)},
        "ae_dim512": {"autoencoders.ipynb": ae_notebook(AE_NET)},
        "ae_latent_relu": {"autoencoders.ipynb": ae_notebook(LATENT_RELU_NET)},
    })


if __name__ == "__main__":
    main()
