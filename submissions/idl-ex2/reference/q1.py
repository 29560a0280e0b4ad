"""Question 1: a convolutional autoencoder with an FC layer at the bottleneck (d = 12), mean L1 loss.

Architecture (common.py): three stride-2 3x3 convolutions with 16, 32 and 64 filters, BatchNorm
and ReLU take 28x28 to 4x4; an FC layer maps the 1,024 features to d = 12. The decoder mirrors
it with transposed convolutions and ends in a Sigmoid (pixels are in [0, 1]).
"""

import os

import matplotlib.pyplot as plt
import torch
from torch import nn, optim

from common import (CHECKPOINTS, LATENT_DIM, AutoEncoder, ConvDecoder, ConvEncoder, in_memory, loader, mnist,
                    reconstruction_loss, show_digits, train_autoencoder_epoch)

torch.manual_seed(0)
EPOCHS = 2

train_set = mnist(train=True)
test_set = mnist(train=False)
train_loader = loader(in_memory(train_set), shuffle=True)
test_loader = loader(in_memory(test_set), shuffle=False, batch_size=1000)

autoencoder = AutoEncoder(ConvEncoder(LATENT_DIM), ConvDecoder(LATENT_DIM))
print(autoencoder)
loss_fn = nn.L1Loss()  # mean absolute error per pixel
optimizer = optim.Adam(autoencoder.parameters(), lr=3e-3)

train_losses, test_losses = [], []
for epoch in range(1, EPOCHS + 1):
    train_losses.append(train_autoencoder_epoch(autoencoder, train_loader, loss_fn, optimizer))
    test_losses.append(reconstruction_loss(autoencoder, test_loader, loss_fn))
    print(f"epoch {epoch}: train L1 {train_losses[-1]:.4f}, test L1 {test_losses[-1]:.4f}")

os.makedirs(CHECKPOINTS, exist_ok=True)
torch.save(autoencoder.state_dict(), os.path.join(CHECKPOINTS, "autoencoder.pt"))

images, _ = next(iter(test_loader))
images = images[:20]
autoencoder.eval()
with torch.no_grad():
    reconstructions = autoencoder(images)
show_digits({"input": images, "reconstruction": reconstructions}, cols=10,
            title=f"Q1 autoencoder (d = {LATENT_DIM}): test L1 {test_losses[-1]:.4f}")

plt.plot(range(1, EPOCHS + 1), train_losses, marker="o", label="train")
plt.plot(range(1, EPOCHS + 1), test_losses, marker="o", label="test")
plt.xlabel("epoch")
plt.ylabel("mean L1 error")
plt.title("Q1 autoencoder: reconstruction loss")
plt.legend()
plt.show()
