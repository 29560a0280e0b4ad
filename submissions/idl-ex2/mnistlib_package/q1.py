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
